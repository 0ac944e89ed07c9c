//! The planner's entry: the whole plan from the desired state and the store, its walks
//! (accounts, registrations, groups) run in turn, then the changes put in apply order and
//! counted, and the rules that can refuse or block a plan (empty sources, the deletion
//! threshold).

use std::collections::{BTreeMap, BTreeSet};

use crate::desired::{Desired, WarningKind};
use crate::interner::Interner;
use crate::matched::Watch;
use crate::model::{Departure, Rules};
use crate::state::{RegistrationKey, RegistrationRows, State, StoredRegistrations};

use super::accounts::plan_accounts;
use super::change::{Action, Change, ChangeList, Plan, Summary, PLAN_FORMAT_VERSION};
use super::context::{Frozen, People};
use super::groups::{plan_groups, GroupContext};
use super::registrations::{RegistrationWalk, Written};

/// Why there can be no plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "source {source_name} yielded no accounts but the store holds {managed} managed account(s) from it; \
         refusing to plan their removal (set allow_empty: true on the source if this is intended)"
    )]
    EmptySource { source_name: String, managed: u64 },
}

/// Computes the plan. `revision`, `inputs_digest` and `config_digest` are left for the
/// caller to fill in.
///
/// The desired state is consumed: its strings move into the changes instead of being
/// copied, which halves the memory a large first import needs.
///
/// ```
/// use registrar_core::desired::{desired, SourceEntries};
/// use registrar_core::entry::Entry;
/// use registrar_core::model::{Anchor, Mapping, Rules, SourceRule};
/// use registrar_core::plan::{plan, Action, Kind};
/// use registrar_core::state::State;
/// use registrar_core::template::Template;
///
/// let rules = Rules {
///     sources: vec![SourceRule {
///         name: "hr".to_string(),
///         anchor: Anchor::Dn,
///         allow_empty: false,
///     }],
///     mappings: vec![Mapping {
///         name: "aim-from-uid".to_string(),
///         protocol: "aim".to_string(),
///         value: Template::parse("{uid|lower}").unwrap(),
///         when: None,
///         sources: None,
///         renamed_from: Vec::new(),
///     }],
///     ..Rules::default()
/// };
/// let alice = Entry::new("cn=Alice,ou=people,dc=example")
///     .with("objectClass", &["top", "person"])
///     .with("uid", &["ALiddell"]);
/// let wanted = desired(&rules, &[SourceEntries {
///     source: "hr".to_string(),
///     entries: vec![alice],
/// }]);
///
/// // Against an empty store: the account comes first, then its name.
/// let plan = plan(&rules, wanted, &State::default()).unwrap();
/// let steps: Vec<(Action, Kind, Option<&str>)> = plan
///     .changes
///     .iter()
///     .map(|change| (change.action, change.kind, change.im_name.as_deref()))
///     .collect();
/// assert_eq!(steps, [
///     (Action::Add, Kind::Account, None),
///     (Action::Add, Kind::Registration, Some("aliddell")),
/// ]);
/// assert_eq!(plan.summary.add, 2);
/// ```
pub fn plan(rules: &Rules, desired: Desired, state: &State) -> Result<Plan, PlanError> {
    let registrations = StoredRegistrations::loaded(&state.registrations);
    plan_with_rows(rules, desired, state, registrations)
}

/// [`plan`], with the store's registrations read from `registrations` as the walk goes,
/// not from `state` (whose `registrations` are not read): the store streams them, and
/// the largest table of a large store is never held whole. The plan is the one [`plan`]
/// makes of the state that holds those rows.
pub fn plan_with_rows(
    rules: &Rules,
    desired: Desired,
    state: &State,
    registrations: StoredRegistrations<impl RegistrationRows>,
) -> Result<Plan, PlanError> {
    check_empty_sources(
        rules,
        &desired.accounts_per_source,
        &desired.frozen_accounts,
        state,
    )?;
    let managed = managed_besides_registrations(state);
    let mut plan = plan_rows(rules, desired, state, registrations, managed);
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

/// The managed rows `state` holds besides its registrations (which the registration walk
/// counts as it passes them): accounts with a source, groups with an owner, and the
/// members of those groups. With the managed registrations, what
/// `policy.max_delete_percent` is a share of.
fn managed_besides_registrations(state: &State) -> u64 {
    (state
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

/// [`plan_with_rows`] without the empty-source rule (rule 7), which the caller has
/// settled: the changes, warnings and summary, with the deletion threshold taken against
/// the managed registrations the walk passes and `managed` other rows.
pub(crate) fn plan_rows(
    rules: &Rules,
    desired: Desired,
    state: &State,
    registrations: StoredRegistrations<impl RegistrationRows>,
    managed: u64,
) -> Plan {
    let StoredRegistrations {
        mut rows,
        count: stored_registrations,
        unmanaged_holders,
    } = registrations;
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

    // Sized for the worst case up front, group members included (a group change is one
    // per member): growing a vector of a million changes by doubling would briefly hold
    // two copies. Capacity never written costs no memory.
    let group_rows: usize = groups.values().map(|g| g.members.len() + 1).sum::<usize>()
        + state
            .groups
            .values()
            .map(|g| g.members.len() + 1)
            .sum::<usize>();
    let mut changes = ChangeList::with_capacity(
        2 * accounts.len()
            + claims.len()
            + state.accounts.len()
            + stored_registrations
            + group_rows,
    );
    let mut warnings = warnings;
    let mut shared = Interner::default();
    let frozen = Frozen::new(rules, state, &frozen_accounts, &frozen_registrations);
    let mut excluded_accounts: BTreeSet<&str> =
        frozen_accounts.iter().map(String::as_str).collect();
    let mut excluded_registrations: BTreeSet<RegistrationKey> = frozen_registrations.clone();

    let departing = plan_accounts(
        rules,
        &mut accounts,
        (state, &unmanaged_holders),
        &frozen,
        &mut excluded_accounts,
        &mut shared,
        &mut changes,
    );
    let people = People {
        accounts: &accounts,
        state,
    };
    let keeps_registrations = rules.accounts.on_departure == Departure::Keep;
    let managed_registrations = RegistrationWalk {
        rules,
        people: &people,
        frozen: &frozen,
        departing: &departing,
        keeps_registrations,
    }
    .plan(
        claims,
        &mut rows,
        &mut Written {
            shared: &mut shared,
            changes: &mut changes,
            warnings: &mut warnings,
            excluded: &mut excluded_registrations,
        },
    );
    let excluded_groups = plan_groups(
        rules,
        groups,
        state,
        &GroupContext {
            departing: &departing,
            keeps_registrations,
            frozen: &frozen,
            frozen_groups: &frozen_groups,
        },
        &mut shared,
        &mut changes,
        &mut warnings,
    );

    // Group members are named by their DN too (a group's in anchor order).
    let mut near = 0;
    changes.fill_dns(|change| {
        let anchor = change.account.as_deref().or(change.member.as_deref())?;
        people.dn_of_from(anchor, &mut near)
    });
    let changes = changes.into_apply_order();
    warnings.sort();
    warnings.dedup();
    let excluded =
        (excluded_accounts.len() + excluded_registrations.len()) as u64 + excluded_groups;
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        revision: None,
        state_serial: state.serial,
        inputs_digest: String::new(),
        config_digest: String::new(),
        summary: summarise(
            rules,
            &changes,
            &warnings,
            excluded,
            managed + managed_registrations,
        ),
        changes,
        warnings,
        skipped,
        group_skipped,
        imports: Vec::new(),
        sources: matched,
    }
}

/// The summary of `changes` and `warnings`, with `excluded` objects left untouched and
/// the deletion threshold taken against `managed` rows.
fn summarise(
    rules: &Rules,
    changes: &[Change],
    warnings: &[crate::desired::Warning],
    excluded: u64,
    managed: u64,
) -> Summary {
    let mut summary = Summary::default();
    for change in changes {
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
    summary.excluded = excluded;
    summary.blocked_reason =
        deletion_threshold(&rules.policy, summary.remove + summary.deactivate, managed);
    summary.blocked = summary.blocked_reason.is_some();
    summary
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
