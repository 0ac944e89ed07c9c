//! Every config problem in one run (issue 17, "Errors as promised"): through the built
//! binary, a config with problems in several files and several items of one file prints
//! each of them as one `file:line:col: message` line, in file order, and nothing else.

mod common;

use common::store::{self, TestStore};
use common::{registrar, stderr, stdout};

/// Writes `files` into a fresh `config` directory beside the quickstart's LDIF and runs
/// `validate` on it: the exit code, stdout and stderr.
fn validate(files: &[(&str, &[u8])]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::copy(
        common::workspace::quickstart().join("corp.ldif"),
        config.join("corp.ldif"),
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(config.join(name), text).unwrap();
    }
    let state = TestStore::fresh();
    let output = registrar(&config, &state.argument())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(store::fingerprint(&state), None, "validate writes no state");
    let prefix = format!("{}/", config.display());
    (
        output.status.code(),
        stdout(&output),
        stderr(&output).replace(&prefix, ""),
    )
}

const SOURCES: &str =
    "sources:\n  - name: corp\n    anchor: entryUUID\n    ldif:\n      path: corp.ldif\n";

/// Three mappings whose filters do not parse.
const FILTERS: &str = "# Three mappings, each with a filter that does not parse.
mappings:
  - name: aol
    protocol: aol
    value: \"{uid}\"
    when: \"(uid=*\"
  - name: lcs
    protocol: lcs
    value: \"{mail}\"
    when: \"(&(mail=*)\"
  - name: jabber
    protocol: jabber
    value: \"{uid}\"
    when: \"uid=*)\"
";

/// A template error, a duplicate mapping name and a group rule reading an unknown source.
const RULES: &str = "mappings:
  - name: sip
    protocol: lcs
    value: \"{mail|nope}\"
  - name: sametime
    protocol: sametime
    value: \"{uid}\"
  - name: sametime
    protocol: sametime
    value: \"{cn}\"
groups:
  - name: \"{cn}\"
    kind: distribution_list
    source: payroll
    filter: \"(objectClass=groupOfNames)\"
";

#[test]
fn every_problem_of_every_file_is_one_line_in_file_order() {
    let (code, out, err) = validate(&[
        ("sources.yaml", SOURCES.as_bytes()),
        ("filters.yaml", FILTERS.as_bytes()),
        ("rules.yaml", RULES.as_bytes()),
        // Not YAML: this file stops at its syntax error, the others are still checked.
        (
            "broken.yaml",
            b"protocols: [\n  {name: aol, max_length: 16}\n",
        ),
        // Not text: the same, at its first byte that is not UTF-8.
        ("binary.yaml", b"protocols:\n  - name: aol\xff\n"),
    ]);
    let expected = [
        "error: binary.yaml:2:14: not UTF-8 text",
        "error: broken.yaml:3:1: did not find expected ',' or ']'",
        "error: filters.yaml:6:18: mappings[0]: invalid filter \"(uid=*\": column 7: unbalanced parenthesis",
        "error: filters.yaml:10:22: mappings[1]: invalid filter \"(&(mail=*)\": column 11: unbalanced parenthesis",
        "error: filters.yaml:14:17: mappings[2]: invalid filter \"uid=*)\": column 6: unbalanced parenthesis",
        "error: rules.yaml:4:19: mappings[0]: invalid template \"{mail|nope}\": column 7: unknown filter \"nope\"",
        "error: rules.yaml:8:5: duplicate mapping name \"sametime\" (first defined at rules.yaml:5:5)",
        "error: rules.yaml:14:13: unknown source \"payroll\" (known: corp)",
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), expected.len(), "stderr:\n{err}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(start),
            "{line:?} should start with {start:?}\n{err}"
        );
    }
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
}

#[test]
fn a_broken_source_is_reported_once_and_its_references_are_not_unknown() {
    let sources = "sources:
  - name: corp
    ldif: {path: corp.ldif}
  - name: hr
    ldif: {path: corp.ldif, colour: red}
";
    let mappings = "mappings:
  - name: aol
    protocol: aol
    value: \"{uid}\"
    sources: [hr, corp]
  - name: st
    protocol: sametime
    value: \"{uid}\"
    sources: [payrol]
";
    let (code, out, err) = validate(&[
        ("a.yaml", sources.as_bytes()),
        ("b.yaml", mappings.as_bytes()),
    ]);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "error: a.yaml:5:29: sources[1].ldif: unknown field `colour`, expected one of `path`, `changes`, `max_value_bytes`",
            "error: b.yaml:9:15: unknown source \"payrol\" (known: corp)",
        ],
        "{err}"
    );
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
}
