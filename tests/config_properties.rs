//! The config loader on arbitrary input: whatever the YAML, loading returns a config or
//! located problems, and never panics. Every problem names the file, a line and a column
//! inside it.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use registrar::config::{load_texts, ConfigError, ConfigText};

/// YAML-shaped text built from the format's own keys and values, so that generated
/// files get past the syntax into schema and cross-reference checks.
fn yamlish() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "sources",
        "mappings",
        "groups",
        "exclusions",
        "policy",
        "protocols",
        "schedules",
        "accounts",
        "object_types",
        "name",
        "protocol",
        "value",
        "when",
        "ldif",
        "path",
        "anchor",
        "kind",
        "source",
        "filter",
        "dn",
        "im_name",
        "cron",
        "action",
        "bogus",
    ]);
    let value = prop::sample::select(vec![
        "",
        "x",
        "aol",
        "\"{mail|lower}\"",
        "\"(mail=*\"",
        "\"{mail|nope}\"",
        "[a, b]",
        "\"*/5 * * * *\"",
        "61 * * * *",
        "plan",
        "org_unit",
        "-1",
        "{path: p.ldif}",
        "\"^(a\"",
        "null",
        "[",
        "}",
    ]);
    let line = (0usize..3, key, value).prop_map(|(indent, key, value)| {
        format!(
            "{}{}{key}: {value}",
            "  ".repeat(indent),
            if indent > 0 { "- " } else { "" }
        )
    });
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

fn check(texts: Vec<String>) {
    let files: Vec<ConfigText> = texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| ConfigText {
            path: PathBuf::from(format!("cfg/{i}.yaml")),
            text,
        })
        .collect();
    // Lines as YAML counts them: a lone CR ends a line too (as it does in an editor
    // that shows old Mac text), not only LF and CRLF.
    let lines: Vec<usize> = files
        .iter()
        .map(|f| 1 + f.text.replace("\r\n", "\n").matches(['\r', '\n']).count())
        .collect();
    match load_texts(files, &|_: &Path| Ok(())) {
        Ok(_) => {}
        Err(ConfigError::Invalid { problems }) => {
            assert!(!problems.is_empty());
            for problem in problems {
                let name = problem.location.file.to_string_lossy().into_owned();
                let index: usize = name["cfg/".len()..name.len() - ".yaml".len()]
                    .parse()
                    .unwrap();
                assert!(
                    problem.location.line >= 1 && problem.location.line <= lines[index] + 1,
                    "{problem}"
                );
                assert!(problem.location.column >= 1, "{problem}");
                assert!(!problem.message.is_empty());
                assert!(
                    !problem.to_string().contains('\n'),
                    "one line per problem: {problem:?}"
                );
            }
        }
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

/// Found by `arbitrary_text_never_panics`: an unterminated quote before two lone CRs is
/// reported at 3:1, where YAML (which counts a CR as a line break) ends the text.
#[test]
fn lone_carriage_returns_count_as_lines_in_locations() {
    check(vec!["\"\r\r".to_string()]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(texts in prop::collection::vec(".{0,200}", 1..3)) {
        check(texts);
    }

    #[test]
    fn yaml_shaped_text_gives_located_problems(texts in prop::collection::vec(yamlish(), 1..3)) {
        check(texts);
    }
}
