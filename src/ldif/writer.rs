//! The LDIF writer: entries out as RFC 2849 content records that any LDIF reader accepts.
//!
//! Values and DNs that are not RFC 2849 SAFE-STRINGs (non-ASCII, NUL/CR/LF, a leading
//! space, `:` or `<`, a trailing space) are written in base64; lines are folded at 76
//! columns. This module must not reorder, merge or drop values: what the entry holds is
//! what is written.

use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::reader::is_valid_description;
use crate::core::entry::Entry;

/// The longest physical line the writer emits, in bytes (all of them ASCII).
const FOLD_WIDTH: usize = 76;

/// Writes `version: 1` and the blank line after it: the start of an RFC 2849 file.
pub fn write_version(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"version: 1\n\n")
}

/// Writes `entry` as one content record followed by a blank line.
///
/// Attributes without values are skipped. An attribute description that LDIF cannot carry
/// (say `"cn x"`, `"a:b"` or `"dn"`) is an [`io::ErrorKind::InvalidInput`] error and nothing
/// of the entry is written.
pub fn write_entry(out: &mut impl Write, entry: &Entry) -> io::Result<()> {
    if let Some(bad) = entry
        .attributes
        .iter()
        .find(|attribute| !is_writable_description(&attribute.description))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "entry \"{}\": attribute description \"{}\" cannot be written as LDIF",
                entry.dn, bad.description
            ),
        ));
    }
    let mut record = Vec::with_capacity(256);
    let mut line = Vec::with_capacity(128);
    push_spec(&mut record, &mut line, "dn", entry.dn.as_bytes());
    for attribute in &entry.attributes {
        for value in &attribute.values {
            push_spec(&mut record, &mut line, &attribute.description, value);
        }
    }
    record.push(b'\n');
    out.write_all(&record)
}

/// Whether the reader will read `description` back as an attribute: a valid description
/// that is not `dn` or `changetype`.
fn is_writable_description(description: &str) -> bool {
    is_valid_description(description)
        && !description.eq_ignore_ascii_case("dn")
        && !description.eq_ignore_ascii_case("changetype")
}

/// Appends `name: value` or `name:: base64`, folded, to `record`.
fn push_spec(record: &mut Vec<u8>, line: &mut Vec<u8>, name: &str, value: &[u8]) {
    line.clear();
    line.extend_from_slice(name.as_bytes());
    line.push(b':');
    if is_safe_string(value) {
        if !value.is_empty() {
            line.push(b' ');
            line.extend_from_slice(value);
        }
    } else {
        line.extend_from_slice(b": ");
        let mut encoded = String::with_capacity(value.len().div_ceil(3) * 4);
        BASE64.encode_string(value, &mut encoded);
        line.extend_from_slice(encoded.as_bytes());
    }
    fold(record, line);
}

/// Appends `line` to `record` folded at [`FOLD_WIDTH`]: continuation lines start with one
/// space. `line` is ASCII, so no character is cut.
fn fold(record: &mut Vec<u8>, line: &[u8]) {
    let first = line.len().min(FOLD_WIDTH);
    record.extend_from_slice(&line[..first]);
    record.push(b'\n');
    for chunk in line[first..].chunks(FOLD_WIDTH - 1) {
        record.push(b' ');
        record.extend_from_slice(chunk);
        record.push(b'\n');
    }
}

/// RFC 2849 SAFE-STRING (7-bit, no NUL/CR/LF, no leading space, `:` or `<`), and no
/// trailing space (section 8, note 8: such values should be base64-encoded).
fn is_safe_string(value: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (value.first(), value.last()) else {
        return true;
    };
    !matches!(first, b' ' | b':' | b'<')
        && last != b' '
        && value
            .iter()
            .all(|&b| b.is_ascii() && !matches!(b, b'\0' | b'\n' | b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(entry: &Entry) -> String {
        let mut out = Vec::new();
        write_entry(&mut out, entry).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_and_base64_values() {
        let entry = Entry::new("cn=Ændrè,dc=example").with(
            "cn",
            &[
                "Ændrè",
                "plain",
                " leading",
                "trailing ",
                ":colon",
                "<lt",
                "",
            ],
        );
        assert_eq!(
            written(&entry),
            "dn:: Y249w4ZuZHLDqCxkYz1leGFtcGxl\n\
             cn:: w4ZuZHLDqA==\n\
             cn: plain\n\
             cn:: IGxlYWRpbmc=\n\
             cn:: dHJhaWxpbmcg\n\
             cn:: OmNvbG9u\n\
             cn:: PGx0\n\
             cn:\n\
             \n"
        );
    }

    #[test]
    fn folds_at_76_columns() {
        let long = "x".repeat(200);
        let text = written(&Entry::new("dc=example").with("description", &[&long]));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().all(|line| line.len() <= FOLD_WIDTH), "{text}");
        assert_eq!(lines[1].len(), FOLD_WIDTH);
        assert!(lines[2].starts_with(' ') && lines[2].len() == FOLD_WIDTH);
        let unfolded: String = lines[1..]
            .iter()
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .collect();
        assert_eq!(unfolded, format!("description: {long}"));
    }

    #[test]
    fn refuses_descriptions_ldif_cannot_carry() {
        let mut out = Vec::new();
        for description in ["a:b", "cn x", "", ";x", "cn;", "DN", "changeType"] {
            let entry = Entry::new("dc=example").with(description, &["x"]);
            let err = write_entry(&mut out, &entry).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{description:?}");
            assert!(out.is_empty());
        }
    }
}
