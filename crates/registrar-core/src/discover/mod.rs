//! What a source holds, for `registrar discover`: the objectClass chains and attributes of
//! its entries, with counts and a sample value each, and a starter configuration built
//! from them (object types, and a mapping per attribute that likely holds IM names).
//!
//! [`Discovery`] is fed one entry at a time and keeps counts only: its memory grows with
//! the number of distinct chains and attributes (and of object types), never with the
//! number of entries. Values of secret attributes (passwords, their hashes, key
//! material; see [`is_secret`]) are never kept or looked at: their sample is `<hidden>`.
//!
//! This module is pure: no I/O. The same entries in the same order give the same report
//! and the same starter, byte for byte. It must not read the config files: what it needs
//! of the configuration (object types, existing mappings) is passed in.
//!
//! `sample` says what of a value may be shown; `count` is the counting ([`Discovery`],
//! [`Report`]); `suggestions` holds what a [`Starter`] is; `heuristics` builds one from
//! the report, and `yaml` writes its text.

mod count;
mod heuristics;
mod sample;
mod suggestions;
#[cfg(test)]
mod tests;
mod yaml;

pub use count::{AttributeCount, ChainCount, Discovery, Report, Shape, TypeAttribute, TypeCount};
pub use heuristics::starter;
pub use sample::Sample;
pub use suggestions::{Starter, StarterContext, Suggestion};
pub use yaml::yaml_scalar;
