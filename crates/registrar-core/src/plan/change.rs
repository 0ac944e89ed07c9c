//! The plan as data, which is also the saved-plan format: the plan, its summary, its
//! changes (each an action on an account, registration, group or membership) and the
//! order apply carries them out in.

use arcstr::ArcStr;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::{GroupSkipCounts, SkipCounts, Warning};
use crate::matched::Matched;
use crate::model::{im_name_key, is_own_im_name_key, GroupKind, Profile};

/// The version of the plan JSON format.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// The fields of a plan's header, in the order the plan JSON gives them before `changes`
/// (`render/json.rs`): a reader streaming a saved plan has the whole header once it has
/// read `revision_dirty`.
pub const PLAN_HEADER: [&str; 8] = [
    "format_version",
    "revision",
    "state_serial",
    "inputs_digest",
    "config_digest",
    "summary",
    "imports",
    "revision_dirty",
];

/// A computed plan; also the saved-plan file format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    /// The config revision (a git commit) the plan was made from, when known.
    pub revision: Option<String>,
    /// The store serial the plan was computed against; apply refuses any other.
    pub state_serial: i64,
    /// SHA-256 over the config files and source data the plan was computed from.
    #[serde(default)]
    pub inputs_digest: String,
    /// SHA-256 over the config files alone: the rules the plan was made with. An apply
    /// keeps the plan's totals for delta plans only under the same config.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_digest: String,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub warnings: Vec<Warning>,
    /// Per mapping: entries and values that produced no registration, and why.
    #[serde(default)]
    pub skipped: BTreeMap<String, SkipCounts>,
    /// Per group: member DNs that did not become members, and why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_skipped: BTreeMap<String, GroupSkipCounts>,
    /// Per ldif source, the files its directory was read from: the snapshot the store
    /// keeps when the plan is applied. Filled in by the caller, like `revision`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<SourceImport>,
    /// Entries read per source, entries each rule matched, and per source the entries
    /// holding each attribute the rules read ([`crate::matched`]).
    #[serde(default, skip_serializing_if = "Matched::is_empty")]
    pub sources: Matched,
}

/// What a plan read from one `ldif` source: its content file and every change file
/// applied to it, in order. Applying the plan keeps the snapshot these files give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceImport {
    pub source: String,
    pub content: ImportedFile,
    #[serde(default)]
    pub changes: Vec<ImportedFile>,
}

/// One file of an import: its path relative to the config directory, as the YAML names
/// it, and `sha256:` with the hex digest of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedFile {
    pub path: String,
    pub digest: String,
}

/// Counts of the plan's changes and findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub add: u64,
    pub update: u64,
    pub remove: u64,
    pub deactivate: u64,
    pub reactivate: u64,
    pub conflicts: u64,
    /// Objects (accounts, registrations and groups) left untouched because of exclusions.
    pub excluded: u64,
    /// Whether the deletion threshold blocks this plan.
    pub blocked: bool,
    /// Why the plan is blocked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blocked_reason: Option<String>,
}

impl Summary {
    /// How many changes the plan has (each counts under its action).
    pub fn changes(&self) -> u64 {
        [
            self.add,
            self.update,
            self.remove,
            self.deactivate,
            self.reactivate,
        ]
        .iter()
        .fold(0, |sum, n| sum.saturating_add(*n))
    }
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Add,
    Update,
    Remove,
    Deactivate,
    Reactivate,
}

/// What a change acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Account,
    Registration,
    Group,
    GroupMember,
}

/// A field's old and new value.
pub type FieldChange = (Option<String>, Option<String>);

/// One change. Fields that do not apply to a kind are absent from the JSON. Strings are
/// shared (`ArcStr`): the changes of one account carry one copy of its anchor and DN,
/// and every change of a mapping one copy of its name.
///
/// The fields most changes lack (a registration's own name key, an update's fields, an
/// account add's source and profile, a group's rule and kind) sit in one box, [`Detail`],
/// read through their accessors: a plan can hold millions of changes, and the common
/// ones are 80 bytes (a pointer a string) instead of 200. The JSON is flat, as if they
/// were fields here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FlatChange", into = "FlatChange")]
pub struct Change {
    pub action: Action,
    pub kind: Kind,
    pub protocol: Option<ArcStr>,
    pub im_name: Option<ArcStr>,
    /// The account's anchor value.
    pub account: Option<ArcStr>,
    /// For registrations: the owning mapping (after the change, for updates).
    pub mapping: Option<ArcStr>,
    pub reason: Option<ArcStr>,
    /// The account's DN (for account adds, the DN to record; for group members, the
    /// member's).
    pub dn: Option<ArcStr>,
    /// For groups and group members: the group's name.
    pub group: Option<ArcStr>,
    /// For group members: the member account's anchor.
    pub member: Option<ArcStr>,
    /// The fields few changes carry; `None` when none is set.
    pub detail: Option<Box<Detail>>,
}

// Plans of millions of changes: the rare fields stay in their box.
const _: () = assert!(std::mem::size_of::<Change>() <= 80);

/// The fields of a [`Change`] that most changes lack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    /// For registrations: the name key the row is stored under, when it is not the
    /// default one (`im_name` trimmed and lowercased): a case-sensitive protocol's name
    /// with capitals. See [`Change::name_key`].
    pub name_key: Option<ArcStr>,
    /// For updates: field → [old, new].
    pub fields: Option<BTreeMap<String, FieldChange>>,
    /// For account and group adds: the config source that manages the row.
    pub source: Option<ArcStr>,
    /// For account adds: the profile.
    pub profile: Option<Profile>,
    /// For groups: the group rule owning the group (after the change, for updates).
    pub group_rule: Option<ArcStr>,
    /// For group adds: the kind of group to record.
    pub group_kind: Option<GroupKind>,
}

/// A change as its JSON spells it: every field at the top, in this order.
#[derive(Serialize, Deserialize)]
struct FlatChange {
    action: Action,
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    protocol: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    im_name: Option<ArcStr>,
    #[serde(
        rename = "im_name_key",
        skip_serializing_if = "Option::is_none",
        default
    )]
    name_key: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    account: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    mapping: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    reason: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    fields: Option<BTreeMap<String, FieldChange>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    dn: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    source: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    profile: Option<Profile>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    group: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    member: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    group_rule: Option<ArcStr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    group_kind: Option<GroupKind>,
}

impl From<FlatChange> for Change {
    fn from(flat: FlatChange) -> Self {
        let detail = Detail {
            name_key: flat.name_key,
            fields: flat.fields,
            source: flat.source,
            profile: flat.profile,
            group_rule: flat.group_rule,
            group_kind: flat.group_kind,
        };
        Change {
            protocol: flat.protocol,
            im_name: flat.im_name,
            account: flat.account,
            mapping: flat.mapping,
            reason: flat.reason,
            dn: flat.dn,
            group: flat.group,
            member: flat.member,
            ..Change::new(flat.action, flat.kind).with_detail(detail)
        }
    }
}

impl From<Change> for FlatChange {
    fn from(change: Change) -> Self {
        let detail = change.detail.map(|detail| *detail).unwrap_or_default();
        FlatChange {
            action: change.action,
            kind: change.kind,
            protocol: change.protocol,
            im_name: change.im_name,
            name_key: detail.name_key,
            account: change.account,
            mapping: change.mapping,
            reason: change.reason,
            fields: detail.fields,
            dn: change.dn,
            source: detail.source,
            profile: detail.profile,
            group: change.group,
            member: change.member,
            group_rule: detail.group_rule,
            group_kind: detail.group_kind,
        }
    }
}

impl Change {
    /// A change with only its action and kind; set the other fields with `..` and the
    /// `with_` methods.
    pub fn new(action: Action, kind: Kind) -> Self {
        Change {
            action,
            kind,
            protocol: None,
            im_name: None,
            account: None,
            mapping: None,
            reason: None,
            dn: None,
            group: None,
            member: None,
            detail: None,
        }
    }

    /// The change with `detail`'s fields, boxed only when one is set.
    pub fn with_detail(mut self, detail: Detail) -> Self {
        self.detail = (detail != Detail::default()).then(|| Box::new(detail));
        self
    }

    /// The change's rarer fields, to set one (boxing them if none was set yet).
    pub fn detail_mut(&mut self) -> &mut Detail {
        self.detail.get_or_insert_with(Default::default)
    }

    /// The name key the registration is stored under, when not the default one (see
    /// [`Change::name_key`]).
    pub fn stored_name_key(&self) -> Option<&ArcStr> {
        self.detail.as_ref()?.name_key.as_ref()
    }

    /// For updates: field → [old, new].
    pub fn fields(&self) -> Option<&BTreeMap<String, FieldChange>> {
        self.detail.as_ref()?.fields.as_ref()
    }

    /// For account and group adds: the config source that manages the row.
    pub fn source(&self) -> Option<&ArcStr> {
        self.detail.as_ref()?.source.as_ref()
    }

    /// For account adds: the profile.
    pub fn profile(&self) -> Option<&Profile> {
        self.detail.as_ref()?.profile.as_ref()
    }

    /// For groups: the group rule owning the group.
    pub fn group_rule(&self) -> Option<&ArcStr> {
        self.detail.as_ref()?.group_rule.as_ref()
    }

    /// For group adds: the kind of group to record.
    pub fn group_kind(&self) -> Option<GroupKind> {
        self.detail.as_ref()?.group_kind
    }

    /// A change to the registration of `im_name`, stored under `name_key`.
    pub(super) fn registration(
        action: Action,
        (protocol, name_key): (ArcStr, &str),
        im_name: ArcStr,
        account: ArcStr,
    ) -> Self {
        let mut change = Change {
            protocol: Some(protocol),
            im_name: Some(im_name),
            account: Some(account),
            ..Change::new(action, Kind::Registration)
        };
        // Carried only when the default one (see `name_key`) is not it.
        if *change.name_key() != *name_key {
            change.detail_mut().name_key = Some(name_key.into());
        }
        change
    }

    pub(super) fn account(action: Action, account: ArcStr, dn: Option<ArcStr>) -> Self {
        Change {
            account: Some(account),
            dn,
            ..Change::new(action, Kind::Account)
        }
    }

    pub(super) fn group(action: Action, group: &ArcStr) -> Self {
        Change {
            group: Some(group.clone()),
            ..Change::new(action, Kind::Group)
        }
    }

    pub(super) fn group_member(action: Action, group: &ArcStr, member: ArcStr) -> Self {
        Change {
            group: Some(group.clone()),
            member: Some(member),
            ..Change::new(action, Kind::GroupMember)
        }
    }

    /// Where the change falls in apply order: accounts appear before their names and
    /// memberships, names are freed before they are given again, members leave a group
    /// before it goes and join it after it comes, accounts go last.
    fn phase(&self) -> u8 {
        match (self.kind, self.action) {
            (Kind::Account, Action::Add) => 0,
            (Kind::Account, Action::Update | Action::Reactivate) => 1,
            (Kind::Registration, Action::Remove) => 2,
            (Kind::Registration, Action::Update) => 3,
            (Kind::Registration, _) => 4,
            (Kind::GroupMember, Action::Remove) => 5,
            (Kind::Group, Action::Remove) => 6,
            (Kind::Group, _) => 7,
            (Kind::GroupMember, _) => 8,
            (Kind::Account, Action::Deactivate) => 9,
            (Kind::Account, Action::Remove) => 10,
        }
    }

    /// A registration change's name key: the one it carries, else the default
    /// normalisation of its IM name; empty without a protocol and a name.
    pub fn name_key(&self) -> Cow<'_, str> {
        match (&self.protocol, self.stored_name_key(), &self.im_name) {
            (Some(_), Some(key), _) => Cow::Borrowed(&**key),
            (Some(_), None, Some(name)) if is_own_im_name_key(name) => Cow::Borrowed(&**name),
            (Some(_), None, Some(name)) => Cow::Owned(im_name_key(name)),
            _ => Cow::Borrowed(""),
        }
    }

    /// The total order of changes in a plan: phase, protocol, name key, group, account,
    /// member.
    pub(super) fn order(&self, other: &Change) -> Ordering {
        /// Two optional texts in order, absent as empty; one shared string (a group's
        /// name on each of its members' changes, a protocol's) equal at once.
        fn texts(a: &Option<ArcStr>, b: &Option<ArcStr>) -> Ordering {
            match (a, b) {
                (None, None) => Ordering::Equal,
                (Some(a), Some(b)) if ArcStr::ptr_eq(a, b) => Ordering::Equal,
                _ => a.as_deref().unwrap_or("").cmp(b.as_deref().unwrap_or("")),
            }
        }
        // Without a protocol, a change's name key is empty: most changes' then.
        let name_keys = |a: &Change, b: &Change| match (&a.protocol, &b.protocol) {
            (None, None) => Ordering::Equal,
            _ => a.name_key().cmp(&b.name_key()),
        };
        self.phase()
            .cmp(&other.phase())
            .then_with(|| texts(&self.protocol, &other.protocol))
            .then_with(|| name_keys(self, other))
            .then_with(|| texts(&self.group, &other.group))
            .then_with(|| texts(&self.account, &other.account))
            .then_with(|| texts(&self.member, &other.member))
    }
}

/// How many phases [`Change::phase`] tells apart.
const PHASES: usize = 11;

/// The changes of a plan as the walks make them. Each arrives checked against the last
/// change of its phase, while both are fresh in the cache: the walks give each phase in
/// apply order, and checking that afterwards would cost a cache miss a change (a second,
/// for a million changes). [`ChangeList::into_apply_order`] then sorts only a phase that
/// did not come in order.
pub(super) struct ChangeList {
    changes: Vec<Change>,
    last_of_phase: [Option<usize>; PHASES],
    phase_in_order: [bool; PHASES],
}

impl ChangeList {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        ChangeList {
            changes: Vec::with_capacity(capacity),
            last_of_phase: [None; PHASES],
            phase_in_order: [true; PHASES],
        }
    }

    pub(super) fn push(&mut self, change: Change) {
        let phase = usize::from(change.phase());
        if let Some(last) = self.last_of_phase[phase] {
            if self.phase_in_order[phase] && self.changes[last].order(&change) == Ordering::Greater
            {
                self.phase_in_order[phase] = false;
            }
        }
        self.last_of_phase[phase] = Some(self.changes.len());
        self.changes.push(change);
    }

    /// Each change's DN, where `dn_of` knows it and the change has none (a field apply
    /// order does not read).
    pub(super) fn fill_dns(&mut self, mut dn_of: impl FnMut(&Change) -> Option<ArcStr>) {
        for change in &mut self.changes {
            if change.dn.is_none() {
                change.dn = dn_of(change);
            }
        }
    }

    /// The changes in apply order ([`Change::order`]), ties in the order they came.
    pub(super) fn into_apply_order(self) -> Vec<Change> {
        let mut changes = self.changes;
        sort_phases_in_apply_order(&mut changes, self.phase_in_order);
        changes
    }
}

/// Puts `changes` in apply order ([`Change::order`]), ties in the order they came: what a
/// stable sort gives. `known_in_order` tells the phases whose changes are known to have
/// come in order. A stable sort of the changes themselves would take a
/// scratch copy of half of them (400 MB for a first import of a million accounts), and
/// compare strings throughout: this sorts their 4-byte positions instead, by phase first
/// (a counting sort: integers), then within each phase only where they did not already
/// come in order (each walk gives them so: an unknown phase costs one comparison a
/// change), and then moves each change into place along the permutation's cycles.
fn sort_phases_in_apply_order(changes: &mut [Change], known_in_order: [bool; PHASES]) {
    if u32::try_from(changes.len()).is_err() {
        changes.sort_by(Change::order);
        return;
    }
    // Where each phase's positions start, then the positions phase by phase, each
    // phase's in the order its changes came.
    let mut starts = [0usize; PHASES + 1];
    for change in changes.iter() {
        starts[usize::from(change.phase()) + 1] += 1;
    }
    for phase in 0..PHASES {
        starts[phase + 1] += starts[phase];
    }
    // `order[k]`: the position of the change that belongs at `k`.
    let mut order = vec![0u32; changes.len()];
    let mut next = starts;
    for (position, change) in changes.iter().enumerate() {
        let phase = usize::from(change.phase());
        order[next[phase]] = position as u32;
        next[phase] += 1;
    }
    let by_order = |a: &u32, b: &u32| changes[*a as usize].order(&changes[*b as usize]);
    for phase in 0..PHASES {
        let positions = &mut order[starts[phase]..starts[phase + 1]];
        if !known_in_order[phase]
            && !positions.is_sorted_by(|a, b| by_order(a, b) != Ordering::Greater)
        {
            // Stable: equal changes keep the order they came in.
            positions.sort_by(by_order);
        }
    }
    for start in 0..changes.len() {
        // Carry the change at `start` along its cycle: each position in turn takes the
        // change that belongs there, and hands the carried one on. A position done is
        // marked by pointing at itself.
        let mut here = start;
        loop {
            let from = order[here] as usize;
            order[here] = here as u32;
            if from == start || from == here {
                break;
            }
            changes.swap(here, from);
            here = from;
        }
    }
}
