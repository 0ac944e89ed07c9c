//! Helpers the binary-level test files share: the built binary, its output as text, the
//! check that a failure is one clear line on stderr, and a real slapd (`slapd`) loaded with
//! the test directory (`ldap_fixture`).

#![allow(dead_code)] // each test file uses its own subset

use std::process::Output;

pub mod ldap_fixture;
pub mod slapd;

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
