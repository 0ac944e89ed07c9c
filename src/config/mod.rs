//! Loading the configuration directory: read every `*.yaml`, parse each into the raw
//! types, then merge and check them into the core's [`Rules`] plus the adapter settings
//! (where each source's data lives). The files come from a [`Tree`]: the working
//! tree, or a git revision.
//!
//! Every error names `file:line:col`. Every problem of every file is collected, in file
//! order: each top-level key and each list item is read on its own (`parse.rs`,
//! `part.rs`), so a broken item hides no other problem, and the checks (`check.rs` and
//! its `check_*.rs`) run over every item that parsed. This module reads files; it never
//! touches the store or a directory server.
//!
//! [`Rules`]: registrar_core::model::Rules
//! [`Tree`]: crate::adapters::tree::Tree

mod check;
mod check_lists;
mod check_references;
mod check_sections;
mod check_self_service;
mod check_sources;
mod ldap_settings;
mod load;
mod locate;
mod parse;
mod part;
mod problem;
pub mod raw;
mod settings;
pub mod trust;
mod yaml_bounds;

pub use check::DataFileCheck;
pub use ldap_settings::LdapSettingsError;
pub use load::{load, load_dir, load_texts};
pub use problem::{ConfigError, ConfigProblem, Location, UnreadableFile};
pub use settings::{
    Config, ConfigText, LdapBind, LdapSettings, PasswordFrom, Schedule, SelfService,
    SourceLocation, SourceSettings, TrustedHeader, DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT_SECONDS,
};
