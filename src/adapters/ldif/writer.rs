//! The LDIF writer: entries out as RFC 2849 content records, and change records out as
//! RFC 2849 change records (`ldapmodify` input), that any LDIF reader accepts.
//!
//! Values and DNs that are not RFC 2849 SAFE-STRINGs (non-ASCII, NUL/CR/LF, a leading
//! space, `:` or `<`, a trailing space) are written in base64; lines are folded at 76
//! columns. This module must not reorder, merge or drop values: what the entry (or change
//! record) holds is what is written.

use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::reader::is_valid_description;
use super::record::{Change, ChangeRecord, Control};
use registrar_core::entry::Entry;

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

/// Writes `record` as one RFC 2849 change record followed by a blank line: `dn:`, its
/// `control:` lines, `changetype:` and the change (an add's attributes, a modify's
/// mod-specs each closed by `-`, a rename's `newrdn:`/`deleteoldrdn:`/`newsuperior:`).
///
/// What LDIF cannot carry is an [`io::ErrorKind::InvalidInput`] error and nothing of the
/// record is written: an attribute description the reader would not read back (see
/// [`write_entry`]), an add without any value, an empty new RDN, a control OID that is
/// not numeric.
pub fn write_change(out: &mut impl Write, record: &ChangeRecord) -> io::Result<()> {
    let invalid = |message: String| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("change record \"{}\": {message}", record.dn),
        ))
    };
    let descriptions: Vec<&str> = match &record.change {
        Change::Add(attributes) => attributes.iter().map(|a| a.description.as_str()).collect(),
        Change::Modify(modifications) => {
            modifications.iter().map(|m| m.attribute.as_str()).collect()
        }
        Change::Delete | Change::ModRdn(_) => Vec::new(),
    };
    if let Some(bad) = descriptions.iter().find(|d| !is_writable_description(d)) {
        return invalid(format!(
            "attribute description \"{bad}\" cannot be written as LDIF"
        ));
    }
    if let Change::Add(attributes) = &record.change {
        if attributes.iter().all(|a| a.values.is_empty()) {
            return invalid("an add needs at least one value".to_string());
        }
    }
    if matches!(&record.change, Change::ModRdn(rename) if rename.new_rdn.is_empty()) {
        return invalid("a rename needs a new RDN".to_string());
    }
    if let Some(bad) = record.controls.iter().find(|c| !is_numeric_oid(&c.oid)) {
        return invalid(format!("control OID \"{}\" is not numeric", bad.oid));
    }
    let mut buffer = Vec::with_capacity(256);
    let mut line = Vec::with_capacity(128);
    push_spec(&mut buffer, &mut line, "dn", record.dn.as_bytes());
    for control in &record.controls {
        push_control(&mut buffer, &mut line, control);
    }
    match &record.change {
        Change::Add(attributes) => {
            buffer.extend_from_slice(b"changetype: add\n");
            for attribute in attributes {
                for value in &attribute.values {
                    push_spec(&mut buffer, &mut line, &attribute.description, value);
                }
            }
        }
        Change::Delete => buffer.extend_from_slice(b"changetype: delete\n"),
        Change::Modify(modifications) => {
            buffer.extend_from_slice(b"changetype: modify\n");
            for modification in modifications {
                push_spec(
                    &mut buffer,
                    &mut line,
                    modification.op.keyword(),
                    modification.attribute.as_bytes(),
                );
                for value in &modification.values {
                    push_spec(&mut buffer, &mut line, &modification.attribute, value);
                }
                buffer.extend_from_slice(b"-\n");
            }
        }
        Change::ModRdn(rename) => {
            buffer.extend_from_slice(b"changetype: ");
            buffer.extend_from_slice(rename.keyword.keyword().as_bytes());
            buffer.push(b'\n');
            push_spec(&mut buffer, &mut line, "newrdn", rename.new_rdn.as_bytes());
            buffer.extend_from_slice(if rename.delete_old_rdn {
                b"deleteoldrdn: 1\n"
            } else {
                b"deleteoldrdn: 0\n"
            });
            if let Some(superior) = &rename.new_superior {
                push_spec(&mut buffer, &mut line, "newsuperior", superior.as_bytes());
            }
        }
    }
    buffer.push(b'\n');
    out.write_all(&buffer)
}

/// Appends `control: oid true|false` and the value, if any, as `: text` or `:: base64`.
fn push_control(record: &mut Vec<u8>, line: &mut Vec<u8>, control: &Control) {
    line.clear();
    line.extend_from_slice(b"control: ");
    line.extend_from_slice(control.oid.as_bytes());
    line.extend_from_slice(if control.criticality {
        b" true"
    } else {
        b" false"
    });
    if let Some(value) = &control.value {
        push_value_spec(line, value);
    }
    fold(record, line);
}

/// `1.2.840.113556.1.4.805`: digits in non-empty arcs separated by dots.
fn is_numeric_oid(oid: &str) -> bool {
    !oid.is_empty()
        && oid
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
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
    push_value_spec(line, value);
    fold(record, line);
}

/// Appends `: value`, `:` for the empty value, or `:: base64` to `line`.
fn push_value_spec(line: &mut Vec<u8>, value: &[u8]) {
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

    fn change_written(record: &ChangeRecord) -> String {
        let mut out = Vec::new();
        write_change(&mut out, record).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn record(dn: &str, change: Change) -> ChangeRecord {
        ChangeRecord {
            dn: dn.to_string(),
            controls: Vec::new(),
            change,
        }
    }

    #[test]
    fn change_records_of_each_kind() {
        use crate::adapters::ldif::{ModOp, ModRdn, Modification, RenameKeyword};
        let add = Entry::new("x")
            .with("objectClass", &["top", "person"])
            .with("cn", &["Ændrè"]);
        assert_eq!(
            change_written(&record("cn=a,dc=x", Change::Add(add.attributes))),
            "dn: cn=a,dc=x\nchangetype: add\nobjectClass: top\nobjectClass: person\n\
             cn:: w4ZuZHLDqA==\n\n"
        );
        let mut delete = record("cn=a\n,dc=x", Change::Delete);
        delete.controls = vec![
            Control {
                oid: "1.2.840.113556.1.4.805".to_string(),
                criticality: true,
                value: None,
            },
            Control {
                oid: "1.2.3".to_string(),
                criticality: false,
                value: Some(b"\0v".to_vec()),
            },
        ];
        assert_eq!(
            change_written(&delete),
            "dn:: Y249YQosZGM9eA==\ncontrol: 1.2.840.113556.1.4.805 true\n\
             control: 1.2.3 false:: AHY=\nchangetype: delete\n\n"
        );
        let modify = Change::Modify(vec![
            Modification {
                op: ModOp::Replace,
                attribute: "title".to_string(),
                values: vec![b"Boss".to_vec(), b" x".to_vec()],
            },
            Modification {
                op: ModOp::Replace,
                attribute: "l".to_string(),
                values: Vec::new(),
            },
            Modification {
                op: ModOp::Delete,
                attribute: "member".to_string(),
                values: vec![b"cn=b".to_vec()],
            },
        ]);
        assert_eq!(
            change_written(&record("cn=a", modify)),
            "dn: cn=a\nchangetype: modify\nreplace: title\ntitle: Boss\ntitle:: IHg=\n-\n\
             replace: l\n-\ndelete: member\nmember: cn=b\n-\n\n"
        );
        let rename = Change::ModRdn(ModRdn {
            keyword: RenameKeyword::ModDn,
            new_rdn: "cn=b".to_string(),
            delete_old_rdn: true,
            new_superior: Some("ou=new".to_string()),
        });
        assert_eq!(
            change_written(&record("cn=a", rename)),
            "dn: cn=a\nchangetype: moddn\nnewrdn: cn=b\ndeleteoldrdn: 1\nnewsuperior: ou=new\n\n"
        );
    }

    #[test]
    fn refuses_change_records_ldif_cannot_carry() {
        use registrar_core::entry::Attribute;
        let no_values = Change::Add(vec![Attribute {
            description: "cn".to_string(),
            values: Vec::new(),
        }]);
        let bad_attribute = Change::Modify(vec![crate::adapters::ldif::Modification {
            op: crate::adapters::ldif::ModOp::Add,
            attribute: "dn".to_string(),
            values: vec![b"x".to_vec()],
        }]);
        let mut bad_control = record("cn=a", Change::Delete);
        bad_control.controls.push(Control {
            oid: "1..2".to_string(),
            criticality: false,
            value: None,
        });
        let no_rdn = Change::ModRdn(crate::adapters::ldif::ModRdn {
            keyword: crate::adapters::ldif::RenameKeyword::ModRdn,
            new_rdn: String::new(),
            delete_old_rdn: false,
            new_superior: None,
        });
        for bad in [
            record("cn=a", no_rdn),
            record("cn=a", no_values),
            record("cn=a", Change::Add(Vec::new())),
            record("cn=a", bad_attribute),
            bad_control,
        ] {
            let mut out = Vec::new();
            let err = write_change(&mut out, &bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(out.is_empty());
        }
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
