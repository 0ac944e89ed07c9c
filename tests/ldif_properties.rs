//! Properties of the LDIF reader and writer: no input makes the reader panic, and what
//! the writer writes reads back as the same entries and change records.

use std::io::{BufRead, BufReader};

use proptest::collection::vec;
use proptest::prelude::*;
use registrar::core::entry::Entry;
use registrar::ldif::{
    entry_record, parse_entry_record, write_change, write_entry, write_version, Change,
    ChangeRecord, Control, LdifReader, ModOp, ModRdn, Modification, Record, RenameKeyword,
};

/// Reads everything, stopping at the first error; only panics matter here.
fn read_all(input: &[u8]) -> Vec<Result<Record, String>> {
    read_all_from(input)
}

fn read_all_from(input: impl BufRead) -> Vec<Result<Record, String>> {
    LdifReader::new(input)
        .with_resolver(|url: &str, _max: usize| {
            if url.len().is_multiple_of(2) {
                Ok(url.as_bytes().to_vec())
            } else {
                Err("odd".to_string())
            }
        })
        .map(|record| {
            record.map_err(|e| {
                assert!(e.line >= 1, "error without a line: {e}");
                e.to_string()
            })
        })
        .collect()
}

/// LDIF-shaped noise: fragments that reach the reader's branches far more often than
/// uniform bytes do.
fn ldif_soup() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"dn: cn=a".to_vec()),
        Just(b"dn:: Y249YQ==".to_vec()),
        Just(b"version: 1".to_vec()),
        Just(b"changetype: modify".to_vec()),
        Just(b"changetype: add".to_vec()),
        Just(b"changetype: delete".to_vec()),
        Just(b"changetype: modrdn".to_vec()),
        Just(b"newrdn: cn=b".to_vec()),
        Just(b"deleteoldrdn: 1".to_vec()),
        Just(b"newsuperior: o=x".to_vec()),
        Just(b"control: 1.2.3 true:: AA==".to_vec()),
        Just(b"add: cn".to_vec()),
        Just(b"replace: sn".to_vec()),
        Just(b"cn: x".to_vec()),
        Just(b"cn:: w6k=".to_vec()),
        Just(b"cn:< ab".to_vec()),
        Just(b"-".to_vec()),
        Just(b"#".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n ".to_vec()),
        Just(b"\n\t".to_vec()),
        Just(b":".to_vec()),
        Just(b" ".to_vec()),
        Just(vec![0xc3]),
        Just(vec![0xa9]),
        vec(any::<u8>(), 0..4),
    ];
    vec(fragment, 0..40).prop_map(|parts| parts.concat())
}

/// Attribute descriptions the writer accepts (`dn` and `changetype` are keywords).
fn description() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9-]{0,8}(;[a-zA-Z0-9-]{1,6}){0,2}".prop_filter("keyword", |d| {
        !d.eq_ignore_ascii_case("dn") && !d.eq_ignore_ascii_case("changetype")
    })
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..100),
        "[ -~]{0,90}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        Just(b" leading and trailing ".to_vec()),
        Just(b":<#-".to_vec()),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        any::<String>(),
        vec((description(), vec(value(), 1..4)), 0..6),
    )
        .prop_map(|(dn, attrs)| {
            let mut entry = Entry::new(dn);
            for (description, values) in attrs {
                for value in values {
                    entry.push_value(&description, value);
                }
            }
            entry
        })
}

fn modification() -> impl Strategy<Value = Modification> {
    prop_oneof![
        (description(), vec(value(), 1..3)).prop_map(|(attribute, values)| (
            ModOp::Add,
            attribute,
            values
        )),
        (description(), vec(value(), 0..3)).prop_map(|(attribute, values)| (
            ModOp::Delete,
            attribute,
            values
        )),
        (description(), vec(value(), 0..3)).prop_map(|(attribute, values)| (
            ModOp::Replace,
            attribute,
            values
        )),
        (description(), "[0-9]{1,5}").prop_map(|(attribute, value)| (
            ModOp::Increment,
            attribute,
            vec![value.into_bytes()]
        )),
    ]
    .prop_map(|(op, attribute, values)| Modification {
        op,
        attribute,
        values,
    })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        entry()
            .prop_filter("an add needs a value", |e| !e.attributes.is_empty())
            .prop_map(|e| Change::Add(e.attributes)),
        Just(Change::Delete),
        vec(modification(), 0..4).prop_map(Change::Modify),
        (
            any::<bool>(),
            ".+",
            any::<bool>(),
            proptest::option::of(any::<String>())
        )
            .prop_map(|(moddn, new_rdn, delete_old_rdn, new_superior)| {
                Change::ModRdn(ModRdn {
                    keyword: if moddn {
                        RenameKeyword::ModDn
                    } else {
                        RenameKeyword::ModRdn
                    },
                    new_rdn,
                    delete_old_rdn,
                    new_superior,
                })
            }),
    ]
}

fn change_record() -> impl Strategy<Value = ChangeRecord> {
    let control = (
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,4}",
        any::<bool>(),
        proptest::option::of(value()),
    )
        .prop_map(|(oid, criticality, value)| Control {
            oid,
            criticality,
            value,
        });
    (any::<String>(), vec(control, 0..3), change()).prop_map(|(dn, controls, change)| {
        ChangeRecord {
            dn,
            controls,
            change,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(input in vec(any::<u8>(), 0..512)) {
        read_all(&input);
    }

    #[test]
    fn ldif_shaped_noise_never_panics(input in ldif_soup()) {
        read_all(&input);
    }

    /// The reader scans whole buffers; lines (and CRLFs) cut by a buffer boundary must
    /// read the same.
    #[test]
    fn small_buffers_read_like_one_buffer(input in ldif_soup(), capacity in 1usize..20) {
        let whole = read_all(&input);
        let chunked = read_all_from(BufReader::with_capacity(capacity, &input[..]));
        prop_assert_eq!(whole, chunked);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn written_entries_read_back_the_same(entries in vec(entry(), 0..5), version: bool) {
        let mut out = Vec::new();
        if version {
            write_version(&mut out).unwrap();
        }
        for entry in &entries {
            write_entry(&mut out, entry).unwrap();
        }
        for line in out.split(|&b| b == b'\n') {
            prop_assert!(line.len() <= 76, "line longer than 76: {:?}", String::from_utf8_lossy(line));
            prop_assert!(line.is_ascii());
        }
        let read: Vec<Entry> = LdifReader::new(&out[..])
            .map(|record| match record {
                Ok(Record::Content(entry)) => entry,
                other => panic!("{other:?} in\n{}", String::from_utf8_lossy(&out)),
            })
            .collect();
        prop_assert_eq!(read, entries.clone());
        // One entry per record, the form the store keeps snapshots in.
        for entry in entries {
            prop_assert_eq!(parse_entry_record(&entry_record(&entry).unwrap()).unwrap(), entry);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn written_change_records_read_back_the_same(records in vec(change_record(), 0..5)) {
        let mut out = Vec::new();
        write_version(&mut out).unwrap();
        for record in &records {
            write_change(&mut out, record).unwrap();
        }
        for line in out.split(|&b| b == b'\n') {
            prop_assert!(line.len() <= 76, "line longer than 76: {:?}", String::from_utf8_lossy(line));
            prop_assert!(line.is_ascii());
        }
        let read: Vec<ChangeRecord> = LdifReader::new(&out[..])
            .map(|record| match record {
                Ok(Record::Change(change)) => change,
                other => panic!("{other:?} in\n{}", String::from_utf8_lossy(&out)),
            })
            .collect();
        prop_assert_eq!(read, records);
    }
}
