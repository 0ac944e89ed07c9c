//! A delta plan by region: the plan of a small change to a large directory, computed from
//! the entries the change can affect and what the store says of the rest.
//!
//! Right after an apply, a full plan of the same inputs has no changes, and its warnings,
//! skip counts and exclusion count are those of the plan that was applied (the standing
//! facts, kept by the store; the case folders check that an apply leaves them as they
//! were). A change to some entries can only change what those entries take part in:
//!
//! - their anchors (entries sharing an anchor settle together, and an exclusion freezes
//!   an anchor whole), and
//! - the names they claim before or after the change, and the names their accounts hold
//!   (a name goes to the one account that holds it, or to its only claimant).
//!
//! The caller gathers the region: every entry on those anchors, every entry claiming
//! those names, the entries on the anchors of those (to know which of them wins its
//! anchor), the store's rows for those anchors and names. Each entry comes as it was
//! before the change and as it is after. [`plan_region`] plans the region twice against
//! the same rows, once with the entries before and once after: the changes are the
//! second plan's, and every total is the standing total less the first plan's share plus
//! the second's. Whatever the region sees wrongly for lack of the rest of the directory
//! (the other names of an entry that was pulled in) it sees the same way both times, and
//! it cancels.
//!
//! The region holds no group: a delta plan by region is only made when no group rule
//! reads the directory (group membership is not local to an entry). Pure, like the
//! planner it runs.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::core::desired::{Desired, SkipCounts, Warning, WarningKind};
use crate::core::model::Rules;
use crate::core::plan::{deletion_threshold, plan_rows, Plan};
use crate::core::state::{RegistrationKey, State};

/// The totals of the plan last applied, which a full plan against the store it left
/// would give again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingFacts {
    pub warnings: Vec<Warning>,
    pub skipped: BTreeMap<String, SkipCounts>,
    /// Objects left untouched because of exclusions (`summary.excluded`).
    pub excluded: u64,
}

impl StandingFacts {
    /// The totals of `plan`.
    pub fn of(plan: &Plan) -> Self {
        StandingFacts {
            warnings: plan.warnings.clone(),
            skipped: plan.skipped.clone(),
            excluded: plan.summary.excluded,
        }
    }
}

/// What a change can affect, before and after it.
#[derive(Debug, Clone, Default)]
pub struct Region {
    /// The names whose claims and rows the region holds whole.
    pub names: BTreeSet<RegistrationKey>,
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
        mut before,
        mut after,
        state,
    } = region;
    before.retain_claims_on(&names);
    after.retain_claims_on(&names);
    let was = plan_rows(rules, before, &state, 0);
    let mut plan = plan_rows(rules, after, &state, 0);

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

    let mut skipped = standing.skipped.clone();
    for (mapping, counts) in &was.skipped {
        let total = skipped.get_mut(mapping)?;
        total.missing_attribute = total
            .missing_attribute
            .checked_sub(counts.missing_attribute)?;
        total.invalid_name = total.invalid_name.checked_sub(counts.invalid_name)?;
    }
    for (mapping, counts) in std::mem::take(&mut plan.skipped) {
        let total = skipped.entry(mapping).or_default();
        total.missing_attribute += counts.missing_attribute;
        total.invalid_name += counts.invalid_name;
    }
    skipped.retain(|_, counts| *counts != SkipCounts::default());
    plan.skipped = skipped;

    let summary = &mut plan.summary;
    summary.excluded = standing
        .excluded
        .checked_sub(was.summary.excluded)?
        .checked_add(summary.excluded)?;
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
