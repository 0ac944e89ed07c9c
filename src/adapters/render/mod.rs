//! Plan output for people and scripts: Terraform-like text, JSON (the saved-plan format)
//! and Markdown for a pull-request comment, each with the effect of a change since a
//! base revision (`plan --base`) when there is one; and LDIF change records for
//! `ldapmodify` (`ldif`), which mirror the store in an LDAP tree.
//!
//! Rendering is pure: a plan in, a string out, the same bytes for the same plan. It never
//! decides anything about the plan's content.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

mod drift;
pub use drift::{drift_html, drift_markdown, drift_summary_line, drift_text};

use registrar_core::effect::{Effect, FileStatus, SourceTrust};
use registrar_core::matched::Matched;
use registrar_core::plan::{Action, Change, Kind, Plan, Summary};
use registrar_core::quote::{printable, push_printable_str};

mod json;
mod ldif;

pub use self::ldif::{profile_attribute, write_ldif, LdifBase, LdifBaseError};

/// GitHub refuses comments of 65,536 characters or more; Markdown output stays below
/// this, cut with a line saying how much was left out.
pub const MARKDOWN_LIMIT: usize = 65_000;

/// The plan JSON document (and saved plan): the plan's fields, `revision_dirty`, and
/// `effect` with `plan --base`. Its serde form is the document's value; `json.rs` writes
/// that value with the header before the changes and one change a line.
#[derive(Debug, Serialize)]
pub struct PlanDocument<'a> {
    #[serde(flatten)]
    pub plan: &'a Plan,
    /// The plan was made from a working tree that differed from `revision`.
    pub revision_dirty: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<&'a Effect>,
    /// A review: how the head's LDAP sources were read (`config::trust`).
    #[serde(skip_serializing_if = "<[SourceTrust]>::is_empty")]
    pub connection_trust: &'a [SourceTrust],
}

impl<'a> PlanDocument<'a> {
    /// The document of a plan alone.
    pub fn of(plan: &'a Plan) -> Self {
        PlanDocument {
            plan,
            revision_dirty: false,
            effect: None,
            connection_trust: &[],
        }
    }
}

/// Whether text output uses ANSI colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    On,
    Off,
}

/// The plan as JSON with a final newline, one change a line: the DESIGN.md shape and the
/// saved plan.
pub fn json(document: &PlanDocument<'_>) -> String {
    let mut bytes = Vec::new();
    write_json(document, &mut bytes).expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("serde_json writes UTF-8")
}

/// Streams [`json`]'s output into `out`, for large plans: written by hand (see
/// `json.rs`).
pub fn write_json(
    document: &PlanDocument<'_>,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    json::write_document(document, out)?;
    out.write_all(b"\n")
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
struct Sections<'a> {
    accounts: Vec<&'a Change>,
    /// Mapping name → (protocol, changes).
    mappings: BTreeMap<&'a str, Vec<&'a Change>>,
    groups: Vec<&'a Change>,
}

fn sections(changes: &[Change]) -> Sections<'_> {
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

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Add => "+",
        Action::Remove => "-",
        Action::Update | Action::Deactivate | Action::Reactivate => "~",
    }
}

fn paint(color: Color, action: Action, text: &str) -> Painted<'_> {
    Painted(color, action, text)
}

/// `text` in the colour of `action` (when colour is on), written without allocating.
struct Painted<'a>(Color, Action, &'a str);

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
fn push_shown(into: &mut String, value: &Option<String>) {
    match value {
        Some(v) => push_quoted(into, v),
        None => into.push_str("(none)"),
    }
}

/// `text` quoted as `{:?}` prints it, without the formatting machinery for the plain
/// printable ASCII that names and profile values mostly are.
fn push_quoted(into: &mut String, text: &str) {
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
fn push_reason(into: &mut String, reason: Option<&str>) {
    if let Some(reason) = reason {
        into.push_str(" (");
        into.push_str(reason);
        into.push(')');
    }
}

/// One change described: its line (without the symbol) and its detail lines. Reused from
/// change to change, so that describing a large plan allocates little.
#[derive(Default)]
struct Description {
    line: String,
    /// Buffers for detail lines; the first `used` hold this change's.
    details: Vec<String>,
    used: usize,
}

impl Description {
    fn details(&self) -> &[String] {
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
fn describe(change: &Change, into: &mut Description) {
    into.line.clear();
    into.used = 0;
    let account = change
        .dn
        .as_deref()
        .or(change.account.as_deref())
        .unwrap_or("?");
    for (field, (old, new)) in change.fields.iter().flat_map(|f| f.iter()) {
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
            for (field, value) in change.profile.iter().flat_map(|p| p.iter()) {
                let detail = into.detail();
                detail.push_str(field.name());
                detail.push_str(": ");
                push_quoted(detail, value);
            }
            let line = &mut into.line;
            line.push_str("account ");
            push_printable_str(line, account);
            line.push_str(" (source ");
            line.push_str(change.source.as_deref().unwrap_or("?"));
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
                if let Some(kind) = change.group_kind {
                    let _ = write!(into.detail(), "kind: {}", kind.name());
                }
                if let Some(rule) = &change.group_rule {
                    let _ = write!(into.detail(), "rule: {rule}");
                }
                if let Some(source) = &change.source {
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

/// Terraform-like text: changes grouped by mapping, warnings, skipped counts, and the
/// `Plan: …` line last.
pub fn text(plan: &Plan, color: Color) -> String {
    let mut bytes = Vec::new();
    write_text(plan, false, color, &mut bytes).expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("the plan is UTF-8")
}

/// Writes a titled block of changes, one line (plus detail lines) each, gathered in a
/// buffer and written a large piece at a time.
fn write_block(
    out: &mut dyn std::io::Write,
    color: Color,
    title: &str,
    changes: &[&Change],
) -> std::io::Result<()> {
    const PIECE: usize = 1 << 16;
    writeln!(out, "\n{title}")?;
    let mut description = Description::default();
    let mut text = String::with_capacity(PIECE + 1024);
    for change in changes {
        describe(change, &mut description);
        text.push_str("  ");
        match color {
            Color::Off => text.push_str(symbol(change.action)),
            Color::On => {
                let _ = write!(
                    text,
                    "{}",
                    paint(color, change.action, symbol(change.action))
                );
            }
        }
        text.push(' ');
        text.push_str(&description.line);
        text.push('\n');
        for detail in description.details() {
            text.push_str("      ");
            text.push_str(detail);
            text.push('\n');
        }
        if text.len() >= PIECE {
            out.write_all(text.as_bytes())?;
            text.clear();
        }
    }
    out.write_all(text.as_bytes())
}

/// Writes changes grouped as accounts, one block per mapping, then groups.
fn write_sections(
    out: &mut dyn std::io::Write,
    color: Color,
    changes: &[Change],
) -> std::io::Result<()> {
    let sections = sections(changes);
    if !sections.accounts.is_empty() {
        write_block(out, color, "accounts", &sections.accounts)?;
    }
    for (mapping, changes) in &sections.mappings {
        let protocol = changes[0].protocol.as_deref().unwrap_or("?");
        write_block(
            out,
            color,
            &format!("mapping {mapping} ({protocol})"),
            changes,
        )?;
    }
    if !sections.groups.is_empty() {
        write_block(out, color, "groups", &sections.groups)?;
    }
    Ok(())
}

/// The first 12 characters of a commit id.
fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// `def456… (dirty)` or `working tree` for the head of an effect.
fn head_name(effect: &Effect) -> String {
    match &effect.head {
        Some(head) if effect.head_dirty => format!("{} + uncommitted changes", short(head)),
        Some(head) => short(head).to_string(),
        None => "working tree".to_string(),
    }
}

/// The effect of a change in text: what the head's desired state changes compared with
/// the base's, grouped like a plan, with the changed config files and an `Effect: …`
/// line.
pub fn write_effect_text(
    effect: &Effect,
    color: Color,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "registrar effect of the change (base {} → head {})",
        short(&effect.base),
        head_name(effect)
    )?;
    if effect.changes.is_empty() {
        writeln!(
            out,
            "\nNo effect. Both revisions produce the same accounts and registrations."
        )?;
    }
    write_sections(out, color, &effect.changes)?;
    if !effect.files.is_empty() {
        writeln!(out, "\nconfig files changed")?;
        for file in &effect.files {
            writeln!(out, "  {} ({})", file.path, status_name(file.status))?;
        }
    }
    let s = &effect.summary;
    writeln!(
        out,
        "\nEffect: {} to add, {} to update, {} to remove, {} to deactivate.",
        s.add,
        s.update + s.reactivate,
        s.remove,
        s.deactivate
    )
}

fn status_name(status: FileStatus) -> &'static str {
    match status {
        FileStatus::Added => "added",
        FileStatus::Removed => "removed",
        FileStatus::Modified => "modified",
    }
}

/// Streams [`text`]'s output into `out`, for large plans.
pub fn write_text(
    plan: &Plan,
    revision_dirty: bool,
    color: Color,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    // `-dirty`: the working tree differed from the commit in a file the plan read.
    let dirty = if revision_dirty { "-dirty" } else { "" };
    let revision = plan
        .revision
        .as_deref()
        .map(|r| format!("revision {}{dirty}, ", short(r)))
        .unwrap_or_default();
    writeln!(
        out,
        "registrar plan ({revision}state serial {})",
        plan.state_serial
    )?;
    if plan.changes.is_empty() {
        writeln!(
            out,
            "\nNo changes. The registration store matches the configuration."
        )?;
    }
    write_sections(out, color, &plan.changes)?;
    if !plan.warnings.is_empty() {
        writeln!(out, "\nwarnings")?;
        for warning in &plan.warnings {
            writeln!(out, "  ! {}", warning.message)?;
        }
    }
    let skipped: Vec<String> = plan
        .skipped
        .iter()
        .flat_map(|(mapping, counts)| {
            let mut lines = Vec::new();
            if counts.missing_attribute > 0 {
                lines.push(format!(
                    "mapping {mapping}: {} entries lack an attribute the template reads",
                    counts.missing_attribute
                ));
            }
            if counts.invalid_name > 0 {
                lines.push(format!(
                    "mapping {mapping}: {} values are not valid IM names",
                    counts.invalid_name
                ));
            }
            if counts.disabled > 0 {
                lines.push(format!(
                    "mapping {mapping}: {} disabled users get no registration",
                    counts.disabled
                ));
            }
            lines
        })
        .chain(plan.group_skipped.iter().flat_map(|(group, counts)| {
            [
                (
                    counts.unknown_members,
                    "are neither users nor groups of its source",
                ),
                (counts.disabled_members, "are disabled users"),
                (counts.excluded_members, "are excluded"),
            ]
            .into_iter()
            .filter(|(count, _)| *count > 0)
            .map(move |(count, why)| format!("group {group}: {count} member DN(s) {why}"))
        }))
        .collect();
    if !skipped.is_empty() {
        writeln!(out, "\nskipped")?;
        for line in skipped {
            writeln!(out, "  {line}")?;
        }
    }
    let sources = sources_lines(&plan.sources);
    if !sources.is_empty() {
        writeln!(out, "\nsources")?;
        for line in sources {
            writeln!(out, "  {}", printable(&line))?;
        }
    }
    let s = &plan.summary;
    writeln!(out)?;
    let mut notes = Vec::new();
    if s.reactivate > 0 {
        notes.push(format!(
            "{} to reactivate (counted as updates)",
            s.reactivate
        ));
    }
    if s.conflicts > 0 {
        notes.push(format!("{} conflicts", s.conflicts));
    }
    if s.excluded > 0 {
        notes.push(format!("{} excluded objects untouched", s.excluded));
    }
    if !notes.is_empty() {
        writeln!(out, "{}.", notes.join(", "))?;
    }
    if let Some(reason) = &s.blocked_reason {
        writeln!(
            out,
            "BLOCKED: {reason}; apply refuses this plan without --allow-deletes."
        )?;
    }
    writeln!(out, "{}", summary_line(s))
}

/// The `sources` block as lines: entries read per source, then entries matched per
/// mapping, group rule, exclusion and `disabled_when` ([`registrar_core::matched`] says
/// what each counts).
fn sources_lines(matched: &Matched) -> Vec<String> {
    let entries = |count: u64| if count == 1 { "entry" } else { "entries" };
    let mut lines: Vec<String> = matched
        .entries_read
        .iter()
        .map(|(source, count)| format!("source {source}: {count} {} read", entries(*count)))
        .collect();
    let rules = [
        ("mapping", &matched.mappings, "matched"),
        ("group rule", &matched.group_rules, "matched"),
        ("exclusion", &matched.exclusions, "frozen"),
    ];
    for (kind, counts, verb) in rules {
        for (name, count) in counts {
            lines.push(format!("{kind} {name}: {count} {} {verb}", entries(*count)));
        }
    }
    if let Some(count) = matched.disabled_when {
        lines.push(format!(
            "disabled_when: {count} {} disabled",
            if count == 1 { "user" } else { "users" }
        ));
    }
    lines
}

/// `text` as Markdown (GitHub's included) shows it, inline or in a table cell: control
/// and invisible characters escaped (see [`printable`]), HTML's `<`, `>` and `&` as
/// entities (no tag, comment or entity from data), `@` kept from mentioning anyone, and
/// every character that acts inside a line backslash-escaped: emphasis, code spans, links
/// and images (`[`, `]`), headings, strikethrough, table cells. (What acts only at the
/// start of a line, `-`, `+`, `1.`, never comes first: the callers put text after a
/// cell's `|` or a list's `- `.) The one Markdown escaper: plan and drift reports use it.
pub(crate) fn escape_markdown(text: &str) -> String {
    let text = printable(text);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // A zero-width space after the `@`, as GitHub's own bots write it, so that
            // `@team` is not a mention.
            '@' => out.push_str("@&#8203;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// `text` as a Markdown code span: delimited by more backticks than any run inside it
/// (padded with a space when it starts or ends with one), control characters escaped, so
/// that no file name closes the span early.
fn code_span(text: &str) -> String {
    let text = printable(text);
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// `N to add, N to update, N to remove, N to deactivate`.
fn counts(s: &Summary) -> String {
    format!(
        "{} to add, {} to update, {} to remove, {} to deactivate",
        s.add,
        s.update + s.reactivate,
        s.remove,
        s.deactivate
    )
}

/// Markdown tables of changes: accounts, one per mapping, groups.
fn markdown_tables(out: &mut String, changes: &[Change]) {
    let sections = sections(changes);
    let table = |out: &mut String, title: String, changes: &[&Change]| {
        let _ = writeln!(out, "#### {title}\n");
        let _ = writeln!(out, "| | change | details |\n|---|---|---|");
        let mut description = Description::default();
        for change in changes {
            describe(change, &mut description);
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                symbol(change.action),
                escape_markdown(&description.line),
                escape_markdown(&description.details().join("; "))
            );
        }
        let _ = writeln!(out);
    };
    if !sections.accounts.is_empty() {
        table(out, "Accounts".to_string(), &sections.accounts);
    }
    for (mapping, changes) in &sections.mappings {
        let protocol = changes[0].protocol.as_deref().unwrap_or("?");
        table(out, format!("Mapping `{mapping}` ({protocol})"), changes);
    }
    if !sections.groups.is_empty() {
        table(out, "Groups".to_string(), &sections.groups);
    }
}

/// Markdown for a pull-request comment: a one-line summary outside any `<details>`
/// block, then the details. With an effect (`plan --base`): the effect of the change
/// grouped by mapping, the plan against the store, and the unified diff of the changed
/// config files, each in its own `<details>` block. Cut to stay under
/// [`MARKDOWN_LIMIT`] characters.
pub fn markdown(plan: &Plan, effect: Option<&Effect>, connection_trust: &[SourceTrust]) -> String {
    let s = &plan.summary;
    let mut out = String::new();
    let mut extras = Vec::new();
    if s.reactivate > 0 {
        extras.push(format!("{} to reactivate", s.reactivate));
    }
    if s.conflicts > 0 {
        extras.push(format!("{} conflicts", s.conflicts));
    }
    if s.excluded > 0 {
        extras.push(format!("{} excluded", s.excluded));
    }
    let extras = if extras.is_empty() {
        String::new()
    } else {
        format!(" ({})", extras.join(", "))
    };
    let blocked = if s.blocked {
        "⛔ **blocked** — "
    } else {
        ""
    };
    match effect {
        Some(effect) => {
            let _ = writeln!(
                out,
                "{blocked}**registrar plan**: this change: {}; against the store: {}{extras}",
                counts(&effect.summary),
                counts(s)
            );
        }
        None => {
            let _ = writeln!(out, "{blocked}**registrar plan**: {}{extras}", counts(s));
        }
    }
    if let Some(reason) = &s.blocked_reason {
        let _ = writeln!(
            out,
            "\n> {}; `apply` refuses it without `--allow-deletes`.",
            escape_markdown(reason)
        );
    }
    for note in connection_trust {
        let _ = writeln!(out, "\n> Note: {}", escape_markdown(&note.message()));
    }
    if let Some(effect) = effect {
        let _ = writeln!(
            out,
            "\nEffect of `{}` → `{}` on the accounts and registrations the config produces, then the plan against the registration store.",
            short(&effect.base),
            head_name(effect)
        );
        let total = effect.changes.len();
        let _ = writeln!(
            out,
            "\n<details><summary>Effect of the change: {total} change{} by mapping</summary>\n",
            if total == 1 { "" } else { "s" }
        );
        if effect.changes.is_empty() {
            let _ = writeln!(
                out,
                "No effect: both revisions produce the same accounts and registrations.\n"
            );
        }
        markdown_tables(&mut out, &effect.changes);
        let _ = writeln!(out, "</details>");
    }
    let title = if effect.is_some() {
        "Plan against the registration store"
    } else {
        "Changes by mapping"
    };
    if plan.changes.is_empty() && plan.warnings.is_empty() {
        let _ = writeln!(
            out,
            "\nNo changes. The registration store matches the configuration."
        );
    } else {
        let _ = writeln!(out, "\n<details><summary>{title}</summary>\n");
        markdown_tables(&mut out, &plan.changes);
        if !plan.warnings.is_empty() {
            let _ = writeln!(out, "#### Warnings\n");
            for warning in &plan.warnings {
                let _ = writeln!(out, "- {}", escape_markdown(&warning.message));
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "</details>");
    }
    let sources = sources_lines(&plan.sources);
    if !sources.is_empty() {
        let read: u64 = plan.sources.entries_read.values().sum();
        let _ = writeln!(
            out,
            "\n<details><summary>Sources: {read} {} read, and what each rule matched</summary>\n",
            if read == 1 { "entry" } else { "entries" }
        );
        for line in sources {
            let _ = writeln!(out, "- {}", escape_markdown(&line));
        }
        let _ = writeln!(out, "\n</details>");
    }
    if let Some(effect) = effect.filter(|e| !e.files.is_empty()) {
        let count = effect.files.len();
        let _ = writeln!(
            out,
            "\n<details><summary>Config changes: {count} file{}</summary>\n",
            if count == 1 { "" } else { "s" }
        );
        for file in &effect.files {
            // A fence longer than any run of backticks in the diff.
            let longest = file
                .diff
                .split(|c| c != '`')
                .map(str::len)
                .max()
                .unwrap_or(0);
            let fence = "`".repeat(longest.max(2) + 1);
            let _ = writeln!(
                out,
                "{} ({})\n\n{fence}diff\n{}{}{fence}\n",
                code_span(&file.path),
                status_name(file.status),
                file.diff,
                if file.diff.ends_with('\n') { "" } else { "\n" }
            );
        }
        let _ = writeln!(out, "</details>");
    }
    fit_markdown(&out, MARKDOWN_LIMIT)
}

/// The notes of a review on how the head's LDAP sources were read, one line each and a
/// blank line after them, before a text plan (nothing without notes).
pub fn write_trust_text(
    connection_trust: &[SourceTrust],
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    for note in connection_trust {
        writeln!(out, "Note: {}", note.message())?;
    }
    if !connection_trust.is_empty() {
        writeln!(out)?;
    }
    Ok(())
}

/// `text` if it is shorter than `limit` characters; otherwise its first lines, with any
/// open code fence and `<details>` blocks closed and a last line saying how many
/// characters were left out, all shorter than `limit`.
pub fn fit_markdown(text: &str, limit: usize) -> String {
    let total = text.chars().count();
    if total < limit {
        return text.to_string();
    }
    // Room for the closing lines and the note.
    let budget = limit.saturating_sub(400);
    let mut kept = String::new();
    let mut kept_chars = 0;
    let mut fence: Option<String> = None;
    let mut open_details = 0usize;
    for line in text.split_inclusive('\n') {
        let chars = line.chars().count();
        if kept_chars + chars > budget {
            break;
        }
        kept.push_str(line);
        kept_chars += chars;
        let trimmed = line.trim();
        match &fence {
            Some(open) if trimmed == open => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => {
                let ticks = trimmed.chars().take_while(|c| *c == '`').count();
                fence = Some("`".repeat(ticks));
            }
            None => {
                open_details += trimmed.matches("<details>").count();
                open_details = open_details.saturating_sub(trimmed.matches("</details>").count());
            }
        }
    }
    let left_out = total - kept_chars;
    if !kept.ends_with('\n') {
        kept.push('\n');
    }
    if let Some(fence) = fence {
        let _ = writeln!(kept, "{fence}");
    }
    for _ in 0..open_details {
        let _ = writeln!(kept, "\n</details>");
    }
    let _ = writeln!(
        kept,
        "\n… {left_out} characters left out (GitHub comments are limited); run `registrar plan` for the whole output."
    );
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_markdown_is_left_alone() {
        let text = "**registrar plan**: 1 to add\n\n<details>\n\n| a |\n</details>\n";
        assert_eq!(fit_markdown(text, 1000), text);
    }

    #[test]
    fn long_markdown_is_cut_under_the_limit_with_blocks_closed() {
        let mut text = String::from(
            "**registrar plan**: summary\n\n<details><summary>x</summary>\n\n```diff\n",
        );
        for i in 0..5000 {
            text.push_str(&format!("+line {i} of the diff\n"));
        }
        text.push_str("```\n</details>\n");
        let total = text.chars().count();
        let cut = fit_markdown(&text, 10_000);
        assert!(cut.chars().count() < 10_000, "{}", cut.chars().count());
        assert!(cut.starts_with("**registrar plan**: summary\n"));
        // The fence and the details block are closed, in that order, before the note.
        let fence_close = cut.rfind("\n```\n").expect("fence closed");
        let details_close = cut.rfind("</details>").expect("details closed");
        assert!(fence_close < details_close);
        let last = cut.trim_end().lines().last().unwrap();
        let left: usize = last
            .trim_start_matches("… ")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(last.contains("characters left out"), "{last}");
        // What was kept is the start of the text, cut at a line end, and it plus what
        // was left out is the whole.
        let kept = &cut[..cut.rfind("```\n\n</details>").unwrap()];
        assert!(text.starts_with(kept) && kept.ends_with('\n'));
        assert_eq!(kept.chars().count() + left, total);
    }

    #[test]
    fn markdown_escapes_what_it_quotes() {
        assert_eq!(
            escape_markdown("<details> @team ](javascript:alert(1)) a|b `x` *b* _i_ # ~s~ \\ &lt;"),
            "&lt;details&gt; @&#8203;team \\](javascript:alert(1)) a\\|b \\`x\\` \\*b\\* \\_i\\_ \\# \\~s\\~ \\\\ &amp;lt;"
        );
        // Controls are escaped first, then the escape's backslash for Markdown: the page
        // shows `a\nb\u{1b}`.
        assert_eq!(
            escape_markdown("a\nb\x1b\u{202e}"),
            "a\\\\nb\\\\u{1b}\\\\u{202e}"
        );
        assert_eq!(escape_markdown("alice.smith-1"), "alice.smith-1");
    }

    #[test]
    fn code_spans_outlast_the_backticks_inside() {
        assert_eq!(code_span("a.yaml"), "`a.yaml`");
        assert_eq!(code_span("a`b``c.yaml"), "```a`b``c.yaml```");
        assert_eq!(code_span("`x"), "`` `x ``");
        assert_eq!(code_span("a\nb"), "`a\\nb`");
    }

    /// A plan of nothing, for the tests to fill.
    fn empty_plan() -> Plan {
        Plan {
            format_version: 1,
            revision: None,
            state_serial: 0,
            inputs_digest: String::new(),
            config_digest: String::new(),
            summary: Summary::default(),
            changes: Vec::new(),
            warnings: Vec::new(),
            skipped: BTreeMap::new(),
            group_skipped: BTreeMap::new(),
            imports: Vec::new(),
            sources: Default::default(),
        }
    }

    #[test]
    fn a_plan_in_markdown_shows_hostile_names_as_text() {
        let mut plan = empty_plan();
        let hostile = [
            "<details>",
            "@team",
            "](javascript:alert(1))",
            "a|b",
            "`code`",
            "*bold*",
            "_it_",
            "# title",
        ];
        for name in hostile {
            plan.changes.push(Change {
                protocol: Some("aol".into()),
                im_name: Some(name.into()),
                account: Some(format!("cn={name},dc=example,dc=com").into()),
                mapping: Some("aol-mail".into()),
                ..Change::new(Action::Add, Kind::Registration)
            });
        }
        plan.warnings.push(registrar_core::desired::Warning::new(
            registrar_core::desired::WarningKind::InvalidName,
            "name \"</details><img src=x>\" @everyone".to_string(),
        ));
        plan.summary.add = hostile.len() as u64;
        let text = markdown(&plan, None, &[]);
        for escaped in [
            "&lt;details&gt;",
            "@&#8203;team",
            "\\](javascript:alert(1))",
            "a\\|b",
            "\\`code\\`",
            "\\*bold\\*",
            "\\_it\\_",
            "\\# title",
            "- name \"&lt;/details&gt;&lt;img src=x&gt;\" @&#8203;everyone",
        ] {
            assert!(text.contains(escaped), "{escaped} not in\n{text}");
        }
        // Only the report's own tags and table rows: one `<details>`, one `</details>`,
        // and every row of the table has its 4 cell separators.
        assert_eq!(text.matches("<details>").count(), 1, "{text}");
        assert_eq!(text.matches("</details>").count(), 1, "{text}");
        assert!(!text.contains("<img"));
        for row in text.lines().filter(|line| line.starts_with("| `")) {
            assert_eq!(row.matches(" | ").count() + 2, 4, "{row}");
        }
    }

    #[test]
    fn markdown_output_with_a_huge_plan_stays_under_the_limit() {
        let mut plan = empty_plan();
        for i in 0..5000 {
            plan.changes.push(Change {
                protocol: Some("aol".into()),
                im_name: Some(format!("user{i}").into()),
                account: Some(format!("cn=user {i},dc=example,dc=com").into()),
                mapping: Some("aol-mail".into()),
                ..Change::new(Action::Add, Kind::Registration)
            });
        }
        plan.summary.add = 5000;
        let text = markdown(&plan, None, &[]);
        assert!(text.chars().count() < MARKDOWN_LIMIT);
        assert!(text.starts_with("**registrar plan**: 5000 to add"));
        assert!(text.contains("user0"));
        assert!(!text.contains("user4999"));
        assert!(text.trim_end().ends_with("for the whole output."));
        assert_eq!(
            text.matches("<details>").count(),
            text.matches("</details>").count()
        );
    }
}
