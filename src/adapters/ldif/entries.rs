//! Entries in and out of LDIF as a whole: an `ldif` source's content file read (or
//! streamed) into entries, and one entry as one LDIF record and back, the form in which
//! the store keeps its snapshots. Change records are refused here: they belong to a
//! source's change files (see [`super::Directory`]).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use super::error::{LdifError, LdifFileError};
use super::reader::LdifReader;
use super::record::Record;
use super::url::{self, FileUrls};
use super::writer::write_entry;
use registrar_core::entry::Entry;

/// Reads the content records of an LDIF file, resolving relative `attr:< path` values
/// against the file's directory.
///
/// Errors display as `path:line:col: message`. A file of change records is an error: an
/// `ldif` source's `path` must hold entries.
pub fn read_content_file(path: &Path) -> Result<Vec<Entry>, LdifFileError> {
    let file = File::open(path).map_err(|source| LdifFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = LdifReader::new(BufReader::with_capacity(1 << 16, file))
        .with_resolver(FileUrls::relative_to(url::base_dir_of(path)));
    collect_content(reader).map_err(|error| LdifFileError::Parse {
        path: path.to_path_buf(),
        error,
    })
}

/// Reads the content records in `bytes`, resolving relative `attr:< path` values against
/// `base_dir`. For tests and in-memory input; see [`read_content_file`].
pub fn parse_content(bytes: &[u8], base_dir: &Path) -> Result<Vec<Entry>, LdifError> {
    collect_content(LdifReader::new(bytes).with_resolver(FileUrls::relative_to(base_dir)))
}

fn collect_content<R: BufRead>(reader: LdifReader<R>) -> Result<Vec<Entry>, LdifError> {
    let mut entries = Vec::new();
    for_each_entry(reader, |entry| entries.push(entry))?;
    Ok(entries)
}

/// Streams the content records of `reader` into `each`, one entry at a time, so that
/// memory does not grow with the file. A change record is an error: an `ldif` source's
/// `path` must hold entries.
pub fn for_each_entry<R: BufRead>(
    mut reader: LdifReader<R>,
    mut each: impl FnMut(Entry),
) -> Result<(), LdifError> {
    while let Some(record) = reader.next() {
        match record? {
            Record::Content(entry) => each(entry),
            Record::Change(_) => {
                return Err(LdifError::new(
                    reader.record_line(),
                    "the file contains change records; an ldif source's path must hold \
                     content records (entries), and change files belong under its \
                     \"changes\"",
                ))
            }
        }
    }
    Ok(())
}

/// `entry` as one LDIF content record (no `version:` line), as [`write_entry`] writes
/// it: what [`parse_entry_record`] reads back as the same entry.
pub fn entry_record(entry: &Entry) -> io::Result<Vec<u8>> {
    let mut record = Vec::with_capacity(512);
    write_entry(&mut record, entry)?;
    Ok(record)
}

/// The entry in one LDIF content record written by [`entry_record`] (of an entry read
/// within its source's value limit: this reader sets none).
pub fn parse_entry_record(record: &[u8]) -> Result<Entry, LdifError> {
    match LdifReader::new(record)
        .with_max_value_bytes(usize::MAX)
        .next()
    {
        Some(Ok(Record::Content(entry))) => Ok(entry),
        Some(Ok(Record::Change(_))) => Err(LdifError::new(1, "a change record, not an entry")),
        Some(Err(error)) => Err(error),
        None => Err(LdifError::new(1, "no record")),
    }
}
