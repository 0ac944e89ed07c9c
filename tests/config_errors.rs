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

#[test]
fn every_problem_of_a_self_service_section_is_located() {
    let ldap = "sources:\n  - name: people\n    ldap:\n      url: ldap://127.0.0.1:1\n      \
                anonymous: true\n      base_dn: dc=example,dc=com\n";
    let section = "self_service:\n  source: corp\n  login_attribute: userPassword\n  \
                   protocols: []\n  max_per_account: 0\n  idle_timeout_minutes: 9999\n  \
                   trusted_header:\n    name: \"X Remote\"\n    proxies: [\"10.0.0.300\"]\n";
    let (code, stdout, stderr) = validate(&[
        ("sources.yaml", SOURCES.as_bytes()),
        ("ldap.yaml", ldap.as_bytes()),
        ("self.yaml", section.as_bytes()),
    ]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let expected = [
        "self.yaml:2:3: self_service.source corp is an LDIF source: people sign in by binding to an LDAP source",
        "self.yaml:3:3: self_service.login_attribute \"userPassword\" is not an attribute people sign in with (an attribute name, not a secret one)",
        "self.yaml:4:3: self_service.protocols names no protocol: list those people may register names for",
        "self.yaml:5:3: self_service.max_per_account must be 1 to 1000, not 0",
        "self.yaml:6:3: self_service.idle_timeout_minutes must be 1 to 1440, not 9999",
    ];
    for line in expected {
        assert!(stderr.contains(line), "{line:?} not in:\n{stderr}");
    }
    assert!(
        stderr.contains(
            "self.yaml:7:3: self_service.trusted_header.name \"X Remote\" is not a header name"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("self.yaml:9:5: self_service.trusted_header.proxies: \"10.0.0.300\" is not an IP address"), "{stderr}");
    // A second file setting the section, and a source nobody defined.
    let other = section.replace("source: corp", "source: nowhere");
    let (_, _, stderr) = validate(&[
        ("sources.yaml", SOURCES.as_bytes()),
        ("a.yaml", other.as_bytes()),
        ("b.yaml", section.as_bytes()),
    ]);
    assert!(
        stderr.contains("self_service.source nowhere is not a source of the config"),
        "{stderr}"
    );
    assert!(
        stderr.contains("section self_service is set in more than one file"),
        "{stderr}"
    );
}
