//! The Markdown plan, for a pull-request comment: summary, tables, the effect since a
//! base revision, all cut to fit GitHub's comment limit ([`MARKDOWN_LIMIT`]).

use std::fmt::Write as _;

use super::describe::{describe, sections, symbol, Description};
use super::text::{head_name, short, sources_lines, status_name};
use registrar_core::effect::{Effect, SourceTrust};
use registrar_core::plan::{Change, Plan, Summary};
use registrar_core::quote::printable;

/// GitHub refuses comments of 65,536 characters or more; Markdown output stays below
/// this, cut with a line saying how much was left out.
pub const MARKDOWN_LIMIT: usize = 65_000;

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
pub(super) fn code_span(text: &str) -> String {
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
pub(super) fn counts(s: &Summary) -> String {
    format!(
        "{} to add, {} to update, {} to remove, {} to deactivate",
        s.add,
        s.update + s.reactivate,
        s.remove,
        s.deactivate
    )
}

/// Markdown tables of changes: accounts, one per mapping, groups.
pub(super) fn markdown_tables(out: &mut String, changes: &[Change]) {
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
