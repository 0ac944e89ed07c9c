//! `desired = f(rules, entries)`: the accounts, registrations and groups the directory
//! calls for.
//!
//! Pure and deterministic: entries are visited in (source, anchor) order and every
//! collection is sorted, so the same input always gives the same value. Nothing here
//! looks at the store; conflicts with existing rows are the planner's business.
//!
//! Groups are resolved in [`DesiredBuilder::finish`]: entries stream in any order, so
//! `add_entry` only records DNs (each group entry's member DNs, each user's DN), and
//! members are worked out once every entry is in. No entry is kept.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::core::dn::normalize_dn;
use crate::core::entry::Entry;
use crate::core::model::{
    dn_is_within, im_name_key, Anchor, GroupKind, GroupSelector, Mapping, Profile, Rules,
    DEFAULT_MAX_IM_NAME_LENGTH, GROUP_TYPE, USER_TYPE,
};
use crate::core::state::RegistrationKey;
use crate::core::template::RenderOutcome;

/// The entries one source yielded.
#[derive(Debug, Clone, Default)]
pub struct SourceEntries {
    pub source: String,
    pub entries: Vec<Entry>,
}

/// An account the directory calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAccount {
    pub anchor: String,
    pub dn: String,
    pub source: String,
    /// `false` when `disabled_when` matched: the account should be deactivated.
    pub enabled: bool,
    pub profile: Profile,
    /// A protected principal: never receives a registration.
    pub protected: bool,
}

/// One mapping's wish that an account hold an IM name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim {
    pub account: String,
    pub mapping: String,
    /// The IM name as produced (display form).
    pub im_name: String,
}

/// Why a mapping produced nothing for some entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts {
    /// Entries lacking an attribute the template reads.
    pub missing_attribute: u64,
    /// Values skipped because they are not a valid IM name.
    pub invalid_name: u64,
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
    /// By anchor.
    pub accounts: BTreeMap<String, DesiredAccount>,
    /// Every claim on each name, sorted by (account, mapping).
    pub claims: BTreeMap<RegistrationKey, Vec<Claim>>,
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

/// An account under construction, with the claims its entry makes.
struct Candidate {
    account: DesiredAccount,
    /// (protocol, mapping, im_name) for each value the mappings produced.
    claims: Vec<(RegistrationKey, String, String)>,
    /// The normalised DN, kept only when a group rule reads the account's source.
    group_dn: Option<String>,
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
    rules: &'r Rules,
    /// Whether any rule needs entries' normalised DNs (parsing a DN costs).
    needs_normalized_dn: bool,
    /// By anchor: the candidate's index in `slots`; unordered until `finish` sorts it.
    candidates: HashMap<String, usize>,
    /// The candidates in arrival order, `None` where one was dropped (frozen). Apart from
    /// the index, so that growing the index moves small values, not whole candidates.
    slots: Vec<Option<Candidate>>,
    /// By source name, for the sources group rules read.
    group_facts: HashMap<String, GroupFacts>,
    lists: Vec<ListedGroup>,
    out: Desired,
}

impl<'r> DesiredBuilder<'r> {
    /// Starts an empty desired state for `rules`.
    pub fn new(rules: &'r Rules) -> Self {
        let needs_normalized_dn = rules.sources.iter().any(|s| s.anchor == Anchor::Dn)
            || !rules.policy.protected_principals.is_empty()
            || rules.exclusions.iter().any(|e| e.freezes_by_dn());
        DesiredBuilder {
            rules,
            needs_normalized_dn,
            candidates: HashMap::new(),
            slots: Vec::new(),
            group_facts: HashMap::new(),
            lists: Vec::new(),
            out: Desired::default(),
        }
    }

    /// Records that `source` was read, even if it yields no entry (rule 7 needs to know).
    pub fn begin_source(&mut self, source: &str) {
        self.out
            .accounts_per_source
            .entry(source.to_string())
            .or_insert(0);
    }

    /// Adds one entry of `source`. Users become accounts; group entries are recorded
    /// when a distribution-list rule reads the source; other entries are ignored.
    pub fn add_entry(&mut self, source_name: &str, entry: &Entry) {
        let rules = self.rules;
        let Some(source) = rules.sources.iter().find(|s| s.name == source_name) else {
            return;
        };
        let reads_groups = rules.groups.iter().any(|g| g.source == source.name);
        match rules.object_types.classify(entry) {
            Some(USER_TYPE) => {}
            Some(GROUP_TYPE) if reads_groups => return self.add_group_entry(&source.name, entry),
            _ => return,
        }
        let Some(anchor) = source.anchor.value_of(entry) else {
            self.out.warnings.push(Warning {
                account: Some(entry.dn.clone()),
                ..Warning::new(
                    WarningKind::MissingAnchor,
                    format!(
                        "entry \"{}\" of source {} has no anchor attribute; skipped",
                        entry.dn, source.name
                    ),
                )
            });
            return;
        };
        let normalized_dn = if self.needs_normalized_dn || reads_groups {
            normalize_dn(&entry.dn)
        } else {
            String::new()
        };
        if rules
            .exclusions
            .iter()
            .any(|exclusion| exclusion.freezes_entry(entry, &normalized_dn))
        {
            if let Some(index) = self.candidates.remove(&anchor) {
                self.slots[index] = None;
            }
            self.out.frozen_accounts.insert(anchor);
            if reads_groups {
                self.facts(&source.name).frozen_users.insert(normalized_dn);
            }
            return;
        }
        if self.out.frozen_accounts.contains(&anchor) {
            return;
        }
        let existing = self.candidates.get(&anchor).map(|&index| {
            self.slots[index]
                .as_ref()
                .expect("an indexed candidate is kept")
        });
        if let Some(existing) = existing {
            // Two entries share an anchor: the one first in (source, DN) order wins, so
            // the outcome does not depend on the order entries arrive in.
            let keep_existing = (
                existing.account.source.as_str(),
                existing.account.dn.as_str(),
            ) <= (source.name.as_str(), entry.dn.as_str());
            let (kept, dropped) = if keep_existing {
                (existing.account.dn.clone(), entry.dn.clone())
            } else {
                (entry.dn.clone(), existing.account.dn.clone())
            };
            self.out.warnings.push(Warning {
                account: Some(anchor.clone()),
                ..Warning::new(
                    WarningKind::DuplicateAnchor,
                    format!(
                    "entries \"{kept}\" and \"{dropped}\" share anchor {anchor}; only \"{kept}\" is used"
                ),
                )
            });
            if keep_existing {
                return;
            }
        }

        let enabled = rules
            .accounts
            .disabled_when
            .as_ref()
            .is_none_or(|filter| !filter.matches(entry));
        let protected = !rules.policy.protected_principals.is_empty()
            && rules.policy.protected_principals.contains(&normalized_dn);
        let mut profile = Profile::default();
        for (field, template) in &rules.accounts.profile {
            profile.set(*field, template.render(entry).into_iter().next());
        }

        let mut claims = Vec::new();
        if enabled {
            let mut withheld = 0usize;
            for mapping in rules.mappings.iter().filter(|m| m.reads(&source.name)) {
                if mapping.when.as_ref().is_some_and(|f| !f.matches(entry)) {
                    continue;
                }
                let values = match mapping.value.render_outcome(entry) {
                    RenderOutcome::Values(values) => values,
                    RenderOutcome::MissingAttribute(_) => {
                        self.skip(mapping).missing_attribute += 1;
                        continue;
                    }
                    RenderOutcome::Empty => continue,
                };
                for im_name in values {
                    if let Some(problem) = rules.protocol(&mapping.protocol).problem_with(&im_name)
                    {
                        self.skip(mapping).invalid_name += 1;
                        self.out.warnings.push(Warning {
                            kind: WarningKind::InvalidName,
                            protocol: Some(mapping.protocol.clone()),
                            im_name: Some(im_name.clone()),
                            account: Some(anchor.clone()),
                            held_by: None,
                            mapping: Some(mapping.name.clone()),
                            group: None,
                            message: format!(
                                "mapping {} produced {} name {:?} for {}, which {problem}; skipped",
                                mapping.name, mapping.protocol, im_name, entry.dn
                            ),
                        });
                        continue;
                    }
                    let key = RegistrationKey {
                        protocol: mapping.protocol.clone(),
                        name_key: im_name_key(&mapping.protocol, &im_name),
                    };
                    if rules
                        .exclusions
                        .iter()
                        .any(|e| e.freezes_registration(&key.protocol, &key.name_key))
                    {
                        self.out.frozen_registrations.insert(key);
                        continue;
                    }
                    if protected {
                        withheld += 1;
                        continue;
                    }
                    claims.push((key, mapping.name.clone(), im_name));
                }
            }
            if withheld > 0 {
                self.out.warnings.push(Warning {
                    account: Some(anchor.clone()),
                    ..Warning::new(
                        WarningKind::ProtectedPrincipal,
                        format!(
                            "{} is a protected principal: {withheld} registration(s) withheld",
                            entry.dn
                        ),
                    )
                });
            }
        }
        let candidate = Candidate {
            account: DesiredAccount {
                anchor,
                dn: entry.dn.clone(),
                source: source.name.clone(),
                enabled,
                profile,
                protected,
            },
            claims,
            group_dn: reads_groups.then_some(normalized_dn),
        };
        match self.candidates.get(&candidate.account.anchor) {
            Some(&index) => self.slots[index] = Some(candidate),
            None => {
                self.candidates
                    .insert(candidate.account.anchor.clone(), self.slots.len());
                self.slots.push(Some(candidate));
            }
        }
    }

    fn facts(&mut self, source: &str) -> &mut GroupFacts {
        if !self.group_facts.contains_key(source) {
            self.group_facts
                .insert(source.to_string(), GroupFacts::default());
        }
        self.group_facts.get_mut(source).expect("just inserted")
    }

    /// Records a group entry: the names it gives under each distribution-list rule that
    /// matches it, and its member DNs (for itself and for lists that nest it).
    fn add_group_entry(&mut self, source: &str, entry: &Entry) {
        let rules = self.rules;
        let dn = normalize_dn(&entry.dn);
        let frozen = rules
            .exclusions
            .iter()
            .any(|exclusion| exclusion.freezes_entry(entry, &dn));
        for (index, rule) in rules.groups.iter().enumerate() {
            let GroupSelector::DistributionList(filter) = &rule.selector else {
                continue;
            };
            if rule.source != source || !filter.matches(entry) {
                continue;
            }
            let name = rule.name.render(entry).into_iter().next();
            let Some(name) = name.as_deref().and_then(valid_group_name) else {
                self.out.warnings.push(Warning {
                    group: name.clone(),
                    ..Warning::new(
                        WarningKind::InvalidGroupName,
                        format!(
                            "group entry \"{}\" gives no usable name for group rule {} ({}); skipped",
                            entry.dn,
                            rule.owner,
                            match &name {
                                Some(name) => format!("got {name:?}"),
                                None => "an attribute the name reads is missing".to_string(),
                            }
                        ),
                    )
                });
                continue;
            };
            if frozen {
                self.out.frozen_groups.insert(name.to_string());
            } else {
                self.lists.push(ListedGroup {
                    rule: index,
                    dn: dn.clone(),
                    name: name.to_string(),
                });
            }
        }
        let facts = self.facts(source);
        if frozen {
            facts.frozen_groups.insert(dn);
            return;
        }
        let members = facts.groups.entry(dn).or_default();
        for value in entry.values("member").chain(entry.values("uniqueMember")) {
            members.push(member_dn(value));
        }
    }

    fn skip(&mut self, mapping: &Mapping) -> &mut SkipCounts {
        self.out.skipped.entry(mapping.name.clone()).or_default()
    }

    /// The desired state of every entry added.
    pub fn finish(self) -> Desired {
        let mut out = self.out;
        let mut order: Vec<(String, usize)> = self.candidates.into_iter().collect();
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut slots = self.slots;
        let claim_count = slots.iter().flatten().map(|c| c.claims.len()).sum();
        let mut claims: Vec<(RegistrationKey, Claim)> = Vec::with_capacity(claim_count);
        let mut accounts = Vec::with_capacity(order.len());
        let candidates = order.into_iter().map(|(anchor, index)| {
            let candidate = slots[index].take();
            (anchor, candidate.expect("an indexed candidate is kept"))
        });
        // Per source: user DN → index into `accounts`. Candidates come in anchor order, so
        // when two accounts share a DN the first anchor wins whatever the input order.
        let mut user_dns: HashMap<&str, HashMap<String, usize>> = HashMap::new();
        for (anchor, candidate) in candidates {
            *out.accounts_per_source
                .entry(candidate.account.source.clone())
                .or_default() += 1;
            if let Some(dn) = candidate.group_dn {
                let source = self
                    .rules
                    .sources
                    .iter()
                    .find(|s| s.name == candidate.account.source)
                    .map_or("", |s| s.name.as_str());
                user_dns
                    .entry(source)
                    .or_default()
                    .entry(dn)
                    .or_insert(accounts.len());
            }
            for (key, mapping, im_name) in candidate.claims {
                let claim = Claim {
                    account: anchor.clone(),
                    mapping,
                    im_name,
                };
                claims.push((key, claim));
            }
            accounts.push((anchor, candidate.account));
        }
        resolve_groups(
            self.rules,
            &self.group_facts,
            self.lists,
            &user_dns,
            &accounts,
            &mut out,
        );
        drop(user_dns);
        // Sorted input lets the maps build in one pass instead of by repeated insertion.
        out.accounts = accounts.into_iter().collect();
        claims.sort_unstable();
        claims.dedup();
        let mut grouped: Vec<(RegistrationKey, Vec<Claim>)> = Vec::new();
        for (key, claim) in claims {
            match grouped.last_mut() {
                Some((last, group)) if *last == key => group.push(claim),
                _ => grouped.push((key, vec![claim])),
            }
        }
        out.claims = grouped.into_iter().collect();
        out.warnings.sort();
        out.warnings.dedup();
        out
    }
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
    accounts: &[(String, DesiredAccount)],
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
                let (anchor, account) = &accounts[index];
                if account.enabled {
                    members.push(anchor.clone());
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
                        format!("rule {rule} (entry \"{dn}\")")
                    }
                };
                out.warnings.push(Warning {
                    group: Some(group.name.clone()),
                    ..Warning::new(
                        WarningKind::GroupCollision,
                        format!(
                            "group name {:?} is given by {} and by {}; only the first is used",
                            group.name,
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
    accounts: &[(String, DesiredAccount)],
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
                let (anchor, account) = &accounts[index];
                if account.enabled {
                    members.push(anchor.clone());
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
    use crate::core::filter::Filter;
    use crate::core::model::{Exclusion, ExclusionSelector, GroupRule, SourceRule};
    use crate::core::template::Template;

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
