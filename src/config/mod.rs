//! Loading the configuration directory: read every `*.yaml`, parse each into the raw
//! types, then merge and check them into the core's [`Rules`] plus the adapter settings
//! (where each source's data lives). The files come from a [`Tree`]: the working
//! tree, or a git revision.
//!
//! Every error names `file:line:col`. Every problem of every file is collected, in file
//! order: each top-level key and each list item is read on its own (`parse_file`), so a
//! broken item hides no other problem, and the checks run over every item that parsed.
//! This module reads files; it never touches the store or a directory server.

pub mod raw;
pub mod trust;
mod yaml_bounds;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};

use crate::adapters::tree::{Tree, TreeError};
use raw::{ConfigFile, LdapSpec};
use registrar_core::dn::{normalize_dn, Dn};
use registrar_core::model::{
    AccountRules, Anchor, Exclusion, ExclusionSelector, GroupRule, GroupSelector, Mapping,
    ObjectTypes, Policy, ProfileField, ProtocolRule, Rules, SourceRule, DEFAULT_MAX_DELETES,
    DEFAULT_MAX_IM_NAME_LENGTH,
};
use registrar_core::quote::{printable, quote_for_message, shown_for_message, QUOTE_CHARS};
use yaml_bounds::{Outline, Pair, Span};

/// A place in a config file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in the configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigProblem {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The directory or a file could not be read (working tree or git revision).
    #[error(transparent)]
    Files(#[from] TreeError),
    #[error("no *.yaml files in config directory {} (use --config DIR)", dir.display())]
    NoFiles { dir: PathBuf },
    /// One or more problems, each on its own line.
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<ConfigProblem> },
}

/// One config file's text, kept for locating errors and digesting inputs.
#[derive(Debug, Clone)]
pub struct ConfigText {
    pub path: PathBuf,
    pub text: String,
}

/// Where one source's entries come from.
#[derive(Debug, Clone)]
pub enum SourceLocation {
    Ldif {
        /// Resolved against the YAML file that names it.
        path: PathBuf,
        /// The glob of change files, resolved the same way.
        changes: Option<PathBuf>,
        /// The largest value an entry may hold, decoded (`max_value_bytes`).
        max_value_bytes: usize,
    },
    Ldap(LdapSettings),
}

/// An LDAP source's connection settings, checked (the password itself is never held
/// here: only where to find it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSettings {
    pub url: String,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    /// The CA file's bytes, already read from a trusted revision (a review run, see
    /// `trust.rs`); `None`: `ca_file` is read from the files the config came from.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    pub bind: LdapBind,
    pub base_dn: String,
    pub scope: raw::Scope,
    /// The filter in canonical RFC 4515 form.
    pub filter: String,
    /// The attributes to request (`*`: every user attribute), with `objectClass` and the
    /// anchor.
    pub attributes: Vec<String>,
    pub page_size: u32,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

/// How an LDAP source authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapBind {
    Anonymous,
    Simple { dn: String, password: PasswordFrom },
}

/// Where a bind password is read from when the source is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFrom {
    Env(String),
    File(PathBuf),
}

/// Defaults of an LDAP source.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
pub const DEFAULT_CONNECT_TIMEOUT_SECONDS: u32 = 10;
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 120;

/// A source as the adapters need it.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub name: String,
    pub defined_at: Location,
    pub location: SourceLocation,
}

/// The loaded, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Rules,
    /// In name order, like `rules.sources`.
    pub sources: Vec<SourceSettings>,
    /// The files read, in name order.
    pub files: Vec<ConfigText>,
    /// The controller's schedules, in name order.
    pub schedules: Vec<Schedule>,
    /// The file that sets `object_types`, if one does (the defaults apply otherwise).
    pub object_types_file: Option<PathBuf>,
}

/// A controller schedule, its cron expression parsed.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// The expression as written.
    pub cron_text: String,
    pub cron: croner::Cron,
    pub action: raw::ScheduleAction,
    pub mode: raw::ImportMode,
}

impl Schedule {
    /// The first time this schedule fires strictly after `after`, in whole seconds (cron
    /// times are UTC); `None` when the expression never matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let whole = after.with_nanosecond(0).unwrap_or(after);
        self.cron.find_next_occurrence(&whole, false).ok()
    }

    /// The action's name as the config spells it: `plan`, `apply` or `drift`.
    pub fn action_name(&self) -> &'static str {
        self.action.name()
    }
}

impl Config {
    /// The settings of the source called `name`.
    pub fn source(&self, name: &str) -> Option<&SourceSettings> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Why `dn` is a protected principal, if it is (rule 9: it never holds a
    /// registration): `the bind_dn of LDAP source NAME`, or `policy.protected_principals`.
    pub fn protected_principal(&self, dn: &str) -> Option<String> {
        let key = normalize_dn(dn);
        if !self.rules.policy.protected_principals.contains(&key) {
            return None;
        }
        let bound_by = self.sources.iter().find(|source| {
            matches!(&source.location, SourceLocation::Ldap(LdapSettings {
                bind: LdapBind::Simple { dn: bind_dn, .. },
                ..
            }) if normalize_dn(bind_dn) == key)
        });
        Some(match bound_by {
            Some(source) => format!("the bind_dn of LDAP source {}", source.name),
            None => "policy.protected_principals".to_string(),
        })
    }
}

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
        files
            .check_file(path)
            .map_err(|problem| problem.to_string())
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
    check_file: &dyn Fn(&Path) -> Result<(), String>,
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
    check_file: &dyn Fn(&Path) -> Result<(), String>,
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
    let (rules, sources) = check(&parsed, &unread, check_file, &mut problems);
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
            rules,
            sources,
            files,
            schedules,
            object_types_file,
        })
    } else {
        problems.sort();
        problems.dedup();
        Err(ConfigError::Invalid { problems })
    }
}

/// One file's parts that could be read.
struct ParsedFile<'a> {
    file: &'a ConfigText,
    config: ConfigFile,
    /// For a list read item by item: where in the file's list each item of `config`'s
    /// list stands (broken items are left out of `config`).
    kept: BTreeMap<&'static str, Vec<usize>>,
}

/// Sources that some file defines but that could not be read: references to them are
/// not reported as unknown (the problem already reported is the one to fix).
#[derive(Default)]
struct UnreadSources {
    /// The names of broken source items, where they have one.
    names: BTreeSet<String>,
    /// A file could not be read at all, or a broken source has no readable name: any
    /// name may be defined there.
    some_unnamed: bool,
}

impl UnreadSources {
    fn may_define(&self, name: &str) -> bool {
        self.some_unnamed || self.names.contains(name)
    }
}

/// What reading one file gave.
struct FileRead {
    /// `None` when the file could not be read at all (a YAML syntax error, say).
    config: Option<ConfigFile>,
    kept: BTreeMap<&'static str, Vec<usize>>,
    problems: Vec<ConfigProblem>,
    unread: UnreadSources,
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
fn parse_file(file: &ConfigText) -> FileRead {
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

/// Deserializes the part of `file` that `span` covers, on its own: its first line is
/// indented to where the part starts (unless it stands in a flow list, where a line may
/// hold thousands of items: indenting each would be quadratic) and the positions
/// serde_yaml reports are moved to where the part stands, so a problem names the same
/// `line:col` as in the whole file. `path` (e.g. `mappings[2]`) is where the part
/// stands in the file, put before the path serde_yaml names within it.
fn parse_part<T: serde::de::DeserializeOwned>(
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
        let message = error.to_string();
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
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

/// Finds where things are in a config file, for problems found after parsing (serde_yaml
/// keeps no positions for values).
struct Locator<'a> {
    file: &'a ConfigText,
    /// Where each item read of a list stands in the file's list (see [`ParsedFile`]).
    kept: &'a BTreeMap<&'static str, Vec<usize>>,
}

impl Locator<'_> {
    /// The line of the top-level key `section:` (0-based index), if the file has one.
    fn section_line(&self, section: &str) -> Option<usize> {
        self.file.text.lines().position(|line| {
            line.strip_prefix(section)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
    }

    /// The position of the top-level key `section:`; the file start if absent.
    fn section(&self, section: &str) -> Location {
        match self.section_line(section) {
            Some(index) => self.at(index + 1, 1),
            None => self.at(1, 1),
        }
    }

    /// The position of the `index`-th item of the top-level list `section` (where its
    /// first key starts, after `- `). Falls back to the section's position for lists
    /// written in flow style.
    fn list_item(&self, section: &str, index: usize) -> Location {
        let index = self
            .kept
            .get(section)
            .and_then(|kept| kept.get(index))
            .copied()
            .unwrap_or(index);
        let Some(start) = self.section_line(section) else {
            return self.at(1, 1);
        };
        let mut item_indent = None;
        let mut seen = 0;
        for (number, line) in self.file.text.lines().enumerate().skip(start + 1) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if indent == 0 && !trimmed.starts_with('-') {
                break; // the next top-level key
            }
            if !(trimmed == "-" || trimmed.starts_with("- ")) {
                continue;
            }
            if *item_indent.get_or_insert(indent) != indent {
                continue; // a list nested inside an item
            }
            if seen == index {
                let after_dash = trimmed[1..].len() - trimmed[1..].trim_start().len();
                return self.at(number + 1, indent + after_dash + 2);
            }
            seen += 1;
        }
        self.section(section)
    }

    /// The position of `token` at or after `from`, e.g. a source name in a list.
    fn token_after(&self, from: &Location, token: &str) -> Location {
        let start = from.line.saturating_sub(1);
        let found = self.find(start, |line| line.find(token));
        if found.line >= from.line {
            found
        } else {
            from.clone()
        }
    }

    fn find(&self, skip_lines: usize, matcher: impl Fn(&str) -> Option<usize>) -> Location {
        for (index, line) in self.file.text.lines().enumerate().skip(skip_lines) {
            if line.trim_start().starts_with('#') {
                continue;
            }
            if let Some(column) = matcher(line) {
                return self.at(index + 1, column + 1);
            }
        }
        self.at(1, 1)
    }

    fn at(&self, line: usize, column: usize) -> Location {
        Location {
            file: self.file.path.clone(),
            line,
            column,
        }
    }
}

/// Merges the parsed files and checks cross-references, collecting every problem.
fn check(
    parsed: &[ParsedFile<'_>],
    unread: &UnreadSources,
    check_file: &dyn Fn(&Path) -> Result<(), String>,
    problems: &mut Vec<ConfigProblem>,
) -> (Rules, Vec<SourceSettings>) {
    let mut rules = Rules::default();
    let mut settings = Vec::new();
    let mut seen: BTreeMap<(&str, String), Location> = BTreeMap::new();
    let mut unique =
        |kind: &'static str, name: &str, at: Location, problems: &mut Vec<ConfigProblem>| {
            if let Some(first) = seen.get(&(kind, name.to_string())) {
                problems.push(ConfigProblem {
                    location: at,
                    message: format!("duplicate {kind} name {name:?} (first defined at {first})"),
                });
                false
            } else {
                seen.insert((kind, name.to_string()), at);
                true
            }
        };
    let mut singletons: BTreeMap<&str, Location> = BTreeMap::new();
    let mut single = |section: &'static str, at: Location, problems: &mut Vec<ConfigProblem>| {
        if let Some(first) = singletons.get(section) {
            problems.push(ConfigProblem {
                location: at,
                message: format!(
                    "section {section} is set in more than one file (also at {first})"
                ),
            });
        } else {
            singletons.insert(section, at);
        }
    };

    for ParsedFile { file, config, kept } in parsed {
        let locate = Locator { file, kept };
        let base_dir = file.path.parent().unwrap_or(Path::new("."));
        let problem = |location: Location, message: String| ConfigProblem { location, message };

        for (index, source) in config.sources.iter().enumerate() {
            let at = locate.list_item("sources", index);
            if !unique("source", &source.name.0, at.clone(), problems) {
                continue;
            }
            let anchor = match source.anchor.as_deref() {
                None => Anchor::Dn,
                Some(a) if a.eq_ignore_ascii_case("dn") => Anchor::Dn,
                Some(a) => {
                    if let Err(message) = raw::refuse_secrets([a]) {
                        problems.push(problem(
                            locate.token_after(&at, a),
                            format!("source {}: anchor {a:?} {message}", source.name),
                        ));
                    }
                    Anchor::Attribute(a.to_string())
                }
            };
            let location = match (&source.ldif, &source.ldap) {
                (Some(ldif), None) => {
                    let path = base_dir.join(&ldif.path);
                    if let Err(reason) = check_file(&path) {
                        problems.push(problem(
                            locate.token_after(&at, &ldif.path),
                            format!("source {}: ldif path {:?} {reason}", source.name, ldif.path),
                        ));
                    }
                    if ldif.max_value_bytes == Some(0) {
                        problems.push(problem(
                            locate.token_after(&at, "max_value_bytes"),
                            format!("source {}: max_value_bytes must be at least 1", source.name),
                        ));
                    }
                    Some(SourceLocation::Ldif {
                        path,
                        changes: ldif.changes.as_ref().map(|c| base_dir.join(c)),
                        max_value_bytes: ldif
                            .max_value_bytes
                            .map_or(crate::adapters::ldif::DEFAULT_MAX_VALUE_BYTES, |bytes| {
                                usize::try_from(bytes).unwrap_or(usize::MAX)
                            }),
                    })
                }
                (None, Some(ldap)) => match ldap_settings(ldap, &anchor, base_dir) {
                    Ok(ldap) => Some(SourceLocation::Ldap(ldap)),
                    Err(message) => {
                        problems.push(problem(
                            at.clone(),
                            format!("source {}: {message}", source.name),
                        ));
                        None
                    }
                },
                _ => {
                    problems.push(problem(
                        at.clone(),
                        format!(
                            "source {} must have exactly one of ldap or ldif",
                            source.name
                        ),
                    ));
                    None
                }
            };
            rules.sources.push(SourceRule {
                name: source.name.0.clone(),
                anchor,
                allow_empty: source.allow_empty,
            });
            if let Some(location) = location {
                settings.push(SourceSettings {
                    name: source.name.0.clone(),
                    defined_at: at,
                    location,
                });
            }
        }

        if let Some(types) = &config.object_types {
            single("object_types", locate.section("object_types"), problems);
            if !types.contains_key("user") {
                problems.push(problem(
                    locate.section("object_types"),
                    "object_types must define the user type".to_string(),
                ));
            }
            rules.object_types = ObjectTypes::new(types.clone());
        }

        if let Some(accounts) = &config.accounts {
            single("accounts", locate.section("accounts"), problems);
            let p = &accounts.profile;
            let fields = [
                (ProfileField::DisplayName, &p.display_name),
                (ProfileField::Department, &p.department),
                (ProfileField::Title, &p.title),
                (ProfileField::Telephone, &p.telephone),
                (ProfileField::Location, &p.location),
                (ProfileField::Mail, &p.mail),
            ];
            rules.accounts = AccountRules {
                profile: fields
                    .into_iter()
                    .filter_map(|(field, template)| template.as_ref().map(|t| (field, t.1.clone())))
                    .collect(),
                disabled_when: accounts.disabled_when.as_ref().map(|f| f.1.clone()),
                on_departure: accounts.on_departure,
            };
        }

        for (index, mapping) in config.mappings.iter().enumerate() {
            let at = locate.list_item("mappings", index);
            if !unique("mapping", &mapping.name.0, at.clone(), problems) {
                continue;
            }
            rules.mappings.push(Mapping {
                name: mapping.name.0.clone(),
                protocol: mapping.protocol.0.to_ascii_lowercase(),
                value: mapping.value.1.clone(),
                when: mapping.when.as_ref().map(|f| f.1.clone()),
                sources: mapping.sources.clone(),
                renamed_from: mapping.renamed_from.clone(),
            });
        }

        for (index, group) in config.groups.iter().enumerate() {
            let at = locate.list_item("groups", index);
            if !unique("group", &group.name.0, at.clone(), problems) {
                continue;
            }
            let name = &group.name.0;
            let selector = match (group.kind, &group.filter, &group.dn) {
                (raw::GroupKind::DistributionList, Some(filter), None) => {
                    Some(GroupSelector::DistributionList(Box::new(filter.1.clone())))
                }
                (raw::GroupKind::DistributionList, None, _) => {
                    problems.push(problem(
                        at.clone(),
                        format!("group {name:?}: a distribution_list needs a filter"),
                    ));
                    None
                }
                (raw::GroupKind::DistributionList, Some(_), Some(_)) => {
                    problems.push(problem(
                        at.clone(),
                        format!("group {name:?}: a distribution_list takes a filter, not a dn"),
                    ));
                    None
                }
                (raw::GroupKind::OrgUnit, _, None) => {
                    problems.push(problem(
                        at.clone(),
                        format!("group {name:?}: an org_unit needs a dn"),
                    ));
                    None
                }
                (raw::GroupKind::OrgUnit, Some(_), Some(_)) => {
                    problems.push(problem(
                        at.clone(),
                        format!("group {name:?}: an org_unit takes a dn, not a filter"),
                    ));
                    None
                }
                (raw::GroupKind::OrgUnit, None, Some(dn)) => {
                    let literal = group.name.1.attributes().is_empty()
                        && !group.name.1.render(&Default::default()).is_empty();
                    if literal {
                        Some(GroupSelector::OrgUnit(normalize_dn(dn)))
                    } else {
                        problems.push(problem(
                            at.clone(),
                            format!(
                                "group {name:?}: an org_unit's name is a plain name, not a template"
                            ),
                        ));
                        None
                    }
                }
            };
            if let Some(selector) = selector {
                rules.groups.push(GroupRule {
                    owner: name.clone(),
                    name: group.name.1.clone(),
                    source: group.source.clone(),
                    selector,
                });
            }
        }

        for (index, exclusion) in config.exclusions.iter().enumerate() {
            let at = locate.list_item("exclusions", index);
            if !unique("exclusion", &exclusion.name.0, at.clone(), problems) {
                continue;
            }
            let selector = match (&exclusion.dn_subtree, &exclusion.filter, &exclusion.im_name) {
                (Some(dn), None, None) if exclusion.protocol.is_none() => {
                    Some(ExclusionSelector::DnSubtree(normalize_dn(dn)))
                }
                (None, Some(filter), None) if exclusion.protocol.is_none() => {
                    Some(ExclusionSelector::Filter(Box::new(filter.1.clone())))
                }
                (None, None, Some(pattern)) => Some(ExclusionSelector::ImName {
                    protocol: exclusion.protocol.as_ref().map(|p| p.to_ascii_lowercase()),
                    pattern: pattern.1.clone(),
                }),
                _ => {
                    problems.push(problem(
                        at.clone(),
                        format!(
                            "exclusion {} must have exactly one of dn_subtree, filter or im_name (protocol goes only with im_name)",
                            exclusion.name
                        ),
                    ));
                    None
                }
            };
            if let Some(selector) = selector {
                rules.exclusions.push(Exclusion {
                    name: exclusion.name.0.clone(),
                    selector,
                });
            }
        }

        if let Some(policy) = &config.policy {
            let at = locate.section("policy");
            single("policy", at.clone(), problems);
            if let Some(percent) = policy.max_delete_percent {
                if !(0.0..=100.0).contains(&percent) {
                    problems.push(problem(
                        locate.token_after(&at, "max_delete_percent"),
                        format!(
                            "policy.max_delete_percent must be between 0 and 100, not {percent}"
                        ),
                    ));
                }
            }
            rules.policy = Policy {
                protected_principals: policy
                    .protected_principals
                    .iter()
                    .map(|dn| normalize_dn(dn))
                    .collect(),
                max_deletes: policy.max_deletes.unwrap_or(DEFAULT_MAX_DELETES),
                max_delete_percent: policy.max_delete_percent,
            };
        }

        for (index, protocol) in config.protocols.iter().enumerate() {
            let at = locate.list_item("protocols", index);
            if !unique("protocol", &protocol.name.0, at.clone(), problems) {
                continue;
            }
            if protocol.max_length == Some(0) {
                problems.push(problem(
                    locate.token_after(&at, "max_length"),
                    format!("protocol {}: max_length must be at least 1", protocol.name),
                ));
            }
            rules.protocols.insert(
                protocol.name.0.to_ascii_lowercase(),
                ProtocolRule {
                    max_length: protocol.max_length.unwrap_or(DEFAULT_MAX_IM_NAME_LENGTH),
                    allowed: protocol.allowed.as_ref().map(|r| r.1.clone()),
                    case_sensitive: protocol.case_sensitive,
                },
            );
        }

        for (index, schedule) in config.schedules.iter().enumerate() {
            let at = locate.list_item("schedules", index);
            unique("schedule", &schedule.name.0, at, problems);
        }
    }

    // References between sections, now that every file is in.
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
    let mut renamed: BTreeMap<&str, &str> = BTreeMap::new();
    for mapping in &rules.mappings {
        for old in &mapping.renamed_from {
            if let Some(other) = renamed.insert(old, &mapping.name) {
                let (parsed, index) = parsed
                    .iter()
                    .find_map(|parsed| {
                        parsed
                            .config
                            .mappings
                            .iter()
                            .position(|m| m.name.0 == mapping.name)
                            .map(|index| (parsed, index))
                    })
                    .expect("every mapping comes from a file");
                let locate = Locator {
                    file: parsed.file,
                    kept: &parsed.kept,
                };
                problems.push(ConfigProblem {
                    location: locate.list_item("mappings", index),
                    message: format!(
                        "mappings {other} and {} both list {old:?} under renamed_from",
                        mapping.name
                    ),
                });
            }
        }
    }

    // Every LDAP source's bind DN is a protected principal (DESIGN rule 9).
    for source in &settings {
        if let SourceLocation::Ldap(LdapSettings {
            bind: LdapBind::Simple { dn, .. },
            ..
        }) = &source.location
        {
            rules.policy.protected_principals.insert(normalize_dn(dn));
        }
    }
    rules.sources.sort_by(|a, b| a.name.cmp(&b.name));
    rules.mappings.sort_by(|a, b| a.name.cmp(&b.name));
    rules.groups.sort_by(|a, b| a.owner.cmp(&b.owner));
    settings.sort_by(|a, b| a.name.cmp(&b.name));
    (rules, settings)
}

/// Checks an LDAP source's settings.
fn ldap_settings(
    ldap: &LdapSpec,
    anchor: &Anchor,
    base_dir: &Path,
) -> Result<LdapSettings, String> {
    let url = ldap.url.trim();
    let tls = if url.starts_with("ldaps://") {
        true
    } else if url.starts_with("ldap://") {
        ldap.starttls
    } else {
        return Err(format!(
            "url {} must start with ldap:// or ldaps://",
            quote_for_message(url)
        ));
    };
    if ldap.starttls && url.starts_with("ldaps://") {
        return Err("starttls is for ldap:// urls; ldaps:// is TLS already".to_string());
    }
    if !tls && (ldap.ca_file.is_some() || ldap.insecure_skip_tls_verify) {
        return Err(
            "ca_file and insecure_skip_tls_verify need TLS: use ldaps:// or starttls: true"
                .to_string(),
        );
    }
    if ldap.ca_file.is_some() && ldap.insecure_skip_tls_verify {
        return Err("set only one of ca_file and insecure_skip_tls_verify".to_string());
    }
    let password = match (&ldap.password_env, &ldap.password_file) {
        (Some(_), Some(_)) => {
            return Err("set only one of password_env and password_file".to_string())
        }
        (Some(var), None) => Some(PasswordFrom::Env(var.clone())),
        (None, Some(file)) => Some(PasswordFrom::File(base_dir.join(file))),
        (None, None) => None,
    };
    let bind = match (&ldap.bind_dn, password, ldap.anonymous) {
        (Some(dn), Some(password), false) => {
            if let Err(e) = Dn::parse(dn) {
                return Err(format!(
                    "bind_dn {} is not a DN: {e}",
                    quote_for_message(dn)
                ));
            }
            LdapBind::Simple {
                dn: dn.clone(),
                password,
            }
        }
        (Some(_), None, false) => {
            return Err(
                "bind_dn needs password_env or password_file (passwords never live in YAML)"
                    .to_string(),
            )
        }
        (None, None, true) => LdapBind::Anonymous,
        (None, Some(_), false) => {
            return Err("password_env and password_file need bind_dn".to_string())
        }
        (None, None, false) => {
            return Err(
                "set bind_dn with password_env or password_file, or anonymous: true".to_string(),
            )
        }
        (Some(_), _, true) | (None, Some(_), true) => {
            return Err("anonymous: true excludes bind_dn and passwords".to_string())
        }
    };
    if let Err(e) = Dn::parse(&ldap.base_dn) {
        return Err(format!(
            "base_dn {} is not a DN: {e}",
            quote_for_message(&ldap.base_dn)
        ));
    }
    let page_size = ldap.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page_size == 0 || page_size > i32::MAX as u32 {
        return Err(format!(
            "page_size must be between 1 and {}, not {page_size}",
            i32::MAX
        ));
    }
    let seconds = |value: Option<u32>, default: u32, name: &str| match value.unwrap_or(default) {
        0 => Err(format!("{name} must be at least 1")),
        n => Ok(Duration::from_secs(n.into())),
    };
    // `*` asks for every user attribute; operational anchors (entryUUID) and anything the
    // core reads regardless of the list (objectClass) are asked for by name.
    let mut attributes = ldap
        .attributes
        .clone()
        .unwrap_or_else(|| vec!["*".to_string()]);
    raw::refuse_secrets(attributes.iter().map(String::as_str))
        .map_err(|message| format!("attributes {message}"))?;
    let mut wanted = vec!["objectClass".to_string()];
    if let Anchor::Attribute(name) = anchor {
        wanted.push(name.clone());
    }
    for name in wanted {
        if !attributes.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
            attributes.push(name);
        }
    }
    Ok(LdapSettings {
        url: url.to_string(),
        starttls: ldap.starttls,
        ca_file: ldap.ca_file.as_ref().map(|p| base_dir.join(p)),
        ca_pem: None,
        insecure_skip_tls_verify: ldap.insecure_skip_tls_verify,
        bind,
        base_dn: ldap.base_dn.clone(),
        scope: ldap.scope,
        filter: ldap
            .filter
            .as_ref()
            .map_or_else(|| "(objectClass=*)".to_string(), |f| f.0.clone()),
        attributes,
        page_size,
        connect_timeout: seconds(
            ldap.connect_timeout_seconds,
            DEFAULT_CONNECT_TIMEOUT_SECONDS,
            "connect_timeout_seconds",
        )?,
        timeout: seconds(
            ldap.timeout_seconds,
            DEFAULT_TIMEOUT_SECONDS,
            "timeout_seconds",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "a.yaml:8:1: unknown field `colour`, expected one of `sources`, `object_types`, `accounts`, `mappings`, `groups`, `exclusions`, `policy`, `protocols`, `schedules`",
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
