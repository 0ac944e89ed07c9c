//! The README's walkthrough, executed: its first `sh` block is run as written by bash,
//! in a copy of the quickstart, with `registrar` the built binary (the block's own first
//! line is the `alias` a reader types), and every command must succeed and deliver what
//! its comment promises. A README edit that breaks a command, or a promise the program no
//! longer keeps, breaks the build.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::BIN;

/// The walkthrough: the first ```sh block after `## Walkthrough`.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = &readme[readme
        .find("\n## Walkthrough")
        .expect("a Walkthrough section")..];
    let start = section
        .find("```sh\n")
        .expect("a sh block in the walkthrough")
        + 6;
    let end = start + section[start..].find("\n```").expect("the sh block ends");
    section[start..end].to_string()
}

/// One command of the block: its text (continuation lines joined) and what its comment
/// promises (its own trailing comment, or the comment line above it).
struct Step {
    command: String,
    promise: String,
}

fn steps(block: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut comment_above = String::new();
    let mut pending = String::new();
    for line in block.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            comment_above.clear();
            continue;
        }
        if pending.is_empty() && trimmed.starts_with('#') {
            comment_above = trimmed.trim_start_matches('#').trim().to_string();
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let (command, promise) = match full.find("  # ") {
            Some(at) => (
                full[..at].trim().to_string(),
                full[at + 4..].trim().to_string(),
            ),
            None => (full.trim().to_string(), comment_above.clone()),
        };
        steps.push(Step { command, promise });
    }
    steps
}

/// What each promise means, checked on the command's output (stdout and stderr) and on
/// the quickstart directory once the whole block ran.
fn check(promise: &str, output: &str, dir: &Path) -> Result<(), String> {
    let has = |needle: &str| {
        if output.contains(needle) {
            Ok(())
        } else {
            Err(format!("its output lacks {needle:?}"))
        }
    };
    match promise {
        p if p.starts_with("parse + schema") => has("valid"),
        p if p.starts_with("A manual registration is never touched") => {
            has("Registered aol name \"cdiaz\" to cn=Someone Else")
        }
        p if p.starts_with("text plan: cdiaz is skipped, with a warning") => {
            // The accounts are named by DN, with the entryUUID anchor beside it.
            has(
                "aol name \"cdiaz\" wanted for cn=Carla Diaz,ou=People,dc=example,dc=com (anchor ",
            )?;
            has("held by a manual registration of cn=Someone Else,ou=People,dc=example,dc=com")?;
            has("skipped")
        }
        p if p.starts_with("save the plan for review") => {
            has("Plan: ")?;
            let saved = std::fs::read_to_string(dir.join("plan.json"))
                .map_err(|e| format!("plan.json was not saved: {e}"))?;
            serde_json::from_str::<serde_json::Value>(&saved)
                .map(drop)
                .map_err(|e| format!("plan.json is not JSON: {e}"))
        }
        p if p.starts_with("the saved plan, as it will be applied") => {
            has("registrar plan (")?;
            has("Plan: ")
        }
        p if p.starts_with("apply exactly that plan") => has("Apply complete:"),
        p if p.starts_with("accounts and registrations") => {
            has("accounts (")?;
            has("cn=someone else,ou=people,dc=example,dc=com")?;
            has("cdiaz")
        }
        // The edit itself: the plan after it shows that it took.
        p if p.starts_with("Change the aol mapping's template") => Ok(()),
        p if p.starts_with("removes every name the old template produced, adds the new ones") => {
            has("(mapping aol-from-mail now produces another value for the entry)")?;
            has("+ aol \"")
        }
        p if p.starts_with("back to the quickstart's template") => {
            let mappings = std::fs::read_to_string(dir.join("mappings.yaml")).unwrap();
            if mappings.contains("{mail|lower|local_part}") {
                Ok(())
            } else {
                Err("mappings.yaml was not restored".to_string())
            }
        }
        other => Err(format!(
            "no check for the promise {other:?}: say in tests/readme.rs what it means"
        )),
    }
}

#[test]
fn the_walkthrough_runs_as_written_and_keeps_its_promises() {
    let block = walkthrough();
    let mut steps = steps(&block);
    // The first lines set the scene: the alias (the built binary stands in for
    // `cargo run`), then the move into the quickstart with a fresh state file.
    let alias = steps.remove(0);
    assert!(
        alias.command.starts_with("alias registrar="),
        "the walkthrough starts with the registrar alias, not {:?}",
        alias.command
    );
    let scene = steps.remove(0);
    assert!(
        scene
            .command
            .starts_with("cd examples/quickstart && export REGISTRAR_STATE="),
        "{:?}",
        scene.command
    );
    assert!(
        steps.len() >= 8,
        "the walkthrough lost its commands: {block}"
    );

    let work = tempfile::tempdir().unwrap();
    let quickstart: PathBuf = work.path().join("examples/quickstart");
    std::fs::create_dir_all(&quickstart).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, quickstart.join(path.file_name().unwrap())).unwrap();
    }

    // One bash runs the whole block, so `cd` and `export` carry over; each command's
    // output and exit code are framed by markers.
    let mut script = format!(
        "registrar() {{ '{BIN}' --color never \"$@\"; }}\nset +e\n{}\n",
        scene.command
    );
    for (index, step) in steps.iter().enumerate() {
        script.push_str(&format!(
            "echo '@@@step {index}'\n{{ {}\n}} 2>&1\necho \"@@@exit $?\"\n",
            step.command
        ));
    }
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env_remove("REGISTRAR_STATE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut problems = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let start = transcript
            .find(&format!("@@@step {index}\n"))
            .unwrap_or_else(|| panic!("step {index} never ran:\n{transcript}"));
        let rest = &transcript[start..];
        let body_start = rest.find('\n').unwrap() + 1;
        let exit_at = rest.find("@@@exit ").unwrap();
        let body = &rest[body_start..exit_at];
        let code: i32 = rest[exit_at + 8..]
            .lines()
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap();
        if code != 0 {
            problems.push(format!("`{}` exited {code}:\n{body}", step.command));
            continue;
        }
        if let Err(why) = check(&step.promise, body, &quickstart) {
            problems.push(format!(
                "`{}` promises {:?}, but {why}:\n{body}",
                step.command, step.promise
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
