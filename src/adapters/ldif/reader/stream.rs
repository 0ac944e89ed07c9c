//! The reader itself: [`LdifReader`] reads a block at a time and hands it to
//! [`parse_block`], and owns the buffers and the state kept from record to record. It
//! must not look inside lines: that is for the modules it drives.

use std::io::BufRead;

use super::assemble::{parse_block, Kind, State};
use super::decode::{value_too_large, Decoder};
use super::line::split;
use super::scan::{Block, ReadError};
use crate::adapters::ldif::error::LdifError;
use crate::adapters::ldif::record::Record;
use crate::adapters::ldif::url::{FileUrls, UrlResolver};

/// The largest value (decoded, in bytes) a reader accepts unless told otherwise: an
/// `ldif` source's `max_value_bytes` by default.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 16 << 20;

/// How much longer than the encoded limit a logical line may grow while it is read (the
/// attribute description, spaces, folds) before it is refused as holding too large a
/// value; the exact check comes when the value is decoded.
pub(super) const LINE_SLACK: usize = 64 << 10;

/// Reads LDIF records one at a time from a [`BufRead`].
///
/// ```
/// use registrar::ldif::{LdifReader, Record};
///
/// let ldif = b"version: 1\n\ndn: cn=a,dc=example\ncn: a\nobjectClass: person\n";
/// let records: Vec<Record> = LdifReader::new(&ldif[..]).collect::<Result<_, _>>().unwrap();
/// assert_eq!(records[0].dn(), "cn=a,dc=example");
/// ```
///
/// After the first error the iterator ends. URL values (`attr:< file:///path`) are read
/// with [`FileUrls::absolute_only`] unless [`LdifReader::with_resolver`] says otherwise.
pub struct LdifReader<R> {
    input: R,
    block: Block,
    scratch: Vec<u8>,
    decoder: Decoder,
    state: State,
    next_line: usize,
    finished: bool,
}

impl<R: BufRead> LdifReader<R> {
    /// A reader of `input` that resolves only absolute `file:` URL values.
    pub fn new(input: R) -> Self {
        LdifReader {
            input,
            block: Block::default(),
            scratch: Vec::new(),
            decoder: Decoder::new(Box::new(FileUrls::absolute_only()), DEFAULT_MAX_VALUE_BYTES),
            state: State::default(),
            next_line: 1,
            finished: false,
        }
    }

    /// Uses `resolver` for `attr:< URL` values, e.g. [`FileUrls::relative_to`] the
    /// directory of the file being read.
    pub fn with_resolver(mut self, resolver: impl UrlResolver + 'static) -> Self {
        self.decoder.resolver = Box::new(resolver);
        self
    }

    /// Uses `resolver`, already boxed, for `attr:< URL` values.
    pub fn with_boxed_resolver(mut self, resolver: Box<dyn UrlResolver>) -> Self {
        self.decoder.resolver = resolver;
        self
    }

    /// Refuses values larger than `max_value_bytes` (decoded) instead of the default
    /// [`DEFAULT_MAX_VALUE_BYTES`].
    pub fn with_max_value_bytes(mut self, max_value_bytes: usize) -> Self {
        self.decoder.max_value_bytes = max_value_bytes;
        self
    }

    /// Reads `input` as the rest of a file of content records whose start (with any
    /// `version:` line) is read apart: `input` starts at a record boundary, numbered
    /// line `line` in errors. A change record in it is refused as one in a file of
    /// content records.
    pub fn resuming_at_line(mut self, line: usize) -> Self {
        self.next_line = line;
        self.state.started = true;
        self.state.kind = Some(Kind::Content);
        self
    }

    /// The line of the `dn:` of the record returned last (0 before the first record).
    pub fn record_line(&self) -> usize {
        self.state.record_line
    }

    /// Reads the next block of non-blank physical lines into `self.block`. Returns false
    /// at the end of the input when no line was read.
    fn read_block(&mut self) -> Result<bool, LdifError> {
        let next_line = &mut self.next_line;
        let max_value_bytes = self.decoder.max_value_bytes;
        let max_line = max_value_bytes
            .div_ceil(3)
            .saturating_mul(4)
            .saturating_add(LINE_SLACK);
        let read = self
            .block
            .read(&mut self.input, next_line, max_line)
            .map_err(|e| match e {
                ReadError::Io(e) => LdifError::new(*next_line, format!("cannot read: {e}")),
                ReadError::LineTooLong { line, head } => {
                    too_long_line(line, &head, max_value_bytes)
                }
            })?;
        self.block.ascii = self.block.bytes.is_ascii();
        Ok(read)
    }
}

impl<R: BufRead> Iterator for LdifReader<R> {
    type Item = Result<Record, LdifError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            let parsed = match self.read_block() {
                Ok(true) => parse_block(
                    &self.block,
                    &mut self.scratch,
                    &mut self.decoder,
                    &mut self.state,
                ),
                Ok(false) => {
                    self.finished = true;
                    return None;
                }
                Err(error) => Err(error),
            };
            match parsed {
                Ok(Some(record)) => return Some(Ok(record)),
                Ok(None) => {}
                Err(error) => {
                    self.finished = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }
}

/// The error for a logical line too long to hold a value within `max_value_bytes`: at its
/// value, naming its attribute, when `head` (its start) shows them.
pub(super) fn too_long_line(line: usize, head: &[u8], max_value_bytes: usize) -> LdifError {
    match split(head) {
        Ok(split) => {
            let column = head[..split.value.start]
                .iter()
                .filter(|&&b| (b & 0xC0) != 0x80)
                .count()
                + 1;
            LdifError::at(
                line,
                column,
                value_too_large(split.description(), max_value_bytes),
            )
        }
        Err(_) => LdifError::at(
            line,
            1,
            format!(
                "line longer than any value within the limit of {max_value_bytes} bytes \
                 (max_value_bytes) could be"
            ),
        ),
    }
}
