//! The streaming LDIF (RFC 2849) reader: bytes in, one [`Record`] at a time out.
//!
//! The reader holds one record's bytes at a time (memory follows the largest record, not
//! the file) and reuses its buffers from record to record. It checks LDIF syntax and the
//! shape of change records. It must not validate DN syntax, schema or duplicate DNs
//! (that is for whoever builds a directory from the records), must not apply change
//! records, and must not fetch URL values itself: its [`UrlResolver`] does.
//!
//! Leniencies, as in OpenLDAP's tools (and python-ldap, where it reads the same
//! thing): `version: 1` may be left out; raw UTF-8 (non-ASCII) text is accepted in values
//! and DNs; keywords (`dn`, `changetype`, `add`, `newrdn`, ...) and the attribute of a
//! mod-spec's values match case-insensitively; the `-` after a modify record's last
//! mod-spec may be left out; base64 may lack its padding.
//!
//! Strictness: a continuation line starts with exactly one space (RFC 2849). A line
//! starting with a tab is an error, not a continuation (OpenLDAP accepts tabs; no file in
//! the corpus uses them, and a tab-indented line in a hand-edited file is more likely a
//! mistake than a fold). Raw values must be valid UTF-8; binary values must be base64
//! (`attr:: ...`). A file holds content records or change records, not both. `dn:` or
//! `changetype:` inside an entry is an error (a missing blank line), not an attribute.
//!
//! Bounds: no value may be larger than [`DEFAULT_MAX_VALUE_BYTES`] (or the limit given
//! to [`LdifReader::with_max_value_bytes`]), plain, base64 or read from a URL. A line too
//! long to hold a value within the limit is refused while it is read, before it is held
//! whole; a URL's file is refused on its size, before it is read.

use std::cell::RefCell;
use std::io::BufRead;
use std::ops::Range;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::error::LdifError;
use super::record::{Change, Record};
use super::record::{ChangeRecord, Control, ModOp, ModRdn, Modification, RenameKeyword};
use super::url::{FileUrls, UrlResolver};
use registrar_core::entry::{Attribute, Entry};
use registrar_core::quote::quote_for_message;

/// The largest value (decoded, in bytes) a reader accepts unless told otherwise: an
/// `ldif` source's `max_value_bytes` by default.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 16 << 20;

/// How much longer than the encoded limit a logical line may grow while it is read (the
/// attribute description, spaces, folds) before it is refused as holding too large a
/// value; the exact check comes when the value is decoded.
const LINE_SLACK: usize = 64 << 10;

/// Base64 as LDIF writers produce it; padding may be missing and trailing bits set, as
/// python-ldap and OpenLDAP accept.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

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
            decoder: Decoder {
                base64_text: Vec::new(),
                resolver: Box::new(FileUrls::absolute_only()),
                spare_values: Vec::new(),
                max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            },
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

    /// Refuses values larger than `max_value_bytes` (decoded) instead of the default
    /// [`DEFAULT_MAX_VALUE_BYTES`].
    pub fn with_max_value_bytes(mut self, max_value_bytes: usize) -> Self {
        self.decoder.max_value_bytes = max_value_bytes;
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

/// What the reader remembers between records.
#[derive(Default)]
struct State {
    /// Whether the first non-comment line of the input (where `version:` may be) is past.
    started: bool,
    /// The kind of the first record; every other record must be of the same kind.
    kind: Option<Kind>,
    record_line: usize,
    /// How many attributes the last content record had: files tend to hold alike
    /// entries, so this sizes a new entry's attribute list.
    attributes_hint: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Content,
    Change,
}

/// The physical lines of one record (or of a run of comments): no blank line inside.
#[derive(Default)]
struct Block {
    bytes: Vec<u8>,
    /// Byte ranges in `bytes` of each line, without its line ending. Never empty.
    lines: Vec<(usize, usize)>,
    /// The 1-based line number of `lines[0]`; the others follow without gaps.
    first_line: usize,
    /// Whether `bytes` is all ASCII, so text values need no UTF-8 check.
    ascii: bool,
}

/// A logical line: physical lines `first..first + count` of a block, unfolded.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: usize,
    count: usize,
}

impl Block {
    /// Replaces the block with the next run of non-blank lines of `input`, skipping blank
    /// lines before it and consuming the blank line after it. `next_line` is the number of
    /// the next physical line of `input`. Returns false at the end of the input when no
    /// line was read.
    ///
    /// Whole buffers are scanned for line ends and copied at once, not line by line. A
    /// logical line (folds included) longer than `max_line` bytes is an error as soon as
    /// it is seen, before the rest of it is read.
    fn read(
        &mut self,
        input: &mut impl BufRead,
        next_line: &mut usize,
        max_line: usize,
    ) -> Result<bool, ReadError> {
        self.bytes.clear();
        self.lines.clear();
        // Where, in `bytes`, the line being read starts.
        let mut line_start = 0;
        // The logical line being read: where it starts, its line number, its length.
        let mut logical = LogicalLine::default();
        loop {
            let chunk = match input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Io(e)),
            };
            if chunk.is_empty() {
                // The last line has no line feed.
                if self.bytes.len() > line_start {
                    let mut end = self.bytes.len();
                    if self.bytes[end - 1] == b'\r' {
                        end -= 1;
                    }
                    self.push_line(line_start, end, next_line);
                }
                return Ok(!self.lines.is_empty());
            }
            // chunk[copied..] is not in `bytes` yet; once appended, chunk[j] (j >= copied)
            // lands at `bytes.len() + j - copied`.
            let mut copied = 0;
            let mut begin = 0;
            let mut finished = false;
            while let Some(found) = find_newline(&chunk[begin..]) {
                let newline = begin + found;
                let mut end = self.bytes.len() + newline - copied;
                let carriage_return = if newline > copied {
                    chunk[newline - 1] == b'\r'
                } else {
                    self.bytes.last() == Some(&b'\r')
                };
                if carriage_return && end > line_start {
                    end -= 1;
                }
                if end > line_start {
                    let first = self.byte_at(chunk, copied, line_start);
                    logical.extend(first, line_start, end, *next_line, !self.lines.is_empty());
                    if logical.length > max_line {
                        return Err(logical.too_long(self, chunk, copied));
                    }
                    self.push_line(line_start, end, next_line);
                } else if self.lines.is_empty() {
                    // A blank line before the block: forget it.
                    *next_line += 1;
                    self.bytes.clear();
                    copied = newline + 1;
                } else {
                    // The blank line after the block.
                    *next_line += 1;
                    self.bytes.extend_from_slice(&chunk[copied..begin]);
                    begin = newline + 1;
                    finished = true;
                    break;
                }
                begin = newline + 1;
                line_start = self.bytes.len() + begin - copied;
            }
            if !finished {
                // The line still open at the end of the chunk: refuse it before holding
                // it when it is already too long.
                let open_end = self.bytes.len() + chunk.len() - copied;
                if open_end > line_start {
                    let first = self.byte_at(chunk, copied, line_start);
                    let mut open = logical.clone();
                    open.extend(
                        first,
                        line_start,
                        open_end,
                        *next_line,
                        !self.lines.is_empty(),
                    );
                    if open.length > max_line {
                        return Err(open.too_long(self, chunk, copied));
                    }
                }
                self.bytes.extend_from_slice(&chunk[copied..]);
                begin = chunk.len();
            }
            input.consume(begin);
            if finished {
                return Ok(true);
            }
        }
    }

    /// The byte at `position` of `bytes` as it will be once `chunk[copied..]` is
    /// appended to it.
    fn byte_at(&self, chunk: &[u8], copied: usize, position: usize) -> u8 {
        match position.checked_sub(self.bytes.len()) {
            Some(in_chunk) => chunk[copied + in_chunk],
            None => self.bytes[position],
        }
    }

    fn push_line(&mut self, start: usize, end: usize, next_line: &mut usize) {
        if self.lines.is_empty() {
            self.first_line = *next_line;
        }
        *next_line += 1;
        self.lines.push((start, end));
    }

    fn physical(&self, index: usize) -> &[u8] {
        let (start, end) = self.lines[index];
        &self.bytes[start..end]
    }

    /// The unfolded text of `span`: borrowed when it is one physical line, else built
    /// in `scratch` (each continuation loses its one leading space).
    fn text<'a>(&'a self, span: Span, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        if span.count == 1 {
            return self.physical(span.first);
        }
        scratch.clear();
        scratch.extend_from_slice(self.physical(span.first));
        for index in span.first + 1..span.first + span.count {
            scratch.extend_from_slice(&self.physical(index)[1..]);
        }
        scratch
    }

    /// The physical line and character column of byte `offset` of `span`'s unfolded
    /// text.
    fn locate(&self, span: Span, offset: usize) -> (usize, usize) {
        let mut remaining = offset;
        for k in 0..span.count {
            let physical = self.physical(span.first + k);
            let skip = usize::from(k > 0);
            let length = physical.len() - skip;
            if remaining < length || k + 1 == span.count {
                let byte = (skip + remaining).min(physical.len());
                let column = physical[..byte]
                    .iter()
                    .filter(|&&b| (b & 0xC0) != 0x80)
                    .count()
                    + 1;
                return (self.first_line + span.first + k, column);
            }
            remaining -= length;
        }
        (self.first_line + span.first, 1)
    }

    fn line_of(&self, span: Span) -> usize {
        self.first_line + span.first
    }

    fn error(&self, span: Span, message: impl Into<String>) -> LdifError {
        LdifError::new(self.line_of(span), message)
    }

    fn error_at(&self, span: Span, offset: usize, message: impl Into<String>) -> LdifError {
        let (line, column) = self.locate(span, offset);
        LdifError::at(line, column, message)
    }

    fn problem(&self, span: Span, problem: Problem) -> LdifError {
        match problem.offset {
            Some(offset) => self.error_at(span, offset, problem.message),
            None => self.error(span, problem.message),
        }
    }
}

/// Why [`Block::read`] stopped.
enum ReadError {
    Io(std::io::Error),
    /// The logical line starting at physical line `line` is too long; `head` is its
    /// start, for the message.
    LineTooLong {
        line: usize,
        head: Vec<u8>,
    },
}

/// The logical line [`Block::read`] is in, to bound its length.
#[derive(Clone, Default)]
struct LogicalLine {
    /// Where it starts, in `Block::bytes` coordinates.
    start: usize,
    /// Its first physical line's number.
    line: usize,
    /// Its unfolded length so far.
    length: usize,
}

impl LogicalLine {
    /// Takes in the physical line `start..end` (numbered `number`, starting with `first`):
    /// a continuation when it starts with a space after another line of the block.
    fn extend(&mut self, first: u8, start: usize, end: usize, number: usize, after_line: bool) {
        if first == b' ' && after_line {
            self.length += end - start - 1;
        } else {
            *self = LogicalLine {
                start,
                line: number,
                length: end - start,
            };
        }
    }

    /// The error for this line, with its first bytes (up to a description's worth).
    fn too_long(&self, block: &Block, chunk: &[u8], copied: usize) -> ReadError {
        const HEAD: usize = 256;
        let head = (self.start..)
            .take(HEAD)
            .take_while(|&position| position < block.bytes.len() + chunk.len() - copied)
            .map(|position| block.byte_at(chunk, copied, position))
            .take_while(|&b| b != b'\n' && b != b'\r')
            .collect();
        ReadError::LineTooLong {
            line: self.line,
            head,
        }
    }
}

/// The error for a logical line too long to hold a value within `max_value_bytes`: at its
/// value, naming its attribute, when `head` (its start) shows them.
fn too_long_line(line: usize, head: &[u8], max_value_bytes: usize) -> LdifError {
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

/// The message for a value of `description` larger than `max_value_bytes`.
fn value_too_large(description: &str, max_value_bytes: usize) -> String {
    format!(
        "value of \"{description}\" is larger than the limit of {max_value_bytes} bytes \
         (max_value_bytes of the source)"
    )
}

/// Walks the logical lines of a block, skipping comments.
#[derive(Default)]
struct Cursor {
    next: usize,
}

impl Cursor {
    fn next_span(&mut self, block: &Block) -> Result<Option<Span>, LdifError> {
        while self.next < block.lines.len() {
            let first = self.next;
            self.next += 1;
            while self.next < block.lines.len() && block.physical(self.next).first() == Some(&b' ')
            {
                self.next += 1;
            }
            let span = Span {
                first,
                count: self.next - first,
            };
            match block.physical(first).first() {
                Some(b'#') => continue,
                // A line that was only a carriage return (a bare CR, not CRLF).
                None => {
                    return Err(block.error_at(
                        span,
                        0,
                        "empty line holding only a carriage return; lines end with LF or CRLF",
                    ))
                }
                Some(b' ') => {
                    return Err(block.error_at(
                        span,
                        0,
                        "line starts with a space, which continues the line before it, \
                         but there is none (a blank line ends a record)",
                    ))
                }
                Some(b'\t') => {
                    return Err(block.error_at(
                        span,
                        0,
                        "line starts with a tab; RFC 2849 continuation lines start with \
                         exactly one space",
                    ))
                }
                _ => return Ok(Some(span)),
            }
        }
        Ok(None)
    }
}

/// A problem found in a logical line, at a byte offset of its unfolded text if
/// meaningful.
struct Problem {
    offset: Option<usize>,
    message: String,
}

/// How a value is written: `attr: text`, `attr:: base64` or `attr:< url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Text,
    Base64,
    Url,
}

/// One `attr: value` logical line, split.
struct Line<'t> {
    text: &'t [u8],
    /// `text[..colon]`, checked to be an attribute description (so ASCII).
    description: &'t str,
    kind: ValueKind,
    /// `FILL` skipped; for base64 and URLs, trailing spaces too.
    value: Range<usize>,
}

impl<'t> Line<'t> {
    fn description(&self) -> &'t str {
        self.description
    }

    fn raw_value(&self) -> &'t [u8] {
        &self.text[self.value.clone()]
    }

    fn is(&self, keyword: &str) -> bool {
        self.description().eq_ignore_ascii_case(keyword)
    }
}

/// Bytes allowed in an attribute description: RFC 4512 `keychar`s, `.` for numeric
/// OIDs, `;` between options, and `_`, which some vendor schemas use.
const DESCRIPTION_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b';' | b'_');
        b += 1;
    }
    table
};

/// [`DESCRIPTION_BYTES`] as flags, to check a description in the pass that finds its
/// colon: [`NOT_IN_DESCRIPTION`], [`OPTION_SEPARATOR`], [`COLON`].
const BYTE_CLASS: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = if b == b':' as usize {
            COLON
        } else if b == b';' as usize {
            OPTION_SEPARATOR
        } else if DESCRIPTION_BYTES[b] {
            0
        } else {
            NOT_IN_DESCRIPTION
        };
        b += 1;
    }
    table
};
const NOT_IN_DESCRIPTION: u8 = 1;
const OPTION_SEPARATOR: u8 = 2;
const COLON: u8 = 4;

/// Splits `attr: value`, `attr:: base64` or `attr:< url`.
fn split(text: &[u8]) -> Result<Line<'_>, Problem> {
    // One pass to the colon, collecting what kinds of bytes the description holds.
    let mut seen = 0;
    let mut colon = None;
    for (i, &b) in text.iter().enumerate() {
        let class = BYTE_CLASS[usize::from(b)];
        if class == COLON {
            colon = Some(i);
            break;
        }
        seen |= class;
    }
    let Some(colon) = colon else {
        let hint = if text.first() == Some(&b'-') {
            " (\"-\" only ends a mod-spec in a \"changetype: modify\" record)"
        } else {
            ""
        };
        return Err(Problem {
            offset: None,
            message: format!(
                "expected \"attr: value\", found {}{hint}",
                quote_for_message(text)
            ),
        });
    };
    let description = &text[..colon];
    if let Some(bad) = (seen & NOT_IN_DESCRIPTION != 0)
        .then(|| {
            description
                .iter()
                .position(|&b| !DESCRIPTION_BYTES[usize::from(b)])
        })
        .flatten()
    {
        return Err(Problem {
            offset: Some(bad),
            message: format!(
                "invalid character {} in attribute name {}",
                describe_char(&text[bad..]),
                quote_for_message(description)
            ),
        });
    }
    check_description(description, seen & OPTION_SEPARATOR != 0)?;
    // SAFETY: every byte of `description` is in `DESCRIPTION_BYTES` (checked above), all
    // of them ASCII, so it is UTF-8. (A checked conversion cost a call per line.)
    let description = unsafe { std::str::from_utf8_unchecked(description) };
    let (kind, mut start) = match text.get(colon + 1) {
        Some(b':') => (ValueKind::Base64, colon + 2),
        Some(b'<') => (ValueKind::Url, colon + 2),
        _ => (ValueKind::Text, colon + 1),
    };
    while text.get(start) == Some(&b' ') {
        start += 1;
    }
    let mut end = text.len();
    if kind != ValueKind::Text {
        while end > start && text[end - 1] == b' ' {
            end -= 1;
        }
    }
    Ok(Line {
        text,
        description,
        kind,
        value: start..end,
    })
}

/// Checks the shape of an attribute description whose bytes are allowed: a name starting
/// with a letter or digit, then options, none of them empty.
fn check_description(description: &[u8], has_options: bool) -> Result<(), Problem> {
    let Some(&first) = description.first() else {
        return Err(Problem {
            offset: Some(0),
            message: "missing attribute name before \":\"".to_string(),
        });
    };
    if !first.is_ascii_alphanumeric() {
        return Err(Problem {
            offset: Some(0),
            message: format!(
                "attribute name \"{}\" must start with a letter or digit",
                String::from_utf8_lossy(description)
            ),
        });
    }
    if !has_options {
        return Ok(());
    }
    if let Some(i) = description
        .windows(2)
        .position(|pair| pair == b";;")
        .map(|i| i + 1)
        .or_else(|| (description.last() == Some(&b';')).then(|| description.len() - 1))
    {
        return Err(Problem {
            offset: Some(i),
            message: format!(
                "empty option in attribute description \"{}\"",
                String::from_utf8_lossy(description)
            ),
        });
    }
    Ok(())
}

/// Whether `description` is one a writer may emit (and this reader accepts).
pub(crate) fn is_valid_description(description: &str) -> bool {
    let bytes = description.as_bytes();
    bytes.iter().all(|&b| DESCRIPTION_BYTES[usize::from(b)])
        && check_description(bytes, bytes.contains(&b';')).is_ok()
}

/// `"x"`, or `U+0009` style for control and non-UTF-8 bytes.
fn describe_char(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(4)];
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
    };
    match valid.chars().next() {
        Some(c) if !c.is_control() => format!("\"{c}\""),
        Some(c) => format!("U+{:04X}", u32::from(c)),
        None => format!("byte 0x{:02X}", bytes[0]),
    }
}

/// Turns the value part of a line into bytes: checks UTF-8, decodes base64, resolves URLs.
struct Decoder {
    base64_text: Vec<u8>,
    resolver: Box<dyn UrlResolver>,
    /// Value buffers of recycled entries, to decode values into.
    spare_values: Vec<Vec<u8>>,
    /// The largest value accepted, decoded.
    max_value_bytes: usize,
}

impl Decoder {
    fn value(&mut self, block: &Block, span: Span, line: &Line) -> Result<Vec<u8>, LdifError> {
        let mut out = Vec::new();
        self.value_into(block, span, line, &mut out)?;
        Ok(out)
    }

    /// Appends the value of `line` to `out`.
    fn value_into(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
        out: &mut Vec<u8>,
    ) -> Result<(), LdifError> {
        let raw = line.raw_value();
        if line.kind == ValueKind::Text && raw.len() > self.max_value_bytes {
            return Err(block.error_at(
                span,
                line.value.start,
                value_too_large(line.description(), self.max_value_bytes),
            ));
        }
        match line.kind {
            ValueKind::Text if block.ascii => {
                out.extend_from_slice(raw);
                Ok(())
            }
            ValueKind::Text => match std::str::from_utf8(raw) {
                Ok(_) => {
                    out.extend_from_slice(raw);
                    Ok(())
                }
                Err(e) => Err(block.error_at(
                    span,
                    line.value.start + e.valid_up_to(),
                    format!(
                        "value of \"{0}\" is not valid UTF-8; write binary values in base64 \
                         (\"{0}:: ...\")",
                        line.description()
                    ),
                )),
            },
            ValueKind::Base64 => self.base64(block, span, line, out),
            ValueKind::Url => {
                let url = match std::str::from_utf8(raw) {
                    Ok("") => {
                        return Err(block.error(
                            span,
                            format!("empty URL in value of \"{}\"", line.description()),
                        ))
                    }
                    Ok(url) => url,
                    Err(_) => {
                        return Err(block.error(
                            span,
                            format!("URL in value of \"{}\" is not UTF-8", line.description()),
                        ))
                    }
                };
                let value = self
                    .resolver
                    .resolve(url, self.max_value_bytes)
                    .map_err(|reason| {
                        block.error_at(
                            span,
                            line.value.start,
                            format!(
                                "cannot read the value of \"{}\" from {}: {reason}",
                                line.description(),
                                quote_for_message(url)
                            ),
                        )
                    })?;
                out.extend_from_slice(&value);
                Ok(())
            }
        }
    }

    /// An empty buffer for a value: a recycled one when there is one.
    fn spare_value(&mut self) -> Vec<u8> {
        self.spare_values.pop().unwrap_or_default()
    }

    /// Keeps `values`' buffers for later values, as many as are worth keeping.
    fn keep_values(&mut self, values: impl Iterator<Item = Vec<u8>>) {
        for mut value in values {
            if self.spare_values.len() >= MAX_SPARE_VALUES {
                break;
            }
            if value.capacity() <= MAX_RECYCLED_VALUE {
                value.clear();
                self.spare_values.push(value);
            }
        }
    }

    fn base64(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
        out: &mut Vec<u8>,
    ) -> Result<(), LdifError> {
        let raw = line.raw_value();
        // A fold may keep spaces inside base64 text (a continuation with two spaces);
        // they carry no data, so drop them as python-ldap and OpenLDAP do.
        let filtered = raw.contains(&b' ');
        let input: &[u8] = if filtered {
            self.base64_text.clear();
            self.base64_text
                .extend(raw.iter().copied().filter(|&b| b != b' '));
            &self.base64_text
        } else {
            raw
        };
        // Valid base64 decodes to 3 bytes per 4 characters, padding aside.
        let padding = input.iter().rev().take(2).filter(|&&b| b == b'=').count();
        if (input.len() - padding) * 3 / 4 > self.max_value_bytes {
            return Err(block.error_at(
                span,
                line.value.start,
                value_too_large(line.description(), self.max_value_bytes),
            ));
        }
        out.reserve(input.len() / 4 * 3 + 3);
        match BASE64.decode_vec(input, out) {
            Ok(()) => Ok(()),
            Err(e) => {
                let what = format!("invalid base64 in value of \"{}\"", line.description());
                match e {
                    base64::DecodeError::InvalidByte(at, byte) => {
                        let message = format!(
                            "{what}: {} is not a base64 character",
                            describe_char(&[byte])
                        );
                        if filtered {
                            Err(block.error(span, message))
                        } else {
                            Err(block.error_at(span, line.value.start + at, message))
                        }
                    }
                    base64::DecodeError::InvalidLength(_) => Err(block.error(
                        span,
                        format!("{what}: the text is cut short (its length is not valid)"),
                    )),
                    _ => Err(block.error(span, format!("{what}: bad padding or last character"))),
                }
            }
        }
    }

    /// A value that must be text (a DN, `newrdn:`, `newsuperior:`); `what` names it.
    fn text(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
        what: &str,
    ) -> Result<String, LdifError> {
        let mut text = String::new();
        self.text_into(block, span, line, what, &mut text)?;
        Ok(text)
    }

    /// [`Decoder::text`] into `out`, reusing its buffer.
    fn text_into(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
        what: &str,
        out: &mut String,
    ) -> Result<(), LdifError> {
        if line.kind == ValueKind::Url {
            return Err(block.error(span, format!("{what} cannot be given as a URL")));
        }
        let mut bytes = std::mem::take(out).into_bytes();
        bytes.clear();
        self.value_into(block, span, line, &mut bytes)?;
        *out = String::from_utf8(bytes).map_err(|_| {
            block.error(
                span,
                format!("{what} is not valid UTF-8 after base64 decoding"),
            )
        })?;
        Ok(())
    }
}

thread_local! {
    /// Entries given back with [`recycle`]: content records read on this thread are
    /// filled into them, reusing their allocations.
    static SPARE_ENTRIES: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Entries a thread keeps for reuse, at most (a few batches in flight).
const MAX_SPARE_ENTRIES: usize = 4096;
/// Value buffers a reader keeps for reuse, at most.
const MAX_SPARE_VALUES: usize = 1024;
/// Larger entries and buffers are freed, not kept: the pool must not hold on to the
/// memory of the occasional photo or huge group.
const MAX_RECYCLED_ATTRIBUTES: usize = 64;
const MAX_RECYCLED_VALUES: usize = 64;
const MAX_RECYCLED_VALUE: usize = 4096;

/// Gives entries back for the LDIF readers of this thread to fill again, so that a
/// reader streaming a large file allocates next to nothing per record. Only an
/// optimisation: the entries read are the same either way. Large entries are freed.
pub fn recycle(entries: impl IntoIterator<Item = Entry>) {
    SPARE_ENTRIES.with(|spare| {
        let mut spare = spare.borrow_mut();
        for entry in entries {
            if spare.len() >= MAX_SPARE_ENTRIES {
                break;
            }
            let small = entry.attributes.len() <= MAX_RECYCLED_ATTRIBUTES
                && entry.attributes.iter().all(|attribute| {
                    attribute.values.len() <= MAX_RECYCLED_VALUES
                        && attribute
                            .values
                            .iter()
                            .all(|value| value.capacity() <= MAX_RECYCLED_VALUE)
                });
            if small {
                spare.push(entry);
            }
        }
    });
}

/// An entry to fill: a recycled one when there is one, else a new one with room for
/// `attributes`.
fn spare_entry(attributes: usize) -> Entry {
    SPARE_ENTRIES
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| Entry {
            dn: String::new(),
            attributes: Vec::with_capacity(attributes),
        })
}

/// Adds a value to the record being filled into a (possibly recycled) entry:
/// `attributes[..*used]` are the record's so far; later ones are left from an older
/// record and reused for their buffers. Merges like [`Entry::push_value`], with a fast
/// path for runs of the same attribute.
fn refill(
    attributes: &mut Vec<Attribute>,
    used: &mut usize,
    description: &str,
    value: Vec<u8>,
    decoder: &mut Decoder,
) {
    let live = &mut attributes[..*used];
    if let Some(last) = live.last_mut() {
        if last.description.eq_ignore_ascii_case(description) {
            last.values.push(value);
            return;
        }
    }
    if let Some(attribute) = live
        .iter_mut()
        .find(|attribute| attribute.description.eq_ignore_ascii_case(description))
    {
        attribute.values.push(value);
        return;
    }
    if *used == attributes.len() {
        attributes.push(Attribute {
            description: String::new(),
            // Most attributes hold one value.
            values: Vec::with_capacity(1),
        });
    }
    let attribute = &mut attributes[*used];
    decoder.keep_values(attribute.values.drain(..));
    attribute.description.clear();
    attribute.description.push_str(description);
    attribute.values.push(value);
    *used += 1;
}

/// The value of a keyword line (`changetype:`, `add:`, `deleteoldrdn:`...): plain text,
/// trailing spaces removed.
fn keyword<'t>(block: &Block, span: Span, line: &Line<'t>) -> Result<&'t str, LdifError> {
    if line.kind != ValueKind::Text {
        return Err(block.error(
            span,
            format!(
                "\"{}:\" takes a plain value, not base64 or a URL",
                line.description()
            ),
        ));
    }
    let raw = line.raw_value();
    let end = raw.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    std::str::from_utf8(&raw[..end]).map_err(|_| {
        block.error(
            span,
            format!("value of \"{}:\" is not valid UTF-8", line.description()),
        )
    })
}

/// The index of the first `\n` in `haystack`, eight bytes at a time.
fn find_newline(haystack: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let x = u64::from_le_bytes(word) ^ NEWLINES;
        // The lowest set bit marks the first zero byte of x (later bits may be false).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(offset + (zeros.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

/// A line holding only `-` (trailing spaces allowed): the end of a mod-spec.
fn is_dash(text: &[u8]) -> bool {
    text.first() == Some(&b'-') && text[1..].iter().all(|&b| b == b' ')
}

/// Refuses `dn:` and `changetype:` as attributes of an entry: they mean a blank line is
/// missing between two records.
fn check_attribute_name(block: &Block, span: Span, line: &Line) -> Result<(), LdifError> {
    if line.is("dn") || line.is("changetype") {
        return Err(block.error(
            span,
            format!(
                "\"{}:\" inside a record; is the blank line before it missing?",
                line.description()
            ),
        ));
    }
    Ok(())
}

/// Appends a value to `entry`, with a fast path for runs of the same attribute.
fn push_value(entry: &mut Entry, description: &str, value: Vec<u8>) {
    if let Some(last) = entry.attributes.last_mut() {
        if last.description.eq_ignore_ascii_case(description) {
            last.values.push(value);
            return;
        }
    }
    entry.push_value(description, value);
}

/// Parses one block: `Ok(None)` when it holds only comments (or only `version:`).
fn parse_block(
    block: &Block,
    scratch: &mut Vec<u8>,
    decoder: &mut Decoder,
    state: &mut State,
) -> Result<Option<Record>, LdifError> {
    let mut cursor = Cursor::default();

    // The next logical line, unfolded, as `(span, text)`.
    macro_rules! next_text {
        () => {
            match cursor.next_span(block)? {
                Some(span) => Some((span, block.text(span, &mut *scratch))),
                None => None,
            }
        };
    }
    // The next logical line, split into `attr` and value.
    macro_rules! next_line {
        () => {
            match next_text!() {
                Some((span, text)) => {
                    Some((span, split(text).map_err(|p| block.problem(span, p))?))
                }
                None => None,
            }
        };
    }

    let Some((mut span, mut line)) = next_line!() else {
        return Ok(None);
    };
    if !state.started {
        state.started = true;
        if line.is("version") {
            let version = keyword(block, span, &line)?;
            if version != "1" {
                return Err(block.error(
                    span,
                    format!(
                        "unsupported LDIF version {}: only version 1 exists",
                        quote_for_message(version)
                    ),
                ));
            }
            match next_line!() {
                Some((next_span, next_line)) => {
                    span = next_span;
                    line = next_line;
                }
                None => return Ok(None),
            }
        }
    }

    if !line.is("dn") {
        return Err(block.error(
            span,
            format!(
                "record has no \"dn:\" line: it starts with \"{}:\"; every record starts \
                 with \"dn:\", and a blank line ends a record",
                line.description()
            ),
        ));
    }
    let mut entry = spare_entry(state.attributes_hint);
    decoder.text_into(block, span, &line, "a DN", &mut entry.dn)?;
    let dn_span = span;
    state.record_line = block.line_of(span);

    let mut controls = Vec::new();
    let mut next = next_line!();
    while let Some((span, line)) = &next {
        if !line.is("control") {
            break;
        }
        controls.push(parse_control(block, *span, line, decoder)?);
        next = next_line!();
    }

    let (changetype_span, changetype_line) = match next {
        Some((span, line)) if line.is("changetype") => {
            if state.kind == Some(Kind::Content) {
                return Err(block.error(
                    span,
                    "change record in a file of content records; a file holds either \
                     entries or changes, not both",
                ));
            }
            state.kind = Some(Kind::Change);
            (span, line)
        }
        mut current => {
            let span = current.as_ref().map_or(dn_span, |(span, _)| *span);
            if state.kind == Some(Kind::Change) {
                return Err(block.error(
                    span,
                    "content record (no \"changetype:\" after \"dn:\") in a file of \
                     change records; a file holds either entries or changes, not both",
                ));
            }
            if !controls.is_empty() {
                return Err(block.error(
                    span,
                    "\"control:\" lines must be followed by \"changetype:\"; content \
                     records cannot carry controls",
                ));
            }
            state.kind = Some(Kind::Content);
            if entry.attributes.is_empty() {
                // A new entry: nothing to reuse.
                while let Some((span, line)) = current {
                    check_attribute_name(block, span, &line)?;
                    let value = decoder.value(block, span, &line)?;
                    push_value(&mut entry, line.description(), value);
                    current = next_line!();
                }
                state.attributes_hint = entry.attributes.len().min(256);
                return Ok(Some(Record::Content(entry)));
            }
            let mut used = 0;
            while let Some((span, line)) = current {
                check_attribute_name(block, span, &line)?;
                let mut value = decoder.spare_value();
                decoder.value_into(block, span, &line, &mut value)?;
                refill(
                    &mut entry.attributes,
                    &mut used,
                    line.description(),
                    value,
                    decoder,
                );
                current = next_line!();
            }
            for stale in entry.attributes.drain(used..) {
                decoder.keep_values(stale.values.into_iter());
            }
            state.attributes_hint = used.min(256);
            return Ok(Some(Record::Content(entry)));
        }
    };
    let dn = std::mem::take(&mut entry.dn);
    drop(entry);
    let changetype = keyword(block, changetype_span, &changetype_line)?;
    let change = if changetype.eq_ignore_ascii_case("add") {
        let mut entry = Entry::default();
        while let Some((span, line)) = next_line!() {
            check_attribute_name(block, span, &line)?;
            let value = decoder.value(block, span, &line)?;
            push_value(&mut entry, line.description(), value);
        }
        if entry.attributes.is_empty() {
            return Err(block.error(
                changetype_span,
                "\"changetype: add\" record has no attributes",
            ));
        }
        Change::Add(entry.attributes)
    } else if changetype.eq_ignore_ascii_case("delete") {
        if let Some((span, line)) = next_line!() {
            return Err(block.error(
                span,
                format!(
                    "unexpected \"{}:\" line: a \"changetype: delete\" record ends after its \
                     \"changetype:\" line",
                    line.description()
                ),
            ));
        }
        Change::Delete
    } else if changetype.eq_ignore_ascii_case("modrdn") || changetype.eq_ignore_ascii_case("moddn")
    {
        let keyword_used = if changetype.eq_ignore_ascii_case("modrdn") {
            RenameKeyword::ModRdn
        } else {
            RenameKeyword::ModDn
        };
        let name = keyword_used.keyword();
        let Some((span, line)) = next_line!() else {
            return Err(block.error(
                changetype_span,
                format!("\"changetype: {name}\" record has no \"newrdn:\" line"),
            ));
        };
        if !line.is("newrdn") {
            return Err(block.error(
                span,
                format!("expected \"newrdn:\", found \"{}:\"", line.description()),
            ));
        }
        let new_rdn = decoder.text(block, span, &line, "\"newrdn:\"")?;
        if new_rdn.is_empty() {
            return Err(block.error(span, "\"newrdn:\" is empty"));
        }
        let Some((span, line)) = next_line!() else {
            return Err(block.error(
                span,
                format!("\"changetype: {name}\" record has no \"deleteoldrdn:\" line"),
            ));
        };
        if !line.is("deleteoldrdn") {
            return Err(block.error(
                span,
                format!(
                    "expected \"deleteoldrdn:\", found \"{}:\"",
                    line.description()
                ),
            ));
        }
        let delete_old_rdn = match keyword(block, span, &line)? {
            "0" => false,
            "1" => true,
            other => {
                return Err(block.error(
                    span,
                    format!(
                        "\"deleteoldrdn:\" must be 0 or 1, found {}",
                        quote_for_message(other)
                    ),
                ))
            }
        };
        let mut new_superior = None;
        if let Some((span, line)) = next_line!() {
            if !line.is("newsuperior") {
                return Err(block.error(
                    span,
                    format!(
                        "unexpected \"{}:\" line: after \"deleteoldrdn:\" only \
                         \"newsuperior:\" may follow",
                        line.description()
                    ),
                ));
            }
            new_superior = Some(decoder.text(block, span, &line, "\"newsuperior:\"")?);
            if let Some((span, line)) = next_line!() {
                return Err(block.error(
                    span,
                    format!(
                        "unexpected \"{}:\" line: a \"changetype: {name}\" record ends after \
                         \"newsuperior:\"",
                        line.description()
                    ),
                ));
            }
        }
        Change::ModRdn(ModRdn {
            keyword: keyword_used,
            new_rdn,
            delete_old_rdn,
            new_superior,
        })
    } else if changetype.eq_ignore_ascii_case("modify") {
        Change::Modify(parse_modifications(block, &mut cursor, scratch, decoder)?)
    } else {
        return Err(block.error(
            changetype_span,
            format!(
                "unknown changetype {}: expected add, delete, modify, modrdn or moddn",
                quote_for_message(changetype)
            ),
        ));
    };
    Ok(Some(Record::Change(ChangeRecord {
        dn,
        controls,
        change,
    })))
}

/// The mod-specs of a modify record, after its `changetype:` line.
fn parse_modifications(
    block: &Block,
    cursor: &mut Cursor,
    scratch: &mut Vec<u8>,
    decoder: &mut Decoder,
) -> Result<Vec<Modification>, LdifError> {
    let mut modifications = Vec::new();
    loop {
        let Some(span) = cursor.next_span(block)? else {
            return Ok(modifications);
        };
        let text = block.text(span, scratch);
        if is_dash(text) {
            return Err(block.error(
                span,
                "\"-\" with no mod-spec before it: expected \"add:\", \"delete:\", \
                 \"replace:\" or \"increment:\"",
            ));
        }
        let line = split(text).map_err(|p| block.problem(span, p))?;
        let op = match line.description().to_ascii_lowercase().as_str() {
            "add" => ModOp::Add,
            "delete" => ModOp::Delete,
            "replace" => ModOp::Replace,
            "increment" => ModOp::Increment,
            _ => {
                return Err(block.error(
                    span,
                    format!(
                        "expected \"add:\", \"delete:\", \"replace:\" or \"increment:\" to \
                         start a mod-spec, found \"{}:\"",
                        line.description()
                    ),
                ))
            }
        };
        let attribute = keyword(block, span, &line)?;
        if !is_valid_description(attribute) {
            return Err(block.error_at(
                span,
                line.value.start,
                format!(
                    "\"{}:\" needs an attribute description, found {}",
                    op.keyword(),
                    quote_for_message(attribute)
                ),
            ));
        }
        let attribute = attribute.to_string();
        let mut values = Vec::new();
        let mut ended = false;
        loop {
            let Some(span) = cursor.next_span(block)? else {
                ended = true;
                break;
            };
            let text = block.text(span, scratch);
            if is_dash(text) {
                break;
            }
            let line = split(text).map_err(|p| block.problem(span, p))?;
            if !line.is(&attribute) {
                return Err(block.error(
                    span,
                    format!(
                        "\"{}:\" inside the mod-spec for \"{attribute}\": a mod-spec holds only \
                         \"{attribute}:\" values; end it with a \"-\" line",
                        line.description()
                    ),
                ));
            }
            values.push(decoder.value(block, span, &line)?);
        }
        modifications.push(Modification {
            op,
            attribute,
            values,
        });
        if ended {
            return Ok(modifications);
        }
    }
}

/// `control: oid [true|false] [: value | :: base64 | :< url]`.
fn parse_control(
    block: &Block,
    span: Span,
    line: &Line,
    decoder: &mut Decoder,
) -> Result<Control, LdifError> {
    let text = keyword(block, span, line)?.as_bytes();
    let start = line.value.start;
    let oid_end = text
        .iter()
        .position(|&b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(text.len());
    let oid = std::str::from_utf8(&text[..oid_end]).unwrap_or_default();
    let well_formed = !oid.is_empty() && oid.split('.').all(|arc| !arc.is_empty());
    if !well_formed || !matches!(text.get(oid_end), None | Some(b' ' | b':')) {
        return Err(block.error_at(
            span,
            start,
            format!(
                "\"control:\" needs a numeric OID, found {}",
                quote_for_message(text)
            ),
        ));
    }
    let mut i = oid_end;
    while text.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut criticality = false;
    for (word, critical) in [("true", true), ("false", false)] {
        let end = i + word.len();
        if i > oid_end
            && text
                .get(i..end)
                .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
            && matches!(text.get(end), None | Some(b' ' | b':'))
        {
            criticality = critical;
            i = end;
            while text.get(i) == Some(&b' ') {
                i += 1;
            }
            break;
        }
    }
    let value = match text.get(i) {
        None => None,
        Some(b':') => {
            // Reuse the value grammar on the rest of the line: ": x", ":: b64", ":< url".
            let rest = &line.text[start + i..];
            let spec = split_value_spec(rest, start + i);
            let value_line = Line {
                text: line.text,
                description: line.description,
                kind: spec.0,
                value: spec.1,
            };
            Some(decoder.value(block, span, &value_line)?)
        }
        Some(_) => {
            return Err(block.error_at(
                span,
                start + i,
                format!(
                    "unexpected \"{}\" in \"control:\": expected \"true\", \"false\" or a \
                     \":\" value",
                    String::from_utf8_lossy(&text[i..])
                ),
            ))
        }
    };
    Ok(Control {
        oid: oid.to_string(),
        criticality,
        value,
    })
}

/// The kind and range (in the whole line) of a value-spec starting with `:`, found at
/// byte `at` of the line.
fn split_value_spec(spec: &[u8], at: usize) -> (ValueKind, Range<usize>) {
    let (kind, mut start) = match spec.get(1) {
        Some(b':') => (ValueKind::Base64, 2),
        Some(b'<') => (ValueKind::Url, 2),
        _ => (ValueKind::Text, 1),
    };
    while spec.get(start) == Some(&b' ') {
        start += 1;
    }
    let mut end = spec.len();
    if kind != ValueKind::Text {
        while end > start && spec[end - 1] == b' ' {
            end -= 1;
        }
    }
    (kind, at + start..at + end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_entries_read_the_same_as_fresh_ones() {
        let input = "version: 1\n\n\
            dn: cn=big,dc=x\nobjectClass: top\nobjectClass: person\ncn: big\n\
            description: a long one\nmail: a@x\nMAIL: b@x\nsn:: U8O4cmVu\n\n\
            dn: cn=small,dc=x\ncn: small\n\n\
            dn: cn=other,dc=x\nsn: other\nCN: other\ncn;lang-fr: autre\ncn: again\n\n\
            dn:: Y249w6ksZGM9eA==\nobjectClass: top\njpegPhoto:: AAEC\n";
        let fresh = entries(input);
        // Each entry goes back for reuse as soon as it is read, as `plan` does it.
        let mut reused = Vec::new();
        for record in LdifReader::new(input.as_bytes()) {
            let Ok(Record::Content(entry)) = record else {
                panic!("{record:?}");
            };
            reused.push(entry.clone());
            recycle([entry]);
        }
        assert_eq!(reused, fresh);
        assert_eq!(
            fresh[0].attributes[3].values.len(),
            2,
            "MAIL merged into mail"
        );
        assert_eq!(fresh[2].attributes[1].description, "CN");
        assert_eq!(fresh[3].dn, "cn=é,dc=x");
        // Entries too large to keep are freed, not pooled.
        let mut huge = Entry::new("cn=g,dc=x");
        for i in 0..1000 {
            huge.push_value("member", format!("cn=u{i},dc=x").into_bytes());
        }
        recycle([huge]);
        assert!(SPARE_ENTRIES.with(|spare| spare.borrow().iter().all(|e| e
            .attributes
            .iter()
            .all(|a| a.values.len() <= MAX_RECYCLED_VALUES))));
    }

    fn records(input: &[u8]) -> Result<Vec<Record>, LdifError> {
        LdifReader::new(input)
            .with_resolver(|url: &str, _max: usize| Ok(format!("<{url}>").into_bytes()))
            .collect()
    }

    fn entries(input: &str) -> Vec<Entry> {
        records(input.as_bytes())
            .unwrap()
            .into_iter()
            .map(|record| match record {
                Record::Content(entry) => entry,
                Record::Change(change) => panic!("change record {change:?}"),
            })
            .collect()
    }

    fn changes(input: &str) -> Vec<ChangeRecord> {
        records(input.as_bytes())
            .unwrap()
            .into_iter()
            .map(|record| match record {
                Record::Change(change) => change,
                Record::Content(entry) => panic!("content record {entry:?}"),
            })
            .collect()
    }

    fn error(input: &str) -> String {
        records(input.as_bytes()).unwrap_err().to_string()
    }

    fn values(entry: &Entry, description: &str) -> Vec<String> {
        entry
            .text_values(description)
            .map(|v| v.into_owned())
            .collect()
    }

    #[test]
    fn a_bare_carriage_return_is_an_error_not_a_panic() {
        assert!(error("\r").contains("carriage return"), "{}", error("\r"));
    }

    #[test]
    fn values_spaces_folds_and_comments() {
        let input = "version: 1\n\
            # a comment\n\
            #  folded\n continued\n\
            dn: cn=a,\n dc=example\n\
            cn:value\n\
            cn:   spaced\n\
            description: trailing  \n\
            description:\n\
            description: \n\
            sn: two\n  spaces kept\n\
            photo:: AAEC\n\
            homepage:< file:///x\n";
        let entry = &entries(input)[0];
        assert_eq!(entry.dn, "cn=a,dc=example");
        assert_eq!(values(entry, "cn"), ["value", "spaced"]);
        assert_eq!(values(entry, "description"), ["trailing  ", "", ""]);
        assert_eq!(values(entry, "sn"), ["two spaces kept"]);
        assert_eq!(entry.values("photo").next().unwrap(), [0, 1, 2]);
        assert_eq!(values(entry, "homepage"), ["<file:///x>"]);
    }

    #[test]
    fn blank_lines_crlf_and_no_final_newline() {
        let input =
            "\r\n\r\n# header\r\n\r\n\r\ndn: cn=a\r\ncn: a\r\n\r\n\r\n\r\ndn: cn=b\r\ncn: b \r\n c";
        let all = entries(input);
        assert_eq!(all.len(), 2);
        assert_eq!(values(&all[1], "cn"), ["b c"]);
        assert!(entries("").is_empty());
        assert!(entries("version: 1\n").is_empty());
        assert!(entries("# only a comment").is_empty());
    }

    #[test]
    fn attribute_names_merge_ignoring_case_and_keep_options() {
        let entry =
            &entries("DN: cn=a\nobjectClass: top\nCN;lang-fr: x\nobjectclass: person\ncn: y\n")[0];
        let names: Vec<&str> = entry
            .attributes
            .iter()
            .map(|a| a.description.as_str())
            .collect();
        assert_eq!(names, ["objectClass", "CN;lang-fr", "cn"]);
        assert_eq!(entry.object_classes(), ["top", "person"]);
    }

    #[test]
    fn non_ascii_text_and_dn_are_accepted_raw() {
        let entry = &entries("dn: o=Çéliné Ändrè\no: Çéliné Ändrè\n")[0];
        assert_eq!(entry.dn, "o=Çéliné Ändrè");
    }

    #[test]
    fn change_records_of_every_kind() {
        let input = "version: 1\n\
            dn: cn=add\ncontrol: 1.2.3 true\ncontrol: 1.2.4: text\nchangeType: Add\ncn: x\nCN: y\n\n\
            dn: cn=del\nchangetype: delete\n\n\
            dn: cn=mod\nchangetype: modify\nadd: objectClass\nobjectclass: a\n-\nDELETE: sn\n-\n\
            replace: cn\n-\nincrement: uidNumber\nuidNumber: 1\n\n\
            dn: cn=old\nchangetype: modrdn\nnewrdn: cn=new\ndeleteoldrdn: 1\n\n\
            dn: cn=old\nchangetype: moddn\nnewrdn:: Y249bmV3\ndeleteoldrdn: 0\nnewsuperior: ou=x\n";
        let all = changes(input);
        assert_eq!(
            all[0].controls,
            [
                Control {
                    oid: "1.2.3".into(),
                    criticality: true,
                    value: None
                },
                Control {
                    oid: "1.2.4".into(),
                    criticality: false,
                    value: Some(b"text".to_vec())
                }
            ]
        );
        assert_eq!(
            all[0].change,
            Change::Add(vec![Attribute {
                description: "cn".into(),
                values: vec![b"x".to_vec(), b"y".to_vec()]
            }])
        );
        assert_eq!(all[1].change, Change::Delete);
        let Change::Modify(mods) = &all[2].change else {
            panic!("{:?}", all[2]);
        };
        let summary: Vec<(ModOp, &str, usize)> = mods
            .iter()
            .map(|m| (m.op, m.attribute.as_str(), m.values.len()))
            .collect();
        assert_eq!(
            summary,
            [
                (ModOp::Add, "objectClass", 1),
                (ModOp::Delete, "sn", 0),
                (ModOp::Replace, "cn", 0),
                (ModOp::Increment, "uidNumber", 1)
            ]
        );
        assert_eq!(
            all[3].change,
            Change::ModRdn(ModRdn {
                keyword: RenameKeyword::ModRdn,
                new_rdn: "cn=new".into(),
                delete_old_rdn: true,
                new_superior: None
            })
        );
        assert_eq!(
            all[4].change,
            Change::ModRdn(ModRdn {
                keyword: RenameKeyword::ModDn,
                new_rdn: "cn=new".into(),
                delete_old_rdn: false,
                new_superior: Some("ou=x".into())
            })
        );
    }

    #[test]
    fn record_line_is_the_dn_line() {
        let mut reader =
            LdifReader::new(&b"# c\n\ndn: cn=a\ncn: a\n\n\n# c\ndn: cn=b\ncn: b\n"[..]);
        assert_eq!(reader.record_line(), 0);
        reader.next().unwrap().unwrap();
        assert_eq!(reader.record_line(), 3);
        reader.next().unwrap().unwrap();
        assert_eq!(reader.record_line(), 8);
        assert!(reader.next().is_none());
    }

    #[test]
    fn syntax_errors_point_at_line_and_column() {
        assert_eq!(
            error("dn: cn=a\ncn: a\nfoo\n"),
            "line 3: expected \"attr: value\", found \"foo\""
        );
        assert_eq!(
            error("dn: cn=a\ncn x: a\n"),
            "line 2:3: invalid character \" \" in attribute name \"cn x\""
        );
        assert_eq!(
            error("dn: cn=a\n: a\n"),
            "line 2:1: missing attribute name before \":\""
        );
        assert_eq!(
            error("dn: cn=a\ncn;;x: a\n"),
            "line 2:4: empty option in attribute description \"cn;;x\""
        );
        // The bad base64 byte sits on the continuation line: the column counts from there.
        assert_eq!(
            error("dn: cn=a\njpegPhoto:: AAAA\n AA*A\n"),
            "line 3:4: invalid base64 in value of \"jpegPhoto\": \"*\" is not a base64 character"
        );
        // Raw bytes must be UTF-8: the column is that of the first bad byte.
        let err = records(b"dn: cn=a\ncn: \xc3\xa9t\xe9\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2:7: value of \"cn\" is not valid UTF-8; write binary values in base64 \
             (\"cn:: ...\")"
        );
        let err = records(b"dn:: /w==\ncn: a\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: a DN is not valid UTF-8 after base64 decoding"
        );
    }

    #[test]
    fn structure_errors() {
        let cases: &[(&str, &str)] = &[
            ("version: 2\ndn: cn=a\ncn: a\n", "line 1: unsupported LDIF version \"2\": only version 1 exists"),
            ("dn: cn=a\ncn: a\n\tb\n", "line 3:1: line starts with a tab; RFC 2849 continuation lines start with exactly one space"),
            ("\n continued\n", "line 2:1: line starts with a space, which continues the line before it, but there is none (a blank line ends a record)"),
            ("dn: cn=a\ncn: a\n\ncn: b\n", "line 4: record has no \"dn:\" line: it starts with \"cn:\"; every record starts with \"dn:\", and a blank line ends a record"),
            ("dn: cn=a\ncn: a\n\ndn: cn=b\nchangetype: delete\n", "line 5: change record in a file of content records; a file holds either entries or changes, not both"),
            ("dn: cn=a\nchangetype: delete\n\ndn: cn=b\ncn: b\n", "line 5: content record (no \"changetype:\" after \"dn:\") in a file of change records; a file holds either entries or changes, not both"),
            ("dn: cn=a\ncontrol: 1.2.3\ncn: a\n", "line 3: \"control:\" lines must be followed by \"changetype:\"; content records cannot carry controls"),
            ("dn: cn=a\ncontrol: cn true\nchangetype: delete\n", "line 2:10: \"control:\" needs a numeric OID, found \"cn true\""),
            ("dn: cn=a\ncontrol: 1.2 maybe\nchangetype: delete\n", "line 2:14: unexpected \"maybe\" in \"control:\": expected \"true\", \"false\" or a \":\" value"),
            ("dn: cn=a\nchangetype: rename\n", "line 2: unknown changetype \"rename\": expected add, delete, modify, modrdn or moddn"),
            ("dn: cn=a\nchangetype: add\n", "line 2: \"changetype: add\" record has no attributes"),
            ("dn: cn=a\nchangetype: delete\ncn: a\n", "line 3: unexpected \"cn:\" line: a \"changetype: delete\" record ends after its \"changetype:\" line"),
            ("dn: cn=a\nchangetype: modify\n-\n", "line 3: \"-\" with no mod-spec before it: expected \"add:\", \"delete:\", \"replace:\" or \"increment:\""),
            ("dn: cn=a\nchangetype: modify\nadd: cn\ncn: x\nreplace: sn\nsn: y\n", "line 5: \"replace:\" inside the mod-spec for \"cn\": a mod-spec holds only \"cn:\" values; end it with a \"-\" line"),
            ("dn: cn=a\nchangetype: modify\nmove: cn\n", "line 3: expected \"add:\", \"delete:\", \"replace:\" or \"increment:\" to start a mod-spec, found \"move:\""),
            ("dn: cn=a\nchangetype: modify\nadd: c n\n", "line 3:6: \"add:\" needs an attribute description, found \"c n\""),
            ("dn: cn=a\nchangetype: modrdn\n", "line 2: \"changetype: modrdn\" record has no \"newrdn:\" line"),
            ("dn: cn=a\nchangetype: moddn\nnewrdn: cn=b\n", "line 3: \"changetype: moddn\" record has no \"deleteoldrdn:\" line"),
            ("dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: yes\n", "line 4: \"deleteoldrdn:\" must be 0 or 1, found \"yes\""),
            ("dn: cn=a\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: 1\ncn: x\n", "line 5: unexpected \"cn:\" line: after \"deleteoldrdn:\" only \"newsuperior:\" may follow"),
            ("dn:< file:///dn\ncn: a\n", "line 1: a DN cannot be given as a URL"),
            ("dn: cn=a\nchangetype:: YWRk\ncn: a\n", "line 2: \"changetype:\" takes a plain value, not base64 or a URL"),
            ("dn: cn=a\ncn: a\ndn: cn=b\ncn: b\n", "line 3: \"dn:\" inside a record; is the blank line before it missing?"),
            ("dn: cn=a\nchangetype: add\ncn: a\nchangeType: delete\n", "line 4: \"changeType:\" inside a record; is the blank line before it missing?"),
            ("dn: cn=a\ncn: a\n-\n", "line 3: expected \"attr: value\", found \"-\" (\"-\" only ends a mod-spec in a \"changetype: modify\" record)"),
        ];
        let mut failures = Vec::new();
        for (input, expected) in cases {
            let got = error(input);
            if got != *expected {
                failures.push(format!(
                    "{input:?}\n  got:      {got}\n  expected: {expected}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The first error reading `input` with values limited to `max` bytes.
    fn limited_error(input: &[u8], max: usize) -> String {
        LdifReader::new(input)
            .with_max_value_bytes(max)
            .find_map(Result::err)
            .expect("an error")
            .to_string()
    }

    #[test]
    fn values_up_to_the_limit_are_read_and_larger_ones_refused_at_the_value() {
        let limit = 10;
        let at_limit = b"dn: cn=a\ncn: 0123456789\nphoto:: MDEyMzQ1Njc4OQ==\n";
        let entry = match LdifReader::new(&at_limit[..])
            .with_max_value_bytes(limit)
            .next()
        {
            Some(Ok(Record::Content(entry))) => entry,
            other => panic!("{other:?}"),
        };
        assert_eq!(entry.values("photo").next(), Some(&b"0123456789"[..]));
        let expect = |line: &str, attribute: &str| {
            format!(
                "line {line}: value of \"{attribute}\" is larger than the limit of 10 bytes \
                 (max_value_bytes of the source)"
            )
        };
        assert_eq!(
            limited_error(b"dn: cn=a\ncn: 0123456789A\n", limit),
            expect("2:5", "cn")
        );
        // 11 bytes in base64, with and without padding, and folded.
        assert_eq!(
            limited_error(b"dn: cn=a\nphoto:: MDEyMzQ1Njc4OUE=\n", limit),
            expect("2:9", "photo")
        );
        assert_eq!(
            limited_error(b"dn: cn=a\nphoto:: MDEyMzQ1Njc4OUE\n", limit),
            expect("2:9", "photo")
        );
        assert_eq!(
            limited_error(b"dn: cn=a\ndescription: 01234\n 56789A\n", limit),
            expect("2:14", "description")
        );
        // A DN is a value too.
        assert_eq!(
            limited_error(b"dn: cn=abcdefghij\n", limit),
            expect("1:5", "dn")
        );
    }

    #[test]
    fn a_line_too_long_for_any_value_is_refused_before_it_is_read_whole() {
        // 4 MiB of value with a limit of 1 KiB: the error names the line and attribute,
        // and the reader stops before the end of the line (the input never ends).
        struct Endless {
            head: &'static [u8],
            sent: usize,
        }
        impl std::io::Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.sent >= 64 << 20 {
                    panic!("the reader read 64 MiB of one line");
                }
                let n = buf.len();
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = self.head.get(self.sent + i).copied().unwrap_or(b'x');
                }
                self.sent += n;
                Ok(n)
            }
        }
        let input = std::io::BufReader::with_capacity(
            1 << 16,
            Endless {
                head: b"dn: cn=a\n# comment\ndescription:    x",
                sent: 0,
            },
        );
        let err = LdifReader::new(input)
            .with_max_value_bytes(1024)
            .find_map(Result::err)
            .unwrap();
        assert_eq!(
            err.to_string(),
            "line 3:17: value of \"description\" is larger than the limit of 1024 bytes \
             (max_value_bytes of the source)"
        );
        // Folded over many short lines, too; and a line with no attribute at all.
        let folded = format!("dn: cn=a\ncn: x\n{}\n", " 0123456789\n".repeat(20_000));
        let err = limited_error(folded.as_bytes(), 1024);
        assert!(
            err.starts_with("line 2:5: value of \"cn\" is larger"),
            "{err}"
        );
        let no_colon = format!("dn: cn=a\n{}\n", "x".repeat(200_000));
        assert_eq!(
            limited_error(no_colon.as_bytes(), 1024),
            "line 2:1: line longer than any value within the limit of 1024 bytes \
             (max_value_bytes) could be"
        );
    }

    #[test]
    fn a_url_value_past_the_limit_is_refused_on_its_size() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big.bin"), vec![0u8; 11]).unwrap();
        std::fs::write(dir.path().join("ok.bin"), vec![0u8; 10]).unwrap();
        let read = |input: &[u8]| {
            LdifReader::new(input)
                .with_max_value_bytes(10)
                .with_resolver(FileUrls::relative_to(dir.path()))
                .next()
                .unwrap()
        };
        assert!(read(b"dn: cn=a\nphoto:< ok.bin\n").is_ok());
        assert_eq!(
            read(b"dn: cn=a\nphoto:< big.bin\n")
                .unwrap_err()
                .to_string(),
            "line 2:9: cannot read the value of \"photo\" from \"big.bin\": it holds 11 bytes, \
             more than the limit of 10 bytes (max_value_bytes of the source)"
        );
    }

    #[test]
    fn errors_quote_control_characters_escaped() {
        let err = limited_error(b"dn: cn=a\nobjectCla\x1bss: person\n", 100);
        assert_eq!(
            err,
            "line 2:10: invalid character U+001B in attribute name \"objectCla\\u{1b}ss\""
        );
        let err = limited_error(b"dn: cn=a\nno colon \x1b[31m here\n", 100);
        assert_eq!(
            err,
            "line 2: expected \"attr: value\", found \"no colon \\u{1b}[31m here\""
        );
    }

    #[test]
    fn url_errors_name_the_attribute_and_url() {
        let err = LdifReader::new(&b"dn: cn=a\nphoto:< http://x/y\n"[..])
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2:9: cannot read the value of \"photo\" from \"http://x/y\": unsupported URL \
             scheme \"http\": only file: URLs and paths can be read"
        );
    }

    #[test]
    fn iteration_stops_after_an_error() {
        let mut reader = LdifReader::new(&b"dn: cn=a\nbad\n\ndn: cn=b\ncn: b\n"[..]);
        assert!(reader.next().unwrap().is_err());
        assert!(reader.next().is_none());
    }
}
