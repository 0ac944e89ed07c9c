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
    assert!(ws.state_bytes().is_none());
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
