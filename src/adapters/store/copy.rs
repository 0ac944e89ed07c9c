//! A whole store copied into an empty one (`registrar state migrate`: SQLite to
//! PostgreSQL and back, or file to file), and the content digest of each table.
//!
//! [`TABLES`] is every table a store holds (bar `schema_migrations`, which
//! [`Store::open`] makes on the target), with its columns and the key its rows are read
//! in, parents before the tables that refer to them. [`Store::copy_into`] streams each
//! table, one batch of rows at a time, from one read transaction on the source into one
//! write transaction on the target (`COPY` on PostgreSQL, a prepared insert on SQLite),
//! hashing the rows as they pass; then, in the same transaction, reads every table of the
//! target back and commits only if each has the same rows and the same digest.
//! [`Store::table_digests`] is that digest alone, for comparing two stores.
//!
//! The digest ([`TableDigest`]) is SHA-256 over a canonical encoding of the rows in key
//! order, each value by its column's kind (never by how a backend stored it), so equal
//! content has equal digests on both backends: PostgreSQL's text columns are in the "C"
//! collation and sort byte for byte as SQLite's do.
//!
//! It copies rows as they are and decides nothing about them. It refuses a target that
//! holds any row beyond a new store's serial 0, and leaves it as it was.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use super::bulk::Deferred;
use super::changes::CHANGE_DEFERRED;
use super::database::{params, Backend, ColumnKind, Database, Param, Row, SqlError, SqlResult};
use super::error::StoreError;
use super::hashes::HASH_DEFERRED;
use super::location::StoreLocation;
use super::open::Store;
use super::snapshots::ENTRY_DEFERRED;

use ColumnKind::{Bytes as B, Integer as I, Text as T};

/// One table of the store, as a copy reads and writes it.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// Every column, in the order the migrations made them, with its kind.
    pub columns: &'static [(&'static str, ColumnKind)],
    /// The primary key (or, for `snapshot_entries`, its unique key): the rows' order.
    pub key: &'static str,
}

/// Every table of the store, parents before the tables whose rows refer to theirs.
/// `copy.rs`'s tests check it against the schema the migrations make, on both backends.
pub const TABLES: &[Table] = &[
    Table {
        name: "meta",
        columns: &[("key", T), ("value", T)],
        key: "key",
    },
    Table {
        name: "accounts",
        columns: &[
            ("anchor", T),
            ("dn", T),
            ("dn_key", T),
            ("source", T),
            ("status", T),
            ("display_name", T),
            ("department", T),
            ("title", T),
            ("telephone", T),
            ("location", T),
            ("mail", T),
        ],
        key: "anchor",
    },
    Table {
        name: "registrations",
        columns: &[
            ("protocol", T),
            ("im_name_key", T),
            ("im_name", T),
            ("account", T),
            ("source", T),
            ("owner", T),
        ],
        key: "protocol, im_name_key",
    },
    Table {
        name: "groups",
        columns: &[("name", T), ("kind", T), ("source", T), ("owner", T)],
        key: "name",
    },
    Table {
        name: "group_members",
        columns: &[("group_name", T), ("member", T)],
        key: "group_name, member",
    },
    Table {
        name: "runs",
        columns: &[
            ("id", I),
            ("started_at", T),
            ("finished_at", T),
            ("command", T),
            ("revision", T),
            ("serial_before", I),
            ("serial_after", I),
            ("added", I),
            ("updated", I),
            ("removed", I),
            ("deactivated", I),
            ("reactivated", I),
            ("outcome", T),
            ("message", T),
            ("duration_ms", I),
        ],
        key: "id",
    },
    Table {
        name: "managed_hashes",
        columns: &[("kind", I), ("key", T), ("hash", B)],
        key: "kind, key",
    },
    Table {
        name: "snapshots",
        columns: &[
            ("source", T),
            ("content_path", T),
            ("content_digest", T),
            ("imported_serial", I),
            ("feed", T),
            ("cookie", B),
            ("entries_digest", T),
        ],
        key: "source",
    },
    Table {
        name: "snapshot_change_files",
        columns: &[
            ("source", T),
            ("position", I),
            ("path", T),
            ("digest", T),
            ("imported_serial", I),
        ],
        key: "source, position",
    },
    Table {
        name: "snapshot_entries",
        columns: &[
            ("source", T),
            ("dn_key", T),
            ("tree", B),
            ("record", B),
            ("anchor", T),
            ("yields", I),
            ("footprint", T),
            ("identity", B),
        ],
        key: "source, dn_key",
    },
    Table {
        name: "snapshot_names",
        columns: &[
            ("protocol", T),
            ("name_key", T),
            ("source", T),
            ("dn_key", T),
        ],
        key: "protocol, name_key, source, dn_key",
    },
    Table {
        name: "snapshot_groups",
        columns: &[("name", T), ("source", T), ("dn_key", T)],
        key: "name, source, dn_key",
    },
    Table {
        name: "snapshot_members",
        columns: &[("source", T), ("member", T), ("dn_key", T)],
        key: "source, member, dn_key",
    },
    Table {
        name: "standing_facts",
        columns: &[("id", I), ("serial", I), ("config_digest", T), ("facts", T)],
        key: "id",
    },
];

/// What a first write into empty tables builds after its rows ([`Deferred`]): dropped on
/// the target before the rows and built after them (one sort each instead of an insert
/// or a check per row: at a million users, most of a copy). The transaction puts them
/// back if it rolls back.
const DEFERRED: [&Deferred; 3] = [&CHANGE_DEFERRED, &ENTRY_DEFERRED, &HASH_DEFERRED];

/// Rows a copy holds before writing them (one `COPY`, or as many inserts), unless
/// [`BATCH_BYTES`] comes first.
const BATCH_ROWS: usize = 8192;
/// Bytes of values a copy holds before writing them: kept entries can be large.
const BATCH_BYTES: usize = 8 << 20;

/// One table's content: its rows and the SHA-256 of their canonical encoding in key
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    pub table: &'static str,
    pub rows: u64,
    pub sha256: [u8; 32],
}

impl TableDigest {
    /// The digest as 64 hex digits.
    pub fn hex(&self) -> String {
        self.sha256
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// Why a copy stopped. Whatever the reason, the target is as it was: the copy's one
/// transaction was rolled back.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading a table of one store, or writing it to the other, failed.
    #[error("{store}, table {table}: {source}; nothing was copied")]
    Table {
        store: StoreLocation,
        table: &'static str,
        #[source]
        source: SqlError,
    },
    #[error(
        "{target} is not empty (table {table} has rows): a store is copied only into an \
         empty one; nothing was copied"
    )]
    TargetNotEmpty {
        target: StoreLocation,
        table: &'static str,
    },
    /// The target read back differs from what was read from the source.
    #[error(
        "{target}, table {}: the copy holds {} rows with digest {}, the source {} rows with \
         digest {}; nothing was copied",
        read.table, copied.rows, copied.hex(), read.rows, read.hex()
    )]
    Mismatch {
        target: StoreLocation,
        /// The table as read from the source (boxed, as the next: the error stays small).
        read: Box<TableDigest>,
        /// The table as read back from the target.
        copied: Box<TableDigest>,
    },
}

/// Which side of a copy a statement failed on.
enum Failed {
    Source(SqlError),
    Target(SqlError),
}

impl Store {
    /// Each table's rows and digest, in [`TABLES`] order, read in one transaction.
    pub fn table_digests(&self) -> Result<Vec<TableDigest>, CopyError> {
        let read = self.connection.begin_read().map_err(|e| self.error(e))?;
        let digests = digests_of(&read, &self.location)?;
        read.commit().map_err(|e| self.error(e))?;
        Ok(digests)
    }

    /// Copies every row of this store into `target`, which must be empty (a store just
    /// made by [`Store::open`]), in one transaction on the target that commits only when
    /// every table read back has the rows and the digest read from this one. Returns
    /// each table's digest, in [`TABLES`] order.
    pub fn copy_into(&self, target: &Store) -> Result<Vec<TableDigest>, CopyError> {
        let read = self.connection.begin_read().map_err(|e| self.error(e))?;
        let write = target
            .connection
            .begin_write()
            .map_err(|e| target.error(e))?;
        if let Some(table) = first_table_with_rows(&write).map_err(|e| target.error(e))? {
            return Err(CopyError::TargetNotEmpty {
                target: target.location.clone(),
                table,
            });
        }
        // A new store's serial 0 makes way for the source's.
        write
            .execute("DELETE FROM meta", params![])
            .map_err(|e| target.error(e))?;
        for deferred in DEFERRED {
            deferred.drop_all(&write).map_err(|e| target.error(e))?;
        }
        let mut copied = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let digest = copy_table(&read, &write, table).map_err(|failed| {
                let (store, source) = match failed {
                    Failed::Source(e) => (&self.location, e),
                    Failed::Target(e) => (&target.location, e),
                };
                CopyError::Table {
                    store: store.clone(),
                    table: table.name,
                    source,
                }
            })?;
            copied.push(digest);
        }
        for deferred in DEFERRED {
            deferred.rebuild_all(&write).map_err(|e| target.error(e))?;
        }
        if write.backend() == Backend::Postgres {
            // The runs came with their ids: the next run takes the one after the last.
            write
                .query_row(
                    "SELECT setval(pg_get_serial_sequence('runs', 'id'), \
                     COALESCE(MAX(id), 0) + 1, false) FROM runs",
                    params![],
                    |_| Ok(()),
                )
                .map_err(|e| target.error(e))?;
        }
        let on_target = digests_of(&write, &target.location)?;
        for (read, copied) in copied.iter().zip(on_target) {
            if *read != copied {
                return Err(CopyError::Mismatch {
                    target: target.location.clone(),
                    read: Box::new(read.clone()),
                    copied: Box::new(copied),
                });
            }
        }
        write.commit().map_err(|e| target.error(e))?;
        read.commit().map_err(|e| self.error(e))?;
        Ok(copied)
    }
}

/// The first table holding a row, the serial 0 of a new store aside (the serial is
/// looked at last: the table of rows is the better news).
fn first_table_with_rows(database: &Database) -> SqlResult<Option<&'static str>> {
    let (meta, rows): (Vec<&Table>, Vec<&Table>) =
        TABLES.iter().partition(|table| table.name == "meta");
    for table in rows.into_iter().chain(meta) {
        let sql = if table.name == "meta" {
            "SELECT 1 FROM meta WHERE NOT (key = 'serial' AND value = '0')".to_string()
        } else {
            format!("SELECT 1 FROM {} LIMIT 1", table.name)
        };
        if database.prepare(&sql)?.exists(params![])? {
            return Ok(Some(table.name));
        }
    }
    Ok(None)
}

/// Every column of `table`, in key order.
fn select_sql(table: &Table) -> String {
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        column_list(table),
        table.name,
        table.key
    )
}

fn column_list(table: &Table) -> String {
    let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

/// One row's values, read by their columns' kinds.
fn read_row(row: &Row<'_>, table: &Table) -> SqlResult<Vec<Param<'static>>> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (index, (_, kind)) in table.columns.iter().enumerate() {
        values.push(match kind {
            ColumnKind::Integer => row
                .get::<Option<i64>>(index)?
                .map_or(Param::Null, Param::from),
            ColumnKind::Text => row
                .get_optional_str(index)?
                .map_or(Param::Null, |text| Param::Text(Cow::Owned(text.to_owned()))),
            ColumnKind::Bytes => row
                .get::<Option<Vec<u8>>>(index)?
                .map_or(Param::Null, Param::from),
        });
    }
    Ok(values)
}

/// A table's digest, fed one row at a time in key order.
struct RowDigest {
    table: &'static str,
    rows: u64,
    hasher: Sha256,
}

impl RowDigest {
    fn new(table: &'static str) -> Self {
        RowDigest {
            table,
            rows: 0,
            hasher: Sha256::new(),
        }
    }

    /// The canonical encoding: per value a tag (0 null, 1 integer, 2 text, 3 bytes),
    /// then an integer's 8 bytes big-endian, or a text's or bytes' length (8 bytes
    /// big-endian) and its bytes.
    fn add(&mut self, values: &[Param<'_>]) {
        self.rows += 1;
        for value in values {
            match value {
                Param::Null => self.hasher.update([0]),
                Param::Integer(integer) => {
                    self.hasher.update([1]);
                    self.hasher.update(integer.to_be_bytes());
                }
                Param::Text(text) => self.bytes(2, text.as_bytes()),
                Param::Bytes(bytes) => self.bytes(3, bytes),
            }
        }
    }

    fn bytes(&mut self, tag: u8, bytes: &[u8]) {
        self.hasher.update([tag]);
        self.hasher.update((bytes.len() as u64).to_be_bytes());
        self.hasher.update(bytes);
    }

    fn finish(self) -> TableDigest {
        TableDigest {
            table: self.table,
            rows: self.rows,
            sha256: self.hasher.finalize().into(),
        }
    }
}

/// Every table's digest, as `database` sees it (in the caller's transaction).
fn digests_of(
    database: &Database,
    location: &StoreLocation,
) -> Result<Vec<TableDigest>, CopyError> {
    TABLES
        .iter()
        .map(|table| {
            table_digest(database, table).map_err(|source| CopyError::Table {
                store: location.clone(),
                table: table.name,
                source,
            })
        })
        .collect()
}

fn table_digest(database: &Database, table: &Table) -> SqlResult<TableDigest> {
    let mut digest = RowDigest::new(table.name);
    database
        .prepare(&select_sql(table))?
        .for_each_row(params![], |row| {
            digest.add(&read_row(row, table)?);
            Ok(())
        })?;
    Ok(digest.finish())
}

/// Streams `table` from `source` to `target` in key order, one batch at a time; the
/// digest of the rows read.
fn copy_table(source: &Database, target: &Database, table: &Table) -> Result<TableDigest, Failed> {
    let mut digest = RowDigest::new(table.name);
    let mut batch = Batch::new(table);
    let mut target_error = None;
    let mut select = source.prepare(&select_sql(table)).map_err(Failed::Source)?;
    let read = select.for_each_row(params![], |row| {
        let values = read_row(row, table)?;
        digest.add(&values);
        if let Err(error) = batch.push(target, values) {
            target_error = Some(error);
            // Stops the source's rows; the target's error is the one told.
            return Err(SqlError::NoRow);
        }
        Ok(())
    });
    if let Some(error) = target_error {
        return Err(Failed::Target(error));
    }
    read.map_err(Failed::Source)?;
    batch.flush(target).map_err(Failed::Target)?;
    Ok(digest.finish())
}

/// The rows of one table waiting to be written.
struct Batch<'t> {
    table: &'t Table,
    rows: Vec<Vec<Param<'static>>>,
    bytes: usize,
}

impl<'t> Batch<'t> {
    fn new(table: &'t Table) -> Self {
        Batch {
            table,
            rows: Vec::new(),
            bytes: 0,
        }
    }

    fn push(&mut self, target: &Database, values: Vec<Param<'static>>) -> SqlResult<()> {
        self.bytes += values.iter().map(value_size).sum::<usize>();
        self.rows.push(values);
        if self.rows.len() >= BATCH_ROWS || self.bytes >= BATCH_BYTES {
            self.flush(target)?;
        }
        Ok(())
    }

    /// Writes the waiting rows: one `COPY` on PostgreSQL, a prepared insert each on
    /// SQLite.
    fn flush(&mut self, target: &Database) -> SqlResult<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.table.columns.iter().map(|(name, _)| *name).collect();
        match target.backend() {
            Backend::Postgres => {
                let rows = &self.rows;
                let mut values = |index: usize, out: &mut Vec<Param<'_>>| {
                    out.extend(rows[index].iter().cloned());
                };
                if let Some(copied) =
                    target.copy_in(self.table.name, &names.join(", "), rows.len(), &mut values)
                {
                    copied?;
                }
            }
            Backend::Sqlite => {
                let placeholders: Vec<String> =
                    (1..=names.len()).map(|n| format!("?{n}")).collect();
                let mut insert = target.prepare(&format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    self.table.name,
                    names.join(", "),
                    placeholders.join(", ")
                ))?;
                for row in self.rows.drain(..) {
                    insert.execute(&row)?;
                }
            }
        }
        self.rows.clear();
        self.bytes = 0;
        Ok(())
    }
}

fn value_size(value: &Param<'_>) -> usize {
    match value {
        Param::Null | Param::Integer(_) => 8,
        Param::Text(text) => text.len(),
        Param::Bytes(bytes) => bytes.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::test_support::{
        self, fresh_store, location, store_with_one_registration,
    };
    use throwaway_postgres::{Backend as TestBackend, TestStore};

    /// The columns of every table the migrations made, in order, as the database tells
    /// them (`schema_migrations` and the views aside).
    fn schema_tables(store: &Store) -> Vec<(String, Vec<String>)> {
        let sql = match store.connection.backend() {
            Backend::Sqlite => {
                "SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name <> 'schema_migrations' \
                 ORDER BY m.name, p.cid"
            }
            Backend::Postgres => {
                "SELECT c.table_name::text, c.column_name::text \
                 FROM information_schema.columns c JOIN information_schema.tables t \
                   ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                 WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
                   AND c.table_name <> 'schema_migrations' \
                 ORDER BY c.table_name::text COLLATE \"C\", c.ordinal_position"
            }
        };
        let mut tables: Vec<(String, Vec<String>)> = Vec::new();
        store
            .connection
            .prepare(sql)
            .unwrap()
            .for_each_row(params![], |row| {
                let (table, column) = (row.get::<String>(0)?, row.get::<String>(1)?);
                match tables.last_mut() {
                    Some((name, columns)) if *name == table => columns.push(column),
                    _ => tables.push((table, vec![column])),
                }
                Ok(())
            })
            .unwrap();
        tables
    }

    #[test]
    fn the_table_list_is_every_table_and_column_the_migrations_make() {
        let (_test_store, store) = fresh_store();
        let mut listed: Vec<(String, Vec<String>)> = TABLES
            .iter()
            .map(|table| {
                let columns = table.columns.iter().map(|(c, _)| c.to_string()).collect();
                (table.name.to_string(), columns)
            })
            .collect();
        listed.sort();
        assert_eq!(listed, schema_tables(&store));
    }

    #[test]
    fn a_copy_has_its_sources_digests_and_a_second_copy_is_refused() {
        let (_source_store, source) = store_with_one_registration();
        let (_target_store, target) = fresh_store();
        let empty = target.table_digests().unwrap();
        let schema = test_support::schema(&target.connection);
        let copied = source.copy_into(&target).unwrap();
        assert_eq!(copied, source.table_digests().unwrap());
        assert_eq!(target.table_digests().unwrap(), copied);
        let rows = |table| copied.iter().find(|d| d.table == table).unwrap().rows;
        assert_eq!((rows("registrations"), rows("runs")), (1, 1));
        assert_ne!(empty, copied);
        assert_eq!(target.load().unwrap(), source.load().unwrap());
        // What the copy dropped is back, as the migrations made it.
        assert_eq!(test_support::schema(&target.connection), schema);

        let error = source.copy_into(&target).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("is not empty (table accounts has rows)"),
            "{error}"
        );
        assert_eq!(target.table_digests().unwrap(), copied);
    }

    /// A target that changes what it is given (a trigger here; a faulty disk or driver
    /// in life) is caught by the read-back: the copy rolls back and names the table.
    #[test]
    fn a_table_read_back_unlike_its_source_rolls_the_copy_back() {
        let (_source_store, source) = store_with_one_registration();
        let (_target_store, target) = fresh_store();
        target
            .connection
            .execute_batch(match target.connection.backend() {
                Backend::Sqlite => {
                    "CREATE TRIGGER garble AFTER INSERT ON registrations BEGIN \
                       UPDATE registrations SET im_name = 'garbled' \
                       WHERE protocol = new.protocol AND im_name_key = new.im_name_key; END;"
                }
                Backend::Postgres => {
                    "CREATE FUNCTION garble() RETURNS trigger LANGUAGE plpgsql AS \
                       $$ BEGIN NEW.im_name := 'garbled'; RETURN NEW; END $$; \
                     CREATE TRIGGER garble BEFORE INSERT ON registrations \
                       FOR EACH ROW EXECUTE FUNCTION garble();"
                }
            })
            .unwrap();
        let before = target.table_digests().unwrap();
        let error = source.copy_into(&target).unwrap_err().to_string();
        assert!(
            error.contains(", table registrations: the copy holds 1 rows with digest ")
                && error.ends_with("; nothing was copied"),
            "{error}"
        );
        assert_eq!(target.table_digests().unwrap(), before);
        assert_eq!(target.serial().unwrap(), 0);
    }

    /// SQLite to PostgreSQL and back: the same digests at each hop, whatever the run's
    /// backend.
    #[test]
    fn digests_are_the_same_on_both_backends() {
        let (_source_store, source) = store_with_one_registration();
        let stores: Vec<TestStore> = [TestBackend::Postgres, TestBackend::Sqlite]
            .map(TestStore::on)
            .into();
        let mut from = source;
        let digests = from.table_digests().unwrap();
        for test_store in &stores {
            let to = Store::open(location(test_store)).unwrap();
            assert_eq!(from.copy_into(&to).unwrap(), digests);
            assert_eq!(to.table_digests().unwrap(), digests);
            from = to;
        }
    }
}
