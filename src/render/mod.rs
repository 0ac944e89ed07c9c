//! Plan output for people and scripts: Terraform-like text, JSON (the saved-plan format)
//! and Markdown for a pull-request comment.
//!
//! Rendering is pure: a plan in, a string out, the same bytes for the same plan. It never
//! decides anything about the plan's content.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::core::plan::{Action, Change, Kind, Plan, Summary};

/// Whether text output uses ANSI colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    On,
    Off,
}

/// The plan as pretty JSON with a final newline: the DESIGN.md shape and the saved plan.
pub fn json(plan: &Plan) -> String {
    let mut bytes = Vec::new();
    write_json(plan, &mut bytes).expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("serde_json writes UTF-8")
}

/// Streams [`json`]'s output into `out`, for large plans.
pub fn write_json(plan: &Plan, out: &mut impl std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, plan)?;
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

fn sections(plan: &Plan) -> Sections<'_> {
    let mut sections = Sections {
        accounts: Vec::new(),
        mappings: BTreeMap::new(),
        groups: Vec::new(),
    };
    for change in &plan.changes {
        match change.kind {
            Kind::Account => sections.accounts.push(change),
            Kind::Registration => sections
                .mappings
                .entry(change.mapping.as_deref().unwrap_or("(none)"))
                .or_default()
                .push(change),
            Kind::Group | Kind::GroupMember => sections.groups.push(change),
        }
    }
    sections
}

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Add => "+",
        Action::Remove => "-",
        Action::Update | Action::Deactivate | Action::Reactivate => "~",
    }
}

fn paint(color: Color, action: Action, text: &str) -> String {
    if color == Color::Off {
        return text.to_string();
    }
    let code = match action {
        Action::Add => "32",
        Action::Remove => "31",
        Action::Update | Action::Deactivate | Action::Reactivate => "33",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn show(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "(none)".to_string(),
    }
}

/// One line (plus detail lines) describing a change, without its symbol.
fn describe(change: &Change) -> (String, Vec<String>) {
    let account = change
        .dn
        .as_deref()
        .or(change.account.as_deref())
        .unwrap_or("?");
    let mut details = Vec::new();
    for (field, (old, new)) in change.fields.iter().flat_map(|f| f.iter()) {
        details.push(format!("{field}: {} → {}", show(old), show(new)));
    }
    let reason = change
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let line = match (change.kind, change.action) {
        (Kind::Account, Action::Add) => {
            for (field, value) in change.profile.iter().flat_map(|p| p.iter()) {
                details.push(format!("{}: {value:?}", field.name()));
            }
            format!(
                "account {account} (source {})",
                change.source.as_deref().unwrap_or("?")
            )
        }
        (Kind::Account, Action::Deactivate) => format!("account {account} deactivate{reason}"),
        (Kind::Account, Action::Reactivate) => format!("account {account} reactivate{reason}"),
        (Kind::Account, _) => format!("account {account}{reason}"),
        (Kind::Registration, _) => format!(
            "{} {:?} → {account}{reason}",
            change.protocol.as_deref().unwrap_or("?"),
            change.im_name.as_deref().unwrap_or("?")
        ),
        (Kind::Group, _) => {
            let group = change.group.as_deref().unwrap_or("?");
            if change.action == Action::Add {
                if let Some(kind) = change.group_kind {
                    details.push(format!("kind: {}", kind.name()));
                }
                if let Some(rule) = &change.group_rule {
                    details.push(format!("rule: {rule}"));
                }
                if let Some(source) = &change.source {
                    details.push(format!("source: {source}"));
                }
            }
            format!("group {group}{reason}")
        }
        (Kind::GroupMember, _) => {
            let member = change
                .dn
                .as_deref()
                .or(change.member.as_deref())
                .unwrap_or("?");
            format!(
                "{} ← {member}{reason}",
                change.group.as_deref().unwrap_or("?")
            )
        }
    };
    (line, details)
}

/// Terraform-like text: changes grouped by mapping, warnings, skipped counts, and the
/// `Plan: …` line last.
pub fn text(plan: &Plan, color: Color) -> String {
    let mut bytes = Vec::new();
    write_text(plan, color, &mut bytes).expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("the plan is UTF-8")
}

/// Streams [`text`]'s output into `out`, for large plans.
pub fn write_text(plan: &Plan, color: Color, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let sections = sections(plan);
    let revision = plan
        .revision
        .as_deref()
        .map(|r| format!("revision {}, ", &r[..r.len().min(12)]))
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
    let block =
        |out: &mut dyn std::io::Write, title: String, changes: &[&Change]| -> std::io::Result<()> {
            writeln!(out, "\n{title}")?;
            for change in changes {
                let (line, details) = describe(change);
                writeln!(
                    out,
                    "  {} {line}",
                    paint(color, change.action, symbol(change.action))
                )?;
                for detail in details {
                    writeln!(out, "      {detail}")?;
                }
            }
            Ok(())
        };
    if !sections.accounts.is_empty() {
        block(out, "accounts".to_string(), &sections.accounts)?;
    }
    for (mapping, changes) in &sections.mappings {
        let protocol = changes[0].protocol.as_deref().unwrap_or("?");
        block(out, format!("mapping {mapping} ({protocol})"), changes)?;
    }
    if !sections.groups.is_empty() {
        block(out, "groups".to_string(), &sections.groups)?;
    }
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

fn escape_markdown(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Markdown for a pull-request comment: a one-line summary outside a `<details>` block,
/// changes grouped by mapping inside it.
pub fn markdown(plan: &Plan) -> String {
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
    let _ = writeln!(
        out,
        "{blocked}**registrar plan**: {} to add, {} to update, {} to remove, {} to deactivate{extras}",
        s.add,
        s.update + s.reactivate,
        s.remove,
        s.deactivate
    );
    if let Some(reason) = &s.blocked_reason {
        let _ = writeln!(
            out,
            "\n> {}; `apply` refuses it without `--allow-deletes`.",
            escape_markdown(reason)
        );
    }
    if plan.changes.is_empty() && plan.warnings.is_empty() {
        let _ = writeln!(
            out,
            "\nNo changes. The registration store matches the configuration."
        );
        return out;
    }
    let _ = writeln!(out, "\n<details><summary>Changes by mapping</summary>\n");
    let sections = sections(plan);
    let table = |out: &mut String, title: String, changes: &[&Change]| {
        let _ = writeln!(out, "#### {title}\n");
        let _ = writeln!(out, "| | change | details |\n|---|---|---|");
        for change in changes {
            let (line, details) = describe(change);
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                symbol(change.action),
                escape_markdown(&line),
                escape_markdown(&details.join("; "))
            );
        }
        let _ = writeln!(out);
    };
    if !sections.accounts.is_empty() {
        table(&mut out, "Accounts".to_string(), &sections.accounts);
    }
    for (mapping, changes) in &sections.mappings {
        let protocol = changes[0].protocol.as_deref().unwrap_or("?");
        table(
            &mut out,
            format!("Mapping `{mapping}` ({protocol})"),
            changes,
        );
    }
    if !sections.groups.is_empty() {
        table(&mut out, "Groups".to_string(), &sections.groups);
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "#### Warnings\n");
        for warning in &plan.warnings {
            let _ = writeln!(out, "- {}", escape_markdown(&warning.message));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "</details>");
    out
}
