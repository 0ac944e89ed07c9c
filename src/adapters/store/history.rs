//! The run history: one [`RunRecord`] per apply, registration or plan, with the serials
//! before and after; read newest first, and pruned of the runs that changed nothing.

use super::database::{params, Database, OptionalRow, Row, SqlResult};
use serde::Serialize;

use super::error::{store_error, StoreError, UnreadableValue, ValueProblem};
use super::open::Store;
use super::serial::{read_serial, write_serial};

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

/// A count (or a duration) of a `runs` row read by [`Store::runs`], whose column 14 is
/// the run's id; a negative one (none a run records) is refused ([`UnreadableValue`]).
fn run_count(row: &Row<'_>, index: usize, column: &'static str) -> SqlResult<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| match row.get::<i64>(14) {
        Ok(id) => UnreadableValue {
            table: "runs",
            row: format!("id {id}"),
            column,
            found: value.to_string(),
            problem: ValueProblem::Negative,
        }
        .into_sql(index),
        Err(error) => error,
    })
}

impl Store {
    /// The run history, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT started_at, finished_at, command, revision, serial_before, serial_after, \
                 added, updated, removed, deactivated, reactivated, outcome, message, duration_ms, \
                 id FROM runs ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.error(e))?;
        let runs = statement
            .query_map(params![limit as i64], |row| {
                Ok(RunRecord {
                    started_at: row.get(0)?,
                    finished_at: row.get(1)?,
                    command: row.get(2)?,
                    revision: row.get(3)?,
                    serial_before: row.get(4)?,
                    serial_after: row.get(5)?,
                    added: run_count(row, 6, "added")?,
                    updated: run_count(row, 7, "updated")?,
                    removed: run_count(row, 8, "removed")?,
                    deactivated: run_count(row, 9, "deactivated")?,
                    reactivated: run_count(row, 10, "reactivated")?,
                    outcome: row.get(11)?,
                    message: row.get(12)?,
                    duration_ms: match row.get::<Option<i64>>(13)? {
                        None => None,
                        Some(_) => Some(run_count(row, 13, "duration_ms")?),
                    },
                })
            })
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
                params![],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Records a run that wrote nothing else (a plan, a refused or failed apply), at the
    /// current serial.
    pub fn record_run(&mut self, mut run: RunRecord) -> Result<(), StoreError> {
        let location = self.location.clone();
        let fail = |e| store_error(&location, e);
        let transaction = self.connection.begin_write().map_err(fail)?;
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
                params![keep as i64],
            )
            .map_err(|e| self.error(e))
    }
}

/// Moves the serial on by one and records `run` with the serials before and after: the
/// end of a write that is one change (a registration recorded or removed), inside its
/// transaction.
pub(super) fn record_one_change(connection: &Database, mut run: RunRecord) -> SqlResult<()> {
    let serial = read_serial(connection)?;
    write_serial(connection, serial + 1)?;
    run.serial_before = serial;
    run.serial_after = serial + 1;
    insert_run(connection, &run)
}

pub(super) fn insert_run(connection: &Database, run: &RunRecord) -> SqlResult<()> {
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

#[cfg(test)]
mod tests {
    use super::super::error::{StoreError, ValueProblem};
    use super::super::test_support::{corrupt, store_with_one_registration};

    #[test]
    fn a_negative_count_in_a_run_is_refused_naming_the_run() {
        let (_dir, store) = store_with_one_registration();
        assert_eq!(store.runs(10).unwrap()[0].added, 0);
        corrupt(&store, "UPDATE runs SET added = -3");
        let error = store.runs(10).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: table runs, id 1: added -3 is negative",
                store.location()
            )
        );
        let StoreError::Unreadable { value, .. } = error else {
            panic!("not an unreadable value: {error}");
        };
        assert_eq!(value.problem, ValueProblem::Negative);
    }

    #[test]
    fn a_negative_duration_is_refused_not_read_as_zero() {
        let (_dir, store) = store_with_one_registration();
        corrupt(&store, "UPDATE runs SET duration_ms = -5");
        let error = store.runs(10).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("table runs, id 1: duration_ms -5 is negative"),
            "{error}"
        );
    }
}
