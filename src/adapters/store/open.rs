//! The open store: [`Store`] holds the one connection to its database (a SQLite file or
//! a PostgreSQL session), opened with the settings every use needs and its schema brought
//! up to date (`migrations.rs`).

use std::path::Path;

use super::database::{params, Database, OptionalRow, SqlError};
use super::error::{store_error, StoreError, LOCK_WAIT};
use super::location::StoreLocation;
use crate::adapters::postgres::{PasswordSources, PostgresUrl};

/// An open store.
pub struct Store {
    pub(super) connection: Database,
    pub(super) location: StoreLocation,
    /// This session took the controllers' lead (`leadership.rs`): every apply confirms,
    /// in its transaction, that it still holds it.
    pub(super) leads: bool,
}

impl Store {
    /// Where the store is.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The store's file, when it is a SQLite one.
    pub fn path(&self) -> Option<&Path> {
        self.location.file()
    }

    /// Opens (creating if needed) the store and brings its schema up to date.
    pub fn open(location: impl Into<StoreLocation>) -> Result<Store, StoreError> {
        let location = location.into();
        let connection = match &location {
            StoreLocation::File(path) => {
                open_sqlite(path).map_err(|e| store_error(&location, e))?
            }
            StoreLocation::Postgres(url) => open_postgres(url, &location)?,
        };
        let mut store = Store {
            connection,
            location,
            leads: false,
        };
        store.migrate()?;
        if store.connection.backend() == super::database::Backend::Sqlite {
            store
                .connection
                .execute_batch("PRAGMA foreign_keys = ON;")
                .map_err(|e| store.error(e))?;
        }
        Ok(store)
    }

    /// Opens the store only if it exists: planning never creates a state. A SQLite store
    /// exists when its file does; a PostgreSQL one when its database holds the schema.
    pub fn open_if_exists(location: impl Into<StoreLocation>) -> Result<Option<Store>, StoreError> {
        let location = location.into();
        match &location {
            StoreLocation::File(path) => {
                if path.exists() {
                    Store::open(location).map(Some)
                } else {
                    Ok(None)
                }
            }
            StoreLocation::Postgres(url) => {
                let connection = open_postgres(url, &location)?;
                if !holds_a_store(&connection).map_err(|e| store_error(&location, e))? {
                    return Ok(None);
                }
                let mut store = Store {
                    connection,
                    location,
                    leads: false,
                };
                store.migrate()?;
                Ok(Some(store))
            }
        }
    }

    /// Whether the store exists (a SQLite file; a PostgreSQL database holding the
    /// schema), without creating it.
    pub fn exists(location: &StoreLocation) -> Result<bool, StoreError> {
        match location {
            StoreLocation::File(path) => Ok(path.exists()),
            StoreLocation::Postgres(url) => {
                let connection = open_postgres(url, location)?;
                holds_a_store(&connection).map_err(|e| store_error(location, e))
            }
        }
    }

    pub(super) fn error(&self, source: SqlError) -> StoreError {
        store_error(&self.location, source)
    }
}

/// Whether a PostgreSQL database holds a store: its `schema_migrations` table.
pub(super) fn holds_a_store(connection: &Database) -> Result<bool, SqlError> {
    Ok(connection
        .query_row(
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
            params![],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// A SQLite connection with the store's settings.
fn open_sqlite(path: &Path) -> Result<Database, SqlError> {
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(LOCK_WAIT)?;
    // Pages of 16 KiB for a new store (an existing one keeps its own): fewer, fuller
    // pages for the millions of rows of a large directory. Foreign keys are checked
    // once the migrations have run (`Store::migrate` checks them whole).
    connection.execute_batch("PRAGMA page_size = 16384; PRAGMA foreign_keys = OFF;")?;
    // Room for the bulk inserts' statements (`bulk.rs`) beside the others.
    connection.set_prepared_statement_cache_capacity(64);
    Ok(Database::sqlite(connection))
}

/// A PostgreSQL session with the store's settings: a writer waits for another at most
/// [`LOCK_WAIT`], and the server's notices stay quiet.
fn open_postgres(url: &PostgresUrl, location: &StoreLocation) -> Result<Database, StoreError> {
    let client = url
        .connect(&PasswordSources::from_environment())
        .map_err(StoreError::Unreachable)?;
    let database = Database::postgres(client);
    database
        .execute_batch(&format!(
            "SET lock_timeout = '{}ms'; SET client_min_messages = warning;",
            LOCK_WAIT.as_millis()
        ))
        .map_err(|e| store_error(location, e))?;
    Ok(database)
}
