//! Loading a config: the `*.yaml` files of a directory (working tree or git revision),
//! parsed file by file (`parse.rs`), then checked together (`check.rs`); every problem of
//! every file reported at once, in file order.

use std::collections::BTreeMap;
use std::path::Path;

use super::check::{check, DataFileCheck};
use super::locate::Locator;
use super::parse::{parse_file, ParsedFile, UnreadSources};
use super::problem::{ConfigError, ConfigProblem, Location, UnreadableFile};
use super::settings::{Config, ConfigText, Schedule};
use crate::adapters::tree::Tree;

/// Reads every `*.yaml` file of `dir` in the working tree and checks the result.
pub fn load_dir(dir: &Path) -> Result<Config, ConfigError> {
    load(&Tree::working_tree(dir), dir)
}

/// Reads every `*.yaml` (and `*.yml`) file of `dir` from `files` (the working tree or a
/// git revision) and checks the result, including that the data files it names exist
/// there.
pub fn load(files: &Tree, dir: &Path) -> Result<Config, ConfigError> {
    let paths = files.list_yaml(dir)?;
    if paths.is_empty() {
        return Err(ConfigError::NoFiles {
            dir: dir.to_path_buf(),
        });
    }
    let mut texts = Vec::new();
    let mut not_text = Vec::new();
    for path in paths {
        match String::from_utf8(files.read(&path)?) {
            Ok(text) => texts.push(ConfigText { path, text }),
            Err(error) => {
                // Where the first byte that is not UTF-8 stands.
                let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
                let valid = std::str::from_utf8(valid).unwrap_or_default();
                let line_start = valid.rfind('\n').map_or(0, |at| at + 1);
                let lossy = ConfigText {
                    path: path.clone(),
                    text: String::from_utf8_lossy(error.as_bytes()).into_owned(),
                };
                not_text.push(NotText {
                    problem: ConfigProblem {
                        location: Location {
                            file: path,
                            line: valid.matches('\n').count() + 1,
                            column: valid[line_start..].chars().count() + 1,
                        },
                        message: "not UTF-8 text".to_string(),
                    },
                    has_sources: has_sources_section(&lossy),
                });
            }
        }
    }
    load_all(texts, not_text, &|path: &Path| {
        files.check_file(path).map_err(|problem| UnreadableFile {
            reason: problem.to_string(),
        })
    })
}

/// Parses and checks config texts. `check_file` tells why a data file the config names
/// cannot be read, if it cannot (the working tree, or a git revision); its reason
/// follows the path in the message, e.g. `not found (looked for …)`.
///
/// Every problem of every file is reported, sorted in file order: a broken item of a
/// list (a source, a mapping, …) is left out and the others are still read and checked.
pub fn load_texts(
    files: Vec<ConfigText>,
    check_file: DataFileCheck<'_>,
) -> Result<Config, ConfigError> {
    load_all(files, Vec::new(), check_file)
}

/// A config file that is not UTF-8 text.
struct NotText {
    problem: ConfigProblem,
    /// It has a `sources` section (read with its bad bytes replaced), so it may define
    /// any source.
    has_sources: bool,
}

/// Whether `file` has a top-level `sources:` line.
fn has_sources_section(file: &ConfigText) -> bool {
    let kept = BTreeMap::new();
    Locator { file, kept: &kept }
        .section_line("sources")
        .is_some()
}

/// [`load_texts`], with the files that are not text: their problems are reported with
/// the others, and references to sources are not reported as unknown when one of them
/// may define sources.
fn load_all(
    files: Vec<ConfigText>,
    not_text: Vec<NotText>,
    check_file: DataFileCheck<'_>,
) -> Result<Config, ConfigError> {
    let mut unread = UnreadSources {
        some_unnamed: not_text.iter().any(|file| file.has_sources),
        ..UnreadSources::default()
    };
    let mut problems: Vec<ConfigProblem> = not_text.into_iter().map(|file| file.problem).collect();
    let mut parsed = Vec::new();
    for file in &files {
        let read = parse_file(file);
        problems.extend(read.problems);
        unread.names.extend(read.unread.names);
        unread.some_unnamed |= read.unread.some_unnamed;
        match read.config {
            Some(config) => parsed.push(ParsedFile {
                file,
                config,
                kept: read.kept,
            }),
            // A file that is not YAML at all may define any source, if it has a
            // `sources` section.
            None => unread.some_unnamed |= has_sources_section(file),
        }
    }
    let checked = check(&parsed, &unread, check_file, &mut problems);
    let mut schedules: Vec<Schedule> = parsed
        .iter()
        .flat_map(|parsed| &parsed.config.schedules)
        .map(|schedule| Schedule {
            name: schedule.name.0.clone(),
            cron_text: schedule.cron.0.clone(),
            cron: schedule.cron.1.clone(),
            action: schedule.action,
            mode: schedule.mode,
        })
        .collect();
    schedules.sort_by(|a, b| a.name.cmp(&b.name));
    let object_types_file = parsed
        .iter()
        .find(|parsed| parsed.config.object_types.is_some())
        .map(|parsed| parsed.file.path.clone());
    drop(parsed);
    if problems.is_empty() {
        Ok(Config {
            rules: checked.rules,
            sources: checked.sources,
            files,
            schedules,
            object_types_file,
            self_service: checked.self_service,
        })
    } else {
        problems.sort();
        problems.dedup();
        Err(ConfigError::Invalid { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn problems(files: &[(&str, &str)]) -> Vec<String> {
        let texts = files
            .iter()
            .map(|(path, text)| ConfigText {
                path: PathBuf::from(path),
                text: text.to_string(),
            })
            .collect();
        match load_texts(texts, &|_: &Path| Ok(())) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn broken_items_do_not_hide_each_other_or_the_checks_of_the_rest() {
        let text = "sources:\n  - {name: corp, ldif: {path: a.ldif}}\n\
                    mappings:\n  - {name: a, protocol: aol, value: \"{x}\", when: \"(x\"}\n  \
                    - {name: b, protocol: aol, value: \"{x\"}\n  \
                    - {name: c, protocol: aol, value: \"{x}\", sources: [nope]}\n  \
                    - {name: c, protocol: aol, value: \"{y}\"}\n\
                    colour: red\n";
        assert_eq!(
            problems(&[("b.yaml", "mappings: [\n"), ("a.yaml", text)]),
            [
                "a.yaml:4:53: mappings[0]: invalid filter \"(x\": column 3: expected \"=\" after attribute \"x\"",
                "a.yaml:5:38: mappings[1]: invalid template \"{x\": column 1: unclosed '{': missing '}' (write '{{' for a literal '{')",
                "a.yaml:6:54: unknown source \"nope\" (known: corp)",
                "a.yaml:7:5: duplicate mapping name \"c\" (first defined at a.yaml:6:5)",
                "a.yaml:8:1: unknown field `colour`, expected one of `sources`, `object_types`, `accounts`, `mappings`, `groups`, `exclusions`, `policy`, `protocols`, `schedules`, `self_service`",
                "b.yaml:2:1: did not find expected node content",
            ]
        );
    }

    /// Items of a flow list on one line: each problem points into its own item, not at
    /// the first text on the line that starts like the bad value (`{x` of `{x}`).
    #[test]
    fn items_sharing_a_line_are_each_located_where_they_stand() {
        let text = "mappings: [{name: a, protocol: aol, value: \"{x}\"}, \
                    {name: b, protocol: aol, value: \"{x\"}, {name: c, protocol: aol, value: \"{x\"}]\n";
        let unclosed = "invalid template \"{x\": column 1: unclosed '{': missing '}' (write '{{' for a literal '{')";
        assert_eq!(
            problems(&[("a.yaml", text)]),
            [
                format!("a.yaml:1:85: mappings[1]: {unclosed}"),
                format!("a.yaml:1:124: mappings[2]: {unclosed}"),
            ]
        );
    }

    /// A source that could not be read, or a file with a `sources` section that is not
    /// YAML, may define the source a reference names: that reference is not reported.
    #[test]
    fn references_to_sources_that_could_not_be_read_are_not_reported() {
        let mapping = |source: &str| {
            format!("mappings:\n  - {{name: a, protocol: aol, value: \"{{x}}\", sources: [{source}]}}\n")
        };
        let broken_source = "sources:\n  - {name: hr, ldif: {path: a.ldif}, colour: red}\n";
        assert_eq!(
            problems(&[("a.yaml", broken_source), ("b.yaml", &mapping("hr"))]),
            ["a.yaml:2:38: sources[0]: unknown field `colour`, expected one of `name`, `anchor`, `allow_empty`, `ldap`, `ldif`"]
        );
        assert_eq!(
            problems(&[("a.yaml", "sources: [\n"), ("b.yaml", &mapping("hr"))]),
            ["a.yaml:2:1: did not find expected node content"]
        );
    }
}
