//! The open store: [`Store`] holds the one connection to the state file, opened with the
//! settings every use needs and its schema brought up to date (`migrations.rs`).

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::error::{sqlite, store_error, StoreError, LOCK_WAIT};

/// An open store.
pub struct Store {
    pub(super) connection: Connection,
    pub(super) path: PathBuf,
}

impl Store {
    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let connection = Connection::open(path).map_err(|source| sqlite(path, source))?;
        let mut store = Store {
            connection,
            path: path.to_path_buf(),
        };
        store
            .connection
            .busy_timeout(LOCK_WAIT)
            .map_err(|e| store.error(e))?;
        // Pages of 16 KiB for a new store (an existing one keeps its own): fewer, fuller
        // pages for the millions of rows of a large directory.
        store
            .connection
            .execute_batch("PRAGMA page_size = 16384; PRAGMA foreign_keys = OFF;")
            .map_err(|e| store.error(e))?;
        // Room for the bulk inserts' statements (`bulk.rs`) beside the others.
        store.connection.set_prepared_statement_cache_capacity(64);
        store.migrate()?;
        store
            .connection
            .execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| store.error(e))?;
        Ok(store)
    }

    /// Opens the store only if the file exists: planning never creates a state file.
    pub fn open_if_exists(path: &Path) -> Result<Option<Store>, StoreError> {
        if path.exists() {
            Store::open(path).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(super) fn error(&self, source: rusqlite::Error) -> StoreError {
        store_error(&self.path, source)
    }
}
