//! `--out FILE` of `plan`, `export` and `drift`, through the built binary (`app/output.rs`):
//! a regular file is replaced atomically and keeps its mode, a symlink is written through,
//! a device or FIFO is written in place and stays what it was, a directory is refused, and
//! a failure leaves the old file as it was.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::workspace::Workspace;
use common::{assert_one_line_error, stderr};

/// A workspace with the quickstart applied, so that `drift` has a store to report on.
fn applied() -> Workspace {
    let ws = Workspace::new();
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    ws
}

/// The three commands with `--out`, each as it prints to standard output without it.
const COMMANDS: [&[&str]; 3] = [
    &["plan", "--format", "markdown"],
    &["export", "--source", "corp"],
    &["drift", "--format", "json"],
];

/// What `command --out` writes to its file: `plan`'s is the plan JSON, the others' what
/// they print without `--out`.
fn expected_file(ws: &Workspace, command: &[&str]) -> Vec<u8> {
    let printed = if command[0] == "plan" {
        ws.run(&["plan", "--format", "json"])
    } else {
        ws.run(command)
    };
    assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
    printed.stdout
}

fn run_out(ws: &Workspace, command: &[&str], out: &Path) -> Output {
    let mut args = command.to_vec();
    args.extend(["--out", out.to_str().unwrap()]);
    ws.run(&args)
}

fn assert_ok(output: &Output, command: &[&str]) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{command:?}: {}",
        stderr(output)
    );
}

/// Makes a node with the `mknod`/`mkfifo` commands; false when not permitted.
fn make_node(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn out_onto_a_character_device_writes_in_place_and_it_stays_a_device() {
    let ws = applied();
    // As root, a node of our own for /dev/null (major 1, minor 3) in a directory we may
    // write: the old rename would replace it as it replaced /dev/null, without risking
    // the machine's. Anyone else cannot replace /dev/null, so it is safe to use.
    let private = ws.dir.path().join("null");
    let device = if make_node("mknod", &[private.to_str().unwrap(), "c", "1", "3"]) {
        private
    } else {
        Path::new("/dev/null").to_path_buf()
    };
    for command in COMMANDS {
        let output = run_out(&ws, command, &device);
        assert_ok(&output, command);
        let file_type = fs::symlink_metadata(&device).unwrap().file_type();
        assert!(
            file_type.is_char_device(),
            "{command:?} replaced {device:?}"
        );
    }
    let leftovers: Vec<_> = fs::read_dir(ws.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn out_into_a_fifo_writes_in_place_and_it_stays_a_fifo() {
    let ws = applied();
    let fifo = ws.dir.path().join("fifo");
    assert!(make_node("mkfifo", &[fifo.to_str().unwrap()]));
    // Held open for reading and writing, without blocking: the command's open for
    // writing does not wait, its output (a few KB) fits in the pipe, and what it wrote is
    // read back after it exits. A FIFO replaced by the command would give nothing.
    let mut held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    for command in COMMANDS {
        let expected = expected_file(&ws, command);
        let output = run_out(&ws, command, &fifo);
        assert_ok(&output, command);
        let mut written = Vec::new();
        let mut buffer = [0; 1 << 16];
        loop {
            match held.read(&mut buffer) {
                Ok(n) => written.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&expected),
            "{command:?}"
        );
        let file_type = fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(file_type.is_fifo(), "{command:?} replaced the FIFO");
    }
}

#[test]
fn out_to_dev_stdout_prints_the_content() {
    let ws = applied();
    for command in COMMANDS {
        let output = run_out(&ws, command, Path::new("/dev/stdout"));
        assert_ok(&output, command);
        let mut expected = expected_file(&ws, command);
        if command[0] == "plan" {
            // The plan file is written before the Markdown prints.
            expected.extend(ws.run(command).stdout);
        }
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&expected),
            "{command:?}"
        );
    }
}

#[test]
fn out_replaces_a_regular_file_keeping_its_mode() {
    let ws = applied();
    for command in COMMANDS {
        let file = ws.dir.path().join(format!("{}.out", command[0]));
        fs::write(&file, "old content\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let output = run_out(&ws, command, &file);
        assert_ok(&output, command);
        assert_eq!(fs::read(&file).unwrap(), expected_file(&ws, command));
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{command:?} changed the mode to {mode:o}");
    }
}

#[test]
fn out_writes_through_a_symlink_and_creates_a_dangling_ones_target() {
    let ws = applied();
    for command in COMMANDS {
        let name = command[0];
        let target = ws.dir.path().join(format!("{name}.target"));
        fs::write(&target, "old content\n").unwrap();
        let link = ws.dir.path().join(format!("{name}.link"));
        std::os::unix::fs::symlink(format!("{name}.target"), &link).unwrap();
        let output = run_out(&ws, command, &link);
        assert_ok(&output, command);
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), expected_file(&ws, command));

        let dangling = ws.dir.path().join(format!("{name}.dangling"));
        let created = ws.dir.path().join(format!("{name}.created"));
        std::os::unix::fs::symlink(&created, &dangling).unwrap();
        let output = run_out(&ws, command, &dangling);
        assert_ok(&output, command);
        assert!(fs::symlink_metadata(&dangling).unwrap().is_symlink());
        assert_eq!(fs::read(&created).unwrap(), expected_file(&ws, command));
    }
}

#[test]
fn out_refuses_a_directory_in_one_line() {
    let ws = applied();
    let directory = ws.dir.path().join("reports");
    fs::create_dir(&directory).unwrap();
    for command in COMMANDS {
        let output = run_out(&ws, command, &directory);
        assert_one_line_error(&output, &[directory.to_str().unwrap(), "is a directory"]);
        assert!(fs::metadata(&directory).unwrap().is_dir());
        assert_eq!(fs::read_dir(&directory).unwrap().count(), 0);
    }
}

#[test]
fn a_failed_export_leaves_the_old_file_and_no_temporary_file() {
    let ws = Workspace::new();
    let ldif = ws.config().join("corp.ldif");
    let mut text = fs::read_to_string(&ldif).unwrap();
    text.push_str("\ndn: cn=x,dc=example,dc=com\nnot an attribute line\n");
    fs::write(&ldif, text).unwrap();
    let out_dir = ws.dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let file = out_dir.join("corp.ldif");
    fs::write(&file, "old content\n").unwrap();
    let output = ws.run(&[
        "export",
        "--source",
        "corp",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_one_line_error(&output, &["corp.ldif", "not an attribute line"]);
    assert_eq!(fs::read_to_string(&file).unwrap(), "old content\n");
    let names: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["corp.ldif"]);
}
