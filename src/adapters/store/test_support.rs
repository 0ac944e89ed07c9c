//! Fixtures the store's unit tests share: an empty store on the backend of the run
//! ([`fresh_store`]: SQLite, or PostgreSQL under `REGISTRAR_TEST_STORE=postgres`), a real
//! store holding one registration, and the hand edit (plain SQL, CHECK constraints set
//! aside) the row readers' tests corrupt it with.

use registrar_core::state::RegistrationSource;
use throwaway_postgres::{Backend, TestStore};

use super::database::Database;
use super::history::RunRecord;
use super::location::StoreLocation;
use super::open::Store;

/// An empty store on the backend of this run, open, and what keeps it (its temp dir or
/// database) until dropped.
pub(crate) fn fresh_store() -> (TestStore, Store) {
    let test_store = TestStore::fresh();
    let store = Store::open(location(&test_store)).unwrap();
    (test_store, store)
}

/// An empty database (no store schema) on the backend of this run, and what keeps it.
pub(crate) fn fresh_database() -> (TestStore, Database) {
    let test_store = TestStore::fresh();
    let database = match test_store.database() {
        Some(database) => Database::postgres(database.client().unwrap()),
        None => Database::sqlite(rusqlite::Connection::open(test_store.file()).unwrap()),
    };
    (test_store, database)
}

/// Where `test_store` is, as the store takes it.
pub(crate) fn location(test_store: &TestStore) -> StoreLocation {
    StoreLocation::parse(&test_store.argument()).unwrap()
}

/// A store holding one manual registration, made by [`Store::register`]: `xmpp` name
/// `bob` on the account `cn=bob,dc=x` (anchor `cn=bob,dc=x`), at serial 1 with one run.
/// The tests of the row readers corrupt it with plain SQL.
pub(super) fn store_with_one_registration() -> (TestStore, Store) {
    let (test_store, mut store) = fresh_store();
    register_bob(&mut store);
    (test_store, store)
}

/// Registers [`store_with_one_registration`]'s one name in `store`.
pub(super) fn register_bob(store: &mut Store) {
    store
        .register(
            ("xmpp", "bob"),
            "bob",
            "cn=bob,dc=x",
            (RegistrationSource::Manual, None),
            RunRecord::new("register", "t"),
        )
        .unwrap();
}

/// Edits the store as a hand with a SQL client could, its CHECK constraints set aside
/// (dropped, on PostgreSQL, which cannot ignore them).
pub(super) fn corrupt(store: &Store, sql: &str) {
    let sql = match store.connection.backend() {
        super::database::Backend::Sqlite => {
            format!("PRAGMA ignore_check_constraints = ON; {sql}")
        }
        super::database::Backend::Postgres => format!(
            "DO $$ DECLARE c record; BEGIN \
               FOR c IN SELECT conrelid::regclass AS t, conname FROM pg_constraint \
                 WHERE contype IN ('c', 'f') AND connamespace = current_schema()::regnamespace \
               LOOP EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.t, c.conname); \
               END LOOP; END $$; {}",
            blob_literals_as_bytea(
                &sql.replace("PRAGMA foreign_keys = OFF;", "")
                    .replace("PRAGMA foreign_keys = ON;", "")
            )
        ),
    };
    store.connection.execute_batch(&sql).unwrap();
}

/// SQLite's blob literals (`x'0102'`) as PostgreSQL's (`'\x0102'::bytea`).
fn blob_literals_as_bytea(sql: &str) -> String {
    regex::Regex::new(r"x'([0-9a-fA-F]*)'")
        .unwrap()
        .replace_all(sql, r"'\x$1'::bytea")
        .into_owned()
}

/// Whether this run's stores are PostgreSQL's.
#[allow(dead_code)]
pub(crate) fn on_postgres() -> bool {
    Backend::of_this_run() == Backend::Postgres
}

/// Every table, index and (on PostgreSQL) constraint of `database`, by name, with its
/// definition as the database keeps it, in name order.
pub(crate) fn schema(database: &Database) -> Vec<(String, Option<String>)> {
    let sql = match database.backend() {
        super::database::Backend::Sqlite => "SELECT name, sql FROM sqlite_schema ORDER BY name",
        super::database::Backend::Postgres => {
            "SELECT indexname::text, indexdef FROM pg_indexes \
             WHERE schemaname = current_schema() \
             UNION ALL SELECT tablename::text, NULL FROM pg_tables \
             WHERE schemaname = current_schema() \
             UNION ALL SELECT conname::text, conrelid::regclass::text || ' ' || \
             pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2"
        }
    };
    database
        .query_map(sql, super::database::params![], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap()
}
