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
//!
//! `change` is the plan as data (the saved-plan format); `planner` runs the walks in
//! turn: `accounts`, `registrations` and `groups`, with what they share in `context`.

mod accounts;
mod change;
mod context;
mod groups;
mod planner;
mod registrations;
#[cfg(test)]
mod tests;

pub use change::{
    Action, Change, Detail, FieldChange, ImportedFile, Kind, Plan, SourceImport, Summary,
    PLAN_FORMAT_VERSION, PLAN_HEADER,
};
pub(crate) use planner::{add_unheld_warnings, deletion_threshold, plan_rows};
pub use planner::{plan, plan_with_rows, PlanError};
