//! Early writeback of a large apply's store file. An apply is one transaction, and SQLite
//! makes it durable with one `fsync` at the commit: after a first import of a million
//! users that call wrote 2.4 GB of dirty pages while nothing else ran (2.4 s of a 30 s
//! apply here). While the transaction runs, a [`Writeback`] asks the kernel every second
//! to start writing the file's dirty pages (`sync_file_range`, Linux), so that the disk
//! works while SQLite does, and the commit's `fsync` finds little left.
//!
//! Only an optimisation: it changes neither what is written nor when it is durable (the
//! kernel may write dirty pages at any time anyway, and SQLite's journal is made durable
//! before it writes a page of the store), and a file it cannot open, or a thread it
//! cannot start, is left alone.
//!
//! It holds a second handle on the store file, and on POSIX systems closing any handle
//! on a file drops every lock the process holds on it, SQLite's included. So a
//! `Writeback` must be dropped only once no connection of this process holds a lock on
//! the store: after the apply's connection is closed (declare it before the `Store`, so
//! that it is dropped after).

use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the file's dirty pages are handed to the disk.
const EVERY: Duration = Duration::from_secs(1);

/// Starts writeback of a file's dirty pages every [`EVERY`] until dropped.
pub(super) struct Writeback {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Writeback {
    /// Writeback of the file at `path` (nothing, if it cannot be opened).
    pub(super) fn start(path: &Path) -> Writeback {
        let Ok(file) = File::open(path) else {
            return Writeback {
                stop: None,
                thread: None,
            };
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("writeback".to_string())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    start_writeback(&file);
                }
            })
            .ok();
        Writeback {
            stop: thread.is_some().then_some(stop),
            thread,
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Asks the kernel to start writing `file`'s dirty pages, without waiting for them.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: `file` is open for the call; `sync_file_range` with `SYNC_FILE_RANGE_WRITE`
    // only starts writeback of the whole file (offset 0, length 0: to the end) and
    // touches no memory of ours. A failure only means no early writeback.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn writeback_runs_until_dropped_and_never_changes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let mut file = File::create(&path).unwrap();
        let writeback = Writeback::start(&path);
        assert!(writeback.thread.is_some());
        file.write_all(&[7u8; 1 << 20]).unwrap();
        std::thread::sleep(EVERY + Duration::from_millis(200));
        drop(writeback);
        assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 1 << 20]);
        // A file that cannot be opened: nothing started, nothing to stop.
        let missing = Writeback::start(&dir.path().join("missing.db"));
        assert!(missing.thread.is_none());
    }
}
