//! Bulk writes: the rows an apply adds by the million (accounts, registrations, their
//! hashes, kept entries and their footprints) go in batches instead of one statement
//! each. On SQLite a batch is one multi-row INSERT of [`BATCH`] rows, through one cached
//! prepared statement per batch size. On PostgreSQL a batch is up to [`COPY_BATCH`] rows
//! sent with `COPY`, or, for an insert that settles conflicts (an `ON CONFLICT` tail),
//! one `INSERT … SELECT … FROM unnest(…)` of the batch's values as one array per column,
//! with that tail.
//!
//! A first import into empty tables also builds their secondary indexes (and on
//! PostgreSQL their keys and references) after its rows ([`Deferred`]): one sort each
//! instead of an insert or a check per row.
//!
//! This only batches what it is given, in order. It never decides what to write, and it
//! does not settle conflicts: a batch the database refuses is the caller's to write again
//! row by row (SQLite undoes the whole statement first; on PostgreSQL each batch runs in
//! a savepoint), so that the row at fault is told as it would be alone.

use super::database::{Backend, Database, Param, SqlResult};

/// Rows per statement on SQLite: large enough that the statement overhead vanishes, small
/// enough to stay far below SQLite's parameter limit with the widest table.
pub(super) const BATCH: usize = 64;

/// Rows per `COPY` on PostgreSQL, at most: each `COPY` costs round trips and a savepoint
/// (about 0.4 ms on loopback), so fewer and larger ones took a 100k first apply from
/// 3.2 s to 2.5 s. A batch is also bounded by the message it comes in (a few thousand
/// changes or kept entries); a refused one is rare (a first import defers its keys) and
/// is written again row by row.
pub(super) const COPY_BATCH: usize = 65536;

/// A row a bulk insert writes: its `COLUMNS` values, in column order.
pub(super) trait BulkRow {
    const COLUMNS: usize;
    fn values<'r>(&'r self, out: &mut Vec<Param<'r>>);
}

/// The rows waiting for one INSERT into one table.
pub(super) struct Bulk<R: BulkRow> {
    /// `INSERT … INTO table (columns) VALUES`, without the rows.
    head: &'static str,
    /// What follows the rows (an `ON CONFLICT` clause), or nothing.
    tail: &'static str,
    /// The statement text for a full batch, made once.
    full: String,
    rows: Vec<R>,
    /// On PostgreSQL, with a tail: no batch has met a conflict yet, so the next one is
    /// tried with `COPY` first (a batch that meets none ends the same either way).
    copy_first: bool,
}

impl<R: BulkRow> Bulk<R> {
    pub(super) fn new(head: &'static str) -> Self {
        Bulk::with_tail(head, "")
    }

    /// Rows inserted by `head`, the rows, then `tail` (e.g. `ON CONFLICT DO NOTHING`).
    pub(super) fn with_tail(head: &'static str, tail: &'static str) -> Self {
        Bulk {
            head,
            tail,
            full: statement_text(head, tail, R::COLUMNS, BATCH),
            rows: Vec::with_capacity(BATCH),
            copy_first: true,
        }
    }

    /// Queues `row`; a full batch is written at once.
    pub(super) fn push(&mut self, connection: &Database, row: R) -> SqlResult<()> {
        self.rows.push(row);
        let batch = match connection.backend() {
            Backend::Sqlite => BATCH,
            Backend::Postgres => COPY_BATCH,
        };
        if self.rows.len() >= batch {
            self.flush(connection)?;
        }
        Ok(())
    }

    /// Writes the waiting rows in one statement. On error the statement wrote nothing
    /// (on PostgreSQL it runs in a savepoint, so the transaction goes on as on SQLite),
    /// and the rows are left waiting (see [`Bulk::take`]).
    pub(super) fn flush(&mut self, connection: &Database) -> SqlResult<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        if connection.backend() == Backend::Postgres {
            connection.savepoint(|db| self.copy(db))?;
            self.rows.clear();
            return Ok(());
        }
        let partial;
        let sql = if self.rows.len() == BATCH {
            &self.full
        } else {
            partial = statement_text(self.head, self.tail, R::COLUMNS, self.rows.len());
            &partial
        };
        let mut values = Vec::with_capacity(self.rows.len() * R::COLUMNS);
        for row in &self.rows {
            row.values(&mut values);
        }
        connection.execute(sql, &values)?;
        drop(values);
        self.rows.clear();
        Ok(())
    }

    /// The waiting rows written on PostgreSQL: with `COPY`, or with a tail, in one
    /// statement of arrays (`COPY` cannot settle a conflict).
    fn copy(&mut self, connection: &Database) -> SqlResult<()> {
        let (table, columns) = table_and_columns(self.head);
        if self.tail.is_empty() {
            return copy_rows(connection, table, columns, &self.rows);
        }
        if self.copy_first {
            // Most batches of a first import meet no row: `COPY` writes them at a third
            // of the cost. One that meets a row (or names a key twice) is undone whole and
            // written again below, and the ones after it go there straight.
            match connection.savepoint(|db| copy_rows(db, table, columns, &self.rows)) {
                Ok(()) => return Ok(()),
                Err(error) if error.is_constraint_violation() => self.copy_first = false,
                Err(error) => return Err(error),
            }
        }
        // A batch may name a key twice: one statement may not update a row twice on
        // PostgreSQL, so each key's row is the one SQLite's statement would leave (the
        // last for an update, the first for DO NOTHING).
        let distinct = conflict_key(self.tail).map(|key| (key, self.tail.contains("DO UPDATE")));
        insert_rows(connection, table, columns, &self.rows, distinct, self.tail)
    }

    /// The waiting rows, taken out (after a failed flush, to write them one by one).
    pub(super) fn take(&mut self) -> Vec<R> {
        std::mem::replace(&mut self.rows, Vec::with_capacity(BATCH))
    }
}

/// Secondary indexes by name, each with the statement that makes it, exactly as the
/// migrations make it.
pub(super) type Indexes = [(&'static str, &'static str)];

/// A key or a reference of a table on PostgreSQL, by the name the migrations give it,
/// with the definition that makes it again.
pub(super) struct Constraint {
    pub table: &'static str,
    pub name: &'static str,
    pub definition: &'static str,
}

/// What a first write into empty tables takes away before its rows and builds again
/// after them: secondary indexes on both backends, and on PostgreSQL keys and
/// references too (SQLite cannot drop a key; PostgreSQL checks a key or a reference row
/// by row, and one sort or one join after the rows costs a fraction of it). The rows
/// written meanwhile must not meet a key they would break: a duplicate is caught when
/// the key is built again, and fails the whole transaction.
pub(super) struct Deferred {
    pub indexes: &'static Indexes,
    /// In the order they are dropped (a reference before the key it names); built again
    /// in the reverse order.
    pub constraints: &'static [Constraint],
}

/// Memory PostgreSQL may take to sort the rows of one key or index built again: a
/// million users' rows sort in memory instead of in temporary files.
const REBUILD_MEMORY: &str = "256MB";

impl Deferred {
    /// Drops what is deferred (in the caller's transaction, which puts it back if it
    /// rolls back).
    pub(super) fn drop_all(&self, connection: &Database) -> SqlResult<()> {
        for (name, _) in self.indexes {
            connection.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
        }
        if connection.backend() == Backend::Postgres {
            for Constraint { table, name, .. } in self.constraints {
                connection.execute_batch(&format!("ALTER TABLE {table} DROP CONSTRAINT {name}"))?;
            }
        }
        Ok(())
    }

    /// Builds again what [`Deferred::drop_all`] dropped, after the rows.
    pub(super) fn rebuild_all(&self, connection: &Database) -> SqlResult<()> {
        if connection.backend() == Backend::Postgres {
            connection.execute_batch(&format!(
                "SET LOCAL maintenance_work_mem = '{REBUILD_MEMORY}'"
            ))?;
            for constraint in self.constraints.iter().rev() {
                let Constraint {
                    table,
                    name,
                    definition,
                } = constraint;
                connection.execute_batch(&format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
                ))?;
            }
        }
        for (_, create) in self.indexes {
            connection.execute_batch(create)?;
        }
        Ok(())
    }
}

/// `rows` sent with `COPY` into `table`'s `columns`.
fn copy_rows<'r, R: BulkRow>(
    connection: &Database,
    table: &str,
    columns: &str,
    rows: &'r [R],
) -> SqlResult<()> {
    let mut values = |index: usize, out: &mut Vec<Param<'r>>| rows[index].values(out);
    connection
        .copy_in(table, columns, rows.len(), &mut values)
        .unwrap_or(Ok(0))?;
    Ok(())
}

/// `rows` inserted into `table`'s `columns` in one statement, then `tail`.
fn insert_rows<'r, R: BulkRow>(
    connection: &Database,
    table: &str,
    columns: &str,
    rows: &'r [R],
    distinct: Option<(&str, bool)>,
    tail: &str,
) -> SqlResult<()> {
    let mut values = |index: usize, out: &mut Vec<Param<'r>>| rows[index].values(out);
    connection
        .insert_arrays(table, columns, rows.len(), &mut values, distinct, tail)
        .unwrap_or(Ok(()))
}

/// The key columns of an `ON CONFLICT (key) …` tail.
fn conflict_key(tail: &str) -> Option<&str> {
    tail.strip_prefix("ON CONFLICT (")
        .and_then(|rest| rest.split_once(')'))
        .map(|(key, _)| key)
}

/// The table and the column list of an `INSERT INTO table (columns) VALUES` head.
fn table_and_columns(head: &str) -> (&str, &str) {
    let rest = head.trim_start_matches("INSERT INTO ").trim();
    let (table, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let columns = rest
        .trim()
        .strip_prefix('(')
        .and_then(|rest| rest.split_once(')'))
        .map_or("", |(columns, _)| columns);
    (table, columns)
}

/// `head` followed by `rows` groups of `columns` parameters, then `tail`.
fn statement_text(head: &str, tail: &str, columns: usize, rows: usize) -> String {
    let group = format!("({})", vec!["?"; columns].join(", "));
    let mut sql = String::with_capacity(head.len() + rows * (group.len() + 2));
    sql.push_str(head);
    for row in 0..rows {
        sql.push_str(if row == 0 { " " } else { ", " });
        sql.push_str(&group);
    }
    if !tail.is_empty() {
        sql.push(' ');
        sql.push_str(tail);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::database::params;
    use throwaway_postgres::TestStore;

    struct Pair(i64, &'static str);

    impl BulkRow for Pair {
        const COLUMNS: usize = 2;
        fn values<'r>(&'r self, out: &mut Vec<Param<'r>>) {
            out.push(self.0.into());
            out.push(self.1.into());
        }
    }

    /// A database of the run's backend with an empty table `t`, and what keeps it.
    fn table() -> (TestStore, Database) {
        let (test_store, database) = crate::adapters::store::test_support::fresh_database();
        database
            .execute_batch("CREATE TABLE t (n BIGINT PRIMARY KEY, s TEXT NOT NULL)")
            .unwrap();
        (test_store, database)
    }

    fn count(database: &Database) -> i64 {
        database
            .query_row("SELECT COUNT(*) FROM t", params![], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn full_and_partial_batches_write_every_row_in_order() {
        let (_store, database) = table();
        let transaction = database.begin_write().unwrap();
        let mut bulk = Bulk::new("INSERT INTO t (n, s) VALUES");
        let rows = COPY_BATCH as i64 * 2 + 5;
        for n in 0..rows {
            bulk.push(&transaction, Pair(n, "x")).unwrap();
        }
        bulk.flush(&transaction).unwrap();
        transaction.commit().unwrap();
        assert_eq!(count(&database), rows);
        let last: i64 = database
            .query_row("SELECT MAX(n) FROM t", params![], |r| r.get(0))
            .unwrap();
        assert_eq!(last, rows - 1);
    }

    #[test]
    fn a_refused_batch_writes_nothing_and_keeps_its_rows_and_the_transaction() {
        let (_store, database) = table();
        let transaction = database.begin_write().unwrap();
        let mut bulk = Bulk::new("INSERT INTO t (n, s) VALUES");
        bulk.push(&transaction, Pair(1, "a")).unwrap();
        bulk.push(&transaction, Pair(2, "b")).unwrap();
        bulk.push(&transaction, Pair(1, "c")).unwrap();
        let error = bulk.flush(&transaction).unwrap_err();
        assert!(error.is_constraint_violation(), "{error}");
        assert_eq!(count(&transaction), 0);
        assert_eq!(bulk.take().len(), 3);
        assert!(bulk.take().is_empty());
        // The transaction goes on: the rows written one by one land.
        bulk.push(&transaction, Pair(1, "a")).unwrap();
        bulk.flush(&transaction).unwrap();
        transaction.commit().unwrap();
        assert_eq!(count(&database), 1);
    }

    #[test]
    fn a_tail_settles_conflicts_in_the_statement() {
        let (_store, database) = table();
        let transaction = database.begin_write().unwrap();
        let mut bulk = Bulk::with_tail(
            "INSERT INTO t (n, s) VALUES",
            "ON CONFLICT (n) DO UPDATE SET s = excluded.s",
        );
        bulk.push(&transaction, Pair(1, "a")).unwrap();
        bulk.push(&transaction, Pair(2, "a")).unwrap();
        bulk.flush(&transaction).unwrap();
        bulk.push(&transaction, Pair(1, "b")).unwrap();
        bulk.flush(&transaction).unwrap();
        transaction.commit().unwrap();
        let rows = database
            .query_map("SELECT n, s FROM t ORDER BY n", params![], |r| {
                Ok((r.get::<i64>(0)?, r.get::<String>(1)?))
            })
            .unwrap();
        assert_eq!(rows, [(1, "b".to_string()), (2, "a".to_string())]);
    }

    #[test]
    fn a_key_twice_in_one_batch_ends_as_the_last_update_left_it() {
        let (_store, database) = table();
        let transaction = database.begin_write().unwrap();
        let mut bulk = Bulk::with_tail(
            "INSERT INTO t (n, s) VALUES",
            "ON CONFLICT (n) DO UPDATE SET s = excluded.s",
        );
        for (n, s) in [(1, "a"), (2, "a"), (1, "b"), (1, "c")] {
            bulk.push(&transaction, Pair(n, s)).unwrap();
        }
        bulk.flush(&transaction).unwrap();
        transaction.commit().unwrap();
        let rows = database
            .query_map("SELECT n, s FROM t ORDER BY n", params![], |r| {
                Ok((r.get::<i64>(0)?, r.get::<String>(1)?))
            })
            .unwrap();
        assert_eq!(rows, [(1, "c".to_string()), (2, "a".to_string())]);
    }

    #[test]
    fn the_table_and_columns_of_a_head_are_read_from_it() {
        assert_eq!(
            conflict_key("ON CONFLICT (kind, key) DO NOTHING"),
            Some("kind, key")
        );
        assert_eq!(conflict_key("ON CONFLICT DO NOTHING"), None);
        assert_eq!(
            table_and_columns("INSERT INTO managed_hashes (kind, key, hash) VALUES"),
            ("managed_hashes", "kind, key, hash")
        );
    }
}
