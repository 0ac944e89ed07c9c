//! Reading one part of a config file on its own with serde_yaml, and placing its error
//! where it stands in the whole file, with the path of the part before serde_yaml's own.

use super::problem::{ConfigProblem, Location};
use super::settings::ConfigText;
use super::yaml_bounds::Span;
use registrar_core::quote::{printable, shown_for_message, QUOTE_CHARS};

/// Deserializes the part of `file` that `span` covers, on its own: its first line is
/// indented to where the part starts (unless it stands in a flow list, where a line may
/// hold thousands of items: indenting each would be quadratic) and the positions
/// serde_yaml reports are moved to where the part stands, so a problem names the same
/// `line:col` as in the whole file. `path` (e.g. `mappings[2]`) is where the part
/// stands in the file, put before the path serde_yaml names within it.
pub(super) fn parse_part<T: serde::de::DeserializeOwned>(
    file: &ConfigText,
    span: &Span,
    path: Option<&str>,
) -> Result<T, ConfigProblem> {
    // An empty item (`-` alone) reads as serde_yaml reads it in the whole file: an
    // empty mapping where it stands.
    let part = match file.text.get(span.start.index..span.end.index) {
        Some("") | None => "{}",
        Some(part) => part,
    };
    let indent = if span.in_flow { 0 } else { span.start.column };
    let text = format!("{}{part}", " ".repeat(indent));
    serde_yaml::from_str::<T>(&text).map_err(|error| {
        // Within the part: 1-based, columns of its first line counted from its start.
        let (line, column) = error.location().map_or((1, 1), |l| match l.line() {
            1 => (1, l.column().saturating_sub(indent).max(1)),
            line => (line, l.column()),
        });
        let message = message_of(&error);
        let message = match path {
            Some(path) => within(path, &message),
            None => message,
        };
        let (line, column) = match refine_value_position(part, line, column, &message) {
            (1, column) => (span.start.line + 1, span.start.column + column),
            (line, column) => (span.start.line + line, column),
        };
        // serde quotes a value of the wrong type whole (`invalid type: string "…"`); ours
        // quote at most QUOTE_CHARS characters. A message far longer than ours can be is
        // cut like a quoted value.
        let message = if message.len() > 4 * QUOTE_CHARS + 400 {
            shown_for_message(&message)
        } else {
            printable(&message)
        };
        ConfigProblem {
            location: Location {
                file: file.path.clone(),
                line,
                column,
            },
            message,
        }
    })
}

/// serde_yaml's message for `error` without the position it prints, which
/// [`serde_yaml::Error::location`] gives. serde_yaml writes the message, then ` at line L
/// column C` for that location (except at line 1 column 1, where it writes none), then,
/// for a libyaml syntax error, libyaml's context (`, while parsing a block mapping`),
/// with the context's own position when it differs. A context with a position of its
/// own is kept, after the problem's position, up to that second position; a context
/// without one goes with the problem's position. The position is found from where
/// serde_yaml says it is, not by searching the message for the words ` at line `, which
/// a quoted value or key may hold.
fn message_of(error: &serde_yaml::Error) -> String {
    let display = error.to_string();
    let Some(location) = error
        .location()
        .filter(|l| (l.line(), l.column()) != (1, 1))
    else {
        return display;
    };
    let position = format!(" at line {} column {}", location.line(), location.column());
    // The last: the message before it may quote anything; libyaml's context after it
    // never repeats the problem's position.
    let Some(at) = display.rfind(&position) else {
        return display;
    };
    let context = &display[at + position.len()..];
    // libyaml's context is one of its own fixed phrases (no user text), its position
    // written last.
    match context.rfind(" at line ") {
        Some(context_position) => display[..at + position.len() + context_position].to_string(),
        None => display[..at].to_string(),
    }
}

/// A serde_yaml message about a part read on its own, as it reads in the whole file:
/// `within("mappings[2]", "when: invalid filter …")` is `mappings[2].when: invalid
/// filter …`, and a message about the part itself (`missing field …`) gets `mappings[2]: `.
fn within(path: &str, message: &str) -> String {
    // serde_yaml names the path within the part before the first `: `: field names,
    // `[index]`, `.` and `?` (no space, which its own messages all have).
    let is_path = |inner: &str| {
        !inner.is_empty()
            && inner.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']' | '?')
            })
    };
    match message.split_once(": ") {
        Some((inner, rest)) if is_path(inner) => format!("{path}.{inner}: {rest}"),
        _ => format!("{path}: {message}"),
    }
}

/// serde_yaml places errors raised while converting a value (a bad filter, template or
/// regex) at the start of the enclosing mapping. Such messages quote the offending text
/// (through [`quote_for_message`], so perhaps only its start) and often a column within
/// it (`invalid filter "(a=*": column 4: …`); point at that character when the quoted text
/// appears on one line at or after the reported one.
///
/// [`quote_for_message`]: registrar_core::quote::quote_for_message
fn refine_value_position(text: &str, line: usize, column: usize, message: &str) -> (usize, usize) {
    let Some(quoted_start) = message
        .find("invalid ")
        .and_then(|at| message[at..].find('"').map(|q| at + q))
    else {
        return (line, column);
    };
    // The closing quote: the first one not escaped.
    let mut escaped = false;
    let Some(quoted_len) = message[quoted_start + 1..].find(|c: char| {
        let closes = c == '"' && !escaped;
        escaped = c == '\\' && !escaped;
        closes
    }) else {
        return (line, column);
    };
    let quoted_end = quoted_start + 1 + quoted_len + 1;
    let Ok(value) = serde_json::from_str::<String>(&message[quoted_start..quoted_end]) else {
        return (line, column);
    };
    let mut rest = &message[quoted_end..];
    if rest.starts_with("… (") {
        rest = rest.find(')').map_or("", |close| &rest[close + 1..]);
    }
    let inner_column = rest
        .strip_prefix(": column ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1);
    for (index, source_line) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        if let Some(byte) = source_line.find(value.as_str()) {
            let start = source_line[..byte].chars().count() + 1;
            return (index + 1, start + inner_column - 1);
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::parse_file;
    use crate::config::raw::ConfigFile;
    use std::path::PathBuf;

    /// Read part by part, a file's first problem is where serde_yaml puts it reading the
    /// whole file, with the same message.
    #[test]
    fn a_part_read_alone_is_located_as_in_the_whole_file() {
        for text in [
            "mappings:\n  - name: x\n    protocol: aol\n",
            "mappings:\n- name: x\n  protocol: aol\n  value: \"{x}\"\n  colour: red\n",
            "policy:\n  max_deletes: many\n",
            "schedules: [{name: s, cron: \"61 * * * *\", action: plan}]\n",
            "sources:\n  - name: s\n    ldif:\n      path: a.ldif\n      max_value_bytes: -1\n",
            "groups:\n  - name: g\n    kind: distribution_list\n    source: s\n    filter: \"(a=1)(b=2)\"\n",
            "mappings:\n  - name: x\n    protocol: aol\n    value: \"{x}\"\n    renamed_from: [a, [b]]\n",
            "exclusions:\n  -\n",
            "exclusions:\n  - \n  - [a]\n",
            "protocols:\n  - [aol]\n",
        ] {
            let whole = serde_yaml::from_str::<ConfigFile>(text).unwrap_err();
            let location = whole.location().unwrap();
            let file = ConfigText {
                path: PathBuf::from("f.yaml"),
                text: text.to_string(),
            };
            let read = parse_file(&file);
            assert!(!read.problems.is_empty(), "{text:?}");
            let problem = &read.problems[0];
            let message = whole.to_string();
            let message = &message[..message.rfind(" at line ").unwrap()];
            assert_eq!(problem.message, printable(message), "{text:?}");
            let (line, column) =
                refine_value_position(text, location.line(), location.column(), message);
            assert_eq!(
                (problem.location.line, problem.location.column),
                (line, column),
                "{text:?}"
            );
        }
    }

    /// Config-shaped files: list sections of items, each item well formed or broken
    /// in one of the ways users break them, in block or flow style, and a policy.
    fn configish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let pick = |values: &[&'static str]| prop::sample::select(values.to_vec());
        let mapping = (
            pick(&["a", "b", "c"]),
            pick(&["\"{mail}\"", "\"{mail\"", "\"{mail|nope}\"", "[x]"]),
            pick(&[
                "",
                "\n    when: \"(a=1)\"",
                "\n    when: \"(a=1\"",
                "\n    colour: red",
            ]),
            any::<bool>(),
        )
            .prop_map(|(name, value, extra, flow)| {
                if flow {
                    format!("  - {{name: {name}, protocol: aol, value: {value}}}")
                } else {
                    format!("  - name: {name}\n    protocol: aol\n    value: {value}{extra}")
                }
            });
        let source = (
            pick(&["corp", "hr"]),
            pick(&["{path: p.ldif}", "{path: p.ldif, x: 1}", "3"]),
        )
            .prop_map(|(name, ldif)| format!("  - name: {name}\n    ldif: {ldif}"));
        let group = (pick(&["corp", "hr", "nope"]), pick(&["\"(cn=*)\"", "\"(cn=*\""]))
            .prop_map(|(source, filter)| {
                format!("  - name: \"{{cn}}\"\n    kind: distribution_list\n    source: {source}\n    filter: {filter}")
            });
        let section = prop_oneof![
            prop::collection::vec(mapping, 0..4)
                .prop_map(|items| format!("mappings:\n{}", items.join("\n"))),
            prop::collection::vec(source, 0..3)
                .prop_map(|items| format!("sources:\n{}", items.join("\n"))),
            prop::collection::vec(group, 0..3)
                .prop_map(|items| format!("groups:\n{}", items.join("\n"))),
            // A flow list, its items sharing lines. (The broken template is no prefix of
            // the good one: read whole, the file's problem would point at the first text
            // on its line that starts like the bad value, perhaps an earlier item's.)
            prop::collection::vec(
                (
                    pick(&["a", "b"]),
                    pick(&["\"{x}\"", "\"{y\"", "[1]"]),
                    pick(&[", ", ",\n  "])
                ),
                0..4
            )
            .prop_map(|items| {
                let items: Vec<_> = items
                    .iter()
                    .map(|(name, value, gap)| {
                        format!("{{name: {name}, protocol: aol, value: {value}}}{gap}")
                    })
                    .collect();
                format!("mappings: [{}~]", items.concat())
            }),
            pick(&[
                "policy: {max_deletes: 3}",
                "policy:\n  max_deletes: x",
                "bogus: 1",
                "# note"
            ])
            .prop_map(str::to_string),
        ];
        prop::collection::vec(section, 0..5).prop_map(|sections| sections.join("\n"))
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 512, ..Default::default() })]

        /// Reading part by part changes nothing serde_yaml says of the whole file: a file
        /// it reads whole gives no problem and the same items; a file it refuses gives, as
        /// its first problem, serde_yaml's first, at the same place.
        #[test]
        fn parts_read_alone_agree_with_the_whole_file(text in configish()) {
            let file = ConfigText { path: PathBuf::from("f.yaml"), text: text.clone() };
            let read = parse_file(&file);
            let is_empty = serde_yaml::from_str::<serde_yaml::Value>(&text)
                .is_ok_and(|value| value.is_null());
            match serde_yaml::from_str::<ConfigFile>(&text) {
                _ if is_empty => proptest::prop_assert!(read.problems.is_empty()),
                Ok(whole) => {
                    proptest::prop_assert!(read.problems.is_empty(), "{:?}", read.problems);
                    let config = read.config.unwrap();
                    proptest::prop_assert_eq!(config.sources.len(), whole.sources.len());
                    proptest::prop_assert_eq!(config.mappings.len(), whole.mappings.len());
                    proptest::prop_assert_eq!(config.groups.len(), whole.groups.len());
                    proptest::prop_assert_eq!(config.schedules.len(), whole.schedules.len());
                    proptest::prop_assert_eq!(config.policy.is_some(), whole.policy.is_some());
                }
                Err(error) => {
                    let first = read.problems.first();
                    proptest::prop_assert!(first.is_some());
                    let problem = first.unwrap();
                    let message = error.to_string();
                    let message = match message.rfind(" at line ") {
                        Some(at) => &message[..at],
                        None => &message,
                    };
                    // A repeated top-level key: serde_yaml names the root, we the key.
                    if !message.starts_with("duplicate field") {
                        let location = error.location().unwrap();
                        let (line, column) = refine_value_position(
                            &text, location.line(), location.column(), message);
                        proptest::prop_assert_eq!(&problem.message, &printable(message));
                        proptest::prop_assert_eq!(
                            (problem.location.line, problem.location.column), (line, column));
                    }
                }
            }
        }
    }

    /// The position serde_yaml prints is cut where serde_yaml put it: a key or value that
    /// holds the words ` at line ` keeps them.
    #[test]
    fn only_the_position_serde_yaml_printed_is_cut_from_its_message() {
        let file = |text: &str| ConfigText {
            path: PathBuf::from("f.yaml"),
            text: text.to_string(),
        };
        let read = parse_file(&file("x at line 9: 1\n"));
        assert_eq!(read.problems.len(), 1);
        assert!(
            read.problems[0]
                .message
                .starts_with("unknown field `x at line 9`, expected one of `sources`"),
            "{}",
            read.problems[0].message
        );
        let read = parse_file(&file("policy:\n  max_deletes: \"3 at line 7\"\n"));
        assert_eq!(
            read.problems[0].to_string(),
            "f.yaml:2:17: policy.max_deletes: invalid type: string \"3 at line 7\", expected u64"
        );
        // A syntax error keeps the shape it always had: libyaml's context goes with the
        // problem's position, or is kept up to its own position when it has one.
        for text in [
            "a:\n  - b\n c: d\n",
            "top:\n  a: 1\n  b: [x\n  c: d\n",
            "top:\n  - {a: 1\n  - b\n",
            "k: \"open\n",
        ] {
            let error = serde_yaml::from_str::<serde_yaml::Value>(text).unwrap_err();
            let display = error.to_string();
            assert_eq!(
                message_of(&error),
                &display[..display.rfind(" at line ").unwrap()],
                "{display}"
            );
        }
    }

    #[test]
    fn a_path_within_a_part_goes_after_the_part_s_own() {
        assert_eq!(
            within("mappings[2]", "missing field `value`"),
            "mappings[2]: missing field `value`"
        );
        assert_eq!(
            within("sources[0]", "ldif.max_value_bytes: invalid value: -1"),
            "sources[0].ldif.max_value_bytes: invalid value: -1"
        );
        assert_eq!(
            within(
                "groups[1]",
                "invalid type: sequence, expected struct GroupSpec"
            ),
            "groups[1]: invalid type: sequence, expected struct GroupSpec"
        );
    }
}
