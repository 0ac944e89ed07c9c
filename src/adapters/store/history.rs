//! The run history: one [`RunRecord`] per apply, registration or plan, with the serials
//! before and after; read newest first, and pruned of the runs that changed nothing.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::error::{store_error, StoreError};
use super::open::Store;
use super::serial::read_serial;

/// One run of an apply or a registration, for the history.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub started_at: String,
    pub finished_at: String,
    pub command: String,
    pub revision: Option<String>,
    pub serial_before: i64,
    pub serial_after: i64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    pub outcome: String,
    pub message: Option<String>,
    /// How long the run took; `None` for runs recorded before this was kept.
    pub duration_ms: Option<u64>,
}

impl RunRecord {
    /// A run of `command` started at `started_at`; counts zero, outcome `applied`. The
    /// store fills in the serials when it records the run.
    pub fn new(command: impl Into<String>, started_at: impl Into<String>) -> Self {
        let started_at = started_at.into();
        RunRecord {
            finished_at: started_at.clone(),
            started_at,
            command: command.into(),
            revision: None,
            serial_before: 0,
            serial_after: 0,
            added: 0,
            updated: 0,
            removed: 0,
            deactivated: 0,
            reactivated: 0,
            outcome: "applied".to_string(),
            message: None,
            duration_ms: None,
        }
    }
}

impl Store {
    /// The run history, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT started_at, finished_at, command, revision, serial_before, serial_after, \
                 added, updated, removed, deactivated, reactivated, outcome, message, duration_ms \
                 FROM runs ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.error(e))?;
        let runs = statement
            .query_map([limit as i64], |row| {
                Ok(RunRecord {
                    started_at: row.get(0)?,
                    finished_at: row.get(1)?,
                    command: row.get(2)?,
                    revision: row.get(3)?,
                    serial_before: row.get(4)?,
                    serial_after: row.get(5)?,
                    added: row.get::<_, i64>(6)? as u64,
                    updated: row.get::<_, i64>(7)? as u64,
                    removed: row.get::<_, i64>(8)? as u64,
                    deactivated: row.get::<_, i64>(9)? as u64,
                    reactivated: row.get::<_, i64>(10)? as u64,
                    outcome: row.get(11)?,
                    message: row.get(12)?,
                    duration_ms: row.get::<_, Option<i64>>(13)?.map(|ms| ms.max(0) as u64),
                })
            })
            .map_err(|e| self.error(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(e))?;
        Ok(runs)
    }

    /// The revision of the newest run that applied a plan (`apply`, or the controller's
    /// apply), if any: what the store was last reconciled to.
    pub fn applied_revision(&self) -> Result<Option<String>, StoreError> {
        self.connection
            .query_row(
                "SELECT revision FROM runs WHERE outcome = 'applied' AND revision IS NOT NULL \
                 AND (command LIKE 'apply%' OR command LIKE 'run %') ORDER BY id DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Records a run that wrote nothing else (a plan, a refused or failed apply), at the
    /// current serial.
    pub fn record_run(&mut self, mut run: RunRecord) -> Result<(), StoreError> {
        let path = self.path.clone();
        let fail = |e| store_error(&path, e);
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let serial = read_serial(&transaction).map_err(fail)?;
        run.serial_before = serial;
        run.serial_after = serial;
        insert_run(&transaction, &run).map_err(fail)?;
        transaction.commit().map_err(fail)
    }

    /// Forgets the runs that changed nothing (serial unchanged) once `keep` newer runs
    /// exist; runs that changed the store stay for good. Returns how many went.
    pub fn prune_runs(&mut self, keep: usize) -> Result<usize, StoreError> {
        self.connection
            .execute(
                "DELETE FROM runs WHERE serial_before = serial_after \
                 AND id <= (SELECT MAX(id) FROM runs) - ?1",
                [keep as i64],
            )
            .map_err(|e| self.error(e))
    }
}

pub(super) fn insert_run(connection: &Connection, run: &RunRecord) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO runs (started_at, finished_at, command, revision, serial_before, serial_after, \
         added, updated, removed, deactivated, reactivated, outcome, message, duration_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            run.started_at,
            run.finished_at,
            run.command,
            run.revision,
            run.serial_before,
            run.serial_after,
            run.added as i64,
            run.updated as i64,
            run.removed as i64,
            run.deactivated as i64,
            run.reactivated as i64,
            run.outcome,
            run.message,
            run.duration_ms.map(|ms| ms.min(i64::MAX as u64) as i64),
        ],
    )?;
    Ok(())
}
