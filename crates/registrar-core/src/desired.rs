//! `desired = f(rules, entries)`: the accounts, registrations and groups the directory
//! calls for.
//!
//! Pure and deterministic: every collection is sorted, so the same input always gives the
//! same value, whatever order entries arrive in. Nothing here looks at the store;
//! conflicts with existing rows are the planner's business.
//!
//! Entries stream through [`DesiredBuilder`] in two steps. [`EntryPreparer::prepare`]
//! works out what one entry contributes (its account, each mapping's claims, warnings)
//! from the entry and the rules alone, so any thread may run it;
//! [`DesiredBuilder::add_prepared`] takes the results in reading order. What depends on
//! other entries (anchors two entries share, an exclusion freezing an anchor, groups) is
//! settled in [`DesiredBuilder::finish`], once every entry is in: group entries and user
//! DNs are recorded as DNs while streaming, and `finish` resolves members, flattens
//! nested groups and settles name collisions. No entry is kept.
//!
//! Names that recur (sources, mappings, protocols) are allocated once and shared, and so
//! are each account's anchor and DN: a directory of a million users makes millions of
//! claims, and the plan millions of changes, that carry them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dn::normalize_dn;
use crate::entry::Entry;
use crate::join::{self, Join, Sequential};
use crate::matched::{Hits, Matched, Tally, Watch};
use crate::model::{
    dn_is_within, Anchor, AnchorProblem, GroupKind, GroupSelector, Profile, Rules,
    DEFAULT_MAX_IM_NAME_LENGTH, GROUP_TYPE, USER_TYPE,
};
use crate::quote::{quote_for_message, shown_for_message};
use crate::state::RegistrationKey;
use crate::template::RenderOutcome;

/// The entries one source yielded.
#[derive(Debug, Clone, Default)]
pub struct SourceEntries {
    pub source: String,
    pub entries: Vec<Entry>,
}

/// An account the directory calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAccount {
    pub anchor: Arc<str>,
    pub dn: Arc<str>,
    pub source: Arc<str>,
    /// `false` when `disabled_when` matched: the account should be deactivated.
    pub enabled: bool,
    pub profile: Profile,
    /// A protected principal: never receives a registration.
    pub protected: bool,
    /// Mappings (bit `i` for the `i`-th of `Rules::mappings`, the first
    /// [`MAPPING_BITS`] only) that read the entry's source but whose `when` filter
    /// rejected the entry: what a removal's reason says.
    pub rejected_by: u32,
    /// Mappings (as `rejected_by`) that produced a name for the entry.
    pub produced_by: u32,
}

/// How many mappings [`DesiredAccount::rejected_by`] and `produced_by` follow; a
/// removal by a later mapping gives the general reason.
pub const MAPPING_BITS: usize = 32;

/// The bit of mapping `index` in [`DesiredAccount::rejected_by`], if it has one.
pub fn mapping_bit(index: usize) -> Option<u32> {
    (index < MAPPING_BITS).then(|| 1u32 << index)
}

impl DesiredAccount {
    /// An enabled, unprotected account with an empty profile.
    pub fn new(anchor: &str, dn: &str, source: &str) -> Self {
        DesiredAccount {
            anchor: anchor.into(),
            dn: dn.into(),
            source: source.into(),
            enabled: true,
            profile: Profile::default(),
            protected: false,
            rejected_by: 0,
            produced_by: 0,
        }
    }
}

/// One mapping's wish that an account hold an IM name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub protocol: Arc<str>,
    /// The IM name normalised for the protocol ([`im_name_key`]): with the protocol, the
    /// identity of the registration.
    pub name_key: Arc<str>,
    /// The claiming account: an index into [`Desired::accounts`].
    pub account: usize,
    pub mapping: Arc<str>,
    /// The IM name as produced (display form).
    pub im_name: Arc<str>,
}

impl Claim {
    /// The registration this claim is on.
    pub fn key(&self) -> RegistrationKey {
        RegistrationKey {
            protocol: self.protocol.clone(),
            name_key: self.name_key.clone(),
        }
    }
}

/// Why a mapping produced nothing for some entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts {
    /// Entries lacking an attribute the template reads.
    pub missing_attribute: u64,
    /// Values skipped because they are not a valid IM name.
    pub invalid_name: u64,
    /// Disabled users (`disabled_when`) the mapping would have read: they get no
    /// registration.
    #[serde(default)]
    pub disabled: u64,
}

/// A problem worth telling the user about that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub im_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account: Option<String>,
    /// The account already holding the name, for conflicts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub held_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mapping: Option<String>,
    /// The group concerned, for group warnings.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group: Option<String>,
    /// One human-readable sentence.
    pub message: String,
}

impl Warning {
    /// A warning with only a kind and a message; set the other fields with `..`.
    pub fn new(kind: WarningKind, message: String) -> Self {
        Warning {
            kind,
            protocol: None,
            im_name: None,
            account: None,
            held_by: None,
            mapping: None,
            group: None,
            message,
        }
    }
}

/// The kinds of warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A desired name is held by another account, or wanted by several.
    Conflict,
    /// A desired name is already held by an unmanaged row of the same account.
    AlreadyRegistered,
    /// Two entries of one source share an anchor value; the first DN wins.
    DuplicateAnchor,
    /// A user entry lacks its source's anchor attribute and was skipped.
    MissingAnchor,
    /// A protected principal would have received registrations.
    ProtectedPrincipal,
    /// A produced value is not a valid IM name and was skipped.
    InvalidName,
    /// A group entry gave no usable group name and was skipped.
    InvalidGroupName,
    /// Several group entries or rules give the same group name; only the first is used.
    GroupCollision,
    /// A template or filter reads an attribute that no entry of its source holds.
    UnheldAttribute,
}

/// A group the directory calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    pub name: String,
    pub kind: GroupKind,
    /// The source the group was built from.
    pub source: String,
    /// The group rule that produces it (the owner recorded on the row).
    pub rule: String,
    /// Member account anchors, sorted, without duplicates.
    pub members: Vec<String>,
}

/// Member DNs of a group that did not become members, by why. DNs reached twice (via
/// two nested groups) count once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSkipCounts {
    /// Neither a user nor a group entry of the group's source.
    #[serde(default)]
    pub unknown_members: u64,
    /// Users that are disabled (`disabled_when`): only enabled accounts are members.
    #[serde(default)]
    pub disabled_members: u64,
    /// Users or nested groups frozen by an exclusion.
    #[serde(default)]
    pub excluded_members: u64,
}

impl GroupSkipCounts {
    fn is_empty(&self) -> bool {
        *self == GroupSkipCounts::default()
    }
}

/// The desired state, plus what the planner needs to report about how it was made.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// Sorted by anchor, one per anchor.
    pub accounts: Vec<DesiredAccount>,
    /// Every claim on every name, sorted by (protocol, name key, account, mapping, IM
    /// name), without duplicates: the claims on one name are adjacent.
    pub claims: Vec<Claim>,
    /// Anchors of accounts frozen by a DN or filter exclusion.
    pub frozen_accounts: BTreeSet<String>,
    /// Names produced but frozen by an IM-name exclusion.
    pub frozen_registrations: BTreeSet<RegistrationKey>,
    /// Per mapping name.
    pub skipped: BTreeMap<String, SkipCounts>,
    /// Accounts (enabled or not) each source yielded, for the empty-source rule.
    pub accounts_per_source: BTreeMap<String, u64>,
    /// By group name.
    pub groups: BTreeMap<String, DesiredGroup>,
    /// Names of groups whose entry is frozen by an exclusion.
    pub frozen_groups: BTreeSet<String>,
    /// Per group name: member DNs dropped, and why (only groups that dropped some).
    pub group_skipped: BTreeMap<String, GroupSkipCounts>,
    pub warnings: Vec<Warning>,
    /// Entries read per source, entries each rule matched, attribute holders
    /// ([`crate::matched`]).
    pub matched: Matched,
}

impl Desired {
    /// The account with this anchor, if any.
    pub fn account(&self, anchor: &str) -> Option<&DesiredAccount> {
        self.accounts
            .binary_search_by(|account| (*account.anchor).cmp(anchor))
            .ok()
            .map(|index| &self.accounts[index])
    }

    /// The claims name by name: each slice holds every claim on one (protocol, name
    /// key), in name order.
    pub fn claims_by_name(&self) -> impl Iterator<Item = &[Claim]> {
        self.claims
            .chunk_by(|a, b| a.protocol == b.protocol && a.name_key == b.name_key)
    }

    /// Keeps only the claims on `names` (a delta plan looks at no other name).
    pub fn retain_claims_on(&mut self, names: &BTreeSet<RegistrationKey>) {
        self.claims.retain(|claim| names.contains(&claim.key()));
    }

    /// Keeps only the group members among `anchors` (a delta plan looks at no other
    /// membership).
    pub fn retain_members_among(&mut self, anchors: &BTreeSet<String>) {
        for group in self.groups.values_mut() {
            group.members.retain(|member| anchors.contains(member));
        }
    }

    /// Adds an account, keeping the accounts sorted (for tests and small states; the
    /// builder makes large ones in one go).
    pub fn insert_account(&mut self, account: DesiredAccount) {
        match self
            .accounts
            .binary_search_by(|a| a.anchor.cmp(&account.anchor))
        {
            Ok(index) => self.accounts[index] = account,
            Err(index) => {
                for claim in &mut self.claims {
                    if claim.account >= index {
                        claim.account += 1;
                    }
                }
                self.accounts.insert(index, account);
            }
        }
    }
}

/// Computes the desired state from whole sources. `sources` may come in any order.
pub fn desired(rules: &Rules, sources: &[SourceEntries]) -> Desired {
    let mut builder = DesiredBuilder::new(rules);
    for source in sources {
        builder.begin_source(&source.source);
        for entry in &source.entries {
            builder.add_entry(&source.source, entry);
        }
    }
    builder.finish()
}

/// The names the builder hands out, each allocated once.
#[derive(Debug, Clone)]
struct Names {
    /// By index in `Rules::sources`.
    sources: Vec<Arc<str>>,
    /// By index in `Rules::mappings`: the mapping's name, and its protocol's (shared by
    /// the mappings of one protocol).
    mappings: Vec<Arc<str>>,
    protocols: Vec<Arc<str>>,
    /// By index in `Rules::mappings`: the rank of the mapping's protocol among the
    /// protocols in name order.
    protocol_ranks: Vec<u16>,
}

impl Names {
    fn new(rules: &Rules) -> Self {
        let mut protocols: BTreeMap<&str, Arc<str>> = BTreeMap::new();
        for mapping in &rules.mappings {
            protocols
                .entry(mapping.protocol.as_str())
                .or_insert_with(|| mapping.protocol.as_str().into());
        }
        let protocol_rank: BTreeMap<&str, u16> = protocols
            .keys()
            .enumerate()
            .map(|(rank, name)| (*name, rank as u16))
            .collect();
        Names {
            sources: rules
                .sources
                .iter()
                .map(|s| s.name.as_str().into())
                .collect(),
            mappings: rules
                .mappings
                .iter()
                .map(|m| m.name.as_str().into())
                .collect(),
            protocols: rules
                .mappings
                .iter()
                .map(|m| protocols[m.protocol.as_str()].clone())
                .collect(),
            protocol_ranks: rules
                .mappings
                .iter()
                .map(|m| protocol_rank[m.protocol.as_str()])
                .collect(),
        }
    }
}

/// The per-entry step of building the desired state: what one entry contributes, worked
/// out from the entry and the rules alone. It holds no state, so several threads can
/// prepare entries while one [`DesiredBuilder`] takes the results in reading order.
#[derive(Debug, Clone)]
pub struct EntryPreparer<'r> {
    rules: &'r Rules,
    /// Whether any rule needs entries' normalised DNs (parsing a DN costs).
    needs_normalized_dn: bool,
    names: Names,
    /// What counting an entry's figures looks at.
    watch: Watch,
}

/// Where one entry can touch the plan: the anchor it arrives with (a user, or one an
/// exclusion freezes) and the names its mappings produce (claimed, or frozen by an
/// IM-name exclusion). A delta plan finds the entries it must look at again through
/// these: entries sharing an anchor settle together, and so do the claims on a name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFootprint {
    pub anchor: Option<Arc<str>>,
    /// The entry makes an account (a user entry with an anchor, not frozen).
    pub yields_account: bool,
    /// Sorted, without duplicates.
    pub names: Vec<RegistrationKey>,
    /// A group entry a distribution-list rule reads: the group names it gives (sorted,
    /// without duplicates) and its member DNs, normalised (none when it is frozen).
    pub groups: Vec<String>,
    pub members: Vec<String>,
}

/// What [`EntryPreparer::prepare`] made of one entry, for [`DesiredBuilder::add_prepared`],
/// with the figures it adds to (its source's entries read, the rules it matched, the
/// watched attributes it holds: [`crate::matched`]).
#[derive(Debug)]
pub struct PreparedEntry(Prepared, Hits);

#[derive(Debug)]
enum Prepared {
    /// Neither a user nor a group entry a rule reads, or of an unknown source.
    Ignored,
    /// A user entry without its source's anchor attribute.
    MissingAnchor(Warning),
    /// A user entry an exclusion freezes: no account has this anchor.
    Frozen {
        anchor: Arc<str>,
        source: usize,
        /// The normalised DN, when a group rule reads the source.
        group_dn: Option<String>,
    },
    User(Candidate),
    Group(GroupEntry),
}

/// An account as one entry makes it, with the claims the entry makes.
#[derive(Debug)]
struct Candidate {
    account: DesiredAccount,
    /// Index in `Rules::sources`.
    source: usize,
    claims: Vec<PendingClaim>,
    /// The normalised DN, kept only when a group rule reads the account's source.
    group_dn: Option<String>,
    /// What counts only if the candidate is the one kept when it arrives: an entry that
    /// loses to another with the same anchor leaves no trace but a warning.
    effects: Option<Box<Effects>>,
}

/// A value a mapping produced for an entry.
#[derive(Debug)]
struct PendingClaim {
    /// Index in `Rules::mappings`.
    mapping: usize,
    im_name: Arc<str>,
    name_key: Arc<str>,
}

/// Skip counts, warnings and frozen names an entry gives rise to.
#[derive(Debug, Default)]
struct Effects {
    /// (mapping index, counts).
    skipped: Vec<(usize, SkipCounts)>,
    warnings: Vec<Warning>,
    frozen_registrations: Vec<RegistrationKey>,
}

impl Effects {
    fn skip(&mut self, mapping: usize) -> &mut SkipCounts {
        if let Some(at) = self.skipped.iter().position(|(m, _)| *m == mapping) {
            return &mut self.skipped[at].1;
        }
        self.skipped.push((mapping, SkipCounts::default()));
        &mut self.skipped.last_mut().expect("just pushed").1
    }
}

/// A group entry as a distribution-list rule's source yields it.
#[derive(Debug)]
struct GroupEntry {
    source: usize,
    /// Normalised.
    dn: String,
    frozen: bool,
    /// (rule index, group name) for each distribution-list rule that matches the entry
    /// and gives a usable name.
    lists: Vec<(usize, String)>,
    warnings: Vec<Warning>,
    /// Normalised member DNs (`member` and `uniqueMember`); none when frozen.
    members: Vec<String>,
}

impl<'r> EntryPreparer<'r> {
    /// The per-entry step for `rules`.
    pub fn new(rules: &'r Rules) -> Self {
        let needs_normalized_dn = rules.sources.iter().any(|s| s.anchor == Anchor::Dn)
            || !rules.policy.protected_principals.is_empty()
            || rules.exclusions.iter().any(|e| e.freezes_by_dn());
        EntryPreparer {
            rules,
            needs_normalized_dn,
            names: Names::new(rules),
            watch: Watch::new(rules),
        }
    }

    /// What one entry of `source_name` contributes. Users become accounts; group entries
    /// are recorded when a distribution-list rule reads the source; other entries are
    /// ignored.
    pub fn prepare(&self, source_name: &str, entry: &Entry) -> PreparedEntry {
        let Some(source) = self
            .rules
            .sources
            .iter()
            .position(|s| s.name == source_name)
        else {
            return PreparedEntry(Prepared::Ignored, Hits::default());
        };
        let mut hits = Hits::of_source(source);
        self.watch.count_attributes(source, entry, &mut hits);
        let prepared = self.prepare_entry(source, entry, &mut hits);
        PreparedEntry(prepared, hits)
    }

    /// The footprint of an entry this preparer prepared.
    pub fn footprint(&self, prepared: &PreparedEntry) -> EntryFootprint {
        match &prepared.0 {
            Prepared::Ignored | Prepared::MissingAnchor(_) => EntryFootprint::default(),
            Prepared::Group(group) => {
                let mut groups: Vec<String> =
                    group.lists.iter().map(|(_, name)| name.clone()).collect();
                groups.sort_unstable();
                groups.dedup();
                let mut members = group.members.clone();
                members.sort_unstable();
                members.dedup();
                EntryFootprint {
                    groups,
                    members,
                    ..EntryFootprint::default()
                }
            }
            Prepared::Frozen { anchor, .. } => EntryFootprint {
                anchor: Some(anchor.clone()),
                ..EntryFootprint::default()
            },
            Prepared::User(candidate) => {
                let mut names: Vec<RegistrationKey> = candidate
                    .claims
                    .iter()
                    .map(|claim| RegistrationKey {
                        protocol: self.names.protocols[claim.mapping].clone(),
                        name_key: claim.name_key.clone(),
                    })
                    .chain(
                        candidate
                            .effects
                            .iter()
                            .flat_map(|effects| effects.frozen_registrations.iter().cloned()),
                    )
                    .collect();
                names.sort_unstable();
                names.dedup();
                EntryFootprint {
                    anchor: Some(candidate.account.anchor.clone()),
                    yields_account: true,
                    names,
                    ..EntryFootprint::default()
                }
            }
        }
    }

    fn prepare_entry(&self, source_index: usize, entry: &Entry, hits: &mut Hits) -> Prepared {
        let rules = self.rules;
        let source = &rules.sources[source_index];
        let reads_groups = rules.groups.iter().any(|g| g.source == source.name);
        match rules.object_types.classify(entry) {
            Some(USER_TYPE) => {}
            Some(GROUP_TYPE) if reads_groups => {
                return Prepared::Group(self.prepare_group(source_index, entry, hits))
            }
            _ => return Prepared::Ignored,
        }
        let anchor = match source.anchor.value_of(entry) {
            Ok(anchor) => anchor,
            Err(problem) => {
                let attribute = match &source.anchor {
                    Anchor::Attribute(name) => name.as_str(),
                    Anchor::Dn => "dn",
                };
                let what = match problem {
                    AnchorProblem::Missing => format!("has no anchor attribute {attribute}"),
                    AnchorProblem::Empty => format!("has an empty anchor {attribute}"),
                    AnchorProblem::NotAGuid(bytes) => format!(
                        "has an {attribute} of {bytes} bytes, which is no GUID (16 bytes, or \
                         written out as 8-4-4-4-12 hex digits)"
                    ),
                };
                return Prepared::MissingAnchor(Warning {
                    account: Some(entry.dn.clone()),
                    ..Warning::new(
                        WarningKind::MissingAnchor,
                        format!(
                            "entry {} of source {} {what}; skipped",
                            shown_for_message(&entry.dn),
                            source.name
                        ),
                    )
                });
            }
        };
        let normalized_dn = if self.needs_normalized_dn || reads_groups {
            normalize_dn(&entry.dn)
        } else {
            String::new()
        };
        for (index, rule) in rules.groups.iter().enumerate() {
            if let GroupSelector::OrgUnit(subtree) = &rule.selector {
                if rule.source == source.name && dn_is_within(&normalized_dn, subtree) {
                    hits.set(self.watch.group_bit(index));
                }
            }
        }
        if self.freezes(entry, &normalized_dn, hits) {
            return Prepared::Frozen {
                anchor: anchor.into(),
                source: source_index,
                group_dn: reads_groups.then_some(normalized_dn),
            };
        }

        let enabled = rules
            .accounts
            .disabled_when
            .as_ref()
            .is_none_or(|filter| !filter.matches(entry));
        if !enabled {
            hits.set(self.watch.disabled_bit());
        }
        let protected = !rules.policy.protected_principals.is_empty()
            && rules.policy.protected_principals.contains(&normalized_dn);
        let mut values: [Option<String>; 6] = Default::default();
        for (field, template) in &rules.accounts.profile {
            values[field.index()] = template.render_first(entry);
        }
        let profile = Profile::from_values(values);

        let mut effects = Effects::default();
        let mut claims = Vec::new();
        if !enabled {
            // Counted under skipped: each mapping that would have read this user.
            for (index, mapping) in rules.mappings.iter().enumerate() {
                if mapping.reads(&source.name)
                    && mapping.when.as_ref().is_none_or(|f| f.matches(entry))
                {
                    effects.skip(index).disabled += 1;
                }
            }
        }
        let (mut rejected_by, mut produced_by) = (0u32, 0u32);
        if enabled {
            let mut withheld = 0usize;
            for (index, mapping) in rules.mappings.iter().enumerate() {
                if !mapping.reads(&source.name) {
                    continue;
                }
                if mapping.when.as_ref().is_some_and(|f| !f.matches(entry)) {
                    rejected_by |= mapping_bit(index).unwrap_or(0);
                    continue;
                }
                hits.set(self.watch.mapping_bit(index));
                let values = match mapping.value.render_outcome(entry) {
                    RenderOutcome::Values(values) => values,
                    RenderOutcome::MissingAttribute(_) => {
                        effects.skip(index).missing_attribute += 1;
                        continue;
                    }
                    RenderOutcome::Empty => continue,
                };
                for im_name in values {
                    let protocol_rule = rules.protocol(&mapping.protocol);
                    if let Some(problem) = protocol_rule.problem_with(&im_name) {
                        effects.skip(index).invalid_name += 1;
                        let message = format!(
                            "mapping {} produced {} name {} for {}, which {problem}; skipped",
                            mapping.name,
                            mapping.protocol,
                            quote_for_message(&im_name),
                            shown_for_message(&entry.dn)
                        );
                        effects.warnings.push(Warning {
                            kind: WarningKind::InvalidName,
                            protocol: Some(mapping.protocol.clone()),
                            im_name: Some(im_name),
                            account: Some(anchor.clone()),
                            held_by: None,
                            mapping: Some(mapping.name.clone()),
                            group: None,
                            message,
                        });
                        continue;
                    }
                    let im_name: Arc<str> = im_name.into();
                    let name_key: Arc<str> = if protocol_rule.is_own_name_key(&im_name) {
                        im_name.clone()
                    } else {
                        protocol_rule.name_key(&im_name).into()
                    };
                    let mut frozen = false;
                    for (index, exclusion) in rules.exclusions.iter().enumerate() {
                        if exclusion.freezes_registration(&mapping.protocol, &name_key) {
                            hits.set(self.watch.exclusion_bit(index));
                            frozen = true;
                        }
                    }
                    if frozen {
                        effects.frozen_registrations.push(RegistrationKey {
                            protocol: mapping.protocol.as_str().into(),
                            name_key: name_key.clone(),
                        });
                        continue;
                    }
                    if protected {
                        withheld += 1;
                        continue;
                    }
                    produced_by |= mapping_bit(index).unwrap_or(0);
                    claims.push(PendingClaim {
                        mapping: index,
                        im_name,
                        name_key,
                    });
                }
            }
            if withheld > 0 {
                effects.warnings.push(Warning {
                    account: Some(anchor.clone()),
                    ..Warning::new(
                        WarningKind::ProtectedPrincipal,
                        format!(
                            "{} is a protected principal: {withheld} registration(s) withheld",
                            shown_for_message(&entry.dn)
                        ),
                    )
                });
            }
        }
        let has_effects = !effects.skipped.is_empty()
            || !effects.warnings.is_empty()
            || !effects.frozen_registrations.is_empty();
        Prepared::User(Candidate {
            account: DesiredAccount {
                anchor: anchor.into(),
                dn: entry.dn.as_str().into(),
                source: self.names.sources[source_index].clone(),
                enabled,
                profile,
                protected,
                rejected_by,
                produced_by,
            },
            source: source_index,
            claims,
            group_dn: reads_groups.then_some(normalized_dn),
            effects: has_effects.then(|| Box::new(effects)),
        })
    }

    /// Whether an exclusion freezes the entry, counting each one that does.
    fn freezes(&self, entry: &Entry, normalized_dn: &str, hits: &mut Hits) -> bool {
        let mut frozen = false;
        for (index, exclusion) in self.rules.exclusions.iter().enumerate() {
            if exclusion.freezes_entry(entry, normalized_dn) {
                hits.set(self.watch.exclusion_bit(index));
                frozen = true;
            }
        }
        frozen
    }

    /// A group entry: the names it gives under each distribution-list rule that matches
    /// it, and its member DNs (for itself and for lists that nest it).
    fn prepare_group(&self, source_index: usize, entry: &Entry, hits: &mut Hits) -> GroupEntry {
        let rules = self.rules;
        let source = rules.sources[source_index].name.as_str();
        let dn = normalize_dn(&entry.dn);
        let frozen = self.freezes(entry, &dn, hits);
        let mut lists = Vec::new();
        let mut warnings = Vec::new();
        for (index, rule) in rules.groups.iter().enumerate() {
            let GroupSelector::DistributionList(filter) = &rule.selector else {
                continue;
            };
            if rule.source != source {
                continue;
            }
            if !filter.matches(entry) {
                continue;
            }
            hits.set(self.watch.group_bit(index));
            let name = rule.name.render(entry).into_iter().next();
            let Some(name) = name.as_deref().and_then(valid_group_name) else {
                warnings.push(Warning {
                    group: name.clone(),
                    ..Warning::new(
                        WarningKind::InvalidGroupName,
                        format!(
                            "group entry \"{}\" gives no usable name for group rule {} ({}); skipped",
                            shown_for_message(&entry.dn),
                            rule.owner,
                            match &name {
                                Some(name) => format!("got {}", quote_for_message(name)),
                                None => "an attribute the name reads is missing".to_string(),
                            }
                        ),
                    )
                });
                continue;
            };
            lists.push((index, name.to_string()));
        }
        let members = if frozen {
            Vec::new()
        } else {
            entry
                .values("member")
                .chain(entry.values("uniqueMember"))
                .map(member_dn)
                .collect()
        };
        GroupEntry {
            source: source_index,
            dn,
            frozen,
            lists,
            warnings,
            members,
        }
    }
}

/// A user entry as it arrived: a candidate account, or the news that an exclusion
/// freezes its anchor.
#[derive(Debug)]
enum Arrival {
    User(Candidate),
    Frozen(Arc<str>),
}

impl Arrival {
    fn anchor(&self) -> &str {
        match self {
            Arrival::User(candidate) => &candidate.account.anchor,
            Arrival::Frozen(anchor) => anchor,
        }
    }
}

/// User entries in arrival order, kept in fixed-size chunks: growing one vector of a
/// million candidates by doubling would copy it, into fresh memory, over and over. Each
/// comes with its sort key: its anchor's first bytes and its arrival index.
#[derive(Default)]
struct Arrivals {
    chunks: Vec<Vec<Option<Arrival>>>,
    order: Vec<(u64, u64, u32)>,
}

/// Arrivals per chunk.
const ARRIVAL_CHUNK: usize = 1 << 14;

impl Arrivals {
    fn push(&mut self, arrival: Arrival) {
        let (high, low) = sort_prefix(0, arrival.anchor());
        self.order.push((high, low, self.order.len() as u32));
        if self
            .chunks
            .last()
            .is_none_or(|chunk| chunk.len() == ARRIVAL_CHUNK)
        {
            self.chunks.push(Vec::with_capacity(ARRIVAL_CHUNK));
        }
        self.chunks
            .last_mut()
            .expect("a chunk with room")
            .push(Some(arrival));
    }

    fn get(&self, index: u32) -> &Arrival {
        let index = index as usize;
        self.chunks[index / ARRIVAL_CHUNK][index % ARRIVAL_CHUNK]
            .as_ref()
            .expect("not taken yet")
    }

    fn take(&mut self, index: u32) -> Arrival {
        let index = index as usize;
        self.chunks[index / ARRIVAL_CHUNK][index % ARRIVAL_CHUNK]
            .take()
            .expect("each arrival taken once")
    }
}

/// What groups need of one source, as normalised DNs.
#[derive(Debug, Default)]
struct GroupFacts {
    /// Group entry → its member DNs (`member` and `uniqueMember`).
    groups: HashMap<String, Vec<String>>,
    /// User entries frozen by an exclusion.
    frozen_users: HashSet<String>,
    /// Group entries frozen by an exclusion.
    frozen_groups: HashSet<String>,
}

/// A group entry matched by a distribution-list rule.
#[derive(Debug)]
struct ListedGroup {
    /// Index into `Rules::groups`.
    rule: usize,
    /// Normalised DN of the group entry.
    dn: String,
    name: String,
}

/// A group with its members worked out, before name collisions are settled.
struct ResolvedGroup {
    name: String,
    rule: usize,
    /// The group entry's DN; empty for org units.
    dn: String,
    members: Vec<String>,
    skipped: GroupSkipCounts,
}

/// Builds [`Desired`] one entry at a time, so that readers can stream entries through it
/// without holding a whole directory in memory. The result does not depend on the order
/// in which entries or sources arrive.
pub struct DesiredBuilder<'r> {
    preparer: EntryPreparer<'r>,
    /// User entries in arrival order; anchors that several share, and frozen anchors,
    /// are settled in `finish`.
    arrivals: Arrivals,
    /// By source name, for the sources group rules read.
    group_facts: HashMap<String, GroupFacts>,
    lists: Vec<ListedGroup>,
    tally: Tally,
    out: Desired,
}

impl<'r> DesiredBuilder<'r> {
    /// Starts an empty desired state for `rules`.
    pub fn new(rules: &'r Rules) -> Self {
        let preparer = EntryPreparer::new(rules);
        let tally = preparer.watch.tally();
        DesiredBuilder {
            preparer,
            arrivals: Arrivals::default(),
            group_facts: HashMap::new(),
            lists: Vec::new(),
            tally,
            out: Desired::default(),
        }
    }

    /// The per-entry step this builder takes the results of; clone it for other threads.
    pub fn preparer(&self) -> &EntryPreparer<'r> {
        &self.preparer
    }

    /// Records that `source` was read, even if it yields no entry (rule 7 needs to know).
    pub fn begin_source(&mut self, source: &str) {
        let rules = self.preparer.rules;
        if let Some(index) = rules.sources.iter().position(|s| s.name == source) {
            self.tally.begin_source(index);
        }
        self.out
            .accounts_per_source
            .entry(source.to_string())
            .or_insert(0);
    }

    /// Adds one entry of `source`: [`EntryPreparer::prepare`], then
    /// [`DesiredBuilder::add_prepared`].
    pub fn add_entry(&mut self, source_name: &str, entry: &Entry) {
        let prepared = self.preparer.prepare(source_name, entry);
        self.add_prepared(prepared);
    }

    /// Takes the next entry's contribution, in reading order. It must come from this
    /// builder's preparer or a clone of it.
    pub fn add_prepared(&mut self, prepared: PreparedEntry) {
        self.tally.add(&prepared.1);
        match prepared.0 {
            Prepared::Ignored => {}
            Prepared::MissingAnchor(warning) => self.out.warnings.push(warning),
            Prepared::Frozen {
                anchor,
                source,
                group_dn,
            } => {
                self.out.frozen_accounts.insert(anchor.to_string());
                if let Some(dn) = group_dn {
                    let source = &self.preparer.rules.sources[source].name;
                    self.facts(source).frozen_users.insert(dn);
                }
                self.arrivals.push(Arrival::Frozen(anchor));
            }
            Prepared::User(candidate) => self.arrivals.push(Arrival::User(candidate)),
            Prepared::Group(group) => self.add_group(group),
        }
    }

    fn facts(&mut self, source: &str) -> &mut GroupFacts {
        if !self.group_facts.contains_key(source) {
            self.group_facts
                .insert(source.to_string(), GroupFacts::default());
        }
        self.group_facts.get_mut(source).expect("just inserted")
    }

    fn add_group(&mut self, group: GroupEntry) {
        self.out.warnings.extend(group.warnings);
        for (rule, name) in group.lists {
            if group.frozen {
                self.out.frozen_groups.insert(name);
            } else {
                self.lists.push(ListedGroup {
                    rule,
                    dn: group.dn.clone(),
                    name,
                });
            }
        }
        let source = &self.preparer.rules.sources[group.source].name;
        let facts = self.facts(source);
        if group.frozen {
            facts.frozen_groups.insert(group.dn);
            return;
        }
        facts
            .groups
            .entry(group.dn)
            .or_default()
            .extend(group.members);
    }

    /// The desired state of every entry added.
    pub fn finish(self) -> Desired {
        self.finish_with(&Sequential)
    }

    /// [`DesiredBuilder::finish`], sorting the claims of a large directory in two halves
    /// at once through `join`.
    pub fn finish_with(self, join: &impl Join) -> Desired {
        let DesiredBuilder {
            preparer,
            arrivals,
            group_facts,
            lists,
            tally,
            mut out,
        } = self;
        out.matched = tally.matched(preparer.rules, &preparer.watch);
        let rules = preparer.rules;
        let names = &preparer.names;

        // Arrivals by anchor, then in arrival order. Most comparisons are settled by the
        // anchors' first bytes, kept beside the index so that sorting touches no string.
        let mut arrivals = arrivals;
        let mut order = std::mem::take(&mut arrivals.order);
        order.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| arrivals.get(a.2).anchor().cmp(arrivals.get(b.2).anchor()))
                .then(a.2.cmp(&b.2))
        });

        let mut accounts: Vec<DesiredAccount> = Vec::with_capacity(order.len());
        // By account index.
        let mut pending: Vec<Vec<PendingClaim>> = Vec::with_capacity(order.len());
        let mut per_source = vec![0u64; rules.sources.len()];
        // Per source: user DN → index into `accounts`. Accounts come in anchor order, so
        // when two share a DN the first anchor wins whatever the input order.
        let mut user_dns: HashMap<&str, HashMap<String, usize>> = HashMap::new();
        let mut keep = |candidate: Candidate| {
            let index = accounts.len();
            per_source[candidate.source] += 1;
            if let Some(dn) = candidate.group_dn {
                user_dns
                    .entry(rules.sources[candidate.source].name.as_str())
                    .or_default()
                    .entry(dn)
                    .or_insert(index);
            }
            pending.push(candidate.claims);
            accounts.push(candidate.account);
        };
        // Each anchor's arrivals together: an exclusion freezes the anchor whole (no
        // account, nothing counted), otherwise the entry first in (source, DN) order wins
        // and only its skip counts and warnings count. Settled once the anchor's every
        // arrival is known, so that the outcome does not depend on their order.
        let mut settle = |run: &mut Vec<Arrival>, out: &mut Desired| {
            if run.is_empty() {
                return;
            }
            if run
                .iter()
                .any(|arrival| matches!(arrival, Arrival::Frozen(_)))
            {
                run.clear();
                return;
            }
            let mut candidates = run.drain(..).map(|arrival| match arrival {
                Arrival::User(candidate) => candidate,
                Arrival::Frozen(_) => unreachable!("frozen runs are settled above"),
            });
            let mut winner = candidates.next().expect("a run is not empty");
            // Mostly none: a vector only allocates for an anchor read twice.
            let mut losers: Vec<Candidate> = Vec::new();
            for candidate in candidates {
                // Ties (one DN read twice) go to the first arrival.
                let key = |c: &Candidate| (c.account.source.clone(), c.account.dn.clone());
                if key(&candidate) < key(&winner) {
                    losers.push(std::mem::replace(&mut winner, candidate));
                } else {
                    losers.push(candidate);
                }
            }
            for loser in &losers {
                let (winner_dn, loser_dn) = (&winner.account.dn, &loser.account.dn);
                let anchor = &winner.account.anchor;
                out.warnings.push(Warning {
                    account: Some(anchor.to_string()),
                    ..Warning::new(
                        WarningKind::DuplicateAnchor,
                        format!(
                            "entries \"{}\" and \"{}\" share anchor {}; only \"{}\" is used",
                            shown_for_message(&**winner_dn),
                            shown_for_message(&**loser_dn),
                            shown_for_message(&**anchor),
                            shown_for_message(&**winner_dn)
                        ),
                    )
                });
            }
            if let Some(effects) = winner.effects.take() {
                for (mapping, counts) in effects.skipped {
                    let skipped = out
                        .skipped
                        .entry(rules.mappings[mapping].name.clone())
                        .or_default();
                    skipped.missing_attribute += counts.missing_attribute;
                    skipped.invalid_name += counts.invalid_name;
                    skipped.disabled += counts.disabled;
                }
                out.warnings.extend(effects.warnings);
                out.frozen_registrations
                    .extend(effects.frozen_registrations);
            }
            keep(winner);
        };
        let mut run: Vec<Arrival> = Vec::new();
        for &(_, _, index) in &order {
            let arrival = arrivals.take(index);
            if run
                .first()
                .is_some_and(|first| first.anchor() != arrival.anchor())
            {
                settle(&mut run, &mut out);
            }
            run.push(arrival);
        }
        settle(&mut run, &mut out);
        drop(arrivals);
        drop(order);
        for (source, count) in rules.sources.iter().zip(per_source) {
            if count > 0 {
                *out.accounts_per_source
                    .entry(source.name.clone())
                    .or_default() += count;
            }
        }

        resolve_groups(rules, &group_facts, lists, &user_dns, &accounts, &mut out);
        drop(user_dns);
        out.accounts = accounts;
        out.claims = sorted_claims(names, pending, join);
        out.warnings.sort();
        out.warnings.dedup();
        out
    }
}

/// The claims of every account (`pending`, by account index), sorted by (protocol, name
/// key, account, mapping, IM name) and without duplicates. The claims' strings move into
/// the result (a shared empty string takes their place): a copy would touch the count of
/// each of millions of strings, twice.
fn sorted_claims(
    names: &Names,
    mut pending: Vec<Vec<PendingClaim>>,
    join: &impl Join,
) -> Vec<Claim> {
    let count = pending.iter().map(Vec::len).sum();
    let mut order: Vec<(u64, u64, u32, u32)> = Vec::with_capacity(count);
    for (account, claims) in pending.iter().enumerate() {
        for (slot, claim) in claims.iter().enumerate() {
            let protocol_rank = names.protocol_ranks[claim.mapping];
            let (high, low) = sort_prefix(protocol_rank, &claim.name_key);
            order.push((high, low, account as u32, slot as u32));
        }
    }
    {
        // Protocol ranks order like the protocols' names, and accounts are in anchor order.
        let claim = |(_, _, account, slot): &(u64, u64, u32, u32)| {
            &pending[*account as usize][*slot as usize]
        };
        join::sort_unstable_by(join, &mut order, |a, b| {
            (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| {
                let (x, y) = (claim(a), claim(b));
                (&names.protocols[x.mapping], &x.name_key, a.2)
                    .cmp(&(&names.protocols[y.mapping], &y.name_key, b.2))
                    .then_with(|| {
                        (&names.mappings[x.mapping], &x.im_name)
                            .cmp(&(&names.mappings[y.mapping], &y.im_name))
                    })
            })
        });
    }
    let taken: Arc<str> = Arc::from("");
    let mut sorted: Vec<Claim> = Vec::with_capacity(count);
    for &(_, _, account, slot) in &order {
        let pending = &mut pending[account as usize][slot as usize];
        let claim = Claim {
            protocol: names.protocols[pending.mapping].clone(),
            name_key: std::mem::replace(&mut pending.name_key, taken.clone()),
            account: account as usize,
            mapping: names.mappings[pending.mapping].clone(),
            im_name: std::mem::replace(&mut pending.im_name, taken.clone()),
        };
        if sorted.last() != Some(&claim) {
            sorted.push(claim);
        }
    }
    sorted
}

/// The sort prefix of `text` under `rank`: the rank, then the first 14 bytes of the text
/// (zero-padded), as two big-endian numbers. Two prefixes compare like (rank, text)
/// whenever they differ; equal ones need the whole texts.
fn sort_prefix(rank: u16, text: &str) -> (u64, u64) {
    let mut bytes = [0u8; 16];
    bytes[..2].copy_from_slice(&rank.to_be_bytes());
    let take = text.len().min(14);
    bytes[2..2 + take].copy_from_slice(&text.as_bytes()[..take]);
    let (high, low) = bytes.split_at(8);
    (
        u64::from_be_bytes(high.try_into().expect("8 bytes")),
        u64::from_be_bytes(low.try_into().expect("8 bytes")),
    )
}

/// Works out every group's members from the recorded DNs, settles name collisions and
/// fills `out.groups`, `out.group_skipped` and the group warnings.
///
/// Distribution lists are flattened by a walk over nested group entries with a visited
/// set, so cycles end and the members are the same set whatever the order entries came
/// in. Only enabled accounts are members.
fn resolve_groups(
    rules: &Rules,
    facts: &HashMap<String, GroupFacts>,
    lists: Vec<ListedGroup>,
    user_dns: &HashMap<&str, HashMap<String, usize>>,
    accounts: &[DesiredAccount],
    out: &mut Desired,
) {
    if rules.groups.is_empty() {
        return;
    }
    let no_facts = GroupFacts::default();
    let no_users = HashMap::new();
    let mut resolved: Vec<ResolvedGroup> = Vec::with_capacity(lists.len() + rules.groups.len());
    for listed in lists {
        let source = rules.groups[listed.rule].source.as_str();
        let facts = facts.get(source).unwrap_or(&no_facts);
        let users = user_dns.get(source).unwrap_or(&no_users);
        let (members, skipped) = flatten(&listed.dn, facts, users, accounts);
        resolved.push(ResolvedGroup {
            name: listed.name,
            rule: listed.rule,
            dn: listed.dn,
            members,
            skipped,
        });
    }
    for (index, rule) in rules.groups.iter().enumerate() {
        let GroupSelector::OrgUnit(subtree) = &rule.selector else {
            continue;
        };
        let Some(name) = rule.name.render(&Entry::default()).into_iter().next() else {
            continue; // config::check only lets literal names through
        };
        let facts = facts.get(&rule.source).unwrap_or(&no_facts);
        let users = user_dns.get(rule.source.as_str()).unwrap_or(&no_users);
        let mut members = Vec::new();
        let mut skipped = GroupSkipCounts::default();
        for (dn, &index) in users {
            if dn_is_within(dn, subtree) {
                let account = &accounts[index];
                if account.enabled {
                    members.push(account.anchor.to_string());
                } else {
                    skipped.disabled_members += 1;
                }
            }
        }
        skipped.excluded_members = facts
            .frozen_users
            .iter()
            .filter(|dn| dn_is_within(dn, subtree))
            .count() as u64;
        members.sort_unstable();
        members.dedup();
        resolved.push(ResolvedGroup {
            name,
            rule: index,
            dn: String::new(),
            members,
            skipped,
        });
    }

    // One group per name: the first in (name, rule, DN) order wins.
    let owner = |group: &ResolvedGroup| rules.groups[group.rule].owner.as_str();
    resolved.sort_unstable_by(|a, b| {
        (a.name.as_str(), owner(a), a.dn.as_str()).cmp(&(b.name.as_str(), owner(b), b.dn.as_str()))
    });
    let mut kept: Vec<(String, DesiredGroup)> = Vec::with_capacity(resolved.len());
    let mut kept_from: Option<(usize, String)> = None;
    for group in resolved {
        let rule = &rules.groups[group.rule];
        if out.frozen_groups.contains(&group.name) {
            continue;
        }
        if let (Some((last, _)), Some((kept_rule, kept_dn))) = (kept.last(), &kept_from) {
            if *last == group.name {
                let describe = |rule: &str, dn: &str| {
                    if dn.is_empty() {
                        format!("rule {rule}")
                    } else {
                        format!("rule {rule} (entry \"{}\")", shown_for_message(dn))
                    }
                };
                out.warnings.push(Warning {
                    group: Some(group.name.clone()),
                    ..Warning::new(
                        WarningKind::GroupCollision,
                        format!(
                            "group name {} is given by {} and by {}; only the first is used",
                            quote_for_message(&group.name),
                            describe(&rules.groups[*kept_rule].owner, kept_dn),
                            describe(&rule.owner, &group.dn)
                        ),
                    )
                });
                continue;
            }
        }
        if !group.skipped.is_empty() {
            out.group_skipped.insert(group.name.clone(), group.skipped);
        }
        kept_from = Some((group.rule, group.dn));
        kept.push((
            group.name.clone(),
            DesiredGroup {
                name: group.name,
                kind: rule.kind(),
                source: rule.source.clone(),
                rule: rule.owner.clone(),
                members: group.members,
            },
        ));
    }
    out.groups = kept.into_iter().collect();
}

/// The enabled accounts a group entry holds, directly or through nested group entries,
/// and the member DNs dropped.
fn flatten(
    start: &str,
    facts: &GroupFacts,
    users: &HashMap<String, usize>,
    accounts: &[DesiredAccount],
) -> (Vec<String>, GroupSkipCounts) {
    let mut members = Vec::new();
    let mut visited: HashSet<&str> = HashSet::new();
    let mut unknown: HashSet<&str> = HashSet::new();
    let mut disabled: HashSet<&str> = HashSet::new();
    let mut excluded: HashSet<&str> = HashSet::new();
    let Some((start, _)) = facts.groups.get_key_value(start) else {
        return (members, GroupSkipCounts::default());
    };
    visited.insert(start);
    let mut stack = vec![start.as_str()];
    while let Some(group) = stack.pop() {
        for member in facts.groups.get(group).into_iter().flatten() {
            let member = member.as_str();
            if let Some(&index) = users.get(member) {
                let account = &accounts[index];
                if account.enabled {
                    members.push(account.anchor.to_string());
                } else {
                    disabled.insert(member);
                }
            } else if facts.groups.contains_key(member) {
                if visited.insert(member) {
                    stack.push(member);
                }
            } else if facts.frozen_users.contains(member) || facts.frozen_groups.contains(member) {
                excluded.insert(member);
            } else {
                unknown.insert(member);
            }
        }
    }
    members.sort_unstable();
    members.dedup();
    let skipped = GroupSkipCounts {
        unknown_members: unknown.len() as u64,
        disabled_members: disabled.len() as u64,
        excluded_members: excluded.len() as u64,
    };
    (members, skipped)
}

/// The normalised DN in a `member` or `uniqueMember` value, without the optional
/// `#'0101'B` unique identifier of `uniqueMember` (RFC 4517 NameAndOptionalUID).
fn member_dn(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let text = text.trim();
    normalize_dn(strip_unique_id(text))
}

fn strip_unique_id(text: &str) -> &str {
    if let Some(at) = text.rfind("#'") {
        let tail = &text[at + 2..];
        let bits_end = tail.len().saturating_sub(2);
        let escaped = text[..at].ends_with('\\');
        if !escaped
            && tail.ends_with("'B")
            && tail[..bits_end].bytes().all(|b| b == b'0' || b == b'1')
        {
            return text[..at].trim_end();
        }
    }
    text
}

/// The group name to use for a rendered value: trimmed, or `None` when it is empty,
/// too long or holds control characters.
fn valid_group_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let bad = name.is_empty()
        || name.chars().count() > DEFAULT_MAX_IM_NAME_LENGTH
        || name.chars().any(|c| c.is_control());
    (!bad).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;
    use crate::model::{Exclusion, ExclusionSelector, GroupRule, Mapping, SourceRule};
    use crate::template::Template;

    const PEOPLE: &str = "ou=people,dc=x";

    fn user(cn: &str) -> Entry {
        Entry::new(format!("cn={cn},{PEOPLE}"))
            .with("objectClass", &["top", "person", "organizationalPerson"])
            .with("cn", &[cn])
    }

    fn group(cn: &str, members: &[&str]) -> Entry {
        let dns: Vec<String> = members.iter().map(|m| dn_of(m)).collect();
        let dns: Vec<&str> = dns.iter().map(String::as_str).collect();
        Entry::new(format!("cn={cn},ou=groups,dc=x"))
            .with("objectClass", &["top", "groupOfNames"])
            .with("cn", &[cn])
            .with("mail", &[&format!("{cn}@x")])
            .with("member", &dns)
    }

    /// `g:NAME` is a group's DN, anything else a user's.
    fn dn_of(member: &str) -> String {
        match member.strip_prefix("g:") {
            Some(group) => format!("CN={group},OU=Groups,DC=x"),
            None => format!("cn={member},{PEOPLE}"),
        }
    }

    fn list_rule(owner: &str, filter: &str) -> GroupRule {
        GroupRule {
            owner: owner.to_string(),
            name: Template::parse(owner).unwrap(),
            source: "hr".to_string(),
            selector: GroupSelector::DistributionList(Box::new(Filter::parse(filter).unwrap())),
        }
    }

    fn org_unit_rule(name: &str, dn: &str) -> GroupRule {
        GroupRule {
            owner: name.to_string(),
            name: Template::parse(name).unwrap(),
            source: "hr".to_string(),
            selector: GroupSelector::OrgUnit(normalize_dn(dn)),
        }
    }

    fn rules(groups: Vec<GroupRule>) -> Rules {
        Rules {
            sources: vec![SourceRule {
                name: "hr".to_string(),
                anchor: Anchor::Dn,
                allow_empty: false,
            }],
            groups,
            ..Rules::default()
        }
    }

    fn build(rules: &Rules, entries: &[Entry]) -> Desired {
        desired(
            rules,
            &[SourceEntries {
                source: "hr".to_string(),
                entries: entries.to_vec(),
            }],
        )
    }

    /// Each group's members as user common names.
    fn members(desired: &Desired) -> BTreeMap<String, Vec<String>> {
        desired
            .groups
            .iter()
            .map(|(name, group)| {
                let cns = group
                    .members
                    .iter()
                    .map(|anchor| anchor.trim_start_matches("cn=").split(',').next().unwrap())
                    .map(str::to_string)
                    .collect();
                (name.clone(), cns)
            })
            .collect()
    }

    fn expect(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(name, cns)| {
                (
                    name.to_string(),
                    cns.iter().map(|c| c.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn sort_prefixes_order_like_the_strings() {
        let words = [
            "",
            "a",
            "a\u{0}",
            "ab",
            "abcdefghijklmn",
            "abcdefghijklmnop",
            "abcdefghijklmno",
            "b",
            "é",
            "zzzzzzzzzzzzzzzzzz",
            "00000001-0000-4000",
            "00000001-0000-3000",
        ];
        for rank_a in [0u16, 1, 300] {
            for rank_b in [0u16, 1, 300] {
                for a in words {
                    for b in words {
                        let (x, y) = (sort_prefix(rank_a, a), sort_prefix(rank_b, b));
                        if x != y {
                            assert_eq!(x.cmp(&y), (rank_a, a).cmp(&(rank_b, b)), "{a:?} {b:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn claims_sorted_in_two_halves_are_the_claims_sorted_whole() {
        let mut rules = rules(Vec::new());
        let mapping = |name: &str, protocol: &str, value: &str| Mapping {
            name: name.to_string(),
            protocol: protocol.to_string(),
            value: Template::parse(value).unwrap(),
            when: None,
            sources: None,
            renamed_from: Vec::new(),
        };
        // Two mappings of one protocol that often give one name (to one account, and
        // nicknames to many), and a second protocol: enough claims to be split.
        rules.mappings = vec![
            mapping("by-cn", "aol", "{cn}"),
            mapping("by-nick", "aol", "{nick}"),
            mapping("xmpp", "xmpp", "{cn}@x"),
        ];
        let users = crate::join::WORTH_SPLITTING / 2;
        let entries: Vec<Entry> = (0..users)
            .rev()
            .map(|i| {
                let nick = if i % 3 == 0 {
                    format!("u{i}")
                } else {
                    format!("n{}", i % 997)
                };
                user(&format!("u{i}")).with("nick", &[&nick])
            })
            .collect();
        let build_with = |join: &dyn Fn(DesiredBuilder) -> Desired| {
            let mut builder = DesiredBuilder::new(&rules);
            builder.begin_source("hr");
            for entry in &entries {
                builder.add_entry("hr", entry);
            }
            join(builder)
        };
        // `finish` sorts in one piece (`Sequential` does not split); `SecondFirst` splits.
        let whole = build_with(&|builder| builder.finish());
        let halves = build_with(&|builder| builder.finish_with(&crate::join::SecondFirst));
        assert!(whole.claims.len() > crate::join::WORTH_SPLITTING);
        assert_eq!(halves.claims, whole.claims);
        assert_eq!(halves.accounts, whole.accounts);
        // Sorted by (protocol, name key, account, mapping, IM name), each claim once.
        let sort_key = |c: &Claim| {
            (
                c.protocol.clone(),
                c.name_key.clone(),
                c.account,
                c.mapping.clone(),
                c.im_name.clone(),
            )
        };
        assert!(whole
            .claims
            .windows(2)
            .all(|pair| sort_key(&pair[0]) < sort_key(&pair[1])));
    }

    #[test]
    fn shared_anchors_and_frozen_anchors_settle_alike_in_any_order() {
        let mut rules = rules(Vec::new());
        rules.sources[0].anchor = Anchor::Attribute("employeeNumber".to_string());
        rules.exclusions = vec![Exclusion {
            name: "board".to_string(),
            selector: ExclusionSelector::Filter(Box::new(Filter::parse("(title=board)").unwrap())),
        }];
        let numbered = |cn: &str, number: &str| user(cn).with("employeeNumber", &[number]);
        let entries = vec![
            numbered("ann", "1"),
            numbered("bob", "2"),
            numbered("abe", "1"),
            numbered("cat", "3"),
            numbered("boss", "3").with("title", &["board"]),
            numbered("cid", "3"),
        ];
        let reference = build(&rules, &entries);
        let anchors: Vec<&str> = reference.accounts.iter().map(|a| &*a.anchor).collect();
        assert_eq!(anchors, ["1", "2"]);
        assert_eq!(&*reference.accounts[0].dn, format!("cn=abe,{PEOPLE}"));
        assert!(reference.frozen_accounts.contains("3"));
        for shift in 0..entries.len() {
            let mut order = entries.clone();
            order.rotate_left(shift);
            let out = build(&rules, &order);
            assert_eq!(out.accounts, reference.accounts, "order {shift}");
            assert_eq!(out.frozen_accounts, reference.frozen_accounts);
        }
        // More users than one chunk of arrivals holds.
        let many: Vec<Entry> = (0..ARRIVAL_CHUNK + 10)
            .rev()
            .map(|i| numbered(&format!("u{i}"), &format!("{i:06}")))
            .collect();
        let out = build(&rules, &many);
        assert_eq!(out.accounts.len(), ARRIVAL_CHUNK + 10);
        assert!(out.accounts.windows(2).all(|w| w[0].anchor < w[1].anchor));
    }

    #[test]
    fn nested_groups_are_flattened_and_only_listed_entries_become_groups() {
        let rules = rules(vec![list_rule("{cn}", "(cn=all)")]);
        let entries = [
            user("ann"),
            user("bob"),
            user("cat"),
            group("all", &["ann", "g:sub"]),
            group("sub", &["bob", "g:subsub"]),
            group("subsub", &["cat"]),
        ];
        let out = build(&rules, &entries);
        assert_eq!(members(&out), expect(&[("all", &["ann", "bob", "cat"])]));
        assert_eq!(out.groups["all"].rule, "{cn}");
        assert_eq!(out.groups["all"].kind, GroupKind::DistributionList);
        assert!(out.group_skipped.is_empty());
    }

    #[test]
    fn cycles_terminate_and_every_group_in_the_cycle_sees_all_members() {
        let rules = rules(vec![list_rule("{cn}", "(mail=*)")]);
        let entries = [
            user("ann"),
            user("bob"),
            group("a", &["ann", "g:b"]),
            group("b", &["bob", "g:a"]),
            group("self", &["g:self", "ann"]),
        ];
        let out = build(&rules, &entries);
        assert_eq!(
            members(&out),
            expect(&[
                ("a", &["ann", "bob"]),
                ("b", &["ann", "bob"]),
                ("self", &["ann"])
            ])
        );
    }

    #[test]
    fn groups_do_not_depend_on_entry_order() {
        let rules = rules(vec![
            list_rule("{cn}", "(mail=*)"),
            org_unit_rule("people", PEOPLE),
        ]);
        let entries = vec![
            user("ann"),
            user("bob"),
            group("a", &["ann", "g:b", "ghost"]),
            group("b", &["bob", "g:c"]),
            group("c", &["g:a", "ann"]),
        ];
        let reference = build(&rules, &entries);
        assert_eq!(reference.groups.len(), 4);
        // Every rotation and its reverse: enough to move each entry to each place.
        for shift in 0..entries.len() {
            let mut order = entries.clone();
            order.rotate_left(shift);
            for order in [order.clone(), order.into_iter().rev().collect()] {
                let out = build(&rules, &order);
                assert_eq!(out.groups, reference.groups, "order {shift}");
                assert_eq!(out.group_skipped, reference.group_skipped);
                assert_eq!(out.warnings, reference.warnings);
            }
        }
    }

    #[test]
    fn dropped_members_are_counted_by_reason() {
        let mut rules = rules(vec![list_rule("{cn}", "(cn=all)")]);
        rules.accounts.disabled_when = Some(Filter::parse("(employeeType=former)").unwrap());
        rules.exclusions = vec![Exclusion {
            name: "board".to_string(),
            selector: ExclusionSelector::Filter(Box::new(Filter::parse("(title=board)").unwrap())),
        }];
        let entries = [
            user("ann"),
            user("old").with("employeeType", &["former"]),
            user("boss").with("title", &["board"]),
            group("all", &["ann", "old", "boss", "ghost", "g:sub"]),
            // Reached twice (directly and via sub): counted once.
            group("sub", &["ghost", "old"]),
        ];
        let out = build(&rules, &entries);
        assert_eq!(members(&out), expect(&[("all", &["ann"])]));
        assert_eq!(
            out.group_skipped["all"],
            GroupSkipCounts {
                unknown_members: 1,
                disabled_members: 1,
                excluded_members: 1,
            }
        );
    }

    #[test]
    fn unique_member_values_lose_their_uid_suffix() {
        assert_eq!(strip_unique_id("cn=a,dc=x#'0101'B"), "cn=a,dc=x");
        assert_eq!(strip_unique_id("cn=a,dc=x"), "cn=a,dc=x");
        assert_eq!(strip_unique_id(r"cn=a\#'1'B"), r"cn=a\#'1'B");
        assert_eq!(strip_unique_id("cn=a#'12'B"), "cn=a#'12'B");
        let rules = rules(vec![list_rule("{cn}", "(mail=*)")]);
        let list = Entry::new("cn=u,ou=groups,dc=x")
            .with("objectClass", &["top", "groupOfUniqueNames"])
            .with("cn", &["u"])
            .with("mail", &["u@x"])
            .with("uniqueMember", &["CN=Ann,OU=People,DC=x#'0'B"]);
        let out = build(&rules, &[user("ann"), list]);
        assert_eq!(members(&out), expect(&[("u", &["ann"])]));
    }

    #[test]
    fn org_units_hold_the_enabled_users_of_their_subtree() {
        let mut rules = rules(vec![org_unit_rule("sales", "OU=Sales,OU=People,DC=x")]);
        rules.accounts.disabled_when = Some(Filter::parse("(employeeType=former)").unwrap());
        let in_sales = |cn: &str| {
            let mut entry = user(cn);
            entry.dn = format!("cn={cn},ou=emea,ou=sales,{PEOPLE}");
            entry
        };
        let entries = [
            in_sales("ann"),
            in_sales("old").with("employeeType", &["former"]),
            user("bob"),
        ];
        let out = build(&rules, &entries);
        assert_eq!(
            out.groups["sales"].members,
            vec![format!("cn=ann,ou=emea,ou=sales,{PEOPLE}")]
        );
        assert_eq!(out.groups["sales"].kind, GroupKind::OrgUnit);
        assert_eq!(out.group_skipped["sales"].disabled_members, 1);
    }

    #[test]
    fn a_name_two_rules_give_goes_to_the_first_rule_with_a_warning() {
        let rules = rules(vec![
            list_rule("{cn}", "(mail=*)"),
            org_unit_rule("all", PEOPLE),
        ]);
        let entries = [user("ann"), user("bob"), group("all", &["bob"])];
        let out = build(&rules, &entries);
        assert_eq!(out.groups["all"].rule, "all");
        assert_eq!(members(&out), expect(&[("all", &["ann", "bob"])]));
        let collisions: Vec<_> = out
            .warnings
            .iter()
            .filter(|w| w.kind == WarningKind::GroupCollision)
            .collect();
        assert_eq!(collisions.len(), 1, "{:?}", out.warnings);
        assert_eq!(collisions[0].group.as_deref(), Some("all"));
    }

    #[test]
    fn a_group_entry_without_a_name_is_skipped_with_a_warning() {
        let rules = rules(vec![list_rule("{displayName}", "(mail=*)")]);
        let out = build(&rules, &[user("ann"), group("a", &["ann"])]);
        assert!(out.groups.is_empty());
        assert!(out
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::InvalidGroupName));
    }

    #[test]
    fn a_frozen_group_entry_is_neither_a_group_nor_expanded() {
        let mut rules = rules(vec![list_rule("{cn}", "(mail=*)")]);
        rules.exclusions = vec![Exclusion {
            name: "secret".to_string(),
            selector: ExclusionSelector::DnSubtree(normalize_dn("cn=secret,ou=groups,dc=x")),
        }];
        let entries = [
            user("ann"),
            user("bob"),
            group("secret", &["bob"]),
            group("all", &["ann", "g:secret"]),
        ];
        let out = build(&rules, &entries);
        assert_eq!(members(&out), expect(&[("all", &["ann"])]));
        assert!(out.frozen_groups.contains("secret"));
        assert_eq!(out.group_skipped["all"].excluded_members, 1);
    }
}
