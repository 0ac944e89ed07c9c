//! `registrar`: a declarative GitOps reconciliation controller for IM name registrations.
//!
//! Three layers, imported one way (`cli` → `app` → `config` and `adapters` → core):
//! - the pure core, its own crate [`registrar_core`] (re-exported here as [`core`]):
//!   entries, filters, templates, desired state and plan;
//! - [`adapters`] around it: LDIF, LDAP, git, the working tree, the SQLite store and the
//!   renderers; and [`config`], which reads the YAML into the core's model;
//! - [`app`], one module per command, and [`cli`], the command line.
//!
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod adapters;
pub mod app;
pub mod cli;
pub mod config;

/// The library's public paths. The tests, examples and fuzz targets name the core and the
/// adapters as `registrar::core`, `registrar::ldif` and so on.
pub use adapters::{git, ldap, ldif, postgres, render, store, tree};
pub use registrar_core as core;
