//! One controller per state file: an exclusive lock on a file beside the state
//! (`registrar.db.lock` for `registrar.db`), held for the controller's lifetime and
//! released by the operating system when the process ends, however it ends. The file
//! holds the holder's pid, for the message the next one prints.
//!
//! The lock is advisory and only `registrar run` takes it: `apply` and `state register`
//! do not (the store's transactions and serial check keep them safe beside a running
//! controller). The file is never deleted: removing a lock file while another process
//! opens it would let two holders in.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::app::error::AppError;

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct ControllerLock {
    _file: File,
    path: PathBuf,
}

impl ControllerLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file of `state_path`: the same name with `.lock` added.
pub fn lock_path(state_path: &Path) -> PathBuf {
    let mut name = state_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "registrar.db".into());
    name.push(".lock");
    state_path.with_file_name(name)
}

/// Takes the controller lock of `state_path`, or refuses naming the holder's pid.
pub fn acquire(state_path: &Path) -> Result<ControllerLock, AppError> {
    let path = lock_path(state_path);
    let file_error = |action: &'static str, error: std::io::Error| AppError::File {
        path: path.clone(),
        action,
        error,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| file_error("cannot open the controller lock file", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim() {
                "" => "pid unknown".to_string(),
                pid => format!("pid {pid}"),
            };
            return Err(AppError::ControllerRunning { path, holder });
        }
        Err(TryLockError::Error(e)) => {
            return Err(file_error("cannot lock the controller lock file", e))
        }
    }
    let written = file
        .set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .and_then(|_| file.flush());
    written.map_err(|e| file_error("cannot write the controller lock file", e))?;
    Ok(ControllerLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_state_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let first = acquire(&state).unwrap();
        assert_eq!(first.path(), dir.path().join("state.db.lock"));
        let error = acquire(&state).unwrap_err().to_string();
        assert!(error.contains("another registrar run holds"), "{error}");
        assert!(
            error.contains(&format!("(pid {})", std::process::id())),
            "{error}"
        );
        drop(first);
        acquire(&state).unwrap();
    }
}
