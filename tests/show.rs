//! `registrar show PLANFILE`: a saved plan rendered as the plan command renders it, read
//! from the file alone (no config, no store), and a bad file is one line.

mod common;

use common::workspace::Workspace;
use common::{assert_one_line_error, stderr, stdout, BIN};

#[test]
fn show_renders_a_saved_plan_as_plan_did_from_the_file_alone() {
    let ws = Workspace::new();
    let saved = ws.dir.path().join("plan.json");
    let saved = saved.to_str().unwrap();
    let text = ws.run(&["plan", "--out", saved]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let markdown = ws.run(&["plan", "--format", "markdown"]);

    // Neither the config nor the store is read: run it from an empty directory.
    let elsewhere = tempfile::tempdir().unwrap();
    let show = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .current_dir(elsewhere.path())
            .env("NO_COLOR", "1")
            .env_remove("REGISTRAR_STATE")
            .output()
            .unwrap()
    };
    let shown = show(&["show", saved]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    assert_eq!(stdout(&shown), stdout(&text));
    assert!(stdout(&shown).contains("Plan: 11 to add"));
    let shown = show(&["show", saved, "--format", "markdown"]);
    assert_eq!(shown.status.code(), Some(0), "{}", stderr(&shown));
    assert_eq!(stdout(&shown), stdout(&markdown));

    let missing = show(&["show", "no-such-plan.json"]);
    assert_one_line_error(&missing, &["no-such-plan.json", "cannot read plan"]);
    std::fs::write(elsewhere.path().join("notes.json"), "{\"hello\": 1}").unwrap();
    let not_a_plan = show(&["show", "notes.json"]);
    assert_one_line_error(&not_a_plan, &["notes.json", "not a registrar plan"]);
}
