//! The LDIF reader against the corpus in `shared/corpus/ldif` (see its SOURCES.md): every
//! file there is parsed and compared with its `.expected.json` reference parse
//! (python-ldap 3.4.8 tokenising, RFC 2849 record assembly).
//!
//! The test walks the directory, so a new file is checked (and must come with its
//! reference) and a missing one fails the count. Every mismatch is reported at once.
//! Where this reader departs from the reference on purpose, the departure is spelled out
//! below with the reason.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use registrar::core::entry::Attribute;
use registrar::ldif::{Change, LdifError, LdifReader, Record};
use serde_json::{json, Map, Value};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/ldif");

/// SOURCES.md: "49 LDIF data files".
const CORPUS_FILES: usize = 49;

/// Marks a value that came from `attr:< URL`: the reference stores URLs unresolved, so the
/// test's resolver returns this marker followed by the URL instead of reading anything.
const URL_MARK: &[u8] = b"\0url\0";

/// The files the reference rejects (SOURCES.md: "42 files parsed, 7 rejected"), with the
/// physical line where this reader stops and a piece of its message. (python-ldap's line
/// numbers are not comparable: it counts from 0 in some messages and points at the record
/// start in others.) Both must reject the same
/// files; the messages differ, and so does the reason for one file:
///
/// * 389ds/template.ldif: python-ldap rejects `dn: %ds_suffix%` (line 18) as not a DN.
///   This reader does not check DN syntax (the core's DN code does, later) and rejects
///   the file at line 26, where the content record that follows the opening change record
///   lacks a `changetype:`: RFC 2849 files hold either content or change records.
const REJECTED: &[(&str, usize, &str)] = &[
    (
        "389ds/template.ldif",
        26,
        "content record (no \"changetype:\" after \"dn:\") in a file of change records",
    ),
    (
        "opendj/modifications-invalid.ldif",
        1,
        "record has no \"dn:\" line",
    ),
    (
        "openldap/slapd-provider.ldif",
        13,
        "it starts with \"include:\"",
    ),
    (
        "rfc2849/rfc2849-example3-verbatim.ldif",
        12,
        "expected \"attr: value\", found \"IGlzIGJh",
    ),
    (
        "rfc2849/rfc2849-example4-verbatim.ldif",
        43,
        "expected \"attr: value\", found \"<JapaneseGivenname",
    ),
    (
        "rfc2849/rfc2849-example5-verbatim.ldif",
        8,
        "it starts with \"cn:\"",
    ),
    (
        "rfc2849/rfc2849-example6-verbatim.ldif",
        42,
        "it starts with \"delete:\"",
    ),
];

#[test]
fn every_corpus_file_matches_its_reference() {
    let corpus = Path::new(CORPUS);
    assert!(
        corpus.is_dir(),
        "corpus not found at {CORPUS}: the steering repository's shared/ must sit beside \
         this clone (ci/test leaves this test out, with a note, when it is missing and CI \
         is not true)"
    );
    let files = common::files_under(corpus, "ldif");
    assert_eq!(
        files.len(),
        CORPUS_FILES,
        "SOURCES.md lists {CORPUS_FILES} LDIF files; found {}: {files:#?}",
        files.len()
    );
    for (name, _, _) in REJECTED {
        assert!(
            corpus.join(name).is_file(),
            "{name} is listed as rejected but missing"
        );
    }

    let mut failures = Vec::new();
    let (mut content, mut change, mut rejected) = (0, 0, 0);
    for path in &files {
        let name = path
            .strip_prefix(corpus)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        match check_file(&name, path) {
            Ok(Outcome::Content) => content += 1,
            Ok(Outcome::Change) => change += 1,
            Ok(Outcome::Rejected) => rejected += 1,
            Err(problems) => failures.push(format!("{name}:\n  {}", problems.join("\n  "))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus files disagree with their reference:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    // SOURCES.md: "42 files parsed (29 content, 13 change), 7 rejected".
    assert_eq!((content, change, rejected), (29, 13, 7));
}

enum Outcome {
    Content,
    Change,
    Rejected,
}

fn check_file(name: &str, path: &Path) -> Result<Outcome, Vec<String>> {
    let reference_path = PathBuf::from(format!("{}.expected.json", path.display()));
    let reference: Value = match std::fs::read(&reference_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| vec![format!("{e}")])?,
        Err(e) => {
            return Err(vec![format!(
                "no reference {}: {e}",
                reference_path.display()
            )])
        }
    };
    let (records, error) = parse(path, 1 << 16);
    // The reader scans whole buffers at a time: a tiny buffer must read the same.
    if parse(path, 7) != (records.clone(), error.clone()) {
        return Err(vec![
            "reading through a 7-byte buffer gives other results".to_string()
        ]);
    }
    let expected_rejection = REJECTED.iter().find(|(file, _, _)| *file == name);

    if let Some(reference_error) = reference.get("error") {
        let Some((_, line, fragment)) = expected_rejection else {
            return Err(vec![format!(
                "the reference rejects the file ({reference_error}) but REJECTED does not list it"
            )]);
        };
        return match error {
            None => Err(vec![format!(
                "accepted ({} records); the reference rejects it: {reference_error}",
                records.len()
            )]),
            Some(error) if error.line == *line && error.message.contains(fragment) => {
                Ok(Outcome::Rejected)
            }
            Some(error) => Err(vec![format!(
                "rejected with \"{error}\"; expected line {line} and \"{fragment}\""
            )]),
        };
    }
    if expected_rejection.is_some() {
        return Err(vec![
            "listed in REJECTED but the reference accepts it".to_string()
        ]);
    }
    if let Some(error) = error {
        return Err(vec![format!("rejected: {error}")]);
    }

    let Value::Array(expected) = reference else {
        return Err(vec!["reference is neither a list nor an error".to_string()]);
    };
    let mut problems = Vec::new();
    if expected.len() != records.len() {
        problems.push(format!(
            "{} records, the reference has {}",
            records.len(),
            expected.len()
        ));
    }
    for (index, (ours, theirs)) in records.iter().zip(&expected).enumerate() {
        let ours = normalize(record_json(ours), theirs);
        let theirs = normalize(theirs.clone(), theirs);
        if ours != theirs {
            problems.push(format!(
                "record {index} ({}): {}",
                theirs["dn"],
                first_difference(&ours, &theirs)
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(if expected.iter().any(|r| r.get("changetype").is_some()) {
        Outcome::Change
    } else {
        Outcome::Content
    })
}

fn parse(path: &Path, buffer: usize) -> (Vec<Record>, Option<LdifError>) {
    let file = File::open(path).unwrap();
    let reader = LdifReader::new(BufReader::with_capacity(buffer, file))
        .with_resolver(|url: &str, _max: usize| Ok([URL_MARK, url.as_bytes()].concat()));
    let mut records = Vec::new();
    for record in reader {
        match record {
            Ok(record) => records.push(record),
            Err(error) => return (records, Some(error)),
        }
    }
    (records, None)
}

/// A value as the reference writes it: a string if UTF-8, else base64; URLs unresolved.
fn value_json(value: &[u8]) -> Value {
    if let Some(url) = value.strip_prefix(URL_MARK) {
        return json!({ "url": String::from_utf8_lossy(url) });
    }
    match std::str::from_utf8(value) {
        Ok(text) => json!(text),
        Err(_) => json!({ "base64": BASE64.encode(value) }),
    }
}

fn values_json(values: &[Vec<u8>]) -> Value {
    Value::Array(values.iter().map(|v| value_json(v)).collect())
}

fn attributes_json(attributes: &[Attribute]) -> Value {
    let mut map = Map::new();
    for attribute in attributes {
        map.insert(
            attribute.description.clone(),
            values_json(&attribute.values),
        );
    }
    Value::Object(map)
}

/// A record in the reference's JSON shape (SOURCES.md, "Expected output").
fn record_json(record: &Record) -> Value {
    match record {
        Record::Content(entry) => {
            json!({ "dn": entry.dn, "attributes": attributes_json(&entry.attributes) })
        }
        Record::Change(change) => {
            let controls: Vec<Value> = change
                .controls
                .iter()
                .map(|c| {
                    json!({
                        "type": c.oid,
                        "criticality": c.criticality,
                        "value": c.value.as_deref().map(value_json),
                    })
                })
                .collect();
            let mut out = json!({ "dn": change.dn, "controls": controls });
            let fields = match &change.change {
                Change::Add(attributes) => {
                    json!({ "changetype": "add", "attributes": attributes_json(attributes) })
                }
                Change::Delete => json!({ "changetype": "delete" }),
                Change::Modify(modifications) => json!({
                    "changetype": "modify",
                    "modifications": modifications.iter().map(|m| json!({
                        "op": m.op.keyword(),
                        "attribute": m.attribute,
                        "values": values_json(&m.values),
                    })).collect::<Vec<_>>(),
                }),
                Change::ModRdn(rename) => json!({
                    "changetype": rename.keyword.keyword(),
                    "newrdn": rename.new_rdn,
                    "deleteoldrdn": rename.delete_old_rdn,
                    "newsuperior": rename.new_superior,
                }),
            };
            for (key, value) in fields.as_object().unwrap() {
                out[key] = value.clone();
            }
            out
        }
    }
}

/// Departure: attribute names are compared case-insensitively.
///
/// python-ldap groups attributes by their exact spelling, so openldap/config.ldif's
/// `olcOverlay={0}datamorph` record has both `objectClass` and `objectclass`. LDAP
/// attribute names are case-insensitive, and `Entry` merges them (into the spelling seen
/// first). So both sides are keyed by the lower-cased name; where the reference has
/// several spellings of one name, their values are compared as a multiset, because the
/// reference's JSON object (read here without key order) no longer says which spelling
/// came first. Every other attribute keeps its value order.
fn normalize(mut record: Value, reference: &Value) -> Value {
    let Some(Value::Object(attributes)) = record.get("attributes").cloned() else {
        return record;
    };
    let mut spellings: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(Value::Object(reference_attributes)) = reference.get("attributes") {
        for name in reference_attributes.keys() {
            *spellings.entry(name.to_lowercase()).or_default() += 1;
        }
    }
    let mut merged: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (name, values) in attributes {
        let Value::Array(values) = values else {
            continue;
        };
        merged
            .entry(name.to_lowercase())
            .or_default()
            .extend(values);
    }
    let mut normalized = Map::new();
    for (name, mut values) in merged {
        if spellings.get(&name).is_some_and(|&n| n > 1) {
            values.sort_by_key(|v| v.to_string());
        }
        normalized.insert(name, Value::Array(values));
    }
    record["attributes"] = Value::Object(normalized);
    record
}

fn first_difference(ours: &Value, theirs: &Value) -> String {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys()) {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) if x == y => {}
                    (Some(x), Some(y)) => return format!("{key}: {}", first_difference(x, y)),
                    (x, y) => {
                        return format!("{key}: ours {}, reference {}", show(x), show(y));
                    }
                }
            }
            "equal".to_string()
        }
        (Value::Array(a), Value::Array(b)) => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    return format!("[{index}]: {}", first_difference(x, y));
                }
            }
            format!("ours has {} items, reference {}", a.len(), b.len())
        }
        (x, y) => format!("ours {x}, reference {y}"),
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or("missing".to_string(), |v| {
        let text = v.to_string();
        match text.char_indices().nth(200) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text,
        }
    })
}
