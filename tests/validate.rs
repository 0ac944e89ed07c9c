//! `registrar validate` reads the LDIF sources in the repository (syntax, change files,
//! entry counts) and tells every broken one in the same run; an LDAP server is read only
//! when `--sources` names it.

mod common;

use common::workspace::Workspace;
use common::{stderr, stdout};

#[test]
fn validate_reads_the_ldif_sources_and_counts_their_entries() {
    let ws = Workspace::new();
    let output = ws.run(&["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let entries = std::fs::read_to_string(ws.config().join("corp.ldif"))
        .unwrap()
        .lines()
        .filter(|line| line.starts_with("dn: "))
        .count();
    assert!(
        text.contains(&format!("source corp: {entries} entries read")),
        "{text}"
    );
    // An LDAP source is not contacted unless asked.
    ws.write_config(
        "ldap.yaml",
        "sources:\n  - name: ad\n    ldap:\n      url: ldap://127.0.0.1:9\n      \
         anonymous: true\n      base_dn: dc=example,dc=com\n",
    );
    let output = ws.run(&["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("source ad: LDAP, not read (validate --sources ad reads it)"),
        "{}",
        stdout(&output)
    );
    let output = ws.run(&["validate", "--sources", "ad"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("source ad:"),
        "{}",
        stderr(&output)
    );
    let output = ws.run(&["validate", "--sources", "nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no source named \"nope\""),
        "{}",
        stderr(&output)
    );
}

#[test]
fn every_broken_ldif_source_is_told_with_its_place() {
    let ws = Workspace::new();
    std::fs::write(
        ws.config().join("broken.ldif"),
        "dn: cn=a,dc=example,dc=com\nobjectClass: person\nnot a line\n",
    )
    .unwrap();
    std::fs::write(
        ws.config().join("other.ldif"),
        "dn: cn=b,dc=example,dc=com\ncn:: not-base64!\n",
    )
    .unwrap();
    ws.write_config(
        "more.yaml",
        "sources:\n  - name: broken\n    ldif:\n      path: broken.ldif\n\
         \x20 - name: other\n    ldif:\n      path: other.ldif\n",
    );
    let output = ws.run(&["validate"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("error: source broken: "), "{err}");
    assert!(lines[0].contains("broken.ldif:3:"), "{err}");
    assert!(lines[1].starts_with("error: source other: "), "{err}");
    assert!(lines[1].contains("other.ldif:2:"), "{err}");
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
}
