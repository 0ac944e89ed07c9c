//! Hostile input through the built binary (issue 16, "Input is bounded" and "Output is
//! inert"): YAML alias bombs and deep nesting, oversized LDIF values, control characters
//! and Markdown in names. Each attack must end in one located line, or in output that
//! shows the hostile text as text.

mod common;

use common::workspace::Workspace;
use common::{assert_one_line_error, stderr, stdout};

/// A 100 KB config of aliases to one anchor of many strings: expanded, gigabytes.
#[test]
fn a_yaml_alias_bomb_is_refused_at_the_first_alias() {
    let ws = Workspace::new();
    let strings = vec!["registrar"; 5_000].join(", ");
    let aliases = vec!["*bomb"; 10_000].join(", ");
    ws.write_config(
        "bomb.yaml",
        &format!("# one anchor, many aliases\nx: &bomb [{strings}]\ny: [{aliases}]\n"),
    );
    assert!(
        std::fs::metadata(ws.config().join("bomb.yaml"))
            .unwrap()
            .len()
            > 100_000
    );
    for command in [&["validate"][..], &["plan"]] {
        assert_one_line_error(
            &ws.run(command),
            &["bomb.yaml:3:5: YAML aliases (*bomb) are not allowed in registrar config"],
        );
    }
    assert!(ws.fingerprint().is_none());
}

/// An alias where a config would use one, to repeat a list: refused, not expanded.
#[test]
fn an_alias_in_a_real_config_is_refused_where_it_stands() {
    let ws = Workspace::new();
    ws.write_config(
        "extra.yaml",
        "policy:\n  protected_principals: &keep\n    - cn=a,dc=example,dc=com\n\
         exclusions:\n  - name: keep\n    dn_subtree: *keep\n",
    );
    assert_one_line_error(
        &ws.run(&["validate"]),
        &["extra.yaml:6:17: YAML aliases (*keep) are not allowed"],
    );
}

/// YAML nested 100,000 deep, in flow and in block style.
#[test]
fn yaml_nested_too_deep_is_refused_at_the_level_past_the_limit() {
    let ws = Workspace::new();
    let depth = 100_000;
    ws.write_config(
        "deep.yaml",
        &format!("policy:\n  x: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
    );
    assert_one_line_error(
        &ws.run(&["validate"]),
        &["deep.yaml:2:68: YAML nested deeper than 64 levels"],
    );
    ws.write_config(
        "deep.yaml",
        &format!("policy:\n  x:\n{}x\n", "  - ".repeat(depth)),
    );
    assert_one_line_error(
        &ws.run(&["validate"]),
        &["deep.yaml:3:", "YAML nested deeper than 64 levels"],
    );
    std::fs::remove_file(ws.config().join("deep.yaml")).unwrap();
    let output = ws.run(&["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stdout(&output).is_empty());
}

/// Appends `text` to the quickstart's LDIF file.
fn append_ldif(ws: &Workspace, text: &[u8]) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(ws.config().join("corp.ldif"))
        .unwrap();
    file.write_all(text).unwrap();
}

/// The line number the next line appended to the quickstart's LDIF file gets.
fn next_ldif_line(ws: &Workspace) -> usize {
    let text = std::fs::read_to_string(ws.config().join("corp.ldif")).unwrap();
    text.lines().count() + 1
}

/// `max_value_bytes` of a few KB: a value just over it, plain, base64 or from a URL, is
/// one line naming file, line, column, attribute and limit; one at the limit reads.
#[test]
fn an_ldif_value_over_the_configured_limit_is_one_located_line() {
    let ws = Workspace::new();
    let config = std::fs::read_to_string(ws.config().join("registrar.yaml")).unwrap();
    let with_limit = |limit: &str| {
        config.replace(
            "      path: corp.ldif\n",
            &format!("      path: corp.ldif\n      max_value_bytes: {limit}\n"),
        )
    };
    ws.write_config("registrar.yaml", &with_limit("0"));
    assert_one_line_error(
        &ws.run(&["validate"]),
        &["registrar.yaml:9:7: source corp: max_value_bytes must be at least 1"],
    );
    ws.write_config("registrar.yaml", &with_limit("4096"));
    std::fs::write(ws.config().join("at-limit.bin"), vec![b'a'; 4096]).unwrap();
    std::fs::write(ws.config().join("over.bin"), vec![b'a'; 4097]).unwrap();
    let line = next_ldif_line(&ws) + 1;
    append_ldif(
        &ws,
        format!(
            "\ndn: cn=Big,ou=People,dc=example,dc=com\nobjectClass: person\ncn: Big\n\
             description: {}\njpegPhoto:< at-limit.bin\n",
            "d".repeat(4096)
        )
        .as_bytes(),
    );
    let output = ws.run(&["plan"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let limit = "is larger than the limit of 4096 bytes (max_value_bytes of the source)";
    let plain = line + 3 + 6;
    append_ldif(
        &ws,
        format!(
            "\ndn: cn=Bigger,ou=People,dc=example,dc=com\nobjectClass: person\ncn: Bigger\n\
             description: {}\n",
            "d".repeat(4097)
        )
        .as_bytes(),
    );
    for command in [&["validate"][..], &["plan"], &["apply"]] {
        // validate reads the LDIF sources too.
        let output = ws.run(command);
        assert_one_line_error(
            &output,
            &[
                &format!("corp.ldif:{plain}:14: value of \"description\" {limit}"),
                "source corp",
            ],
        );
    }
    assert!(ws.fingerprint().is_none());

    let ldif = std::fs::read_to_string(ws.config().join("corp.ldif")).unwrap();
    let base64 = "YWFh".repeat(1366); // 4098 bytes
    std::fs::write(
        ws.config().join("corp.ldif"),
        ldif.replace(
            &format!("description: {}\n", "d".repeat(4097)),
            &format!("jpegPhoto:: {base64}\n"),
        ),
    )
    .unwrap();
    assert_one_line_error(
        &ws.run(&["plan"]),
        &[&format!(
            "corp.ldif:{plain}:13: value of \"jpegPhoto\" {limit}"
        )],
    );
    std::fs::write(
        ws.config().join("corp.ldif"),
        ldif.replace(
            &format!("description: {}\n", "d".repeat(4097)),
            "jpegPhoto:< over.bin\n",
        ),
    )
    .unwrap();
    assert_one_line_error(
        &ws.run(&["plan"]),
        &[&format!(
            "corp.ldif:{plain}:13: cannot read the value of \"jpegPhoto\" from \"over.bin\": \
             it holds 4097 bytes, more than the limit of 4096 bytes"
        )],
    );
}

/// The default limit (16 MiB) against a 17 MiB value, and a 1 GiB file named by a URL
/// (sparse: nothing is written to disk, and nothing may read it).
#[test]
fn the_default_limit_refuses_a_17_mib_value_and_a_1_gib_url_in_one_line() {
    let ws = Workspace::new();
    let line = next_ldif_line(&ws) + 1;
    let mut record = b"\ndn: cn=Huge,ou=People,dc=example,dc=com\nobjectClass: person\ncn: Huge\n\
mail: huge@example.com\ndescription: "
        .to_vec();
    record.resize(record.len() + (17 << 20), b'h');
    record.push(b'\n');
    append_ldif(&ws, &record);
    assert_one_line_error(
        &ws.run(&["plan"]),
        &[&format!(
            "corp.ldif:{}:14: value of \"description\" is larger than the limit of 16777216 \
             bytes",
            line + 4
        )],
    );

    let ws = Workspace::new();
    let huge = std::fs::File::create(ws.config().join("huge.bin")).unwrap();
    huge.set_len(1 << 30).unwrap();
    append_ldif(
        &ws,
        b"\ndn: cn=Huge,ou=People,dc=example,dc=com\nobjectClass: person\ncn: Huge\n\
description:< huge.bin\n",
    );
    assert_one_line_error(
        &ws.run(&["plan"]),
        &[&format!(
            "corp.ldif:{}:15: cannot read the value of \"description\" from \"huge.bin\": it \
             holds 1073741824 bytes, more than the limit of 16777216 bytes",
            line + 3
        )],
    );
}

/// A filter nested 100,000 deep in a mapping's `when`: the error quotes at most 200
/// characters of it, not the whole filter.
#[test]
fn a_filter_nested_too_deep_is_a_short_line() {
    let ws = Workspace::new();
    let depth = 100_000;
    let filter = format!("{}(cn=a){}", "(!".repeat(depth), ")".repeat(depth));
    ws.write_config(
        "deep.yaml",
        &format!(
            "mappings:\n  - name: deep\n    protocol: aol\n    value: \"{{mail}}\"\n    when: \"{filter}\"\n"
        ),
    );
    let output = ws.run(&["validate"]);
    assert_one_line_error(
        &output,
        &[
            "deep.yaml:5:",
            &format!(
                "invalid filter \"{}\"… ({} bytes)",
                "(!".repeat(100),
                filter.len()
            ),
            "filter nested more than",
        ],
    );
    assert!(stderr(&output).len() < 1000, "{}", stderr(&output));
}

/// Control characters and bidi overrides from the config or the directory arrive
/// escaped, in config errors, LDIF errors and plan warnings.
#[test]
fn control_characters_in_errors_and_warnings_are_escaped() {
    let ws = Workspace::new();
    ws.write_config(
        "bad.yaml",
        "mappings:\n  - name: bad\n    protocol: aol\n    value: \"{mail|lowr\\e[2J}\"\n",
    );
    let output = ws.run(&["validate"]);
    assert_one_line_error(&output, &["bad.yaml:", r#"unknown filter "lowr\u{1b}[2J""#]);
    assert!(!stderr(&output).contains('\x1b'));
    std::fs::remove_file(ws.config().join("bad.yaml")).unwrap();

    append_ldif(
        &ws,
        b"\ndn: cn=Esc,ou=People,dc=example,dc=com\nobjectClass: person\nobjectCla\x1bss: x\n",
    );
    let output = ws.run(&["plan"]);
    assert_one_line_error(
        &output,
        &[r#"invalid character U+001B in attribute name "objectCla\u{1b}ss""#],
    );
    assert!(!stderr(&output).contains('\x1b'));

    // A name longer than the protocol allows, with a terminal escape and a bidi override
    // in it: the warning quotes 200 characters of it, escaped.
    let ws = Workspace::new();
    let name = format!("\x1b]0;owned\x07\u{202e}{}", "n".repeat(5_000));
    append_ldif(
        &ws,
        format!(
            "\ndn: cn=Long,ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: inetOrgPerson\ncn: Long\n\
             entryUUID: 0f0e0d0c-0000-4000-8000-000000000001\nmail: {name}@example.com\n"
        )
        .as_bytes(),
    );
    let output = ws.run(&["plan"]);
    let text = stdout(&output);
    let warning = text
        .lines()
        .find(|line| line.contains("produced aol name"))
        .unwrap_or_else(|| panic!("no warning in {text}"));
    assert!(
        warning.contains(r#"name "\u{1b}]0;owned\u{7}\u{202e}nnn"#),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("… ({} bytes)", name.len())),
        "{warning}"
    );
    assert!(warning.len() < 600, "{warning}");
    for output in [text, stdout(&ws.run(&["plan", "--format", "markdown"]))] {
        assert!(!output.contains('\x1b') && !output.contains('\u{202e}'));
    }
}

/// A 300 KB string where the schema wants a number: serde quotes it whole, the error
/// line does not.
#[test]
fn a_huge_value_of_the_wrong_type_is_a_short_line() {
    let ws = Workspace::new();
    ws.write_config(
        "huge.yaml",
        &format!(
            "policy:\n  max_deletes: \"{}\\e[2J\"\n",
            "x".repeat(300_000)
        ),
    );
    let output = ws.run(&["validate"]);
    assert_one_line_error(&output, &["huge.yaml:2:", "invalid type: string \"xxx"]);
    assert!(stderr(&output).len() < 1000, "{}", stderr(&output));
}
