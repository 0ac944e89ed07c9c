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

use rusqlite::{Connection, Statement, ToSql};

/// Rows per statement: large enough that the statement overhead vanishes, small enough
/// to stay far below SQLite's parameter limit with the widest table.
pub(super) const BATCH: usize = 64;

/// A row a bulk insert writes: binds its `COLUMNS` values from parameter `first` on.
pub(super) trait BulkRow {
    const COLUMNS: usize;
    fn bind(&self, statement: &mut Statement<'_>, first: usize) -> rusqlite::Result<()>;
}

/// Binds `value` to the 1-based parameter `index` of `statement`.
pub(super) fn bind(
    statement: &mut Statement<'_>,
    index: usize,
    value: impl ToSql,
) -> rusqlite::Result<()> {
    statement.raw_bind_parameter(index, value)
}

/// The rows waiting for one INSERT into one table.
pub(super) struct Bulk<R: BulkRow> {
    /// `INSERT … INTO table (columns) VALUES`, without the rows.
    head: &'static str,
    /// The statement text for a full batch, made once.
    full: String,
    rows: Vec<R>,
}

impl<R: BulkRow> Bulk<R> {
    pub(super) fn new(head: &'static str) -> Self {
        Bulk {
            head,
            full: statement_text(head, R::COLUMNS, BATCH),
            rows: Vec::with_capacity(BATCH),
        }
    }

    /// Queues `row`; a full batch is written at once.
    pub(super) fn push(&mut self, connection: &Connection, row: R) -> rusqlite::Result<()> {
        self.rows.push(row);
        if self.rows.len() == BATCH {
            self.flush(connection)?;
        }
        Ok(())
    }

    /// Writes the waiting rows in one statement. On error the statement wrote nothing,
    /// and the rows are left waiting (see [`Bulk::take`]).
    pub(super) fn flush(&mut self, connection: &Connection) -> rusqlite::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let partial;
        let sql = if self.rows.len() == BATCH {
            &self.full
        } else {
            partial = statement_text(self.head, R::COLUMNS, self.rows.len());
            &partial
        };
        let mut statement = connection.prepare_cached(sql)?;
        for (index, row) in self.rows.iter().enumerate() {
            row.bind(&mut statement, index * R::COLUMNS + 1)?;
        }
        statement.raw_execute()?;
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
pub(super) fn drop_indexes(connection: &Connection, indexes: &Indexes) -> rusqlite::Result<()> {
    for (name, _) in indexes {
        connection.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

/// Builds `indexes` again, after the rows.
pub(super) fn create_indexes(connection: &Connection, indexes: &Indexes) -> rusqlite::Result<()> {
    for (_, create) in indexes {
        connection.execute_batch(create)?;
    }
    Ok(())
}

/// `head` followed by `rows` groups of `columns` parameters.
fn statement_text(head: &str, columns: usize, rows: usize) -> String {
    let group = format!("({})", vec!["?"; columns].join(", "));
    let mut sql = String::with_capacity(head.len() + rows * (group.len() + 2));
    sql.push_str(head);
    for row in 0..rows {
        sql.push_str(if row == 0 { " " } else { ", " });
        sql.push_str(&group);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair(i64, &'static str);

    impl BulkRow for Pair {
        const COLUMNS: usize = 2;
        fn bind(&self, statement: &mut Statement<'_>, first: usize) -> rusqlite::Result<()> {
            bind(statement, first, self.0)?;
            bind(statement, first + 1, self.1)
        }
    }

    #[test]
    fn full_and_partial_batches_write_every_row_in_order() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, s TEXT NOT NULL)")
            .unwrap();
        let mut bulk = Bulk::new("INSERT INTO t (n, s) VALUES");
        for n in 0..(BATCH as i64 * 2 + 5) {
            bulk.push(&connection, Pair(n, "x")).unwrap();
        }
        bulk.flush(&connection).unwrap();
        let count: i64 = connection
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, BATCH as i64 * 2 + 5);
    }

    #[test]
    fn a_refused_batch_writes_nothing_and_keeps_its_rows() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, s TEXT NOT NULL)")
            .unwrap();
        let mut bulk = Bulk::new("INSERT INTO t (n, s) VALUES");
        bulk.push(&connection, Pair(1, "a")).unwrap();
        bulk.push(&connection, Pair(2, "b")).unwrap();
        bulk.push(&connection, Pair(1, "c")).unwrap();
        assert!(bulk.flush(&connection).is_err());
        let count: i64 = connection
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0);
        assert_eq!(bulk.take().len(), 3);
        assert!(bulk.take().is_empty());
    }
}
