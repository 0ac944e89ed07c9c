//! `registrar run`: the controller. It reconciles on the schedules of the config, reading
//! the config again (from the followed git branch, fetched first when it has a remote)
//! before every run, and records every run in the store's run history.
//!
//! The parts: `lock.rs` keeps it to one controller per state file (SQLite); `lead.rs`
//! lets several share a PostgreSQL store, one leading and the others standing by; `follow.rs` gets the
//! followed branch's newest commit; [`scheduler`] decides when runs happen (one at a
//! time, coalescing fires, backing off after failures); `report.rs` says what one run
//! did; [`telemetry`] keeps health and metrics, which `run --listen` serves through the
//! shared HTTP stack (`app/web/`). `controller.rs` wires them:
//! it runs one pass of the schedule's action (`plan`, `apply` or `drift`) through the
//! same `reconcile` and apply as the commands, in `spawn_blocking`, and turns
//! SIGTERM/SIGINT into a clean stop. This file only declares and re-exports.
//!
//! It must not do a second reconcile of its own: a run is exactly what `plan` or
//! `apply --auto-approve` would do at that commit, plus the history record. It never
//! asks: the schedule in the reviewed config is the approval.

mod controller;
mod follow;
mod lead;
mod lock;
mod report;
pub mod scheduler;
pub mod telemetry;

pub use controller::{run_command, RunOptions, RUNS_KEPT};
pub use lock::lock_path;
pub use report::{Counts, RunOutcome, RunReport};
