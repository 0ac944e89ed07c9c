//! The store a binary-level test runs against, on the backend `REGISTRAR_TEST_STORE`
//! names ([`TestStore::fresh`]: a SQLite file, or a database of the shared throwaway
//! PostgreSQL cluster), and what a test looks at in it whatever the backend: a
//! [`fingerprint`] that tells whether a command changed it, a [`dump`] of chosen columns,
//! a hand edit in SQL ([`execute`]), and the writer lock held from another session
//! ([`WriterLockHolder`]).
//!
//! It must not: reach the store through registrar's own code (a test looks at what the
//! binary left, as an admin's SQL client would).

use registrar::store::StoreLocation;
pub use throwaway_postgres::{Backend, TestDatabase, TestStore};

/// The advisory lock a writer takes on PostgreSQL (`WRITER_LOCK` in
/// `src/adapters/store/database.rs`, private there).
pub const WRITER_LOCK: i64 = 0x7267_7374_7772_7472;

/// `store` as the app takes it.
pub fn location(store: &TestStore) -> StoreLocation {
    StoreLocation::parse(&store.argument()).unwrap()
}

/// How the binary names `store` in its messages: "state file PATH" or
/// "state store postgres://…".
pub fn named(store: &TestStore) -> String {
    location(store).to_string()
}

/// What `store` holds, to tell whether a command changed it: on SQLite the file's bytes
/// (None when there is no file); on PostgreSQL a canonical dump of every table, its rows
/// ordered by all their columns (None when the database has no `schema_migrations`).
pub fn fingerprint(store: &TestStore) -> Option<Vec<u8>> {
    match store.database() {
        None => std::fs::read(store.file()).ok(),
        Some(database) => fingerprint_of(database),
    }
}

/// [`fingerprint`] of a PostgreSQL database.
pub fn fingerprint_of(database: &TestDatabase) -> Option<Vec<u8>> {
    let mut client = database.client().unwrap();
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    if !tables.iter().any(|table| table == "schema_migrations") {
        return None;
    }
    let mut dump = String::new();
    for table in tables {
        dump.push_str(&format!("table {table}\n"));
        let rows = client
            .query(
                &format!("SELECT t::text FROM \"{table}\" AS t ORDER BY t"),
                &[],
            )
            .unwrap();
        for row in rows {
            dump.push_str(row.get::<_, &str>(0));
            dump.push('\n');
        }
    }
    Some(dump.into_bytes())
}

/// Every row of `columns` (a column list, or `*`) of each table, one string per row
/// prefixed with its table, sorted. The text of a value is the backend's own, so dumps
/// compare between stores of one backend.
pub fn dump(store: &TestStore, selections: &[(&str, &str)]) -> Vec<String> {
    let mut rows = Vec::new();
    match store.database() {
        None => {
            let connection = rusqlite::Connection::open(store.file()).unwrap();
            for (table, columns) in selections {
                let mut statement = connection
                    .prepare(&format!("SELECT {columns} FROM {table}"))
                    .unwrap();
                let count = statement.column_count();
                let mut query = statement.query([]).unwrap();
                while let Some(row) = query.next().unwrap() {
                    let values: Vec<String> = (0..count)
                        .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                        .collect();
                    rows.push(format!("{table}: {}", values.join(" | ")));
                }
            }
        }
        Some(database) => {
            let mut client = database.client().unwrap();
            for (table, columns) in selections {
                let row_text = if *columns == "*" {
                    "t::text".to_string()
                } else {
                    format!("ROW({columns})::text")
                };
                let sql = format!("SELECT {row_text} FROM {table} AS t");
                for row in client.query(&sql, &[]).unwrap() {
                    rows.push(format!("{table}: {}", row.get::<_, &str>(0)));
                }
            }
        }
    }
    rows.sort();
    rows
}

/// The first column (a blob) of every row `sql` gives.
pub fn column_bytes(store: &TestStore, sql: &str) -> Vec<Vec<u8>> {
    match store.database() {
        None => {
            let connection = rusqlite::Connection::open(store.file()).unwrap();
            let mut statement = connection.prepare(sql).unwrap();
            let values = statement
                .query_map([], |row| row.get::<_, Vec<u8>>(0))
                .unwrap();
            values.map(Result::unwrap).collect()
        }
        Some(database) => {
            let mut client = database.client().unwrap();
            client
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|row| row.get::<_, Vec<u8>>(0))
                .collect()
        }
    }
}

/// Runs `sql` (statements separated by `;`, written so that both backends take them) on
/// the store directly, as an admin with a SQL client would.
pub fn execute(store: &TestStore, sql: &str) {
    match store.database() {
        None => rusqlite::Connection::open(store.file())
            .unwrap()
            .execute_batch(sql)
            .unwrap(),
        Some(database) => database.client().unwrap().batch_execute(sql).unwrap(),
    }
}

/// Removes the store, as if nothing had ever been applied: the SQLite file, or every
/// table of the PostgreSQL database (its schema dropped and made again, empty).
pub fn remove(store: &TestStore) {
    match store.database() {
        None => std::fs::remove_file(store.file()).unwrap(),
        Some(database) => database
            .client()
            .unwrap()
            .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            .unwrap(),
    }
}

/// Another session holding the store's writer lock, as a second writer would, until
/// [`WriterLockHolder::release`]: on SQLite an open `BEGIN IMMEDIATE` transaction; on
/// PostgreSQL a transaction holding the advisory lock [`WRITER_LOCK`]. While it holds,
/// nothing else in the test process may open and close the SQLite file (closing any
/// descriptor of it drops the process's POSIX locks, the holder's too).
pub enum WriterLockHolder {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

impl WriterLockHolder {
    pub fn hold(store: &TestStore) -> WriterLockHolder {
        match store.database() {
            None => {
                let connection = rusqlite::Connection::open(store.file()).unwrap();
                connection
                    .execute_batch(
                        "BEGIN IMMEDIATE; UPDATE meta SET value = value WHERE key = 'serial';",
                    )
                    .unwrap();
                WriterLockHolder::Sqlite(connection)
            }
            Some(database) => {
                let mut client = database.client().unwrap();
                client
                    .batch_execute(&format!(
                        "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK});"
                    ))
                    .unwrap();
                WriterLockHolder::Postgres(client)
            }
        }
    }

    /// Ends the holder's transaction, releasing the lock.
    pub fn release(self) {
        match self {
            WriterLockHolder::Sqlite(connection) => connection.execute_batch("ROLLBACK;").unwrap(),
            WriterLockHolder::Postgres(mut client) => client.batch_execute("ROLLBACK;").unwrap(),
        }
    }
}
