//! What every plan format shares: the one-line description of a change, its symbol
//! (`+`, `-`, `~`) and colour, the summary line, and the changes grouped into sections.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use registrar_core::plan::{Action, Change, Kind, Summary};
use registrar_core::quote::push_printable_str;

/// Whether text output uses ANSI colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    On,
    Off,
}

/// The final summary line, as Terraform prints it.
pub fn summary_line(summary: &Summary) -> String {
    format!(
        "Plan: {} to add, {} to update, {} to remove, {} to deactivate.",
        summary.add,
        summary.update + summary.reactivate,
        summary.remove,
        summary.deactivate
    )
}

/// Changes grouped for display: accounts first, then one section per mapping, then
/// groups and their members.
pub(super) struct Sections<'a> {
    pub(super) accounts: Vec<&'a Change>,
    /// Mapping name → (protocol, changes).
    pub(super) mappings: BTreeMap<&'a str, Vec<&'a Change>>,
    pub(super) groups: Vec<&'a Change>,
}

pub(super) fn sections(changes: &[Change]) -> Sections<'_> {
    /// Where a change goes: accounts, a mapping's block (by index in `names`), groups.
    enum Place {
        Accounts,
        Mapping(usize),
        Groups,
    }
    // Plans run to millions of changes: each list is made at its size, and changes of
    // one mapping come in runs, so the last mapping seen is tried first.
    let mut names: Vec<&str> = Vec::new();
    let mut last = usize::MAX;
    let mut places = Vec::with_capacity(changes.len());
    let (mut accounts, mut groups) = (0, 0);
    let mut sizes: Vec<usize> = Vec::new();
    for change in changes {
        let place = match change.kind {
            Kind::Account => {
                accounts += 1;
                Place::Accounts
            }
            Kind::Group | Kind::GroupMember => {
                groups += 1;
                Place::Groups
            }
            Kind::Registration => {
                let mapping = change.mapping.as_deref().unwrap_or("(none)");
                if names.get(last) != Some(&mapping) {
                    last = match names.iter().position(|name| *name == mapping) {
                        Some(index) => index,
                        None => {
                            names.push(mapping);
                            sizes.push(0);
                            names.len() - 1
                        }
                    };
                }
                sizes[last] += 1;
                Place::Mapping(last)
            }
        };
        places.push(place);
    }
    let mut blocks: Vec<Vec<&Change>> = sizes.into_iter().map(Vec::with_capacity).collect();
    let mut sections = Sections {
        accounts: Vec::with_capacity(accounts),
        mappings: BTreeMap::new(),
        groups: Vec::with_capacity(groups),
    };
    for (change, place) in changes.iter().zip(places) {
        match place {
            Place::Accounts => sections.accounts.push(change),
            Place::Mapping(index) => blocks[index].push(change),
            Place::Groups => sections.groups.push(change),
        }
    }
    sections.mappings = names.into_iter().zip(blocks).collect();
    sections
}

pub(super) fn symbol(action: Action) -> &'static str {
    match action {
        Action::Add => "+",
        Action::Remove => "-",
        Action::Update | Action::Deactivate | Action::Reactivate => "~",
    }
}

pub(super) fn paint(color: Color, action: Action, text: &str) -> Painted<'_> {
    Painted(color, action, text)
}

/// `text` in the colour of `action` (when colour is on), written without allocating.
pub(super) struct Painted<'a>(Color, Action, &'a str);

impl std::fmt::Display for Painted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Painted(color, action, text) = *self;
        if color == Color::Off {
            return f.write_str(text);
        }
        let code = match action {
            Action::Add => "32",
            Action::Remove => "31",
            Action::Update | Action::Deactivate | Action::Reactivate => "33",
        };
        write!(f, "\x1b[{code}m{text}\x1b[0m")
    }
}

/// `value` as `{:?}` prints it, or `(none)`.
pub(super) fn push_shown(into: &mut String, value: &Option<String>) {
    match value {
        Some(v) => push_quoted(into, v),
        None => into.push_str("(none)"),
    }
}

/// `text` quoted as `{:?}` prints it, without the formatting machinery for the plain
/// printable ASCII that names and profile values mostly are.
pub(super) fn push_quoted(into: &mut String, text: &str) {
    if text
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        into.push('"');
        into.push_str(text);
        into.push('"');
    } else {
        let _ = write!(into, "{text:?}");
    }
}

/// ` (reason)`, or nothing.
pub(super) fn push_reason(into: &mut String, reason: Option<&str>) {
    if let Some(reason) = reason {
        into.push_str(" (");
        into.push_str(reason);
        into.push(')');
    }
}

/// One change described: its line (without the symbol) and its detail lines. Reused from
/// change to change, so that describing a large plan allocates little.
#[derive(Default)]
pub(super) struct Description {
    pub(super) line: String,
    /// Buffers for detail lines; the first `used` hold this change's.
    pub(super) details: Vec<String>,
    pub(super) used: usize,
}

impl Description {
    pub(super) fn details(&self) -> &[String] {
        &self.details[..self.used]
    }

    /// A new, empty detail line to write.
    fn detail(&mut self) -> &mut String {
        if self.used == self.details.len() {
            self.details.push(String::new());
        }
        let detail = &mut self.details[self.used];
        detail.clear();
        self.used += 1;
        detail
    }
}

/// Describes `change` into `into`: one line (without its symbol) plus detail lines.
pub(super) fn describe(change: &Change, into: &mut Description) {
    into.line.clear();
    into.used = 0;
    let account = change
        .dn
        .as_deref()
        .or(change.account.as_deref())
        .unwrap_or("?");
    for (field, (old, new)) in change.fields().into_iter().flatten() {
        let detail = into.detail();
        detail.push_str(field);
        detail.push_str(": ");
        push_shown(detail, old);
        detail.push_str(" → ");
        push_shown(detail, new);
    }
    let reason = change.reason.as_deref();
    match (change.kind, change.action) {
        (Kind::Account, Action::Add) => {
            for (field, value) in change.profile().into_iter().flat_map(|p| p.iter()) {
                let detail = into.detail();
                detail.push_str(field.name());
                detail.push_str(": ");
                push_quoted(detail, value);
            }
            let line = &mut into.line;
            line.push_str("account ");
            push_printable_str(line, account);
            line.push_str(" (source ");
            line.push_str(change.source().map(|source| &**source).unwrap_or("?"));
            line.push(')');
        }
        (Kind::Account, action) => {
            let line = &mut into.line;
            line.push_str("account ");
            push_printable_str(line, account);
            match action {
                Action::Deactivate => line.push_str(" deactivate"),
                Action::Reactivate => line.push_str(" reactivate"),
                _ => {}
            }
            push_reason(line, reason);
        }
        (Kind::Registration, _) => {
            let line = &mut into.line;
            line.push_str(change.protocol.as_deref().unwrap_or("?"));
            line.push(' ');
            push_quoted(line, change.im_name.as_deref().unwrap_or("?"));
            line.push_str(" → ");
            push_printable_str(line, account);
            push_reason(line, reason);
        }
        (Kind::Group, _) => {
            let group = change.group.as_deref().unwrap_or("?");
            if change.action == Action::Add {
                if let Some(kind) = change.group_kind() {
                    let _ = write!(into.detail(), "kind: {}", kind.name());
                }
                if let Some(rule) = change.group_rule() {
                    let _ = write!(into.detail(), "rule: {rule}");
                }
                if let Some(source) = change.source() {
                    let _ = write!(into.detail(), "source: {source}");
                }
            }
            let line = &mut into.line;
            line.push_str("group ");
            push_printable_str(line, group);
            push_reason(line, reason);
        }
        (Kind::GroupMember, _) => {
            let member = change
                .dn
                .as_deref()
                .or(change.member.as_deref())
                .unwrap_or("?");
            let line = &mut into.line;
            push_printable_str(line, change.group.as_deref().unwrap_or("?"));
            line.push_str(" ← ");
            push_printable_str(line, member);
            push_reason(line, reason);
        }
    }
}
