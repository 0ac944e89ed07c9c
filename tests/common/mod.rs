//! Helpers the binary-level test files share: the built binary, its output as text, the
//! check that a failure is one clear line on stderr, a real slapd (`slapd`) loaded with
//! the test directory (`ldap_fixture`), a real Active Directory (`samba`), and the store on
//! the backend of the run (`store`), and a metric read from Prometheus text (`sample`).

#![allow(dead_code)] // each test file uses its own subset

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod ldap_fixture;
pub mod samba;
pub mod slapd;
pub mod store;
pub mod workspace;

/// The `registrar` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_registrar");

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Standard output parsed as JSON, after checking the command succeeded.
pub fn json(output: &Output) -> serde_json::Value {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Asserts a failure (exit 1) with exactly one line on stderr containing every `needle`,
/// and no panic.
pub fn assert_one_line_error(output: &Output, needles: &[&str]) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
    let err = stderr(output);
    assert_eq!(
        err.lines().count(),
        1,
        "expected one line on stderr, got:\n{err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// Commits every change of `repo`'s working tree on its current branch (a test's git
/// history, built with git2).
pub fn commit_all(repo: &git2::Repository, message: &str) -> git2::Oid {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("Test", "test@example.com").unwrap();
    let parent = repo.head().ok().map(|h| h.peel_to_commit().unwrap());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        message,
        &tree,
        &parents,
    )
    .unwrap()
}

/// The built binary with `--config` and `--state` (a file or a `postgres://` URL) set,
/// `REGISTRAR_STATE` cleared and colour off: add the arguments and run it.
pub fn registrar(config: &Path, state: &(impl AsRef<OsStr> + ?Sized)) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(config)
        .arg("--state")
        .arg(state)
        .env_remove("REGISTRAR_STATE")
        .env("NO_COLOR", "1");
    command
}

/// Every file under `dir` (its folders walked) whose name ends in `.{extension}`, sorted.
pub fn files_under(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `command` with `input` on its stdin, and its output. The input is written from a
/// thread, so a large LDIF cannot deadlock against the program's output.
pub fn output_with_input(mut command: Command, input: &str) -> Output {
    use std::io::Write;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let mut stdin = child.stdin.take().expect("the program's stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("waiting for the program");
    writer
        .join()
        .expect("the input's writer")
        .unwrap_or_else(|e| panic!("writing to {program}: {e}"));
    output
}

/// The value of the sample `series` (name and labels exactly) in metrics text.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        .parse()
        .unwrap()
}
