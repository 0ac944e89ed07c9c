//! The commands: each one wires the adapters (config, files from the working tree or a
//! git revision, LDIF, store, renderers) around the pure core. `plan` and `apply` share
//! one reconcile pass, `reconcile()`, which reads sources in full or, with
//! `--mode delta`, from the snapshots the store kept (`snapshots.rs`; an LDAP source's
//! through its server's change feed, `feeds.rs`).
//!
//! This is the only layer that reads the clock, starts threads or reads a source's
//! password from the environment. It returns typed errors to `main`, which prints each as
//! one line and exits 1.
//!
//! This file only declares the modules and re-exports what `cli.rs`, `main.rs` and the
//! tests name: one job per file, and no child imports from here.

mod apply;
mod clock;
mod context;
mod discover;
mod drift;
mod error;
mod export;
mod feeds;
mod halves;
mod migrate;
mod output;
mod plan;
mod progress;
mod read_ahead;
mod reading;
mod reconcile;
mod region;
mod register;
pub mod run;
mod saved_plan;
pub mod serve;
mod show;
mod snapshots;
mod sources;
mod state;
mod threads;
mod validate;
pub mod web;
mod writeback;

pub use crate::config::raw::ImportMode;
pub use apply::{apply_command, apply_plan, Approval, APPROVAL_QUESTION};
pub use context::{Context, Outcome};
pub use discover::discover;
pub use drift::{drift_command, drift_report, DriftFormat};
pub use error::AppError;
pub use export::{export_source, ExportFormat};
pub use migrate::state_migrate;
pub use plan::{plan_command, PlanFormat};
pub use reconcile::{reconcile, Reconciled, Review};
pub use register::{AllowProtected, UnmanagedRegistration};
pub use run::{run_command, RunOptions};
pub use saved_plan::{read_whole_plan, ReviewParts, SavedPlanError};
pub use serve::{serve_command, ServeOptions};
pub use show::{show_plan, ShowFormat};
pub use snapshots::{KeptReadError, RereadError, StaleSnapshot, UnkeepableEntry};
pub use sources::{PasswordError, SourceError};
pub use state::{state_register, state_show, status, StateFormat};
pub use validate::{schema, validate};
