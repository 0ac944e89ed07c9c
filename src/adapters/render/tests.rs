//! Unit tests of the Markdown plan: escaping, code spans, and cutting to fit the limit.

use std::collections::BTreeMap;

use super::markdown::{code_span, escape_markdown, fit_markdown, markdown, MARKDOWN_LIMIT};
use registrar_core::plan::{Action, Change, Kind, Plan, Summary};

#[test]
fn short_markdown_is_left_alone() {
    let text = "**registrar plan**: 1 to add\n\n<details>\n\n| a |\n</details>\n";
    assert_eq!(fit_markdown(text, 1000), text);
}

#[test]
fn long_markdown_is_cut_under_the_limit_with_blocks_closed() {
    let mut text =
        String::from("**registrar plan**: summary\n\n<details><summary>x</summary>\n\n```diff\n");
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
