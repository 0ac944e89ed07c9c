//! The file of `--out FILE` (`plan`, `drift`, `export`): one writer with one set of rules,
//! so that an output never replaces what it does not own.
//!
//! - A regular file, or a new path, is written atomically: a temporary file in the same
//!   directory, `fsync`, then renamed over. An existing file keeps its permission mode
//!   (and, where the process may, its owner); a new one gets what the umask gives, as
//!   `File::create` would. Until [`OutputFile::finish`] the old file is as it was, and a
//!   failure, or an `OutputFile` dropped unfinished, removes the temporary file.
//! - A symlink is written through: the same rules apply to its target, and a dangling
//!   link's target is created. The link stays a link.
//! - Anything else that exists (a character or block device, a FIFO, a socket) is opened
//!   for writing in place, neither created nor truncated: `--out /dev/stdout` writes to
//!   standard output, and `--out /dev/null` leaves `/dev/null` a device, even as root.
//! - A directory is refused.
//!
//! It does not buffer (wrap it in a `BufWriter`) and does not name what it writes: callers
//! add that to their errors.
//!
//! Without `--out`, commands print through [`print_stdout`], which ignores a closed pipe.

use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::error::AppError;

/// How many symlinks a dangling chain may hold before it is refused (Linux's `ELOOP`).
const MAX_LINKS: usize = 40;

/// An output file being written. Write to it, then [`finish`](OutputFile::finish) it.
pub(super) struct OutputFile {
    file: File,
    /// The temporary file and the path it is renamed to; none when written in place.
    replace: Option<Replace>,
}

struct Replace {
    /// The path the user gave.
    named: PathBuf,
    temporary: PathBuf,
    target: PathBuf,
}

impl OutputFile {
    /// Opens `path` for output by the rules above. Nothing that exists changes yet.
    pub(super) fn create(path: &Path) -> io::Result<OutputFile> {
        let metadata = match fs::metadata(path) {
            Ok(metadata) => Some(metadata),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match metadata {
            Some(metadata) if metadata.is_dir() => {
                Err(io::Error::other("is a directory, not a file"))
            }
            // The kernel follows the links (`/dev/stdout` is one to `/proc/self/fd/1`,
            // whose target may be a pipe that has no path), and nothing is replaced.
            Some(metadata) if !metadata.is_file() => Ok(OutputFile {
                file: OpenOptions::new().write(true).open(path)?,
                replace: None,
            }),
            Some(metadata) => {
                let target = if fs::symlink_metadata(path)?.file_type().is_symlink() {
                    fs::canonicalize(path)?
                } else {
                    path.to_path_buf()
                };
                Self::replacing(path, target, Some(&metadata))
            }
            None => Self::replacing(path, dangling_target(path)?, None),
        }
    }

    /// A temporary file beside `target` (`named`, or the file a symlink `named` leads to),
    /// with the mode (and owner) of `existing`.
    fn replacing(
        named: &Path,
        target: PathBuf,
        existing: Option<&Metadata>,
    ) -> io::Result<OutputFile> {
        let (temporary, file) =
            create_temporary(&target).map_err(|e| through(named, &target, e))?;
        // From here a failure removes the temporary file (`Drop`).
        let output = OutputFile {
            file,
            replace: Some(Replace {
                named: named.to_path_buf(),
                temporary,
                target,
            }),
        };
        if let Some(existing) = existing {
            // Only root may give a file away; anyone else keeps their own ownership.
            let _ =
                std::os::unix::fs::fchown(&output.file, Some(existing.uid()), Some(existing.gid()));
            let mode = Permissions::from_mode(existing.mode() & 0o7777);
            if let Err(e) = output.file.set_permissions(mode) {
                let replace = output.replace.as_ref().expect("set above");
                return Err(through(named, &replace.target, e));
            }
        }
        Ok(output)
    }

    /// Makes the output whole: a replaced file is synced and renamed over its target (the
    /// old file stays as it was if this fails); one written in place is done.
    pub(super) fn finish(mut self) -> io::Result<()> {
        let Some(replace) = &self.replace else {
            return Ok(());
        };
        self.file
            .sync_all()
            .and_then(|()| fs::rename(&replace.temporary, &replace.target))
            .map_err(|e| through(&replace.named, &replace.target, e))?;
        // Renamed: nothing is left to remove.
        let target = self.replace.take().expect("checked above").target;
        // The rename is durable once the directory is; a filesystem that cannot sync a
        // directory still has the file whole.
        if let Ok(directory) = File::open(parent(&target)) {
            let _ = directory.sync_all();
        }
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.file.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let Some(replace) = &self.replace {
            let _ = fs::remove_file(&replace.temporary);
        }
    }
}

/// The path a missing `path` is created at: itself, or the end of the chain of dangling
/// symlinks it starts (each relative target read from its link's directory).
fn dangling_target(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = parent(&current).join(link);
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// A new file `.NAME.PID-N.tmp` beside `target`, created with the default mode (the umask
/// applies, as with `File::create`).
fn create_temporary(target: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::other("names no file"))?
        .to_string_lossy();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temporary = parent(target).join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&temporary)
        {
            Ok(file) => return Ok((temporary, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The directory holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `error`, saying which file it was about when that is not the one the user named (a
/// symlink's target); callers name `named`.
fn through(named: &Path, target: &Path, error: io::Error) -> io::Error {
    if named == target {
        error
    } else {
        io::Error::new(error.kind(), format!("{}: {error}", target.display()))
    }
}

/// Writes to stdout, ignoring a closed pipe (`registrar plan | head`).
pub(super) fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// `value` as pretty-printed JSON with a final newline (`--format json`).
pub(super) fn pretty_json(value: &impl serde::Serialize) -> Result<String, AppError> {
    let mut text = serde_json::to_string_pretty(value).map_err(AppError::Json)?;
    text.push('\n');
    Ok(text)
}
