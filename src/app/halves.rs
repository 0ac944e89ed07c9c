//! A large LDIF content file read in two halves at once, one per core. Parsing a
//! directory's entries and preparing each is most of a full plan's work, and it is one
//! entry after another: the one stream on one core. Halves that are read apart keep
//! each core on its own entries (moving parsed entries between cores costs more than
//! preparing them).
//!
//! The second half starts at the first blank line past five twelfths of the file: a
//! record boundary, since a blank line is never inside a record (a folded line starts
//! with a space, a value holds no newline). The first half is the smaller because its
//! thread also digests the whole file and hands the second half's entries on.
//!
//! An error of the second half names the file's line: the lines before the half are
//! counted once it fails (only then), and added. The first half's error, earlier in the
//! file, is the one reported; it also stops the second half's reading (its input reads
//! as ended), so a broken file fails about as soon as read whole. The file's digest is
//! of its bytes in order: the reading thread digests the first half as it parses it,
//! then reads on through the second. One handle reads both halves, and a file whose
//! length or modification time moved while it was read is refused rather than digested
//! apart from what was parsed.
//!
//! Only a working-tree content file of at least [`HALVES_FROM_BYTES`] with no change
//! files is read so ([`halves_of`]); every other source is read whole by
//! `sources::read_source`, with the same entries in the same order.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::error::AppError;
use super::progress::Progress;
use super::sources::{imported, source_error, DigestingReader, InputsDigest, SourceError};
use crate::adapters::ldif::{self, LdifError, LdifFileError, LdifReader};
use crate::adapters::tree::{Tree, WorkingFile};
use crate::config::{SourceLocation, SourceSettings};
use registrar_core::entry::Entry;
use registrar_core::plan::SourceImport;

/// Files smaller than this are read whole: a second thread is not worth starting.
pub(super) const HALVES_FROM_BYTES: u64 = 8 << 20;

/// Where the search for the second half's start begins, in twelfths of the file.
const FIRST_HALF_TWELFTHS: u64 = 5;

/// Bytes read at a time while looking for the blank line where the second half starts.
const SEARCH_CHUNK: usize = 64 << 10;

/// A content file to read in two halves: where the second starts, and what the file
/// was when its halves were chosen.
pub(super) struct Halves {
    path: PathBuf,
    file: WorkingFile,
    max_value_bytes: usize,
    /// Where the second half starts: just after the newline that ends the first half's
    /// last line, before the blank line.
    second_at: u64,
    length: u64,
    modified: Option<SystemTime>,
}

/// How `source` is read in halves, if it is: a working-tree LDIF content file, no change
/// files, at least [`HALVES_FROM_BYTES`], with a blank line past five twelfths. A file
/// that cannot be opened here is read whole, which says why.
pub(super) fn halves_of(source: &SourceSettings, files: &Tree) -> Option<Halves> {
    let SourceLocation::Ldif {
        path,
        changes: None,
        max_value_bytes,
    } = &source.location
    else {
        return None;
    };
    let file = files.working_file(path)?.ok()?;
    let metadata = file.file.metadata().ok()?;
    let length = metadata.len();
    if length < HALVES_FROM_BYTES {
        return None;
    }
    // The reading thread also digests the whole file and hands the second half's
    // entries to the builder: its half is the smaller, so that both end together (a
    // plan at 1M users by turns: 4.57 s with halves at the middle, 4.31 s so).
    let second_at =
        blank_line_after(&file.file, length * FIRST_HALF_TWELFTHS / 12, length).ok()??;
    Some(Halves {
        path: path.clone(),
        file,
        max_value_bytes: *max_value_bytes,
        second_at,
        length,
        modified: metadata.modified().ok(),
    })
}

/// Where the first blank line at or after `from` starts: the byte after a newline that
/// another newline (or a carriage return and a newline) follows. `None` when the file
/// has none there.
fn blank_line_after(file: &File, from: u64, length: u64) -> io::Result<Option<u64>> {
    // Two bytes of overlap between chunks: a blank line cut by a chunk's end is found.
    let mut chunk = vec![0u8; SEARCH_CHUNK];
    let mut at = from;
    while at < length {
        let read = FileRange::new(file, at, length).read(&mut chunk)?;
        let bytes = &chunk[..read];
        for (index, window) in bytes.windows(3).enumerate() {
            if window[0] == b'\n' && (window[1] == b'\n' || window[1..] == *b"\r\n") {
                return Ok(Some(at + index as u64 + 1));
            }
        }
        if read < 3 || at + (read as u64) >= length {
            // The end of the file (a blank line as its last two bytes starts nothing).
            return Ok(None);
        }
        at += read as u64 - 2;
    }
    Ok(None)
}

/// Reads `halves` of `source`: the first half's entries to `first` on this thread, the
/// second half's to `second` on a thread of its own, both in file order. The caller
/// puts the second half's entries after the first's. Returns what was imported, its
/// digest fed into `digest` as a whole read would.
pub(super) fn read_halves(
    source: &SourceSettings,
    halves: Halves,
    config_dir: &Path,
    digest: &mut InputsDigest,
    first: &mut dyn FnMut(Entry),
    second: &mut (dyn FnMut(Entry) + Send),
) -> Result<SourceImport, AppError> {
    let mut content_digest = Sha256::new();
    let mut progress = Progress::new(format!("source {}", source.name), "entries", None);
    let mut first_entries = 0u64;
    // Set when the first half fails: its error is the one reported, so the second
    // half's reader sees the end of its input at its next read rather than parse on.
    let first_failed = AtomicBool::new(false);
    let (first_read, second_read) = std::thread::scope(|scope| {
        let second_half = scope.spawn(|| {
            let mut entries = 0u64;
            read_second_half(&halves, &first_failed, &mut |entry| {
                entries += 1;
                second(entry);
            })
            .map(|()| entries)
        });
        let first_read = read_first_half(&halves, &mut content_digest, &mut |entry| {
            first_entries += 1;
            progress.tick();
            first(entry);
        });
        if first_read.is_err() {
            first_failed.store(true, Ordering::Relaxed);
        }
        let second_read = second_half
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (first_read, second_read)
    });
    let located = |error| source_error(source, file_error(&halves.path, error));
    first_read.map_err(located)?;
    let second_entries = second_read.map_err(located)?;
    progress.advance_to(first_entries + second_entries);
    let metadata = halves.file.file.metadata();
    let unchanged = metadata
        .is_ok_and(|now| now.len() == halves.length && now.modified().ok() == halves.modified);
    if !unchanged {
        return Err(source_error(
            source,
            SourceError::ChangedWhileRead {
                path: halves.path.clone(),
            },
        ));
    }
    Ok(SourceImport {
        source: source.name.clone(),
        content: imported(config_dir, &halves.path, content_digest, digest),
        changes: Vec::new(),
    })
}

/// What went wrong reading a half: its content, or the file itself.
#[derive(Debug)]
enum HalfError {
    Ldif(LdifError),
    Io(io::Error),
}

/// The error of reading a half of the file at `path`.
fn file_error(path: &Path, error: HalfError) -> LdifFileError {
    match error {
        HalfError::Ldif(error) => LdifFileError::Parse {
            path: path.to_path_buf(),
            error,
        },
        HalfError::Io(source) => LdifFileError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// The first half parsed into `each` while its bytes are digested, then the second
/// half's bytes digested.
fn read_first_half(
    halves: &Halves,
    content_digest: &mut Sha256,
    each: &mut dyn FnMut(Entry),
) -> Result<(), HalfError> {
    let file = &halves.file.file;
    let input = DigestingReader {
        inner: FileRange::new(file, 0, halves.second_at),
        digest: &mut *content_digest,
    };
    ldif::for_each_entry(halves.reader(input), each).map_err(HalfError::Ldif)?;
    let mut rest = DigestingReader {
        inner: FileRange::new(file, halves.second_at, halves.length),
        digest: content_digest,
    };
    io::copy(&mut rest, &mut io::sink()).map_err(HalfError::Io)?;
    Ok(())
}

/// The second half parsed into `each`; its input ends early once `first_failed` is set.
/// Its error names the file's line: the lines before the half, counted only then, are
/// added to the half's own.
fn read_second_half(
    halves: &Halves,
    first_failed: &AtomicBool,
    each: &mut dyn FnMut(Entry),
) -> Result<(), HalfError> {
    let file = &halves.file.file;
    let input = FileRange::new(file, halves.second_at, halves.length).until(first_failed);
    let reader = halves.reader(input).resuming_at_line(1);
    ldif::for_each_entry(reader, each).map_err(|mut error| {
        match count_newlines(FileRange::new(file, 0, halves.second_at)) {
            Ok(lines_before) => {
                error.line += lines_before;
                HalfError::Ldif(error)
            }
            Err(error) => HalfError::Io(error),
        }
    })
}

impl Halves {
    /// An LDIF reader of `input`, a part of this file, with the source's value limit and
    /// the file's URL resolver.
    fn reader<R: Read>(&self, input: R) -> LdifReader<BufReader<R>> {
        LdifReader::new(BufReader::with_capacity(1 << 16, input))
            .with_max_value_bytes(self.max_value_bytes)
            .with_resolver(self.file.urls.clone())
    }
}

/// The newlines in `input`: the lines before the second half.
fn count_newlines(mut input: impl Read) -> io::Result<usize> {
    let mut chunk = vec![0u8; 1 << 20];
    let mut newlines = 0;
    loop {
        let read = input.read(&mut chunk)?;
        if read == 0 {
            return Ok(newlines);
        }
        newlines += chunk[..read].iter().filter(|&&b| b == b'\n').count();
    }
}

/// The bytes of `file` from `at` to `end`, read by position: any number of them read
/// one file at once, each from its own place.
struct FileRange<'f> {
    file: &'f File,
    at: u64,
    end: u64,
    /// When set, the range reads as ended.
    stop: Option<&'f AtomicBool>,
}

impl<'f> FileRange<'f> {
    fn new(file: &'f File, at: u64, end: u64) -> Self {
        FileRange {
            file,
            at,
            end,
            stop: None,
        }
    }

    /// The same range, read as ended once `stop` is set.
    fn until(self, stop: &'f AtomicBool) -> Self {
        FileRange {
            stop: Some(stop),
            ..self
        }
    }
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.at)).unwrap_or(usize::MAX);
        let wanted = buf.len().min(left);
        if wanted == 0 || self.stop.is_some_and(|stop| stop.load(Ordering::Relaxed)) {
            return Ok(0);
        }
        let read = self.file.read_at(&mut buf[..wanted], self.at)?;
        self.at += read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::sources::read_source;
    use super::*;
    use crate::config::Location;

    /// An `ldif` source reading `path`.
    fn source_reading(path: &Path) -> SourceSettings {
        SourceSettings {
            name: "corp".to_string(),
            defined_at: Location {
                file: PathBuf::from("registrar.yaml"),
                line: 1,
                column: 1,
            },
            location: SourceLocation::Ldif {
                path: path.to_path_buf(),
                changes: None,
                max_value_bytes: ldif::DEFAULT_MAX_VALUE_BYTES,
            },
        }
    }

    /// A content file past [`HALVES_FROM_BYTES`] with `newline` line ends: entries with
    /// folded, base64 and URL values, comments and runs of blank lines between them.
    fn large_ldif(dir: &Path, newline: &str) -> PathBuf {
        std::fs::write(dir.join("photo.bin"), b"\x00\x01binary").unwrap();
        let path = dir.join("directory.ldif");
        let mut file = std::io::BufWriter::new(File::create(&path).unwrap());
        write!(file, "version: 1{newline}{newline}").unwrap();
        let mut n = 0;
        while file.get_ref().metadata().unwrap().len() < HALVES_FROM_BYTES + (1 << 20) {
            let lines = [
                format!("# entry {n}"),
                format!("dn: uid=user{n},ou=people,dc=example,dc=com"),
                "objectClass: inetOrgPerson".to_string(),
                format!("uid: user{n}"),
                "description: a value long enough to be folded at column 76 by".to_string(),
                format!("  writers, for user {n}"),
                format!("cn:: {}", base64_of(&format!("Ünïcode {n}"))),
                "jpegPhoto:< file:photo.bin".to_string(),
            ];
            for line in lines {
                write!(file, "{line}{newline}").unwrap();
            }
            let blank_lines = 1 + n % 3;
            for _ in 0..blank_lines {
                write!(file, "{newline}").unwrap();
            }
            file.flush().unwrap();
            n += 1;
        }
        drop(file);
        path
    }

    fn base64_of(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    /// The file at `path` read whole: its entries, what was imported, the inputs digest;
    /// or the error.
    fn read_whole(files: &Tree, dir: &Path, path: &Path) -> Result<Read, String> {
        let mut entries = Vec::new();
        let mut digest = InputsDigest::unused();
        let import = read_source(&source_reading(path), files, dir, &mut digest, &mut |e| {
            entries.push(e)
        })
        .map_err(|e| e.to_string())?;
        Ok((entries, import.unwrap(), digest.finish()))
    }

    /// The same read in halves: the first half's entries, then the second's.
    fn read_in_halves(files: &Tree, dir: &Path, path: &Path) -> Result<Read, String> {
        let source = source_reading(path);
        let halves = halves_of(&source, files).expect("a file to read in halves");
        let (mut first, mut second) = (Vec::new(), Vec::new());
        let mut digest = InputsDigest::unused();
        let import = read_halves(
            &source,
            halves,
            dir,
            &mut digest,
            &mut |e| first.push(e),
            &mut |e| second.push(e),
        )
        .map_err(|e| e.to_string())?;
        assert!(!first.is_empty() && !second.is_empty());
        first.extend(second);
        Ok((first, import, digest.finish()))
    }

    type Read = (Vec<Entry>, SourceImport, String);

    #[test]
    fn halves_read_what_the_whole_file_reads() {
        for newline in ["\n", "\r\n"] {
            let dir = tempfile::tempdir().unwrap();
            let path = large_ldif(dir.path(), newline);
            let files = Tree::working_tree(dir.path());
            let whole = read_whole(&files, dir.path(), &path).unwrap();
            let halves = read_in_halves(&files, dir.path(), &path).unwrap();
            assert!(whole.0.len() > 10_000, "{} entries", whole.0.len());
            assert_eq!(halves.0.len(), whole.0.len());
            assert!(halves.0 == whole.0, "the entries differ");
            assert_eq!(halves.1, whole.1);
            assert_eq!(halves.2, whole.2);
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                halves.1.content.digest,
                format!("sha256:{:x}", Sha256::digest(&bytes))
            );
        }
    }

    /// `path` with line `line` (1-based) replaced by `text`.
    fn replace_line(path: &Path, line: usize, text: &str) {
        let content = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<&str> = content.split('\n').collect();
        lines[line - 1] = text;
        std::fs::write(path, lines.join("\n")).unwrap();
    }

    #[test]
    fn an_error_names_the_files_line_and_the_first_half_speaks_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = large_ldif(dir.path(), "\n");
        let files = Tree::working_tree(dir.path());
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        // A line near the end, in the second half: the whole read and the halves agree.
        let late = (lines - 40..lines).find(|&line| {
            let content = std::fs::read_to_string(&path).unwrap();
            content
                .split('\n')
                .nth(line - 1)
                .unwrap()
                .starts_with("uid: ")
        });
        let late = late.unwrap();
        replace_line(&path, late, "uid no colon here");
        let whole = read_whole(&files, dir.path(), &path).unwrap_err();
        assert!(
            whole.contains(&format!("directory.ldif:{late}:")),
            "{whole}"
        );
        assert_eq!(
            read_in_halves(&files, dir.path(), &path).unwrap_err(),
            whole
        );
        // And one near the start as well: the first half's error is the one reported.
        replace_line(&path, 6, "uid no colon here either");
        let whole = read_whole(&files, dir.path(), &path).unwrap_err();
        assert!(whole.contains("directory.ldif:6:"), "{whole}");
        assert_eq!(
            read_in_halves(&files, dir.path(), &path).unwrap_err(),
            whole
        );
    }

    #[test]
    fn the_second_half_stops_reading_once_the_first_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = large_ldif(dir.path(), "\n");
        let files = Tree::working_tree(dir.path());
        let whole_second_half = {
            let source = source_reading(&path);
            let halves = halves_of(&source, &files).unwrap();
            let mut entries = 0;
            read_second_half(&halves, &AtomicBool::new(false), &mut |_| entries += 1).unwrap();
            entries
        };
        // The third record of the first half is broken; the second half's thread waits
        // at its first entry until the first half has read the two before it.
        let content = std::fs::read_to_string(&path).unwrap();
        let third_uid = content.find("\nuid: user2\n").unwrap();
        let mut broken = content.clone();
        broken.replace_range(third_uid + 1..third_uid + 5, "uid ");
        std::fs::write(&path, broken).unwrap();
        let source = source_reading(&path);
        let halves = halves_of(&source, &files).unwrap();
        let first_seen = std::sync::atomic::AtomicUsize::new(0);
        let mut second_seen = 0;
        let error = read_halves(
            &source,
            halves,
            dir.path(),
            &mut InputsDigest::unused(),
            &mut |_| {
                first_seen.fetch_add(1, Ordering::SeqCst);
            },
            &mut |_| {
                while first_seen.load(Ordering::SeqCst) < 2 {
                    std::thread::yield_now();
                }
                second_seen += 1;
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("directory.ldif:"), "{error}");
        // What it read before the stop: its reader's first buffer at most.
        assert!(
            second_seen * 10 < whole_second_half,
            "{second_seen} of {whole_second_half} entries read after the first half failed"
        );
    }

    #[test]
    fn a_file_that_changes_while_it_is_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = large_ldif(dir.path(), "\n");
        let files = Tree::working_tree(dir.path());
        let source = source_reading(&path);
        let halves = halves_of(&source, &files).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"\ndn: cn=late,dc=example,dc=com\ncn: late\n")
            .unwrap();
        let mut digest = InputsDigest::unused();
        let error = read_halves(
            &source,
            halves,
            dir.path(),
            &mut digest,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            error.to_string().ends_with(
                "directory.ldif: changed while it was read; read it again once it is written"
            ),
            "{error}"
        );
    }

    #[test]
    fn only_a_large_working_tree_content_file_with_a_blank_line_to_start_at_is_halved() {
        let dir = tempfile::tempdir().unwrap();
        let files = Tree::working_tree(dir.path());
        let small = dir.path().join("small.ldif");
        std::fs::write(&small, "dn: cn=a,dc=x\ncn: a\n\ndn: cn=b,dc=x\ncn: b\n").unwrap();
        assert!(halves_of(&source_reading(&small), &files).is_none());
        // One record of 9 MiB: no blank line to start a second half at.
        let one = dir.path().join("one.ldif");
        let mut text = String::from("dn: cn=a,dc=x\n");
        while text.len() < HALVES_FROM_BYTES as usize + (1 << 20) {
            text.push_str("description: one long record\n");
        }
        std::fs::write(&one, text).unwrap();
        assert!(halves_of(&source_reading(&one), &files).is_none());
        // With change files, the content is read whole to apply them.
        let large = large_ldif(dir.path(), "\n");
        let mut with_changes = source_reading(&large);
        if let SourceLocation::Ldif { changes, .. } = &mut with_changes.location {
            *changes = Some(dir.path().join("changes/*.ldif"));
        }
        assert!(halves_of(&with_changes, &files).is_none());
        assert!(halves_of(&source_reading(&large), &files).is_some());
    }

    #[test]
    fn the_second_half_starts_at_the_first_blank_line_the_search_finds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // A blank line cut by the search's chunks is found all the same.
        for blank in ["\n\n", "\n\r\n"] {
            for before in [
                SEARCH_CHUNK - 3,
                SEARCH_CHUNK - 2,
                SEARCH_CHUNK - 1,
                SEARCH_CHUNK,
            ] {
                let mut bytes = vec![b'x'; before];
                bytes.extend_from_slice(blank.as_bytes());
                bytes.extend_from_slice(b"dn: cn=a\n");
                std::fs::write(&path, &bytes).unwrap();
                let file = File::open(&path).unwrap();
                let found = blank_line_after(&file, 0, bytes.len() as u64).unwrap();
                assert_eq!(found, Some(before as u64 + 1), "{blank:?} after {before}");
            }
        }
        std::fs::write(&path, "dn: cn=a\ncn: a\n").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(blank_line_after(&file, 0, 15).unwrap(), None);
    }
}
