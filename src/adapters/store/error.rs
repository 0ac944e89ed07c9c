//! Why the store refused or failed: [`StoreError`], and the one mapping of a SQLite error
//! to it ("locked" when another writer holds the file past [`LOCK_WAIT`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer waits for another one to finish before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state file {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "state file {} is locked by another apply or registration; waited {}s, try again when it has finished",
        path.display(), LOCK_WAIT.as_secs()
    )]
    Locked { path: PathBuf },
    #[error(
        "saved plan is stale: it was made at state serial {planned}, the store is at serial {actual}; run plan again"
    )]
    StalePlan { planned: i64, actual: i64 },
    #[error("state file {}: cannot apply {change}: {problem}; nothing was applied", path.display())]
    Conflict {
        path: PathBuf,
        change: String,
        problem: String,
    },
    #[error("{protocol} name {im_name:?} is already registered to {account} ({held_by}); nothing was recorded")]
    AlreadyRegistered {
        protocol: String,
        im_name: String,
        account: String,
        held_by: String,
    },
    #[error("{0}; nothing was applied")]
    StaleSnapshot(String),
    #[error("state file {}: cannot migrate to schema {version}: {problem}; that migration was not applied", path.display())]
    Migration {
        path: PathBuf,
        version: usize,
        problem: String,
    },
    #[error("state file {} was written by a newer registrar (schema {found}, this build knows {known})", path.display())]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
}

pub(super) fn sqlite(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// A SQLite error as the user should read it: "locked" when another writer holds the
/// store past [`LOCK_WAIT`], the SQLite message with the path otherwise.
pub(super) fn store_error(path: &Path, source: rusqlite::Error) -> StoreError {
    if is_busy(&source) {
        StoreError::Locked {
            path: path.to_path_buf(),
        }
    } else {
        sqlite(path, source)
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
