//! The pure core: directory entries, filters, templates, desired state and plan.
//!
//! Nothing in here performs I/O, reads the clock or is async. Every function is
//! deterministic: the same input gives the same output, in the same order. The crate's
//! manifest admits no I/O crate (no tokio, SQLite, git, LDAP or file system crate), so
//! the rule is the compiler's, not a convention; `ci/test` checks the manifest's list.

#![forbid(unsafe_code)]

/// The shared string of the core's bulk values (anchors, DNs, names, protocols): one
/// pointer wide, so that the millions of changes, claims and rows a large directory
/// gives are half the size a `Arc<str>` (pointer and length) would make them.
pub use arcstr::ArcStr;

pub mod attribute_name;
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
