//! One logical line's syntax: `attr: value`, `attr:: base64` or `attr:< url` split into
//! its attribute description and value, the description checked. It must not decode
//! values: that is [`super::decode`]'s job.

use std::ops::Range;

use super::scan::Block;
use super::unfold::Span;
use crate::adapters::ldif::error::LdifError;
use registrar_core::quote::quote_for_message;

/// A problem found in a logical line, at a byte offset of its unfolded text if
/// meaningful.
pub(super) struct Problem {
    pub(super) offset: Option<usize>,
    pub(super) message: String,
}

/// How a value is written: `attr: text`, `attr:: base64` or `attr:< url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValueKind {
    Text,
    Base64,
    Url,
}

/// One `attr: value` logical line, split.
pub(super) struct Line<'t> {
    pub(super) text: &'t [u8],
    /// `text[..colon]`, checked to be an attribute description (so ASCII).
    pub(super) description: &'t str,
    pub(super) kind: ValueKind,
    /// `FILL` skipped; for base64 and URLs, trailing spaces too.
    pub(super) value: Range<usize>,
}

impl<'t> Line<'t> {
    #[inline]
    pub(super) fn description(&self) -> &'t str {
        self.description
    }

    #[inline]
    pub(super) fn raw_value(&self) -> &'t [u8] {
        &self.text[self.value.clone()]
    }

    #[inline]
    pub(super) fn is(&self, keyword: &str) -> bool {
        self.description().eq_ignore_ascii_case(keyword)
    }
}

/// Bytes allowed in an attribute description: RFC 4512 `keychar`s, `.` for numeric
/// OIDs, `;` between options, and `_`, which some vendor schemas use.
pub(super) const DESCRIPTION_BYTES: [bool; 256] = {
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
pub(super) const BYTE_CLASS: [u8; 256] = {
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
pub(super) const NOT_IN_DESCRIPTION: u8 = 1;
pub(super) const OPTION_SEPARATOR: u8 = 2;
pub(super) const COLON: u8 = 4;

/// Splits `attr: value`, `attr:: base64` or `attr:< url`.
#[inline]
pub(super) fn split(text: &[u8]) -> Result<Line<'_>, Problem> {
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
pub(super) fn check_description(description: &[u8], has_options: bool) -> Result<(), Problem> {
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
pub(super) fn describe_char(bytes: &[u8]) -> String {
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

/// The value of a keyword line (`changetype:`, `add:`, `deleteoldrdn:`...): plain text,
/// trailing spaces removed.
#[inline]
pub(super) fn keyword<'t>(
    block: &Block,
    span: Span,
    line: &Line<'t>,
) -> Result<&'t str, LdifError> {
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

/// A line holding only `-` (trailing spaces allowed): the end of a mod-spec.
#[inline]
pub(super) fn is_dash(text: &[u8]) -> bool {
    text.first() == Some(&b'-') && text[1..].iter().all(|&b| b == b' ')
}

/// The kind and range (in the whole line) of a value-spec starting with `:`, found at
/// byte `at` of the line.
pub(super) fn split_value_spec(spec: &[u8], at: usize) -> (ValueKind, Range<usize>) {
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
