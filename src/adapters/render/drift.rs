//! The drift report (`registrar drift`) as text, Markdown and a self-contained HTML page
//! (inline CSS, no scripts, no external assets: it can be mailed, attached to a CI run
//! or opened from disk). JSON is the report's serde form.
//!
//! Every directory or store value is escaped for its format: a DN or IM name holding
//! `<script>` or `|` is shown, never interpreted.

use std::fmt::Write as _;

use super::describe::{describe, summary_line, symbol, Color, Description};
use super::markdown::escape_markdown;
use super::text::write_sections;
use registrar_core::drift::{DriftReport, OutsideChange};

/// Pending changes listed in Markdown and HTML at most (the JSON has them all).
const LISTED_CHANGES: usize = 500;

fn revision_label(report: &DriftReport) -> String {
    match &report.revision {
        Some(revision) => format!("revision {revision}"),
        None => "the working tree".to_string(),
    }
}

fn change_name(change: OutsideChange) -> &'static str {
    match change {
        OutsideChange::Edited => "edited outside registrar",
        OutsideChange::Deleted => "deleted outside registrar",
        OutsideChange::Added => "added outside registrar (has an owner no apply wrote)",
    }
}

/// The counts line that ends the text report.
pub fn drift_summary_line(report: &DriftReport) -> String {
    if !report.has_drift() {
        return format!(
            "No drift: the store matches {} ({} unmanaged registrations).",
            revision_label(report),
            report.unmanaged.len()
        );
    }
    format!(
        "Drift: {} outside edits, {} protected holdings, {} orphaned rows, {} pending changes ({} unmanaged registrations).",
        report.outside_edits.len(),
        report.protected_holdings.len(),
        report.orphans.len(),
        report.pending.changes.len(),
        report.unmanaged.len()
    )
}

/// The report as text, one block per kind of drift.
pub fn drift_text(report: &DriftReport, color: Color) -> String {
    let mut out = format!(
        "Drift of state serial {} from {}\n",
        report.state_serial,
        revision_label(report)
    );
    if !report.hashes_recorded {
        out.push_str(
            "(no content hashes recorded yet: outside edits are detected from the next apply)\n",
        );
    }
    if !report.outside_edits.is_empty() {
        out.push_str("\nmanaged rows changed outside registrar\n");
        for edit in &report.outside_edits {
            let _ = writeln!(
                out,
                "  ! {} {}: {}",
                edit.kind.name(),
                edit.key,
                change_name(edit.change)
            );
        }
    }
    if !report.protected_holdings.is_empty() {
        out.push_str("\nregistrations held by protected principals\n");
        for holding in &report.protected_holdings {
            let _ = writeln!(
                out,
                "  ! {} {:?} → {} ({})",
                holding.protocol, holding.im_name, holding.dn, holding.source
            );
        }
    }
    if !report.orphans.is_empty() {
        out.push_str("\nmanaged rows whose owner is not in the configuration\n");
        for orphan in &report.orphans {
            let _ = writeln!(
                out,
                "  ! {} {} (owner {})",
                orphan.kind.name(),
                orphan.key,
                orphan.owner
            );
        }
    }
    if !report.pending.changes.is_empty() {
        out.push_str("\npending changes (what apply at this revision would do now)");
        let mut bytes = Vec::new();
        let _ = write_sections(&mut bytes, color, &report.pending.changes);
        out.push_str(&String::from_utf8_lossy(&bytes));
        let _ = writeln!(out, "  {}", summary_line(&report.pending.summary));
    }
    if !report.unmanaged.is_empty() {
        let _ = writeln!(
            out,
            "\nunmanaged registrations (manual and self; not drift): {}",
            report.unmanaged.len()
        );
        for registration in &report.unmanaged {
            let _ = writeln!(
                out,
                "    {} {:?} → {} ({})",
                registration.protocol,
                registration.im_name,
                registration.dn.as_deref().unwrap_or(&registration.account),
                registration.source
            );
        }
    }
    out.push('\n');
    out.push_str(&drift_summary_line(report));
    out.push('\n');
    out
}

/// The report as Markdown, for a PR comment or an issue.
pub fn drift_markdown(report: &DriftReport) -> String {
    let e = escape_markdown;
    let mut out = format!(
        "### registrar drift: {}\n\nState serial {} compared with {}.\n",
        e(&drift_summary_line(report)),
        report.state_serial,
        e(&revision_label(report))
    );
    let mut table = |title: &str, header: &str, rows: Vec<String>| {
        if rows.is_empty() {
            return;
        }
        let _ = write!(out, "\n#### {title} ({})\n\n{header}\n", rows.len());
        let columns = header.matches('|').count() - 1;
        let _ = writeln!(out, "{}|", "|---".repeat(columns));
        for row in rows {
            let _ = writeln!(out, "{row}");
        }
    };
    table(
        "Managed rows changed outside registrar",
        "| kind | key | change |",
        report
            .outside_edits
            .iter()
            .map(|x| {
                format!(
                    "| {} | {} | {} |",
                    x.kind.name(),
                    e(&x.key),
                    change_name(x.change)
                )
            })
            .collect(),
    );
    table(
        "Registrations held by protected principals",
        "| protocol | name | account | source |",
        report
            .protected_holdings
            .iter()
            .map(|x| {
                format!(
                    "| {} | {} | {} | {} |",
                    e(&x.protocol),
                    e(&x.im_name),
                    e(&x.dn),
                    x.source
                )
            })
            .collect(),
    );
    table(
        "Managed rows whose owner is not in the configuration",
        "| kind | key | owner |",
        report
            .orphans
            .iter()
            .map(|x| format!("| {} | {} | {} |", x.kind.name(), e(&x.key), e(&x.owner)))
            .collect(),
    );
    let mut description = Description::default();
    table(
        "Pending changes",
        "| | change |",
        report
            .pending
            .changes
            .iter()
            .take(LISTED_CHANGES)
            .map(|change| {
                describe(change, &mut description);
                format!("| {} | {} |", symbol(change.action), e(&description.line))
            })
            .collect(),
    );
    if report.pending.changes.len() > LISTED_CHANGES {
        let _ = writeln!(
            out,
            "\n…and {} more (see `--format json`).",
            report.pending.changes.len() - LISTED_CHANGES
        );
    }
    if !report.unmanaged.is_empty() {
        let _ = writeln!(
            out,
            "\n{} unmanaged registrations (manual and self) are not drift.",
            report.unmanaged.len()
        );
    }
    out
}

/// `text` with `& < > " '` escaped for HTML.
fn h(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:24px}
header h1{font-size:22px;margin:0 0 4px}
header p{margin:0;color:#59636e}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin:20px 0}
.card{background:#fff;border:1px solid #d1d9e0;border-radius:8px;padding:12px 14px;color:inherit;text-decoration:none}
.card b{display:block;font-size:28px}
.card.bad{border-left:5px solid #cf222e}.card.ok{border-left:5px solid #1a7f37}.card.info{border-left:5px solid #0969da}
section{background:#fff;border:1px solid #d1d9e0;border-radius:8px;margin:16px 0;padding:4px 16px 12px}
h2{font-size:17px;margin:12px 0}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eef1f4;vertical-align:top}
th{color:#59636e;font-weight:600}
td.k{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.add{color:#1a7f37}.remove{color:#cf222e}.update{color:#9a6700}
.verdict{font-size:18px;font-weight:600;padding:12px 16px;border-radius:8px;margin-top:16px}
.verdict.bad{background:#ffebe9;color:#82071e}.verdict.ok{background:#dafbe1;color:#116329}
";

/// One titled table of the HTML page; `rows` hold escaped cells.
fn html_section(
    out: &mut String,
    id: &str,
    title: &str,
    header: &[&str],
    rows: Vec<Vec<String>>,
    empty: &str,
) {
    let _ = write!(
        out,
        "<section id=\"{id}\"><h2>{} ({})</h2>",
        h(title),
        rows.len()
    );
    if rows.is_empty() {
        let _ = write!(out, "<p>{}</p></section>", h(empty));
        return;
    }
    out.push_str("<table><thead><tr>");
    for column in header {
        let _ = write!(out, "<th>{}</th>", h(column));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td class=\"k\">{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></section>");
}

/// The report as one self-contained HTML page.
pub fn drift_html(report: &DriftReport) -> String {
    let drift = report.has_drift();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>registrar drift: {}</title><style>{STYLE}</style></head><body><main>\
         <header><h1>registrar drift report</h1><p>State serial {} compared with {}</p></header>\
         <div class=\"verdict {}\" id=\"verdict\">{}</div><div class=\"cards\">",
        if drift { "drift found" } else { "no drift" },
        report.state_serial,
        h(&revision_label(report)),
        if drift { "bad" } else { "ok" },
        h(&drift_summary_line(report)),
    );
    html_cards(&mut out, report);
    if !report.hashes_recorded {
        out.push_str("<p>No content hashes recorded yet: outside edits are detected from the next apply.</p>");
    }
    html_sections(&mut out, report);
    out.push_str("</main></body></html>\n");
    out
}

/// The summary cards, one per finding, each linking to its section.
fn html_cards(out: &mut String, report: &DriftReport) {
    let cards = [
        (
            "outside-edits",
            "outside edits",
            report.outside_edits.len(),
            true,
        ),
        (
            "protected",
            "protected holdings",
            report.protected_holdings.len(),
            true,
        ),
        ("orphans", "orphaned rows", report.orphans.len(), true),
        (
            "pending",
            "pending changes",
            report.pending.changes.len(),
            true,
        ),
        (
            "unmanaged",
            "unmanaged registrations",
            report.unmanaged.len(),
            false,
        ),
    ];
    for (id, label, count, counts_as_drift) in cards {
        let class = match (counts_as_drift, count) {
            (false, _) => "info",
            (true, 0) => "ok",
            (true, _) => "bad",
        };
        let _ = write!(
            out,
            "<a class=\"card {class}\" href=\"#{id}\" data-count=\"{count}\"><b>{count}</b>{label}</a>"
        );
    }
    out.push_str("</div>");
}

/// One section per finding, with its table of rows.
fn html_sections(out: &mut String, report: &DriftReport) {
    html_section(
        out,
        "outside-edits",
        "Managed rows changed outside registrar",
        &["kind", "key", "change"],
        report
            .outside_edits
            .iter()
            .map(|x| {
                vec![
                    x.kind.name().to_string(),
                    h(&x.key),
                    change_name(x.change).to_string(),
                ]
            })
            .collect(),
        "Every managed row is as the last apply left it.",
    );
    html_section(
        out,
        "protected",
        "Registrations held by protected principals",
        &["protocol", "name", "account", "source"],
        report
            .protected_holdings
            .iter()
            .map(|x| vec![h(&x.protocol), h(&x.im_name), h(&x.dn), h(&x.source)])
            .collect(),
        "No protected principal holds a registration.",
    );
    html_section(
        out,
        "orphans",
        "Managed rows whose owner is not in the configuration",
        &["kind", "key", "owner"],
        report
            .orphans
            .iter()
            .map(|x| vec![x.kind.name().to_string(), h(&x.key), h(&x.owner)])
            .collect(),
        "Every managed row's owner is in the configuration.",
    );
    let mut description = Description::default();
    let listed = report.pending.changes.len().min(LISTED_CHANGES);
    html_section(
        out,
        "pending",
        "Pending changes",
        &["", "change"],
        report.pending.changes[..listed]
            .iter()
            .map(|change| {
                describe(change, &mut description);
                let class = match symbol(change.action) {
                    "+" => "add",
                    "-" => "remove",
                    _ => "update",
                };
                vec![
                    format!("<span class=\"{class}\">{}</span>", symbol(change.action)),
                    h(&description.line),
                ]
            })
            .collect(),
        "Nothing pending: apply at this revision would change nothing.",
    );
    if report.pending.changes.len() > listed {
        let _ = write!(
            out,
            "<p>…and {} more pending changes (see <code>--format json</code>).</p>",
            report.pending.changes.len() - listed
        );
    }
    html_section(
        out,
        "unmanaged",
        "Unmanaged registrations (manual and self; not drift)",
        &["protocol", "name", "account", "source"],
        report
            .unmanaged
            .iter()
            .map(|x| {
                vec![
                    h(&x.protocol),
                    h(&x.im_name),
                    h(x.dn.as_deref().unwrap_or(&x.account)),
                    h(&x.source),
                ]
            })
            .collect(),
        "None.",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use registrar_core::drift::{Orphan, PendingChanges, ProtectedHolding, RowKind};
    use registrar_core::plan::Summary;

    /// A report whose every cell holds a hostile name.
    fn hostile_report(name: &str) -> DriftReport {
        DriftReport {
            revision: Some("main".to_string()),
            state_serial: 3,
            hashes_recorded: true,
            outside_edits: Vec::new(),
            protected_holdings: vec![ProtectedHolding {
                protocol: "aol".to_string(),
                im_name: name.to_string(),
                account: format!("cn={name},dc=example"),
                dn: format!("cn={name},dc=example"),
                source: "corp".to_string(),
                owner: None,
            }],
            orphans: vec![Orphan {
                kind: RowKind::Registration,
                key: format!("aol:{name}"),
                owner: name.to_string(),
            }],
            pending: PendingChanges {
                summary: Summary::default(),
                changes: Vec::new(),
            },
            unmanaged: Vec::new(),
        }
    }

    #[test]
    fn drift_markdown_shows_hostile_names_as_text() {
        let text = drift_markdown(&hostile_report(
            "<details>@team](javascript:alert(1))|`x`*b*_i_",
        ));
        let escaped = "&lt;details&gt;@&#8203;team\\](javascript:alert(1))\\|\\`x\\`\\*b\\*\\_i\\_";
        assert_eq!(text.matches(escaped).count(), 4, "{text}");
        assert!(
            !text.contains("<details>") && !text.contains("@team"),
            "{text}"
        );
        // Every table row keeps its columns: the name's `|` is no cell border.
        for row in text.lines().filter(|line| line.starts_with("| ")) {
            let cells = row.split(" | ").count();
            assert!(cells == 3 || cells == 4, "{row}");
        }
    }

    #[test]
    fn drift_html_escapes_names_in_text_and_attributes() {
        let html = drift_html(&hostile_report(
            "\"><script>alert('x')</script><a title='t' href=\"javascript:1\">",
        ));
        assert!(
            !html.contains("<script>") && !html.contains("<a title"),
            "{html}"
        );
        assert!(html.contains(
            "&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;a title=&#39;t&#39; \
             href=&quot;javascript:1&quot;&gt;"
        ));
        assert!(!html.contains("=\"javascript"));
    }
}
