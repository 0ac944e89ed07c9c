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
//!
//! `desired_state` holds the value; `prepare` the per-entry step; `build` the builder;
//! `claims` the claim sort; `groups` group resolution.

mod build;
mod claims;
mod desired_state;
mod groups;
mod prepare;
#[cfg(test)]
mod tests;

pub use build::{desired, DesiredBuilder};
pub use desired_state::{
    mapping_bit, Claim, Desired, DesiredAccount, DesiredGroup, GroupSkipCounts, SkipCounts,
    SourceEntries, Warning, WarningKind, MAPPING_BITS,
};
pub use groups::MEMBER_ATTRIBUTES;
pub use prepare::{EntryFootprint, EntryPreparer, PreparedEntry};
