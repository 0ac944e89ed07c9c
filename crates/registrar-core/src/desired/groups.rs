//! Group resolution: the group facts gathered while streaming, resolved in `finish` into
//! groups with their members (nested groups flattened, cycles cut), name collisions
//! settled, and the member values and group names read from entries.

use arcstr::ArcStr;
use std::collections::{HashMap, HashSet};

use crate::dn::normalize_dn;
use crate::entry::Entry;
use crate::model::{dn_is_within, GroupSelector, Rules, DEFAULT_MAX_IM_NAME_LENGTH};
use crate::quote::{quote_for_message, shown_for_message};

use super::desired_state::{
    Desired, DesiredAccount, DesiredGroup, GroupSkipCounts, Warning, WarningKind,
};

/// The attributes whose values list a group's members (DNs). The builder reads them, and
/// a delta by region prunes them: both from this one list, so that delta equals full.
pub const MEMBER_ATTRIBUTES: [&str; 2] = ["member", "uniqueMember"];

/// What groups need of one source, as normalised DNs.
#[derive(Debug, Default)]
pub(super) struct GroupFacts {
    /// Group entry → its member DNs (`member` and `uniqueMember`).
    pub(super) groups: HashMap<String, Vec<String>>,
    /// User entries frozen by an exclusion.
    pub(super) frozen_users: HashSet<String>,
    /// Group entries frozen by an exclusion.
    pub(super) frozen_groups: HashSet<String>,
}

/// A group entry matched by a distribution-list rule.
#[derive(Debug)]
pub(super) struct ListedGroup {
    /// Index into `Rules::groups`.
    pub(super) rule: usize,
    /// Normalised DN of the group entry.
    pub(super) dn: String,
    pub(super) name: String,
}

/// A group with its members worked out, before name collisions are settled.
pub(super) struct ResolvedGroup {
    pub(super) name: String,
    pub(super) rule: usize,
    /// The group entry's DN; empty for org units.
    pub(super) dn: String,
    pub(super) members: Vec<ArcStr>,
    pub(super) skipped: GroupSkipCounts,
}

/// Works out every group's members from the recorded DNs, settles name collisions and
/// fills `out.groups`, `out.group_skipped` and the group warnings.
///
/// Distribution lists are flattened by a walk over nested group entries with a visited
/// set, so cycles end and the members are the same set whatever the order entries came
/// in. Only enabled accounts are members.
pub(super) fn resolve_groups(
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
    debug_assert!(
        accounts.is_sorted_by(|a, b| a.anchor < b.anchor),
        "members are sorted by account index: accounts must come in anchor order"
    );
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
                if accounts[index].enabled {
                    members.push(index);
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
        resolved.push(ResolvedGroup {
            name,
            rule: index,
            dn: String::new(),
            members: anchors_of(members, accounts),
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

/// The anchors of the accounts at `indices`, sorted and without duplicates. Accounts come
/// in anchor order, so sorting their indices sorts the anchors: integers compared, not
/// strings, and each anchor shared, not copied.
fn anchors_of(mut indices: Vec<usize>, accounts: &[DesiredAccount]) -> Vec<ArcStr> {
    indices.sort_unstable();
    indices.dedup();
    indices
        .into_iter()
        .map(|index| accounts[index].anchor.clone())
        .collect()
}

/// The enabled accounts a group entry holds, directly or through nested group entries,
/// and the member DNs dropped.
pub(super) fn flatten(
    start: &str,
    facts: &GroupFacts,
    users: &HashMap<String, usize>,
    accounts: &[DesiredAccount],
) -> (Vec<ArcStr>, GroupSkipCounts) {
    let mut members = Vec::new();
    let mut visited: HashSet<&str> = HashSet::new();
    let mut unknown: HashSet<&str> = HashSet::new();
    let mut disabled: HashSet<&str> = HashSet::new();
    let mut excluded: HashSet<&str> = HashSet::new();
    let Some((start, _)) = facts.groups.get_key_value(start) else {
        return (Vec::new(), GroupSkipCounts::default());
    };
    visited.insert(start);
    let mut stack = vec![start.as_str()];
    while let Some(group) = stack.pop() {
        for member in facts.groups.get(group).into_iter().flatten() {
            let member = member.as_str();
            if let Some(&index) = users.get(member) {
                if accounts[index].enabled {
                    members.push(index);
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
    let skipped = GroupSkipCounts {
        unknown_members: unknown.len() as u64,
        disabled_members: disabled.len() as u64,
        excluded_members: excluded.len() as u64,
    };
    (anchors_of(members, accounts), skipped)
}

/// The normalised DN in a `member` or `uniqueMember` value, without the optional
/// `#'0101'B` unique identifier of `uniqueMember` (RFC 4517 NameAndOptionalUID).
pub(super) fn member_dn(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let text = text.trim();
    normalize_dn(strip_unique_id(text))
}

pub(super) fn strip_unique_id(text: &str) -> &str {
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
pub(super) fn valid_group_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let bad = name.is_empty()
        || name.chars().count() > DEFAULT_MAX_IM_NAME_LENGTH
        || name.chars().any(|c| c.is_control());
    (!bad).then_some(name)
}
