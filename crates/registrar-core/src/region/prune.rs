//! Pruning the member lists of group entries a region only passes through: only the
//! members that can matter to the plan stay (the region's entries, and what its
//! expanded groups list), so a list of a hundred thousand members costs what its few
//! relevant ones cost.

use std::collections::{BTreeMap, BTreeSet};

use crate::desired::{EntryFootprint, MEMBER_ATTRIBUTES};
use crate::entry::{base_name, Attribute, Entry};
use crate::model::{ExclusionSelector, GroupSelector, Rules};

use super::closure::{EntryKey, Versions};

/// Whether the attribute `description` is one of the [`MEMBER_ATTRIBUTES`].
fn is_member_attribute(description: &str) -> bool {
    let base = base_name(description);
    MEMBER_ATTRIBUTES
        .iter()
        .any(|member| base.eq_ignore_ascii_case(member))
}

/// Per source, the member DNs a group entry the region passes through must keep: the
/// region's `entries` and what `expanded` groups list. `None` when a group rule or an
/// exclusion of `rules` reads the member attributes themselves (nothing is pruned then).
pub(super) fn relevant_members<'a>(
    rules: &Rules,
    entries: &'a BTreeMap<EntryKey, Versions>,
    expanded: &'a BTreeSet<EntryKey>,
) -> Option<BTreeMap<&'a str, BTreeSet<&'a str>>> {
    let reads_members = |attributes: Vec<&str>| {
        attributes
            .iter()
            .any(|attribute| is_member_attribute(attribute))
    };
    let groups_read = rules.groups.iter().any(|rule| {
        reads_members(rule.name.attributes())
            || matches!(&rule.selector, GroupSelector::DistributionList(filter) if reads_members(filter.attributes()))
    });
    let exclusions_read = rules.exclusions.iter().any(|exclusion| {
        matches!(&exclusion.selector, ExclusionSelector::Filter(filter) if reads_members(filter.attributes()))
    });
    if groups_read || exclusions_read {
        return None;
    }
    let mut relevant: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (source, key) in entries.keys() {
        relevant.entry(source).or_default().insert(key);
    }
    for key in expanded {
        let versions = &entries[key];
        let members = versions.prints.iter().flat_map(|print| &print.members);
        relevant
            .entry(&key.0)
            .or_default()
            .extend(members.map(String::as_str));
    }
    Some(relevant)
}

/// `entry`, a group entry, with `member` values for only the members of its footprint in
/// `keep` (normalised DNs, which read back as themselves) and no other member attribute.
pub(super) fn pruned_group(
    entry: &Entry,
    print: &EntryFootprint,
    keep: Option<&BTreeSet<&str>>,
) -> Entry {
    let mut pruned = Entry {
        dn: entry.dn.clone(),
        attributes: entry
            .attributes
            .iter()
            .filter(|attribute| !is_member_attribute(&attribute.description))
            .cloned()
            .collect(),
    };
    let members: Vec<Vec<u8>> = print
        .members
        .iter()
        .filter(|member| keep.is_some_and(|keep| keep.contains(member.as_str())))
        .map(|member| member.as_bytes().to_vec())
        .collect();
    if !members.is_empty() {
        pruned.attributes.push(Attribute {
            description: "member".to_string(),
            values: members,
        });
    }
    pruned
}
