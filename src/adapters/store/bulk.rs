//! Multi-row INSERTs: the rows an apply adds by the million (accounts, registrations,
//! their hashes, kept entries and their footprints) go in [`BATCH`] rows per statement,
//! through one cached prepared statement per batch size, instead of one statement each.
//!
//! A first import into empty tables also builds their secondary indexes after its rows
//! ([`drop_indexes`], then [`create_indexes`]): one sort each instead of an insert per
//! row in no useful order.
//!
//! This only batches what it is given, in order. It never decides what to write, and it
//! does not settle conflicts: a batch the database refuses is the caller's to write again
//! row by row (SQLite undoes the whole statement first), so that the row at fault is told
//! as it would be alone.

use super::database::{Backend, Database, Param, SqlResult};

/// Rows per statement: large enough that the statement overhead vanishes, small enough
/// to stay far below SQLite's parameter limit with the widest table.
pub(super) const BATCH: usize = 64;

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
        }
    }

    /// Queues `row`; a full batch is written at once.
    pub(super) fn push(&mut self, connection: &Database, row: R) -> SqlResult<()> {
        self.rows.push(row);
        if self.rows.len() == BATCH {
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
        match connection.backend() {
            Backend::Sqlite => connection.execute(sql, &values)?,
            Backend::Postgres => connection.savepoint(|db| db.execute(sql, &values))?,
        };
        drop(values);
        self.rows.clear();
        Ok(())
    }

    /// The waiting rows, taken out (after a failed flush, to write them one by one).
    pub(super) fn take(&mut self) -> Vec<R> {
        std::mem::replace(&mut self.rows, Vec::with_capacity(BATCH))
    }
}

/// Secondary indexes by name, each with the statement that makes it, exactly as the
/// migrations make it.
pub(super) type Indexes = [(&'static str, &'static str)];

/// Drops `indexes` (in the caller's transaction, which puts them back if it rolls back).
pub(super) fn drop_indexes(connection: &Database, indexes: &Indexes) -> SqlResult<()> {
    for (name, _) in indexes {
        connection.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

/// Builds `indexes` again, after the rows.
pub(super) fn create_indexes(connection: &Database, indexes: &Indexes) -> SqlResult<()> {
    for (_, create) in indexes {
        connection.execute_batch(create)?;
    }
    Ok(())
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

    struct Pair(i64, &'static str);

    impl BulkRow for Pair {
        const COLUMNS: usize = 2;
        fn values<'r>(&'r self, out: &mut Vec<Param<'r>>) {
            out.push(self.0.into());
            out.push(self.1.into());
        }
    }

    fn table() -> Database {
        let database = Database::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        database
            .execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, s TEXT NOT NULL)")
            .unwrap();
        database
    }

    fn count(database: &Database) -> i64 {
        database
            .query_row("SELECT COUNT(*) FROM t", params![], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn full_and_partial_batches_write_every_row_in_order() {
        let database = table();
        let mut bulk = Bulk::new("INSERT INTO t (n, s) VALUES");
        for n in 0..(BATCH as i64 * 2 + 5) {
            bulk.push(&database, Pair(n, "x")).unwrap();
        }
        bulk.flush(&database).unwrap();
        assert_eq!(count(&database), BATCH as i64 * 2 + 5);
    }

    #[test]
    fn a_refused_batch_writes_nothing_and_keeps_its_rows() {
        let database = table();
        let mut bulk = Bulk::new("INSERT INTO t (n, s) VALUES");
        bulk.push(&database, Pair(1, "a")).unwrap();
        bulk.push(&database, Pair(2, "b")).unwrap();
        bulk.push(&database, Pair(1, "c")).unwrap();
        assert!(bulk.flush(&database).is_err());
        assert_eq!(count(&database), 0);
        assert_eq!(bulk.take().len(), 3);
        assert!(bulk.take().is_empty());
    }

    #[test]
    fn a_tail_settles_conflicts_in_the_statement() {
        let database = table();
        let mut bulk = Bulk::with_tail(
            "INSERT INTO t (n, s) VALUES",
            "ON CONFLICT (n) DO UPDATE SET s = excluded.s",
        );
        bulk.push(&database, Pair(1, "a")).unwrap();
        bulk.flush(&database).unwrap();
        bulk.push(&database, Pair(1, "b")).unwrap();
        bulk.flush(&database).unwrap();
        let s: String = database
            .query_row("SELECT s FROM t WHERE n = 1", params![], |r| r.get(0))
            .unwrap();
        assert_eq!(s, "b");
    }
}
