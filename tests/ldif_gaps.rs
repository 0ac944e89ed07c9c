//! Synthetic LDIF cases for what the corpus does not cover (SOURCES.md, "Gaps: not found
//! upstream"): CRLF, `changetype: moddn`, a control with a base64 value, versions other
//! than 1, a group with thousands of members, a multibyte character split across a fold,
//! and tab-prefixed continuation lines.

use registrar::ldif::{
    parse_content, read_content_file, Change, ChangeRecord, Control, LdifReader, ModRdn, Record,
    RenameKeyword,
};
use std::path::Path;

fn changes(input: &[u8]) -> Vec<ChangeRecord> {
    LdifReader::new(input)
        .map(|record| match record.unwrap() {
            Record::Change(change) => change,
            Record::Content(entry) => panic!("content record {entry:?}"),
        })
        .collect()
}

#[test]
fn crlf_line_endings_read_like_lf() {
    let lf = "version: 1\n# comment\n folded\ndn: cn=Ann,\n dc=example\ncn: Ann\ndescription: two\n  spaces\n\ndn: cn=Bob,dc=example\ncn: Bob \n";
    let crlf = lf.replace('\n', "\r\n");
    let from_lf = parse_content(lf.as_bytes(), Path::new(".")).unwrap();
    let from_crlf = parse_content(crlf.as_bytes(), Path::new(".")).unwrap();
    assert_eq!(from_lf, from_crlf);
    assert_eq!(from_crlf[0].dn, "cn=Ann,dc=example");
    assert_eq!(
        from_crlf[0].first_text("description").unwrap(),
        "two spaces"
    );
    // The CR is part of the line ending, not of the value; the trailing space is kept.
    assert_eq!(from_crlf[1].first_text("cn").unwrap(), "Bob ");
}

#[test]
fn moddn_is_a_rename_keyword_of_its_own() {
    let input =
        b"dn: cn=a,ou=x\nchangetype: moddn\nnewrdn: cn=b\ndeleteoldrdn: 1\nnewsuperior: ou=y\n\n\
        dn: cn=c,ou=x\nChangeType: MODRDN\nnewrdn: cn=d\ndeleteoldrdn: 0\n";
    let records = changes(input);
    assert_eq!(
        records[0].change,
        Change::ModRdn(ModRdn {
            keyword: RenameKeyword::ModDn,
            new_rdn: "cn=b".into(),
            delete_old_rdn: true,
            new_superior: Some("ou=y".into()),
        })
    );
    assert_eq!(
        records[1].change,
        Change::ModRdn(ModRdn {
            keyword: RenameKeyword::ModRdn,
            new_rdn: "cn=d".into(),
            delete_old_rdn: false,
            new_superior: None,
        })
    );
}

#[test]
fn control_values_plain_base64_and_folded() {
    // 1.2.840.113556.1.4.319 is the paged-results control; its value is BER, so binary.
    let input = b"dn: cn=a\n\
        control: 1.2.840.113556.1.4.319 true:: MAUCAQoEAA==\n\
        control: 1.3.6.1.1.13.1 false: plain value\n\
        control: 1.2.3.4:: AAEC\n\
        control: 1.2.840.113556.1.4.805 tr\n ue\n\
        changetype: delete\n";
    let records = changes(input);
    assert_eq!(
        records[0].controls,
        [
            Control {
                oid: "1.2.840.113556.1.4.319".into(),
                criticality: true,
                value: Some(vec![0x30, 0x05, 0x02, 0x01, 0x0a, 0x04, 0x00]),
            },
            Control {
                oid: "1.3.6.1.1.13.1".into(),
                criticality: false,
                value: Some(b"plain value".to_vec()),
            },
            Control {
                oid: "1.2.3.4".into(),
                criticality: false,
                value: Some(vec![0, 1, 2]),
            },
            Control {
                oid: "1.2.840.113556.1.4.805".into(),
                criticality: true,
                value: None,
            },
        ]
    );
    let err = LdifReader::new(&b"dn: cn=a\ncontrol: 1.2.3 true:: !!\nchangetype: delete\n"[..])
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.line, 2);
    assert!(
        err.message
            .contains("invalid base64 in value of \"control\""),
        "{err}"
    );
}

#[test]
fn only_version_1_exists() {
    for version in ["0", "2", "1.0", ""] {
        let input = format!("version: {version}\n\ndn: cn=a\ncn: a\n");
        let err = parse_content(input.as_bytes(), Path::new(".")).unwrap_err();
        assert_eq!(err.line, 1, "version {version:?}");
        assert!(err.message.contains("unsupported LDIF version"), "{err}");
    }
    let ok = parse_content(b"VERSION:1\ndn: cn=a\ncn: a\n", Path::new(".")).unwrap();
    assert_eq!(ok.len(), 1);
    // `version:` is only a version line at the very start of the input.
    let err = parse_content(b"dn: cn=a\ncn: a\n\nversion: 1\n", Path::new(".")).unwrap_err();
    assert_eq!(err.line, 4);
}

#[test]
fn a_group_with_thousands_of_members() {
    let members = 20_000;
    let mut input = String::from(
        "dn: cn=everyone,ou=groups,dc=example\nobjectClass: groupOfNames\ncn: everyone\n",
    );
    for i in 0..members {
        input.push_str(&format!("member: uid=user{i:05},ou=people,dc=example\n"));
    }
    input.push_str("\ndn: cn=after,dc=example\ncn: after\n");
    let entries = parse_content(input.as_bytes(), Path::new(".")).unwrap();
    assert_eq!(entries.len(), 2);
    let group = &entries[0];
    assert_eq!(group.attributes.len(), 3);
    let all: Vec<_> = group.text_values("member").collect();
    assert_eq!(all.len(), members);
    assert_eq!(all[0], "uid=user00000,ou=people,dc=example");
    assert_eq!(all[members - 1], "uid=user19999,ou=people,dc=example");

    let mut modify =
        String::from("dn: cn=everyone,ou=groups,dc=example\nchangetype: modify\nadd: member\n");
    for i in 0..members {
        modify.push_str(&format!("member: uid=new{i},ou=people,dc=example\n"));
    }
    let records = changes(modify.as_bytes());
    let Change::Modify(mods) = &records[0].change else {
        panic!("{:?}", records[0].change);
    };
    assert_eq!(mods[0].values.len(), members);
}

#[test]
fn a_multibyte_character_split_across_a_fold() {
    // "é" is C3 A9, "語" is E8 AA 9E: each is cut between its bytes by a fold.
    let input =
        b"dn: o=Caf\xc3\n \xa9,dc=example\no: Caf\xc3\n \xa9\ndescription: \xe8\n \xaa\n \x9e!\n";
    let entries = parse_content(input, Path::new(".")).unwrap();
    assert_eq!(entries[0].dn, "o=Café,dc=example");
    assert_eq!(entries[0].first_text("o").unwrap(), "Café");
    assert_eq!(entries[0].first_text("description").unwrap(), "語!");
}

#[test]
fn tab_prefixed_continuation_lines_are_rejected() {
    // RFC 2849: a continuation line starts with one SPACE. OpenLDAP also takes a tab; we
    // do not: nothing in the corpus needs it, and silently joining a tab-indented line is
    // more likely to hide a hand-editing mistake than to fix one.
    let input = b"dn: cn=a,dc=example\ndescription: first part\n\tsecond part\n";
    let err = parse_content(input, Path::new(".")).unwrap_err();
    assert_eq!(err.line, 3);
    assert_eq!(err.column, Some(1));
    assert!(err.message.contains("starts with a tab"), "{err}");
}

#[test]
fn content_files_with_url_values_and_change_records() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    std::fs::write(dir.path().join("photos/ann.jpg"), b"\xff\xd8\xff").unwrap();
    let path = dir.path().join("people.ldif");
    std::fs::write(
        &path,
        "dn: cn=Ann,dc=example\ncn: Ann\njpegPhoto:< photos/ann.jpg\n",
    )
    .unwrap();
    let entries = read_content_file(&path).unwrap();
    assert_eq!(
        entries[0].values("jpegPhoto").next().unwrap(),
        b"\xff\xd8\xff"
    );

    std::fs::write(
        &path,
        "dn: cn=Ann,dc=example\ncn: Ann\njpegPhoto:< photos/bob.jpg\n",
    )
    .unwrap();
    let err = read_content_file(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}:3:13: cannot read the value of \"jpegPhoto\" from \"photos/bob.jpg\": cannot read ",
            path.display()
        )),
        "{err}"
    );

    std::fs::write(
        &path,
        "# changes\ndn: cn=Ann,dc=example\nchangetype: delete\n",
    )
    .unwrap();
    let err = read_content_file(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2: the file contains change records; an ldif source's path must hold content \
             records (entries), and change files belong under its \"changes\"",
            path.display()
        )
    );

    std::fs::write(&path, "dn: cn=Ann,dc=example\ncn x: Ann\n").unwrap();
    let err = read_content_file(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2:3: invalid character \" \" in attribute name \"cn x\"",
            path.display()
        )
    );

    let missing = dir.path().join("missing.ldif");
    let err = read_content_file(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{err}"
    );
}
