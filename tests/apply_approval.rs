//! `apply` asks first (DESIGN.md, "Apply asks first"): without a saved plan it shows the
//! plan and applies it only when the terminal answers exactly `yes`, or with
//! `--auto-approve`; without a terminal it refuses with one line and changes nothing.
//! A saved plan is never asked about, and a plan without changes needs no answer. The
//! terminal is a real pseudo-terminal, made by util-linux's `script`. The store is on the
//! backend of the run (`REGISTRAR_TEST_STORE`).

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

mod common;

use common::workspace::Workspace;
use common::{assert_one_line_error, stderr, stdout, BIN};

/// `registrar apply` started with its standard input on a pseudo-terminal (util-linux's
/// `script`), its standard output and error both read from the child's stdout.
fn apply_on_a_terminal(ws: &Workspace) -> Child {
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let command = format!(
        "{} --config {} --state {} --color never apply",
        quote(BIN),
        quote(ws.config().to_str().unwrap()),
        quote(&ws.state())
    );
    Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("REGISTRAR_STATE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux's script runs the command on a pseudo-terminal")
}

/// `registrar apply` on a pseudo-terminal, typing `answer`.
fn apply_on_terminal(ws: &Workspace, answer: &str) -> Output {
    let mut child = apply_on_a_terminal(ws);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn accounts(ws: &Workspace) -> usize {
    ws.state_json()["accounts"].as_array().unwrap().len()
}

#[test]
fn without_a_terminal_apply_shows_the_plan_and_refuses() {
    let ws = Workspace::new();
    let output = ws.run(&["apply"]);
    assert_one_line_error(
        &output,
        &[
            "standard input is not a terminal",
            "--auto-approve",
            "nothing was applied",
        ],
    );
    assert!(
        stdout(&output).contains("Plan: 11 to add"),
        "{}",
        stdout(&output)
    );
    assert_eq!(ws.fingerprint(), None, "a refused apply wrote the store");
    // --auto-approve applies the same plan.
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("Apply complete: 11 added"));
    // Nothing left to change: nothing to ask, with or without a terminal.
    let output = ws.run(&["apply"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stdout(&output).contains("Apply these changes?"));
}

#[test]
fn on_a_terminal_only_yes_applies() {
    for answer in ["no", "YES", "y", ""] {
        let ws = Workspace::new();
        let output = apply_on_terminal(&ws, answer);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(1), "{answer:?}: {text}");
        assert!(
            text.contains("Apply these changes? Only 'yes' is accepted."),
            "{text}"
        );
        assert!(text.contains("apply cancelled"), "{answer:?}: {text}");
        assert_eq!(ws.fingerprint(), None, "{answer:?} applied");
    }
    let ws = Workspace::new();
    let output = apply_on_terminal(&ws, "yes");
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("Plan: 11 to add"), "{text}");
    assert!(text.contains("Apply complete: 11 added"), "{text}");
    assert_eq!(accounts(&ws), 5);
}

#[test]
fn a_saved_plan_is_applied_without_a_question() {
    let ws = Workspace::new();
    let saved = ws.dir.path().join("plan.json");
    let planned = ws.run(&["plan", "--out", saved.to_str().unwrap()]);
    assert_eq!(planned.status.code(), Some(0), "{}", stderr(&planned));
    let output = Command::new(BIN)
        .args(["--config", ws.config().to_str().unwrap()])
        .args(["--state", &ws.state()])
        .args(["apply", "--plan", saved.to_str().unwrap()])
        .env_remove("REGISTRAR_STATE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stdout(&output).contains("Apply these changes?"));
    assert_eq!(accounts(&ws), 5);
}

#[test]
fn a_state_file_that_does_not_exist_is_said() {
    let ws = Workspace::new();
    let output = ws.run(&["plan"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("does not exist: planning against an empty store"),
        "{}",
        stderr(&output)
    );
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("did not exist: created it"),
        "{}",
        stderr(&output)
    );
    // Once it exists, nothing is said.
    let output = ws.run(&["plan"]);
    assert_eq!(stderr(&output), "");
}

#[test]
fn a_write_while_apply_waits_for_its_answer_is_told_as_a_race() {
    use std::io::Read;
    let ws = Workspace::new();
    let mut child = apply_on_a_terminal(&ws);
    let mut answer = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    // Wait for the question, then let another writer in before answering.
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("Enter a value") {
        let n = out.read(&mut buffer).unwrap();
        assert!(
            n > 0,
            "apply never asked: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..n]);
    }
    let registered = ws.run(&[
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "sneaky",
        "--account",
        "cn=Someone,ou=People,dc=example,dc=com",
        "--source",
        "manual",
    ]);
    assert_eq!(registered.status.code(), Some(0), "{}", stderr(&registered));
    answer.write_all(b"yes\n").unwrap();
    drop(answer);
    out.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        text.contains("the store changed while this apply was planning"),
        "{text}"
    );
    assert!(!text.contains("saved plan"), "no plan was saved: {text}");
    // Only the registration landed.
    assert_eq!(accounts(&ws), 1);
}
