//! The standing facts: the totals of the plan last applied (warnings, skip counts,
//! exclusions, sources figures), which the store keeps so that a delta plan by region
//! can start from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::{GroupSkipCounts, SkipCounts, Warning, WarningKind};
use crate::matched::Matched;
use crate::plan::Plan;

/// What [`StandingFacts`] count: 2 added the disabled users skipped per mapping.
pub const STANDING_FACTS_VERSION: u32 = 2;

/// The totals of the plan last applied, which a full plan against the store it left
/// would give again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingFacts {
    /// What these facts count ([`STANDING_FACTS_VERSION`]): facts kept by an older
    /// release count less, and a delta plan by region cannot start from them.
    #[serde(default)]
    pub version: u32,
    pub warnings: Vec<Warning>,
    pub skipped: BTreeMap<String, SkipCounts>,
    #[serde(default)]
    pub group_skipped: BTreeMap<String, GroupSkipCounts>,
    /// Objects left untouched because of exclusions (`summary.excluded`).
    pub excluded: u64,
    /// The plan's `sources` block (entries read, matched, attribute holders); `None` in
    /// facts a store kept before it existed, which a region cannot shift (the caller
    /// then reads every kept entry).
    #[serde(default)]
    pub sources: Option<Box<Matched>>,
}

impl StandingFacts {
    /// The totals of `plan`.
    pub fn of(plan: &Plan) -> Self {
        StandingFacts {
            version: STANDING_FACTS_VERSION,
            // Worked out again from the shifted `sources`.
            warnings: plan
                .warnings
                .iter()
                .filter(|w| w.kind != WarningKind::UnheldAttribute)
                .cloned()
                .collect(),
            skipped: plan.skipped.clone(),
            group_skipped: plan.group_skipped.clone(),
            excluded: plan.summary.excluded,
            sources: (!plan.sources.is_empty()).then(|| Box::new(plan.sources.clone())),
        }
    }
}
