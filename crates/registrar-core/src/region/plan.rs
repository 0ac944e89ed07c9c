//! Planning a region: the plan of the whole directory after a change, from the region
//! it can affect (planned twice, before and after) and the standing facts of the rest.

use std::collections::{BTreeMap, BTreeSet};

use crate::desired::{Desired, GroupSkipCounts, SkipCounts, Warning, WarningKind};
use crate::matched::Matched;
use crate::model::Rules;
use crate::plan::{add_unheld_warnings, deletion_threshold, plan_rows, Plan};
use crate::state::{RegistrationKey, State, StoredRegistrations};

use super::facts::StandingFacts;

/// What a change can affect, before and after it.
#[derive(Debug, Clone, Default)]
pub struct Region {
    /// The names whose claims and rows the region holds whole.
    pub names: BTreeSet<RegistrationKey>,
    /// The accounts whose group memberships the region holds whole (the stored groups'
    /// members in `state` are only these).
    pub members: BTreeSet<String>,
    /// The region's entries as they were (the kept snapshot) and as they are now.
    pub before: Desired,
    pub after: Desired,
    /// The store's rows for the region's accounts and names.
    pub state: State,
}

/// The plan of the whole directory after the change, from the `region` it can affect and
/// the `standing` facts of the rest. `managed_rows` counts the store's managed rows
/// (asked only when a percentage threshold needs it). The empty-source rule is the
/// caller's: it knows which sources still yield accounts outside the region.
///
/// `None` when the standing facts cannot be what the store says (a warning or count of
/// the region's share is missing from them): the caller plans in full instead.
pub fn plan_region(
    rules: &Rules,
    region: Region,
    standing: &StandingFacts,
    managed_rows: impl FnOnce() -> u64,
) -> Option<Plan> {
    let Region {
        names,
        members,
        mut before,
        mut after,
        state,
    } = region;
    for desired in [&mut before, &mut after] {
        desired.retain_claims_on(&names);
        desired.retain_members_among(&members);
    }
    let standing_sources = standing.sources.as_ref()?;
    let stored = || StoredRegistrations::loaded(&state.registrations);
    let was = plan_rows(rules, before, &state, stored(), 0);
    let mut plan = plan_rows(rules, after, &state, stored(), 0);

    // Warnings: a set, each about one entry, anchor or name, so the region's share is
    // exactly what it produces.
    let mut warnings: BTreeSet<Warning> = standing.warnings.iter().cloned().collect();
    for warning in &was.warnings {
        if !warnings.remove(warning) {
            return None;
        }
    }
    warnings.extend(std::mem::take(&mut plan.warnings));
    plan.warnings = warnings.into_iter().collect();

    plan.skipped = shift(
        &standing.skipped,
        &was.skipped,
        std::mem::take(&mut plan.skipped),
    )?;
    plan.group_skipped = shift(
        &standing.group_skipped,
        &was.group_skipped,
        std::mem::take(&mut plan.group_skipped),
    )?;

    plan.sources = Matched::shift(
        standing_sources,
        &was.sources,
        &std::mem::take(&mut plan.sources),
    )?;
    add_unheld_warnings(rules, &mut plan);

    let summary = &mut plan.summary;
    summary.excluded = u64::try_from(
        i128::from(standing.excluded) - i128::from(was.summary.excluded)
            + i128::from(summary.excluded),
    )
    .ok()?;
    summary.conflicts = plan
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Conflict)
        .count() as u64;
    let deletions = summary.remove + summary.deactivate;
    let managed = if rules.policy.max_delete_percent.is_some() && deletions > 0 {
        managed_rows()
    } else {
        0
    };
    summary.blocked_reason = deletion_threshold(&rules.policy, deletions, managed);
    summary.blocked = summary.blocked_reason.is_some();
    Some(plan)
}

/// Counts per key (mapping or group) that a region shifts.
trait Tally: Sized {
    fn tally(&self) -> [u64; 3];
    fn from_tally(tally: [u64; 3]) -> Self;
}

impl Tally for SkipCounts {
    fn tally(&self) -> [u64; 3] {
        [self.missing_attribute, self.invalid_name, self.disabled]
    }

    fn from_tally([missing_attribute, invalid_name, disabled]: [u64; 3]) -> Self {
        SkipCounts {
            missing_attribute,
            invalid_name,
            disabled,
        }
    }
}

impl Tally for GroupSkipCounts {
    fn tally(&self) -> [u64; 3] {
        [
            self.unknown_members,
            self.disabled_members,
            self.excluded_members,
        ]
    }

    fn from_tally([unknown_members, disabled_members, excluded_members]: [u64; 3]) -> Self {
        GroupSkipCounts {
            unknown_members,
            disabled_members,
            excluded_members,
        }
    }
}

/// `standing` less the region's share before the change (`was`) plus its share after
/// (`now`), keeping only keys with a count. The region's shares may both count what it
/// sees wrongly (a member outside it counted unknown); only the total must make sense:
/// `None` when a count would go below zero.
fn shift<T: Tally>(
    standing: &BTreeMap<String, T>,
    was: &BTreeMap<String, T>,
    now: BTreeMap<String, T>,
) -> Option<BTreeMap<String, T>> {
    let mut totals: BTreeMap<String, [i128; 3]> = BTreeMap::new();
    let mut add = |key: &str, counts: &T, sign: i128| {
        let total = totals.entry(key.to_string()).or_default();
        for (total, count) in total.iter_mut().zip(counts.tally()) {
            *total += sign * i128::from(count);
        }
    };
    for (key, counts) in standing {
        add(key, counts, 1);
    }
    for (key, counts) in was {
        add(key, counts, -1);
    }
    for (key, counts) in &now {
        add(key, counts, 1);
    }
    let mut shifted = BTreeMap::new();
    for (key, total) in totals {
        if total == [0; 3] {
            continue;
        }
        let mut tally = [0u64; 3];
        for (count, total) in tally.iter_mut().zip(total) {
            *count = u64::try_from(total).ok()?;
        }
        shifted.insert(key, T::from_tally(tally));
    }
    Some(shifted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standing facts a store kept before the `sources` figures existed still load, and a
    /// region cannot shift them: the caller reads every kept entry instead.
    #[test]
    fn standing_facts_without_sources_figures_load_and_plan_no_region() {
        let old = r#"{"warnings": [], "skipped": {}, "group_skipped": {}, "excluded": 0}"#;
        let standing: StandingFacts = serde_json::from_str(old).unwrap();
        assert_eq!(standing.sources, None);
        let rules = Rules::default();
        assert!(plan_region(&rules, Region::default(), &standing, || 0).is_none());

        let plan = plan_region(
            &rules,
            Region::default(),
            &StandingFacts {
                sources: Some(Box::default()),
                ..standing
            },
            || 0,
        );
        assert!(plan.is_some());
    }
}
