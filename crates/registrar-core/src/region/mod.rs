//! A delta plan by region: the plan of a small change to a large directory, computed from
//! the entries the change can affect and what the store says of the rest.
//!
//! Right after an apply, a full plan of the same inputs has no changes, and its warnings,
//! skip counts and exclusion count are those of the plan that was applied (the standing
//! facts, kept by the store; the case folders check that an apply leaves them as they
//! were). A change to some entries can only change what those entries take part in:
//!
//! - their anchors (entries sharing an anchor settle together, and an exclusion freezes
//!   an anchor whole),
//! - the names they claim before or after the change, and the names their accounts hold
//!   (a name goes to the one account that holds it, or to its only claimant), and
//! - the groups that reach them (and, for a group entry, the accounts it reaches).
//!
//! `closure` gathers the region, asking a `KeptDirectory` what the store holds: every entry on those anchors, every entry claiming
//! those names, the entries on the anchors of those (to know which of them wins its
//! anchor), the store's rows for those anchors and names. Each entry comes as it was
//! before the change and as it is after. [`plan_region`] plans the region twice against
//! the same rows, once with the entries before and once after: the changes are the
//! second plan's, and every total is the standing total less the first plan's share plus
//! the second's (the `sources` figures too; the warnings they give are worked out from
//! the totals). Whatever the region sees wrongly for lack of the rest of the directory
//! (the other names of an entry that was pulled in) it sees the same way both times, and
//! it cancels.
//!
//! Groups follow the same rule: the region holds whole the memberships of some accounts
//! (`Region::members`: the stored groups' members in the region's rows are only those),
//! and the closure brings in every group entry that reaches them; other memberships are
//! left out on both sides. Pure, like the planner it runs.
//!
//! `closure` gathers the region (the rules of which entries it holds, asking a
//! [`KeptDirectory`] what the last apply kept), `prune` trims the member lists of group
//! entries it only passes through, `facts` are the standing facts, and `plan` plans the
//! region against them.

mod closure;
mod facts;
mod plan;
mod prune;

pub use closure::{group_names, EntryKey, KeptDirectory, RegionEntries};
pub use facts::{StandingFacts, STANDING_FACTS_VERSION};
pub use plan::{plan_region, Region};
