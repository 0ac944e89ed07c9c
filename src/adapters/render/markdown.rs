//! The plan as Markdown for a pull-request comment: a summary, change tables, the effect
//! since `--base`, warnings and the sources block, with every value escaped
//! ([`escape_markdown`], the one Markdown escaper, shared with drift) and the whole cut
//! below GitHub's comment limit ([`fit_markdown`]).

use std::fmt::Write as _;

use registrar_core::effect::{Effect, SourceTrust};
use registrar_core::plan::{Change, Plan, Summary};
use registrar_core::quote::printable;

use super::words::{
    describe, head_name, sections, short, sources_lines, status_name, symbol, Description,
};

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use registrar_core::plan::{Action, Kind};

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
