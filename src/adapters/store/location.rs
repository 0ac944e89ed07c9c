//! Where a store is: [`StoreLocation`], a SQLite file (the embedded default) or a
//! PostgreSQL database named by a `postgres://` URL, as `--state` and `REGISTRAR_STATE`
//! give it. Every message names the store through its `Display`, which never shows a
//! password.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::adapters::postgres::{
    find_password, is_postgres_url, PasswordSources, PostgresUrl, PostgresUrlError, PostgresWarning,
};

/// A store's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL database (boxed: every store error names its store, and stays small).
    Postgres(Box<PostgresUrl>),
}

impl StoreLocation {
    /// `--state` as given: a `postgres://` (or `postgresql://`) URL, else a file path.
    pub fn parse(argument: &str) -> Result<StoreLocation, PostgresUrlError> {
        if is_postgres_url(argument) {
            PostgresUrl::parse(argument).map(|url| StoreLocation::Postgres(Box::new(url)))
        } else {
            Ok(StoreLocation::File(PathBuf::from(argument)))
        }
    }

    /// What the user should hear before the store is used: a password in the URL (which
    /// `ps` shows), a password file others can read (ignored). None for a file.
    pub fn warnings(&self) -> Vec<PostgresWarning> {
        match self {
            StoreLocation::File(_) => Vec::new(),
            StoreLocation::Postgres(url) => {
                find_password(url, &PasswordSources::from_environment()).1
            }
        }
    }

    /// The SQLite file, if the store is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            StoreLocation::File(path) => Some(path),
            StoreLocation::Postgres(_) => None,
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::File(path) => write!(f, "state file {}", path.display()),
            StoreLocation::Postgres(url) => write!(f, "state store {url}"),
        }
    }
}

impl From<&Path> for StoreLocation {
    fn from(path: &Path) -> Self {
        StoreLocation::File(path.to_path_buf())
    }
}

impl From<&PathBuf> for StoreLocation {
    fn from(path: &PathBuf) -> Self {
        StoreLocation::File(path.clone())
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(path: PathBuf) -> Self {
        StoreLocation::File(path)
    }
}

impl From<&StoreLocation> for StoreLocation {
    fn from(location: &StoreLocation) -> Self {
        location.clone()
    }
}
