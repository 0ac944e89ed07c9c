//! The store a registrar test runs against: [`TestStore::fresh`] gives an empty one on the
//! backend the run asks for, so that the same test runs on both. `REGISTRAR_TEST_STORE`
//! names it: `postgres` for a fresh database of the [`shared`](crate::shared) cluster,
//! `sqlite` (or unset) for a file in a temp dir. `ci/test` runs the store's tests once
//! with each.

use std::path::{Path, PathBuf};

use crate::TestDatabase;

/// The variable that picks the backend of [`TestStore::fresh`].
pub const BACKEND_VARIABLE: &str = "REGISTRAR_TEST_STORE";

/// The backends a store test can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend `REGISTRAR_TEST_STORE` asks for. Any other value than `sqlite` or
    /// `postgres` is a mistake in the test command, and says so.
    pub fn of_this_run() -> Backend {
        match std::env::var(BACKEND_VARIABLE).as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
            Ok("postgres") => Backend::Postgres,
            Ok(other) => panic!("{BACKEND_VARIABLE}={other:?}: expected sqlite or postgres"),
        }
    }
}

/// An empty store for one test: a path in a temp dir, or a database of its own (dropped
/// with the value).
pub struct TestStore {
    dir: tempfile::TempDir,
    database: Option<TestDatabase>,
}

impl TestStore {
    /// An empty store on the backend of this run.
    pub fn fresh() -> TestStore {
        TestStore::on(Backend::of_this_run())
    }

    /// An empty store on `backend`.
    pub fn on(backend: Backend) -> TestStore {
        let dir = tempfile::tempdir().expect("a temp dir for the test store");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(crate::shared().database()),
        };
        TestStore { dir, database }
    }

    pub fn backend(&self) -> Backend {
        if self.database.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// What `--state` takes: the database's URL, or the file's path.
    pub fn argument(&self) -> String {
        match &self.database {
            Some(database) => database.url(),
            None => self.file().display().to_string(),
        }
    }

    /// The SQLite file (whether or not the run uses it): `state.db` in the temp dir.
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// The temp dir beside the store, for the test's other files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The database, on PostgreSQL.
    pub fn database(&self) -> Option<&TestDatabase> {
        self.database.as_ref()
    }
}
