//! Parsing one config file into its raw types, part by part: each top-level key and each
//! item of a list section is read on its own (`part.rs`), so that a broken part hides no
//! other problem; the parts that read are kept, with where each list item stood.

use std::collections::{BTreeMap, BTreeSet};

use super::part::parse_part;
use super::problem::{ConfigProblem, Location};
use super::raw::ConfigFile;
use super::settings::ConfigText;
use super::yaml_bounds::{self, Outline, Pair, Span};

/// One file's parts that could be read.
pub(super) struct ParsedFile<'a> {
    pub(super) file: &'a ConfigText,
    pub(super) config: ConfigFile,
    /// For a list read item by item: where in the file's list each item of `config`'s
    /// list stands (broken items are left out of `config`).
    pub(super) kept: BTreeMap<&'static str, Vec<usize>>,
}

/// Sources that some file defines but that could not be read: references to them are
/// not reported as unknown (the problem already reported is the one to fix).
#[derive(Default)]
pub(super) struct UnreadSources {
    /// The names of broken source items, where they have one.
    pub(super) names: BTreeSet<String>,
    /// A file could not be read at all, or a broken source has no readable name: any
    /// name may be defined there.
    pub(super) some_unnamed: bool,
}

impl UnreadSources {
    pub(super) fn may_define(&self, name: &str) -> bool {
        self.some_unnamed || self.names.contains(name)
    }
}

/// What reading one file gave.
pub(super) struct FileRead {
    /// `None` when the file could not be read at all (a YAML syntax error, say).
    pub(super) config: Option<ConfigFile>,
    pub(super) kept: BTreeMap<&'static str, Vec<usize>>,
    pub(super) problems: Vec<ConfigProblem>,
    pub(super) unread: UnreadSources,
}

impl FileRead {
    /// A file read whole, without problems.
    fn whole(config: Option<ConfigFile>) -> Self {
        FileRead {
            config,
            kept: BTreeMap::new(),
            problems: Vec::new(),
            unread: UnreadSources::default(),
        }
    }

    fn failed(problem: ConfigProblem) -> Self {
        FileRead {
            problems: vec![problem],
            ..FileRead::whole(None)
        }
    }
}

/// Parses one file. Each top-level key is read on its own, and each item of a list
/// section too, so that every broken part is reported and the others are kept. A YAML
/// syntax error, or a file not shaped as one mapping, stops the file with one problem.
pub(super) fn parse_file(file: &ConfigText) -> FileRead {
    let at = |line: usize, column: usize| Location {
        file: file.path.clone(),
        line,
        column,
    };
    let pairs = match yaml_bounds::check(&file.text) {
        Err(refusal) => {
            return FileRead::failed(ConfigProblem {
                location: at(refusal.line, refusal.column),
                message: refusal.message,
            })
        }
        Ok(Outline::Pairs(pairs)) if pairs.iter().all(|pair| spans_text(&file.text, pair)) => pairs,
        Ok(_) => return parse_whole(file),
    };
    let mut config = ConfigFile::default();
    let mut read = FileRead::whole(None);
    let mut keys_seen = BTreeSet::new();
    for pair in &pairs {
        if let Some(key) = &pair.key {
            if !keys_seen.insert(key.as_str()) {
                read.problems.push(ConfigProblem {
                    location: at(pair.key_at.line + 1, pair.key_at.column + 1),
                    message: format!("duplicate field `{key}`"),
                });
                continue;
            }
        }
        let read = &mut read;
        match (pair.key.as_deref(), &pair.items) {
            (Some("sources"), Some(list)) => {
                config.sources = read_items(file, "sources", list, read)
            }
            (Some("mappings"), Some(list)) => {
                config.mappings = read_items(file, "mappings", list, read)
            }
            (Some("groups"), Some(list)) => config.groups = read_items(file, "groups", list, read),
            (Some("exclusions"), Some(list)) => {
                config.exclusions = read_items(file, "exclusions", list, read)
            }
            (Some("protocols"), Some(list)) => {
                config.protocols = read_items(file, "protocols", list, read)
            }
            (Some("schedules"), Some(list)) => {
                config.schedules = read_items(file, "schedules", list, read)
            }
            _ => match parse_part::<ConfigFile>(file, &pair.span, None) {
                Ok(part) => config.merge(part),
                Err(problem) => {
                    read.problems.push(problem);
                    if pair.key.as_deref() == Some("sources") {
                        read.unread.some_unnamed = true;
                    }
                }
            },
        }
    }
    read.config = Some(config);
    read
}

/// Whether every span of `pair` cuts `text` at character boundaries (libyaml's offsets
/// are bytes of the same text, so they always should).
fn spans_text(text: &str, pair: &Pair) -> bool {
    std::iter::once(&pair.span)
        .chain(pair.items.iter().flatten())
        .all(|span| text.get(span.start.index..span.end.index).is_some())
}

/// Reads the items of the list `section`, each on its own: the items that could be
/// read, in order. A broken one becomes a problem (and, for a source, its name, read
/// loosely, an unread source).
fn read_items<T: serde::de::DeserializeOwned>(
    file: &ConfigText,
    section: &'static str,
    items: &[Span],
    read: &mut FileRead,
) -> Vec<T> {
    let mut kept = Vec::new();
    let mut parsed = Vec::new();
    for (index, span) in items.iter().enumerate() {
        let path = format!("{section}[{index}]");
        match parse_part::<T>(file, span, Some(&path)) {
            Ok(item) => {
                kept.push(index);
                parsed.push(item);
            }
            Err(problem) => {
                read.problems.push(problem);
                if section != "sources" {
                    continue;
                }
                let name = parse_part::<serde_yaml::Value>(file, span, None)
                    .ok()
                    .and_then(|value| value.get("name")?.as_str().map(str::to_string));
                match name {
                    Some(name) => {
                        read.unread.names.insert(name);
                    }
                    None => read.unread.some_unnamed = true,
                }
            }
        }
    }
    read.kept.insert(section, kept);
    parsed
}

/// Reads a file in one piece (when it is not one mapping in block style): an empty
/// file is an empty config; otherwise the first YAML or schema error is its problem.
fn parse_whole(file: &ConfigText) -> FileRead {
    let is_empty = serde_yaml::from_str::<serde_yaml::Value>(&file.text)
        .map(|value| value.is_null())
        .unwrap_or(false);
    if is_empty {
        return FileRead::whole(Some(ConfigFile::default()));
    }
    let whole = Span {
        in_flow: false,
        start: yaml_bounds::Mark {
            index: 0,
            line: 0,
            column: 0,
        },
        end: yaml_bounds::Mark {
            index: file.text.len(),
            line: 0,
            column: 0,
        },
    };
    match parse_part::<ConfigFile>(file, &whole, None) {
        Ok(config) => FileRead::whole(Some(config)),
        Err(problem) => FileRead::failed(problem),
    }
}
