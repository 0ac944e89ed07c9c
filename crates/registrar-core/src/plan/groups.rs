//! The group walk: group and membership changes. Only managed groups (with an owner
//! rule) change; a group that goes loses its members first, and each kept group's
//! members are a merge walk of the stored and the desired lists.

use arcstr::ArcStr;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::desired::{DesiredGroup, Warning, WarningKind};
use crate::interner::Interner;
use crate::model::Rules;
use crate::state::State;

use super::change::{Action, Change, ChangeList, Detail};
use super::context::{merge_order, Frozen};

/// What group planning needs from the account planning before it.
pub(super) struct GroupContext<'a> {
    /// Managed accounts giving up their managed rows, with the reason.
    pub(super) departing: &'a BTreeMap<&'a str, &'static str>,
    /// `on_departure: keep`: departed accounts keep their rows, memberships included.
    pub(super) keeps_registrations: bool,
    pub(super) frozen: &'a Frozen<'a>,
    /// Names of groups whose entry an exclusion freezes.
    pub(super) frozen_groups: &'a BTreeSet<String>,
}

/// Plans group and membership changes; returns how many groups exclusions froze.
///
/// Only managed groups (with an owner rule) change. A desired group whose name an
/// unmanaged group holds is a conflict and is skipped. A group that goes loses its
/// members first; frozen accounts keep their place in groups that stay.
pub(super) fn plan_groups(
    rules: &Rules,
    groups: BTreeMap<String, DesiredGroup>,
    state: &State,
    context: &GroupContext<'_>,
    shared: &mut Interner,
    changes: &mut ChangeList,
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
        let group: ArcStr = name.as_str().into();
        for member in &row.members {
            changes.push(Change {
                reason: Some(shared.get(reason)),
                ..Change::group_member(Action::Remove, &group, member.as_str().into())
            });
        }
        changes.push(
            Change {
                reason: Some(shared.get(reason)),
                ..Change::group(Action::Remove, &group)
            }
            .with_detail(Detail {
                group_rule: Some(owner.into()),
                ..Detail::default()
            }),
        );
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
        let group: ArcStr = name.as_str().into();
        let Some(row) = state.groups.get(&name) else {
            changes.push(Change::group(Action::Add, &group).with_detail(Detail {
                source: Some(source.into()),
                group_rule: Some(rule.into()),
                group_kind: Some(kind),
                ..Detail::default()
            }));
            for member in members {
                changes.push(Change::group_member(Action::Add, &group, member));
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
            changes.push(
                Change {
                    reason: Some(shared.get("now produced by another group rule")),
                    ..Change::group(Action::Update, &group)
                }
                .with_detail(Detail {
                    group_rule: Some(rule.into()),
                    fields: Some(fields),
                    ..Detail::default()
                }),
            );
        }
        // Both lists are sorted: one merge walk finds who leaves and who joins.
        let (mut have, mut want) = (
            row.members.iter().peekable(),
            members.into_iter().peekable(),
        );
        while let Some(order) = merge_order(have.peek(), want.peek(), |h, w| h.as_str().cmp(&**w)) {
            match order {
                Ordering::Equal => {
                    have.next();
                    want.next();
                }
                Ordering::Less => {
                    let Some(member) = have.next() else { break };
                    if context.frozen.account(member) {
                        continue;
                    }
                    let departure = context.departing.get(member.as_str()).copied();
                    if departure.is_some() && context.keeps_registrations {
                        continue;
                    }
                    changes.push(Change {
                        reason: Some(shared.get(departure.unwrap_or("no longer a member"))),
                        ..Change::group_member(Action::Remove, &group, member.as_str().into())
                    });
                }
                Ordering::Greater => {
                    let Some(member) = want.next() else { break };
                    changes.push(Change::group_member(Action::Add, &group, member));
                }
            }
        }
    }
    excluded
}
