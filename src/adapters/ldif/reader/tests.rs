//! The reader's unit tests: records, errors and their positions, limits, recycling.

use super::pool::recycle;
use super::pool::{MAX_RECYCLED_VALUES, SPARE_ENTRIES};
use super::stream::LdifReader;
use crate::adapters::ldif::error::LdifError;
use crate::adapters::ldif::record::{
    Change, ChangeRecord, Control, ModOp, ModRdn, Record, RenameKeyword,
};
use crate::adapters::ldif::url::FileUrls;
use registrar_core::entry::{Attribute, Entry};

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
    let mut reader = LdifReader::new(&b"# c\n\ndn: cn=a\ncn: a\n\n\n# c\ndn: cn=b\ncn: b\n"[..]);
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

#[test]
fn version_may_follow_a_block_of_comments_but_not_a_record() {
    let after_comments = "# exported\n# by hand\n\nversion: 1\n\ndn: cn=a,dc=x\ncn: a\n";
    assert_eq!(entries(after_comments)[0].dn, "cn=a,dc=x");
    // On the first record's own block, `version:` is its first line.
    assert_eq!(
        entries("version: 1\ndn: cn=a,dc=x\ncn: a\n")[0].dn,
        "cn=a,dc=x"
    );
    // A first record without `version:` is read from its first line.
    assert_eq!(entries("dn: cn=a,dc=x\ncn: a\n")[0].dn, "cn=a,dc=x");
    assert_eq!(
        error("dn: cn=a,dc=x\ncn: a\n\nversion: 1\n"),
        "line 4: record has no \"dn:\" line: it starts with \"version:\"; every record \
         starts with \"dn:\", and a blank line ends a record"
    );
}
