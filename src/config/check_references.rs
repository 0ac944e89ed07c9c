//! The checks of references between sections, once every file is in: the sources that
//! mappings and groups name exist, and `renamed_from` names no mapping that still
//! exists, nor one that two mappings claim.

use std::collections::{BTreeMap, BTreeSet};

use super::locate::Locator;
use super::parse::{ParsedFile, UnreadSources};
use super::problem::{ConfigProblem, Location};
use registrar_core::model::Rules;

/// Checks the references of every file against `rules`, every file's items in;
/// `names` is where each (kind, name) was first defined.
pub(super) fn check_references(
    parsed: &[ParsedFile<'_>],
    unread: &UnreadSources,
    rules: &Rules,
    names: &BTreeMap<(&'static str, String), Location>,
    problems: &mut Vec<ConfigProblem>,
) {
    let source_names: BTreeSet<&str> = rules.sources.iter().map(|s| s.name.as_str()).collect();
    let mapping_names: BTreeSet<&str> = rules.mappings.iter().map(|m| m.name.as_str()).collect();
    for ParsedFile { file, config, kept } in parsed {
        let locate = Locator { file, kept };
        let unknown_source = |name: &str, at: &Location| ConfigProblem {
            location: locate.token_after(at, name),
            message: format!(
                "unknown source {name:?} (known: {})",
                if source_names.is_empty() {
                    "none".to_string()
                } else {
                    source_names.iter().copied().collect::<Vec<_>>().join(", ")
                }
            ),
        };
        for (index, mapping) in config.mappings.iter().enumerate() {
            let at = locate.list_item("mappings", index);
            for source in mapping.sources.iter().flatten() {
                if !source_names.contains(source.as_str()) && !unread.may_define(source) {
                    problems.push(unknown_source(source, &at));
                }
            }
            for old in &mapping.renamed_from {
                if mapping_names.contains(old.as_str()) {
                    problems.push(ConfigProblem {
                        location: locate.token_after(&at, old),
                        message: format!(
                            "mapping {} lists {old:?} under renamed_from, but a mapping of that name still exists",
                            mapping.name
                        ),
                    });
                }
            }
        }
        for (index, group) in config.groups.iter().enumerate() {
            let at = locate.list_item("groups", index);
            if !source_names.contains(group.source.as_str()) && !unread.may_define(&group.source) {
                problems.push(unknown_source(&group.source, &at));
            }
        }
    }
    renamed_twice(rules, names, problems);
}

/// A name two mappings list under `renamed_from`: the problem stands at the second
/// mapping, where it was defined.
fn renamed_twice(
    rules: &Rules,
    names: &BTreeMap<(&'static str, String), Location>,
    problems: &mut Vec<ConfigProblem>,
) {
    let mut renamed: BTreeMap<&str, &str> = BTreeMap::new();
    for mapping in &rules.mappings {
        for old in &mapping.renamed_from {
            let Some(other) = renamed.insert(old, &mapping.name) else {
                continue;
            };
            // Every mapping of the rules was recorded where it was defined.
            if let Some(at) = names.get(&("mapping", mapping.name.clone())) {
                problems.push(ConfigProblem {
                    location: at.clone(),
                    message: format!(
                        "mappings {other} and {} both list {old:?} under renamed_from",
                        mapping.name
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::load::load_texts;
    use crate::config::problem::ConfigError;
    use crate::config::settings::ConfigText;

    #[test]
    fn a_name_two_mappings_rename_is_reported_where_the_second_is_defined() {
        let file = |path: &str, text: &str| ConfigText {
            path: PathBuf::from(path),
            text: text.to_string(),
        };
        let files = vec![
            file(
                "a.yaml",
                "mappings:\n  - name: m1\n    protocol: aol\n    value: \"{x}\"\n    renamed_from: [old]\n",
            ),
            file(
                "b.yaml",
                "# b\nmappings:\n  - name: m0\n    protocol: aol\n    value: \"{x}\"\n  \
                 - name: m2\n    protocol: aol\n    value: \"{x}\"\n    renamed_from: [old]\n",
            ),
        ];
        let Err(ConfigError::Invalid { problems }) = load_texts(files, &|_: &Path| Ok(())) else {
            panic!("the config should be refused");
        };
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            ["b.yaml:6:5: mappings m1 and m2 both list \"old\" under renamed_from"]
        );
    }
}
