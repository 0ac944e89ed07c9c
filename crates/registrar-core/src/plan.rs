//! `plan = g(rules, desired, state)`: the ordered changes that turn the managed part of
//! the store into the desired state, with the reconciliation rules of DESIGN.md applied.
//!
//! Pure and deterministic. Only rows with an owner are ever changed; unmanaged rows are
//! read to report conflicts and nothing else. The plan is also the saved-plan format, so
//! every change carries what `apply` needs to carry it out without re-reading anything.
//!
//! The desired state and the store are both sorted the same way (accounts by anchor,
//! registrations by protocol and name key), so each is walked once beside the other
//! rather than looked up row by row. A change shares the strings of the desired state
//! (names, anchors, DNs) instead of copying them: a first import of a million users is
//! millions of changes.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::desired::{
    mapping_bit, Claim, Desired, DesiredAccount, DesiredGroup, GroupSkipCounts, SkipCounts,
    Warning, WarningKind,
};
use crate::dn::normalize_dn;
use crate::matched::{Matched, Watch};
use crate::model::{
    im_name_key, is_own_im_name_key, Departure, GroupKind, Profile, ProfileField, Rules,
};
use crate::quote::{quote_for_message, shown_for_message};
use crate::state::{AccountStatus, RegistrationKey, State, StateRegistration};

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
/// shared (`Arc<str>`): the changes of one account carry one copy of its anchor and DN,
/// and every change of a mapping one copy of its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub im_name: Option<Arc<str>>,
    /// For registrations: the name key the row is stored under, when it is not the
    /// default one (`im_name` trimmed and lowercased): a case-sensitive protocol's name
    /// with capitals. See [`Change::name_key`].
    #[serde(
        rename = "im_name_key",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub name_key: Option<Arc<str>>,
    /// The account's anchor value.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account: Option<Arc<str>>,
    /// For registrations: the owning mapping (after the change, for updates).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mapping: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<Arc<str>>,
    /// For updates: field → [old, new]. (Boxed, like `profile`, to keep the common
    /// registration change small: plans can hold millions.)
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fields: Option<Box<BTreeMap<String, FieldChange>>>,
    /// The account's DN (for account adds, the DN to record; for group members, the
    /// member's).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dn: Option<Arc<str>>,
    /// For account and group adds: the config source that manages the row.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<Arc<str>>,
    /// For account adds: the profile.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub profile: Option<Box<Profile>>,
    /// For groups and group members: the group's name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group: Option<Arc<str>>,
    /// For group members: the member account's anchor.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub member: Option<Arc<str>>,
    /// For groups: the group rule owning the group (after the change, for updates).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group_rule: Option<Arc<str>>,
    /// For group adds: the kind of group to record.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group_kind: Option<GroupKind>,
}

impl Change {
    /// A change with only its action and kind; set the other fields with `..`.
    pub fn new(action: Action, kind: Kind) -> Self {
        Change {
            action,
            kind,
            protocol: None,
            im_name: None,
            name_key: None,
            account: None,
            mapping: None,
            reason: None,
            fields: None,
            dn: None,
            source: None,
            profile: None,
            group: None,
            member: None,
            group_rule: None,
            group_kind: None,
        }
    }

    /// A change to the registration of `im_name`, stored under `name_key`.
    fn registration(
        action: Action,
        (protocol, name_key): (Arc<str>, &Arc<str>),
        im_name: Arc<str>,
        account: Arc<str>,
    ) -> Self {
        let mut change = Change {
            protocol: Some(protocol),
            im_name: Some(im_name),
            account: Some(account),
            ..Change::new(action, Kind::Registration)
        };
        // Carried only when the default one (see `name_key`) is not it.
        if *change.name_key() != **name_key {
            change.name_key = Some(name_key.clone());
        }
        change
    }

    fn account(action: Action, account: Arc<str>, dn: Option<Arc<str>>) -> Self {
        Change {
            account: Some(account),
            dn,
            ..Change::new(action, Kind::Account)
        }
    }

    fn group(action: Action, group: &Arc<str>) -> Self {
        Change {
            group: Some(group.clone()),
            ..Change::new(action, Kind::Group)
        }
    }

    fn group_member(action: Action, group: &Arc<str>, member: Arc<str>) -> Self {
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
        match (&self.protocol, &self.name_key, &self.im_name) {
            (Some(_), Some(key), _) => Cow::Borrowed(&**key),
            (Some(_), None, Some(name)) if is_own_im_name_key(name) => Cow::Borrowed(&**name),
            (Some(_), None, Some(name)) => Cow::Owned(im_name_key(name)),
            _ => Cow::Borrowed(""),
        }
    }

    /// The total order of changes in a plan: phase, protocol, name key, group, account,
    /// member.
    fn order(&self, other: &Change) -> Ordering {
        fn text(value: &Option<Arc<str>>) -> &str {
            value.as_deref().unwrap_or("")
        }
        self.phase()
            .cmp(&other.phase())
            .then_with(|| text(&self.protocol).cmp(text(&other.protocol)))
            .then_with(|| self.name_key().cmp(&other.name_key()))
            .then_with(|| text(&self.group).cmp(text(&other.group)))
            .then_with(|| text(&self.account).cmp(text(&other.account)))
            .then_with(|| text(&self.member).cmp(text(&other.member)))
    }
}

/// Why there can be no plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "source {source_name} yielded no accounts but the store holds {managed} managed account(s) from it; \
         refusing to plan their removal (set allow_empty: true on the source if this is intended)"
    )]
    EmptySource { source_name: String, managed: u64 },
}

/// Why a managed row loses its place.
fn departure_reason(in_config: bool, disabled: bool) -> &'static str {
    if disabled {
        "account disabled"
    } else if in_config {
        "account left scope"
    } else {
        "source removed"
    }
}

/// Why a mapping (`owner`) no longer claims a name for an account still in the directory
/// (`account`): the entry no longer passes the mapping's `when` filter, its source is not
/// among the mapping's sources, or the template gives another value or none.
fn lost_claim_reason(rules: &Rules, owner: &str, account: Option<&DesiredAccount>) -> String {
    let general = format!("no longer produced by mapping {owner}");
    let Some(account) = account else {
        return general;
    };
    let Some(index) = rules.mappings.iter().position(|m| m.name == owner) else {
        return general; // a renamed mapping: the rename is what happened
    };
    if !rules.mappings[index].reads(&account.source) {
        return format!(
            "entry's source {} is not among mapping {owner}'s sources",
            account.source
        );
    }
    let Some(bit) = mapping_bit(index) else {
        return general;
    };
    if account.rejected_by & bit != 0 {
        format!("entry no longer matches mapping {owner}'s filter")
    } else if account.produced_by & bit != 0 {
        format!("mapping {owner} now produces another value for the entry")
    } else {
        format!("mapping {owner} produces no value for the entry")
    }
}

/// Each distinct reason allocated once, however many changes give it.
#[derive(Default)]
struct Reasons(BTreeMap<String, Arc<str>>);

impl Reasons {
    fn get(&mut self, reason: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(reason) {
            return shared.clone();
        }
        let shared: Arc<str> = reason.into();
        self.0.insert(reason.to_string(), shared.clone());
        shared
    }
}

/// Computes the plan. `revision`, `inputs_digest` and `config_digest` are left for the
/// caller to fill in.
///
/// The desired state is consumed: its strings move into the changes instead of being
/// copied, which halves the memory a large first import needs.
pub fn plan(rules: &Rules, desired: Desired, state: &State) -> Result<Plan, PlanError> {
    check_empty_sources(
        rules,
        &desired.accounts_per_source,
        &desired.frozen_accounts,
        state,
    )?;
    let managed = managed_rows(state);
    let mut plan = plan_rows(rules, desired, state, managed);
    add_unheld_warnings(rules, &mut plan);
    Ok(plan)
}

/// Adds to `plan` a warning for every attribute a template or filter reads that no entry
/// of its source holds, from the plan's totals (`plan.sources`).
pub(crate) fn add_unheld_warnings(rules: &Rules, plan: &mut Plan) {
    let unheld = Watch::new(rules).unheld_warnings(rules, &plan.sources);
    if unheld.is_empty() {
        return;
    }
    plan.warnings.extend(unheld);
    plan.warnings.sort();
    plan.warnings.dedup();
}

/// The managed rows `state` holds (accounts with a source, registrations and groups with
/// an owner, and the members of those groups): what `policy.max_delete_percent` is a
/// share of.
pub fn managed_rows(state: &State) -> u64 {
    (state
        .registrations
        .values()
        .filter(|r| r.is_managed())
        .count()
        + state
            .accounts
            .values()
            .filter(|a| a.source.is_some())
            .count()
        + state
            .groups
            .values()
            .filter(|g| g.is_managed())
            .map(|g| 1 + g.members.len())
            .sum::<usize>()) as u64
}

/// [`plan`] without the empty-source rule (rule 7), which the caller has settled: the
/// changes, warnings and summary, with the deletion threshold taken against `managed`
/// rows.
pub(crate) fn plan_rows(rules: &Rules, desired: Desired, state: &State, managed: u64) -> Plan {
    let Desired {
        mut accounts,
        claims,
        frozen_accounts,
        frozen_registrations,
        skipped,
        accounts_per_source: _, // rule 7, checked by the caller
        groups,
        frozen_groups,
        group_skipped,
        warnings,
        matched,
    } = desired;

    // Sized for the worst case up front: growing a vector of a million changes by
    // doubling would briefly hold two copies.
    let mut changes: Vec<Change> = Vec::with_capacity(
        2 * accounts.len() + claims.len() + state.accounts.len() + state.registrations.len(),
    );
    let mut warnings: Vec<Warning> = warnings;
    let mut reasons = Reasons::default();

    // Exclusions freeze accounts (by anchor, DN subtree) and names (by IM-name rules).
    let has_dn_rules = rules.exclusions.iter().any(|e| e.freezes_by_dn());
    let has_name_rules = rules.exclusions.iter().any(|e| e.freezes_by_name());
    let frozen_account = |anchor: &str| -> bool {
        frozen_accounts.contains(anchor)
            || (has_dn_rules
                && state.accounts.get(anchor).is_some_and(|account| {
                    let dn = normalize_dn(&account.dn);
                    rules.exclusions.iter().any(|e| e.freezes_dn(&dn))
                }))
    };
    let frozen_registration =
        |protocol: &str, name_key: &str, row: Option<&StateRegistration>| -> bool {
            (!frozen_registrations.is_empty()
                && frozen_registrations.contains(&registration_key(protocol, name_key)))
                || (has_name_rules
                    && rules
                        .exclusions
                        .iter()
                        .any(|e| e.freezes_registration(protocol, name_key)))
                || row.is_some_and(|r| frozen_account(&r.account))
        };
    let mut excluded_accounts: BTreeSet<&str> =
        frozen_accounts.iter().map(String::as_str).collect();
    let mut excluded_registrations: BTreeSet<RegistrationKey> = frozen_registrations.clone();

    let unmanaged_holders: BTreeSet<&str> = state
        .registrations
        .values()
        .filter(|r| !r.is_managed())
        .map(|r| &*r.account)
        .collect();
    let holds_unmanaged = |anchor: &str| unmanaged_holders.contains(anchor);

    // Accounts: adds, updates, (re)activation and departures, walking the desired
    // accounts and the stored ones side by side.
    let source_names: BTreeSet<&str> = rules.sources.iter().map(|s| s.name.as_str()).collect();
    let on_departure = rules.accounts.on_departure;
    // Managed accounts that give up their managed registrations, with the reason.
    let mut departing: BTreeMap<&str, &'static str> = BTreeMap::new();
    let mut wanted_accounts = accounts.iter_mut().peekable();
    let mut stored_accounts = state.accounts.iter().peekable();
    loop {
        let order = match (wanted_accounts.peek(), stored_accounts.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(wanted), Some((anchor, _))) => (*wanted.anchor).cmp(&**anchor),
        };
        if order == Ordering::Greater {
            // Only in the store.
            let (anchor, actual) = stored_accounts.next().expect("peeked");
            let Some(source) = &actual.source else {
                continue; // unmanaged: never changed
            };
            if frozen_account(anchor) {
                excluded_accounts.insert(anchor);
                continue;
            }
            let in_config = source_names.contains(&**source);
            let reason = departure_reason(in_config, false);
            departing.insert(anchor, reason);
            let short = if in_config {
                "left scope"
            } else {
                "source removed"
            };
            push_departure(
                &mut changes,
                on_departure,
                Change::account(
                    Action::Remove,
                    anchor.clone(),
                    Some(actual.dn.as_str().into()),
                ),
                actual.status,
                reasons.get(short),
                holds_unmanaged(anchor),
            );
            continue;
        }
        let wanted = wanted_accounts.next().expect("peeked");
        let actual = if order == Ordering::Equal {
            stored_accounts.next()
        } else {
            None
        };
        let Some((stored_anchor, actual)) = actual else {
            if wanted.enabled {
                changes.push(Change {
                    source: Some(wanted.source.clone()),
                    profile: Some(Box::new(std::mem::take(&mut wanted.profile))),
                    ..Change::account(Action::Add, wanted.anchor.clone(), Some(wanted.dn.clone()))
                });
            }
            continue;
        };
        let mut fields = BTreeMap::new();
        for field in ProfileField::ALL {
            let old = actual.profile.get(field);
            let new = wanted.profile.get(field);
            if old != new {
                fields.insert(
                    field.name().to_string(),
                    (old.map(str::to_string), new.map(str::to_string)),
                );
            }
        }
        if *actual.dn != *wanted.dn {
            fields.insert(
                "dn".to_string(),
                (Some(actual.dn.clone()), Some(wanted.dn.to_string())),
            );
        }
        if actual.source.as_deref() != Some(&*wanted.source) {
            fields.insert(
                "source".to_string(),
                (
                    actual.source.as_deref().map(str::to_string),
                    Some(wanted.source.to_string()),
                ),
            );
        }
        let account = || {
            Change::account(
                Action::Update,
                wanted.anchor.clone(),
                Some(wanted.dn.clone()),
            )
        };
        if !fields.is_empty() {
            changes.push(Change {
                fields: Some(Box::new(fields)),
                ..account()
            });
        }
        match (wanted.enabled, actual.status) {
            (true, AccountStatus::Deactivated) => changes.push(Change {
                action: Action::Reactivate,
                reason: Some(reasons.get("enabled in the directory")),
                ..account()
            }),
            (false, _) => {
                departing.insert(stored_anchor, departure_reason(true, true));
                push_departure(
                    &mut changes,
                    on_departure,
                    account(),
                    actual.status,
                    reasons.get("disabled"),
                    holds_unmanaged(stored_anchor),
                );
            }
            (true, AccountStatus::Active) => {}
        }
    }
    drop(wanted_accounts);
    let accounts = accounts;
    let keeps_registrations = on_departure == Departure::Keep;
    let wanted_account = |anchor: &str| -> Option<&DesiredAccount> {
        accounts
            .binary_search_by(|account| (*account.anchor).cmp(anchor))
            .ok()
            .map(|index| &accounts[index])
    };
    // Every change names the account's DN too, so that people can read plans made with
    // opaque anchors such as entryUUID: the directory's, else the store's.
    let dn_of = |anchor: &str| -> Option<Arc<str>> {
        wanted_account(anchor)
            .map(|a| a.dn.clone())
            .or_else(|| state.accounts.get(anchor).map(|a| a.dn.as_str().into()))
    };

    // An account as a warning names it: its DN, with the anchor where the anchor is not
    // the DN itself (entryUUID, objectGUID); the anchor alone if no DN is known.
    let person = |anchor: &str| -> String {
        match dn_of(anchor) {
            Some(dn) if normalize_dn(&dn) == anchor => shown_for_message(&*dn),
            Some(dn) => format!(
                "{} (anchor {})",
                shown_for_message(&*dn),
                shown_for_message(anchor)
            ),
            None => shown_for_message(anchor),
        }
    };

    // A claimant denied a name another account holds: `held` says how it is held.
    let denied = |protocol: &str,
                  name_key: &str,
                  im_name: &str,
                  claimant: &str,
                  holder: &str,
                  held: String| {
        conflict(
            protocol,
            name_key,
            claimant,
            Some(holder),
            format!(
                "{protocol} name {} wanted for {} is {held}; skipped",
                quote_for_message(im_name),
                person(claimant)
            ),
        )
    };

    // Registrations, walking the claims and the stored rows side by side, name by name.
    let same_person = |row_account: &str, desired_anchor: &str| -> bool {
        row_account == desired_anchor
            || match (
                state.accounts.get(row_account),
                wanted_account(desired_anchor),
            ) {
                (Some(row), Some(wanted)) => normalize_dn(&row.dn) == normalize_dn(&wanted.dn),
                _ => false,
            }
    };
    let mapping_names: BTreeSet<&str> = rules.mappings.iter().map(|m| m.name.as_str()).collect();
    let renamed_to = |old: &str| -> Option<&str> {
        rules
            .mappings
            .iter()
            .find(|m| m.renamed_from.iter().any(|o| o == old))
            .map(|m| m.name.as_str())
    };
    let anchor_of = |index: usize| -> &str { &accounts[index].anchor };
    let mut claims = claims.into_iter().peekable();
    let mut rows = state.registrations.iter().peekable();
    // The claims on the current name, in (account, mapping, IM name) order, and their
    // claimants (buffers reused from name to name: millions of names, no allocation each).
    let mut on_name: Vec<Claim> = Vec::new();
    let mut claimants: Vec<&str> = Vec::new();
    loop {
        let order = match (rows.peek(), claims.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((key, _)), Some(claim)) => {
                (&*key.protocol, &*key.name_key).cmp(&(&*claim.protocol, &*claim.name_key))
            }
        };
        let row = if order == Ordering::Greater {
            None
        } else {
            rows.next()
        };
        on_name.clear();
        if order != Ordering::Less {
            let first = claims.next().expect("peeked");
            while let Some(claim) =
                claims.next_if(|c| c.protocol == first.protocol && c.name_key == first.name_key)
            {
                on_name.push(claim);
            }
            on_name.insert(0, first);
        }

        // A managed row nothing wants any more.
        if let Some((key, row)) = row {
            if let Some(owner) = row.owner.as_deref() {
                let still_wanted = on_name
                    .iter()
                    .any(|c| *anchor_of(c.account) == *row.account);
                if !still_wanted {
                    let departure = departing.get(&*row.account).copied();
                    if frozen_registration(&key.protocol, &key.name_key, Some(row)) {
                        excluded_registrations.insert(key.clone());
                    } else if !(departure.is_some() && keeps_registrations) {
                        let owner_known =
                            mapping_names.contains(owner) || renamed_to(owner).is_some();
                        let reason = match departure {
                            Some(reason) => reasons.get(reason),
                            None if !owner_known => reasons.get("mapping removed"),
                            None if wanted_account(&row.account).is_some_and(|a| a.protected) => {
                                reasons.get("protected principal")
                            }
                            None => reasons.get(&lost_claim_reason(
                                rules,
                                owner,
                                wanted_account(&row.account),
                            )),
                        };
                        changes.push(Change {
                            mapping: Some(owner.into()),
                            reason: Some(reason),
                            dn: dn_of(&row.account),
                            ..Change::registration(
                                Action::Remove,
                                (key.protocol.clone(), &key.name_key),
                                row.im_name.clone(),
                                row.account.clone(),
                            )
                        });
                    }
                }
            }
        }
        let Some(first) = on_name.first() else {
            continue;
        };

        // The claims on this name.
        let (protocol, name_key) = (first.protocol.clone(), first.name_key.clone());
        let row = row.map(|(_, row)| row);
        // Claimants in anchor order, each once (claims come in account order).
        claimants.clear();
        for claim in &on_name {
            let anchor = anchor_of(claim.account);
            if claimants.last() != Some(&anchor) {
                claimants.push(anchor);
            }
        }
        if frozen_registration(&protocol, &name_key, row) {
            if let Some(row) = row {
                for claimant in claimants.iter().filter(|c| ***c != *row.account) {
                    warnings.push(denied(
                        &protocol,
                        &name_key,
                        &row.im_name,
                        claimant,
                        &row.account,
                        format!("held by excluded account {}", person(&row.account)),
                    ));
                }
            }
            excluded_registrations.insert(registration_key(&protocol, &name_key));
            continue;
        }
        match row {
            None => give_name(
                &mut on_name,
                &claimants,
                &accounts,
                &mut changes,
                &mut warnings,
            ),
            Some(row) if !row.is_managed() => {
                for claim in &on_name {
                    let claimant = anchor_of(claim.account);
                    if same_person(&row.account, claimant) {
                        warnings.push(Warning {
                            kind: WarningKind::AlreadyRegistered,
                            protocol: Some(protocol.to_string()),
                            im_name: Some(row.im_name.to_string()),
                            account: Some(claimant.to_string()),
                            held_by: Some(row.account.to_string()),
                            mapping: Some(claim.mapping.to_string()),
                            group: None,
                            message: format!(
                                "{protocol} name {} is already registered to {} by a {} registration; left as it is",
                                quote_for_message(&*row.im_name), person(claimant), row.source.name()
                            ),
                        });
                    } else {
                        warnings.push(denied(
                            &protocol,
                            &name_key,
                            &claim.im_name,
                            claimant,
                            &row.account,
                            format!(
                                "held by a {} registration of {}",
                                row.source.name(),
                                person(&row.account)
                            ),
                        ));
                    }
                }
            }
            Some(row) if claimants.contains(&&*row.account) => {
                let owner = row.owner.as_deref().unwrap_or_default();
                for claimant in claimants.iter().filter(|c| ***c != *row.account) {
                    warnings.push(denied(
                        &protocol,
                        &name_key,
                        &row.im_name,
                        claimant,
                        &row.account,
                        format!("already held by {}", person(&row.account)),
                    ));
                }
                // The row's account's own claims on the name (walked, not collected).
                let own = || {
                    on_name
                        .iter()
                        .filter(|c| *anchor_of(c.account) == *row.account)
                };
                let keeper = own()
                    .find(|c| *c.mapping == *owner)
                    .or_else(|| own().find(|c| renamed_to(owner) == Some(&*c.mapping)))
                    .or_else(|| own().next())
                    .expect("the row's account claims it");
                let mut fields = BTreeMap::new();
                if *keeper.im_name != *row.im_name {
                    fields.insert(
                        "im_name".to_string(),
                        (
                            Some(row.im_name.to_string()),
                            Some(keeper.im_name.to_string()),
                        ),
                    );
                }
                if *keeper.mapping != *owner {
                    fields.insert(
                        "mapping".to_string(),
                        (Some(owner.to_string()), Some(keeper.mapping.to_string())),
                    );
                }
                if !fields.is_empty() {
                    let reason = if *keeper.mapping != *owner
                        && renamed_to(owner) == Some(&*keeper.mapping)
                    {
                        "mapping renamed"
                    } else if *keeper.mapping != *owner {
                        "now produced by another mapping"
                    } else {
                        "name changed case"
                    };
                    changes.push(Change {
                        mapping: Some(keeper.mapping.clone()),
                        reason: Some(reasons.get(reason)),
                        fields: Some(Box::new(fields)),
                        dn: dn_of(&row.account),
                        ..Change::registration(
                            Action::Update,
                            (protocol.clone(), &name_key),
                            row.im_name.clone(),
                            row.account.clone(),
                        )
                    });
                }
            }
            Some(row) => {
                // Held by a managed row of an account that no longer wants it.
                let kept = keeps_registrations && departing.contains_key(&*row.account);
                if kept {
                    for claimant in &claimants {
                        warnings.push(denied(
                            &protocol,
                            &name_key,
                            &row.im_name,
                            claimant,
                            &row.account,
                            format!("kept by departed account {}", person(&row.account)),
                        ));
                    }
                } else {
                    // The removal is planned above with the row.
                    give_name(
                        &mut on_name,
                        &claimants,
                        &accounts,
                        &mut changes,
                        &mut warnings,
                    );
                }
            }
        }
    }
    drop(claims);

    // Groups and their members.
    let excluded_groups = plan_groups(
        rules,
        groups,
        state,
        &GroupContext {
            departing: &departing,
            keeps_registrations,
            frozen_account: &frozen_account,
            frozen_groups: &frozen_groups,
        },
        &mut reasons,
        &mut changes,
        &mut warnings,
    );

    // Group members are named by their DN too.
    for change in &mut changes {
        if change.dn.is_none() {
            if let Some(anchor) = change.account.as_deref().or(change.member.as_deref()) {
                change.dn = dn_of(anchor);
            }
        }
    }
    // Mostly in order already (each part above walks sorted data): the sort merges runs.
    changes.sort_by(Change::order);
    warnings.sort();
    warnings.dedup();

    let mut summary = Summary::default();
    for change in &changes {
        match change.action {
            Action::Add => summary.add += 1,
            Action::Update => summary.update += 1,
            Action::Remove => summary.remove += 1,
            Action::Deactivate => summary.deactivate += 1,
            Action::Reactivate => summary.reactivate += 1,
        }
    }
    summary.conflicts = warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Conflict)
        .count() as u64;
    summary.excluded =
        (excluded_accounts.len() + excluded_registrations.len()) as u64 + excluded_groups;
    summary.blocked_reason =
        deletion_threshold(&rules.policy, summary.remove + summary.deactivate, managed);
    summary.blocked = summary.blocked_reason.is_some();

    Plan {
        format_version: PLAN_FORMAT_VERSION,
        revision: None,
        state_serial: state.serial,
        inputs_digest: String::new(),
        config_digest: String::new(),
        summary,
        changes,
        warnings,
        skipped,
        group_skipped,
        imports: Vec::new(),
        sources: matched,
    }
}

fn registration_key(protocol: &str, name_key: &str) -> RegistrationKey {
    RegistrationKey {
        protocol: protocol.into(),
        name_key: name_key.into(),
    }
}

/// What group planning needs from the account planning before it.
struct GroupContext<'a> {
    /// Managed accounts giving up their managed rows, with the reason.
    departing: &'a BTreeMap<&'a str, &'static str>,
    /// `on_departure: keep`: departed accounts keep their rows, memberships included.
    keeps_registrations: bool,
    frozen_account: &'a dyn Fn(&str) -> bool,
    /// Names of groups whose entry an exclusion freezes.
    frozen_groups: &'a BTreeSet<String>,
}

/// Plans group and membership changes; returns how many groups exclusions froze.
///
/// Only managed groups (with an owner rule) change. A desired group whose name an
/// unmanaged group holds is a conflict and is skipped. A group that goes loses its
/// members first; frozen accounts keep their place in groups that stay.
fn plan_groups(
    rules: &Rules,
    groups: BTreeMap<String, DesiredGroup>,
    state: &State,
    context: &GroupContext<'_>,
    reasons: &mut Reasons,
    changes: &mut Vec<Change>,
    warnings: &mut Vec<Warning>,
) -> u64 {
    let group_rules: BTreeSet<&str> = rules.groups.iter().map(|g| g.owner.as_str()).collect();
    let mut excluded = 0u64;
    for (name, row) in &state.groups {
        let Some(owner) = row.owner.as_deref() else {
            continue; // unmanaged: never changed
        };
        if groups.contains_key(name) {
            continue;
        }
        if context.frozen_groups.contains(name) {
            excluded += 1;
            continue;
        }
        // True whether the group's entry left the directory or the rule's filter: which
        // of the two would take the entries outside a delta plan's region to tell, and a
        // delta plan must say what a full one says.
        let reason = if !group_rules.contains(owner) {
            "group rule removed"
        } else {
            "no entry the rule's filter selects gives this group any more"
        };
        let group: Arc<str> = name.as_str().into();
        for member in &row.members {
            changes.push(Change {
                reason: Some(reasons.get(reason)),
                ..Change::group_member(Action::Remove, &group, member.as_str().into())
            });
        }
        changes.push(Change {
            group_rule: Some(owner.into()),
            reason: Some(reasons.get(reason)),
            ..Change::group(Action::Remove, &group)
        });
    }
    for (name, wanted) in groups {
        if context.frozen_groups.contains(&name) {
            excluded += 1;
            continue;
        }
        let DesiredGroup {
            kind,
            source,
            rule,
            members,
            ..
        } = wanted;
        let group: Arc<str> = name.as_str().into();
        let Some(row) = state.groups.get(&name) else {
            changes.push(Change {
                source: Some(source.into()),
                group_rule: Some(rule.into()),
                group_kind: Some(kind),
                ..Change::group(Action::Add, &group)
            });
            for member in members {
                changes.push(Change::group_member(Action::Add, &group, member.into()));
            }
            continue;
        };
        let Some(owner) = row.owner.as_deref() else {
            warnings.push(Warning {
                group: Some(name.clone()),
                ..Warning::new(
                    WarningKind::Conflict,
                    format!(
                        "group {name:?} of rule {rule} exists as an unmanaged group; left as it is"
                    ),
                )
            });
            continue;
        };
        let mut fields = BTreeMap::new();
        if owner != rule {
            fields.insert(
                "group_rule".to_string(),
                (Some(owner.to_string()), Some(rule.clone())),
            );
        }
        if row.kind != kind.name() {
            fields.insert(
                "kind".to_string(),
                (Some(row.kind.clone()), Some(kind.name().to_string())),
            );
        }
        if row.source.as_deref() != Some(source.as_str()) {
            fields.insert("source".to_string(), (row.source.clone(), Some(source)));
        }
        if !fields.is_empty() {
            changes.push(Change {
                group_rule: Some(rule.into()),
                reason: Some(reasons.get("now produced by another group rule")),
                fields: Some(Box::new(fields)),
                ..Change::group(Action::Update, &group)
            });
        }
        // Both lists are sorted: one merge walk finds who leaves and who joins.
        let (mut have, mut want) = (
            row.members.iter().peekable(),
            members.into_iter().peekable(),
        );
        loop {
            let order = match (have.peek(), want.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(h), Some(w)) => h.as_str().cmp(w.as_str()),
            };
            match order {
                std::cmp::Ordering::Equal => {
                    have.next();
                    want.next();
                }
                std::cmp::Ordering::Less => {
                    let member = have.next().expect("peeked");
                    if (context.frozen_account)(member) {
                        continue;
                    }
                    let departure = context.departing.get(member.as_str()).copied();
                    if departure.is_some() && context.keeps_registrations {
                        continue;
                    }
                    changes.push(Change {
                        reason: Some(reasons.get(departure.unwrap_or("no longer a member"))),
                        ..Change::group_member(Action::Remove, &group, member.as_str().into())
                    });
                }
                std::cmp::Ordering::Greater => {
                    let member = want.next().expect("peeked");
                    changes.push(Change::group_member(Action::Add, &group, member.into()));
                }
            }
        }
    }
    excluded
}

/// A conflict warning about a name, wanted for `claimant`.
fn conflict(
    protocol: &str,
    name_key: &str,
    claimant: &str,
    held_by: Option<&str>,
    message: String,
) -> Warning {
    Warning {
        kind: WarningKind::Conflict,
        protocol: Some(protocol.to_string()),
        im_name: Some(name_key.to_string()),
        account: (!claimant.is_empty()).then(|| claimant.to_string()),
        held_by: held_by.map(str::to_string),
        mapping: None,
        group: None,
        message,
    }
}

/// Gives a free name to the one account that wants it, or, when several do, to none of
/// them with a warning: the result never depends on input order. `claimants` are the
/// distinct accounts of `on_name`, the claims on the name.
fn give_name(
    on_name: &mut Vec<Claim>,
    claimants: &[&str],
    accounts: &[DesiredAccount],
    changes: &mut Vec<Change>,
    warnings: &mut Vec<Warning>,
) {
    if claimants.len() > 1 {
        let first = &on_name[0];
        warnings.push(conflict(
            &first.protocol,
            &first.name_key,
            "",
            None,
            format!(
                "{} name {} is wanted by {} accounts ({}); none gets it",
                first.protocol,
                quote_for_message(&*first.im_name),
                claimants.len(),
                claimants.join(", ")
            ),
        ));
        return;
    }
    on_name.truncate(1);
    let Some(claim) = on_name.pop() else {
        return;
    };
    let account = &accounts[claim.account];
    changes.push(Change {
        mapping: Some(claim.mapping),
        dn: Some(account.dn.clone()),
        ..Change::registration(
            Action::Add,
            (claim.protocol, &claim.name_key),
            claim.im_name,
            account.anchor.clone(),
        )
    });
}

/// Adds the change `on_departure` calls for to an account that left or was disabled:
/// `change` names the account. An account that still holds unmanaged registrations is
/// deactivated, not deleted: unmanaged rows are never changed, and they need their
/// account.
fn push_departure(
    changes: &mut Vec<Change>,
    departure: Departure,
    change: Change,
    status: AccountStatus,
    reason: Arc<str>,
    holds_unmanaged: bool,
) {
    let departure = if departure == Departure::Delete && holds_unmanaged {
        Departure::Deactivate
    } else {
        departure
    };
    match departure {
        Departure::Deactivate if status == AccountStatus::Active => changes.push(Change {
            action: Action::Deactivate,
            reason: Some(reason),
            ..change
        }),
        Departure::Delete => changes.push(Change {
            action: Action::Remove,
            reason: Some(reason),
            ..change
        }),
        Departure::Deactivate | Departure::Keep => {}
    }
}

/// Rule 7: a source that yields no accounts must not wipe what it manages.
fn check_empty_sources(
    rules: &Rules,
    accounts_per_source: &BTreeMap<String, u64>,
    frozen_accounts: &BTreeSet<String>,
    state: &State,
) -> Result<(), PlanError> {
    for source in rules.sources.iter().filter(|s| !s.allow_empty) {
        let Some(&yielded) = accounts_per_source.get(&source.name) else {
            continue;
        };
        if yielded > 0 {
            continue;
        }
        let managed = state
            .accounts
            .values()
            .filter(|a| a.source.as_deref() == Some(source.name.as_str()))
            .filter(|a| !frozen_accounts.contains(&*a.anchor))
            .count() as u64;
        if managed > 0 {
            return Err(PlanError::EmptySource {
                source_name: source.name.clone(),
                managed,
            });
        }
    }
    Ok(())
}

/// Rule 8: the reason the plan is blocked, if removals plus deactivations exceed the
/// policy's limits. `managed` counts the managed rows the store holds.
pub(crate) fn deletion_threshold(
    policy: &crate::model::Policy,
    deletions: u64,
    managed: u64,
) -> Option<String> {
    if deletions > policy.max_deletes {
        return Some(format!(
            "{deletions} removals and deactivations exceed policy.max_deletes ({})",
            policy.max_deletes
        ));
    }
    if let Some(percent) = policy.max_delete_percent {
        if managed > 0 {
            let share = deletions as f64 * 100.0 / managed as f64;
            if share > percent {
                return Some(format!(
                    "{deletions} removals and deactivations are {share:.1}% of {managed} managed rows, above policy.max_delete_percent ({percent}%)"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{DesiredAccount, DesiredGroup};
    use crate::model::{GroupRule, GroupSelector, SourceRule};
    use crate::state::{GroupRow, StateAccount};
    use crate::template::Template;

    fn rules(group_rules: &[&str]) -> Rules {
        Rules {
            sources: vec![SourceRule {
                name: "hr".to_string(),
                anchor: crate::model::Anchor::Dn,
                allow_empty: true,
            }],
            groups: group_rules
                .iter()
                .map(|name| GroupRule {
                    owner: name.to_string(),
                    name: Template::parse(name).unwrap(),
                    source: "hr".to_string(),
                    selector: GroupSelector::OrgUnit("dc=x".to_string()),
                })
                .collect(),
            ..Rules::default()
        }
    }

    fn account(anchor: &str) -> DesiredAccount {
        DesiredAccount::new(anchor, &format!("cn={anchor},dc=x"), "hr")
    }

    fn state_account(anchor: &str) -> StateAccount {
        StateAccount {
            anchor: anchor.into(),
            dn: format!("cn={anchor},dc=x"),
            source: Some("hr".into()),
            status: AccountStatus::Active,
            profile: Profile::default(),
        }
    }

    fn wanted(name: &str, rule: &str, members: &[&str]) -> (String, DesiredGroup) {
        (
            name.to_string(),
            DesiredGroup {
                name: name.to_string(),
                kind: GroupKind::OrgUnit,
                source: "hr".to_string(),
                rule: rule.to_string(),
                members: members.iter().map(|m| m.to_string()).collect(),
            },
        )
    }

    fn row(name: &str, owner: Option<&str>, members: &[&str]) -> (String, GroupRow) {
        (
            name.to_string(),
            GroupRow {
                name: name.to_string(),
                kind: "org_unit".to_string(),
                source: owner.map(|_| "hr".to_string()),
                owner: owner.map(str::to_string),
                members: members.iter().map(|m| m.to_string()).collect(),
            },
        )
    }

    /// (action, kind, group, member) of each change, in plan order.
    fn steps(plan: &Plan) -> Vec<(Action, Kind, String, String)> {
        plan.changes
            .iter()
            .map(|c| {
                (
                    c.action,
                    c.kind,
                    c.group.as_deref().unwrap_or_default().to_string(),
                    c.member
                        .as_deref()
                        .or(c.account.as_deref())
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn apply_order_creates_accounts_then_groups_then_members() {
        let rules = rules(&["staff"]);
        let mut desired = Desired::default();
        desired.insert_account(account("new"));
        desired.groups.extend([wanted("staff", "staff", &["new"])]);
        let plan = plan(&rules, desired, &State::default()).unwrap();
        use Action::Add;
        assert_eq!(
            steps(&plan),
            vec![
                (Add, Kind::Account, String::new(), "new".to_string()),
                (Add, Kind::Group, "staff".to_string(), String::new()),
                (
                    Add,
                    Kind::GroupMember,
                    "staff".to_string(),
                    "new".to_string()
                ),
            ]
        );
        let member = &plan.changes[2];
        assert_eq!(member.dn.as_deref(), Some("cn=new,dc=x"));
        let group = &plan.changes[1];
        assert_eq!(group.group_rule.as_deref(), Some("staff"));
        assert_eq!(group.group_kind, Some(GroupKind::OrgUnit));
        assert_eq!(plan.summary.add, 3);
    }

    #[test]
    fn a_removed_rule_removes_members_before_the_group_and_before_accounts_go() {
        let mut rules = rules(&[]);
        rules.accounts.on_departure = Departure::Delete;
        let mut state = State::default();
        state.accounts.insert("old".into(), state_account("old"));
        state.groups.extend([row("staff", Some("staff"), &["old"])]);
        let plan = plan(&rules, Desired::default(), &state).unwrap();
        use Action::Remove;
        assert_eq!(
            steps(&plan),
            vec![
                (
                    Remove,
                    Kind::GroupMember,
                    "staff".to_string(),
                    "old".to_string()
                ),
                (Remove, Kind::Group, "staff".to_string(), String::new()),
                (Remove, Kind::Account, String::new(), "old".to_string()),
            ]
        );
        assert_eq!(
            plan.changes[1].reason.as_deref(),
            Some("group rule removed")
        );
        assert_eq!(plan.summary.remove, 3);
    }

    #[test]
    fn a_group_no_selected_entry_gives_says_so_whatever_became_of_its_entry() {
        // Gone from the directory or out of the rule's filter: one reason, true of both,
        // that a delta plan gives as a full one does.
        let rules = rules(&["{cn}"]);
        let mut state = State::default();
        state.groups.extend([row("old-team", Some("{cn}"), &[])]);
        let plan = plan(&rules, Desired::default(), &state).unwrap();
        assert_eq!(
            plan.changes[0].reason.as_deref(),
            Some("no entry the rule's filter selects gives this group any more")
        );
    }

    #[test]
    fn a_registration_lost_by_an_entry_still_there_says_why() {
        use crate::desired::{desired, SourceEntries};
        use crate::entry::Entry;
        use crate::filter::Filter;
        use crate::model::Mapping;
        use crate::state::{RegistrationSource, StateRegistration};
        let mut rules = rules(&[]);
        rules.sources.push(SourceRule {
            name: "partners".to_string(),
            anchor: crate::model::Anchor::Dn,
            allow_empty: true,
        });
        let mapping =
            |name: &str, value: &str, when: Option<&str>, sources: Option<&str>| Mapping {
                name: name.to_string(),
                protocol: name.to_string(),
                value: Template::parse(value).unwrap(),
                when: when.map(|f| Filter::parse(f).unwrap()),
                sources: sources.map(|s| vec![s.to_string()]),
                renamed_from: Vec::new(),
            };
        rules.mappings = vec![
            mapping("filtered", "{cn}", Some("(dept=sales)"), None),
            mapping("elsewhere", "{cn}", None, Some("partners")),
            mapping("changed", "{mail}", None, None),
            mapping("emptied", "{nick}", None, None),
        ];
        let entry = Entry::new("cn=a,dc=x")
            .with("objectClass", &["top", "person"])
            .with("cn", &["a"])
            .with("dept", &["it"])
            .with("mail", &["new"]);
        let wanted = desired(
            &rules,
            &[SourceEntries {
                source: "hr".to_string(),
                entries: vec![entry],
            }],
        );
        let anchor = "cn=a,dc=x";
        let mut state = State::default();
        let mut stored = state_account(anchor);
        stored.dn = anchor.to_string();
        state.accounts.insert(anchor.into(), stored);
        for protocol in ["filtered", "elsewhere", "changed", "emptied"] {
            state.registrations.insert(
                registration_key(protocol, "old"),
                StateRegistration {
                    protocol: protocol.into(),
                    im_name: "old".into(),
                    account: anchor.into(),
                    source: RegistrationSource::Ldap,
                    owner: Some(protocol.into()),
                },
            );
        }
        let plan = plan(&rules, wanted, &state).unwrap();
        let removals: Vec<(&str, &str)> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Remove)
            .map(|c| (c.mapping.as_deref().unwrap(), c.reason.as_deref().unwrap()))
            .collect();
        assert_eq!(
            removals,
            [
                (
                    "changed",
                    "mapping changed now produces another value for the entry"
                ),
                (
                    "elsewhere",
                    "entry's source hr is not among mapping elsewhere's sources"
                ),
                ("emptied", "mapping emptied produces no value for the entry"),
                (
                    "filtered",
                    "entry no longer matches mapping filtered's filter"
                ),
            ]
        );
    }

    #[test]
    fn unmanaged_groups_are_never_touched() {
        let rules = rules(&["staff"]);
        let mut desired = Desired::default();
        desired.insert_account(account("a"));
        desired.groups.extend([wanted("staff", "staff", &["a"])]);
        let mut state = State::default();
        state.accounts.insert("a".into(), state_account("a"));
        state
            .groups
            .extend([row("staff", None, &["x"]), row("handmade", None, &["a"])]);
        let plan = plan(&rules, desired, &state).unwrap();
        assert!(plan.changes.is_empty(), "{:?}", plan.changes);
        assert_eq!(plan.summary.conflicts, 1);
        assert_eq!(plan.warnings[0].group.as_deref(), Some("staff"));
    }

    #[test]
    fn membership_changes_are_a_diff_and_a_new_owner_is_an_update() {
        let rules = rules(&["{cn}"]);
        let mut desired = Desired::default();
        for anchor in ["a", "b", "c"] {
            desired.insert_account(account(anchor));
        }
        desired
            .groups
            .extend([wanted("staff", "{cn}", &["a", "c"])]);
        let mut state = State::default();
        for anchor in ["a", "b", "c"] {
            state.accounts.insert(anchor.into(), state_account(anchor));
        }
        state
            .groups
            .extend([row("staff", Some("staff"), &["a", "b"])]);
        let plan = plan(&rules, desired, &state).unwrap();
        assert_eq!(
            steps(&plan),
            vec![
                (
                    Action::Remove,
                    Kind::GroupMember,
                    "staff".to_string(),
                    "b".to_string()
                ),
                (
                    Action::Update,
                    Kind::Group,
                    "staff".to_string(),
                    String::new()
                ),
                (
                    Action::Add,
                    Kind::GroupMember,
                    "staff".to_string(),
                    "c".to_string()
                ),
            ]
        );
        let fields = plan.changes[1].fields.as_ref().unwrap();
        assert_eq!(
            fields["group_rule"],
            (Some("staff".to_string()), Some("{cn}".to_string()))
        );
    }

    #[test]
    fn frozen_accounts_keep_their_memberships() {
        let rules = rules(&["staff"]);
        let mut desired = Desired::default();
        desired.frozen_accounts.insert("boss".to_string());
        desired.groups.extend([wanted("staff", "staff", &[])]);
        let mut state = State::default();
        state.accounts.insert("boss".into(), state_account("boss"));
        state
            .groups
            .extend([row("staff", Some("staff"), &["boss"])]);
        let plan = plan(&rules, desired, &state).unwrap();
        assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    }
}
