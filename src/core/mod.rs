//! The pure core: directory entries, filters, templates, desired state and plan.
//!
//! Nothing in here performs I/O, reads the clock or is async. Every function is
//! deterministic: the same input gives the same output, in the same order.

pub(crate) mod attribute_name;
pub(crate) mod cursor;
pub mod desired;
pub mod discover;
pub mod dn;
pub mod drift;
pub mod effect;
pub mod entry;
pub mod filter;
pub mod interner;
pub mod join;
pub mod matched;
pub mod model;
pub mod plan;
pub mod quote;
pub mod region;
pub mod state;
pub mod template;
