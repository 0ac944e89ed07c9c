//! `registrar`: a declarative GitOps reconciliation controller for IM name registrations.
//!
//! The crate is split into a pure core (`core`: entries, filters, templates, desired state
//! and plan) and adapters around it (`config`, `git`, `snapshot`, `ldif`, `store`, `render`, `app`). See
//! ARCHITECTURE.md for the code map and the invariants.

pub mod app;
pub mod cli;
pub mod config;
pub mod core;
pub mod git;
pub mod ldap;
pub mod ldif;
pub mod render;
pub mod store;
pub mod tree;
