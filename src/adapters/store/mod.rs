//! The registration store, on SQLite (a file, the embedded default) or PostgreSQL: load
//! the state, apply a plan in one transaction,
//! record manual and self registrations, keep the run history, the content hash of
//! every managed row as the last apply left it (for drift) and, per `ldif` source, the
//! snapshot it was last imported as (`snapshots.rs`).
//!
//! This adapter is the only code that touches the database. It never decides what
//! to change: it carries out a plan exactly, or refuses it whole.
//!
//! One job per file: `database.rs` (the one SQL connection, either backend),
//! `location.rs` (where a store is), `open.rs` (opening it), `migrations.rs` (the schema and its
//! upgrades), `read.rs` (state rows), `serial.rs`, `history.rs` (runs), `apply.rs` (the
//! apply transaction), `changes.rs` and `change.rs` (writing a plan's changes),
//! `hashes.rs` (drift hashes), `leadership.rs` (which controller leads), `register.rs`,
//! `self_service.rs` (what `serve` reads and removes),
//! `snapshots.rs`, `bulk.rs` (bulk writes), `copy.rs` (a whole store into an empty one,
//! and table digests), `error.rs`, and `allocator.rs` (SQLite over mimalloc, and
//! mimalloc's purge delay: the only unsafe).

mod allocator;
mod apply;
mod bulk;
mod change;
mod changes;
mod copy;
mod database;
mod error;
mod hashes;
mod history;
mod leadership;
mod location;
mod migrations;
mod open;
mod read;
mod register;
mod self_service;
mod serial;
mod snapshots;
mod stream;
#[cfg(test)]
mod test_support;

pub use allocator::{configure_sqlite, return_freed_memory_promptly};
pub use change::ChangeConflict;
pub use changes::ChangeWriter;
pub use copy::{CopyError, Table, TableDigest, TABLES};
pub use database::{Backend, ColumnKind};
pub use error::{StoreError, UnreadableValue, ValueProblem, LOCK_WAIT};
pub use history::RunRecord;
pub use leadership::LEADER_LOCK;
pub use location::StoreLocation;
pub use open::Store;
pub use read::ManagedCounts;
pub use self_service::{HeldName, Holder};
pub use snapshots::{
    EntryRow, KeptEntry, KeptFeed, KeptFile, KeptSnapshot, KeptStanding, KeptWrites, SnapshotWrite,
    SnapshotWriter, Standing,
};
pub use stream::{RegistrationBatch, StateHead, StreamedRows};
