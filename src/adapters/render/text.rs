//! The Terraform-like text plan, for people at a terminal: the changes in sections, the
//! effect since a base revision, and the review notes.

use std::fmt::Write as _;

use super::describe::{describe, paint, sections, summary_line, symbol, Color, Description};
use registrar_core::effect::{Effect, FileStatus, SourceTrust};
use registrar_core::matched::Matched;
use registrar_core::plan::{Change, Plan};
use registrar_core::quote::printable;

/// Terraform-like text: changes grouped by mapping, warnings, skipped counts, and the
/// `Plan: …` line last.
pub fn text(plan: &Plan, color: Color) -> String {
    let mut bytes = Vec::new();
    write_text(plan, false, color, &mut bytes).expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("the plan is UTF-8")
}

/// Writes a titled block of changes, one line (plus detail lines) each, gathered in a
/// buffer and written a large piece at a time.
pub(super) fn write_block(
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
pub(super) fn write_sections(
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
pub(super) fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// `def456… (dirty)` or `working tree` for the head of an effect.
pub(super) fn head_name(effect: &Effect) -> String {
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

pub(super) fn status_name(status: FileStatus) -> &'static str {
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
pub(super) fn sources_lines(matched: &Matched) -> Vec<String> {
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
