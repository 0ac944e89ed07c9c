//! `registrar` on a state file edited by hand into values no registrar writes (an unknown
//! account status or registration source, a serial that is no integer, a member of no
//! group, a drift hash of another length): each is refused in one line naming the table, the row and the value,
//! exit 1, and the file is left byte for byte as it was, rather than read as some default.
//!
//! SQLite only, whatever `REGISTRAR_TEST_STORE` says: these tests are about the SQLite
//! file itself (edited with its CHECK constraints ignored, compared byte for byte).
//! PostgreSQL cannot set its constraints aside; the store's unit tests
//! (`store::test_support::corrupt`) cover the row readers' refusals on both backends.

mod common;

use common::store::Backend;
use common::workspace::Workspace;
use common::{assert_one_line_error, stderr};

/// The quickstart workspace, applied, then edited with plain SQL as an admin with sqlite3
/// could, its CHECK constraints set aside.
fn applied_then_edited(sql: &str) -> Workspace {
    let ws = Workspace::on(Backend::Sqlite);
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let connection = rusqlite::Connection::open(ws.state()).unwrap();
    connection
        .execute_batch(&format!("PRAGMA ignore_check_constraints = ON; {sql}"))
        .unwrap();
    drop(connection);
    ws
}

/// Runs `args` on the workspace and asserts the one-line refusal holding every needle,
/// with the state file unchanged.
fn assert_refused_unchanged(ws: &Workspace, args: &[&str], needles: &[&str]) {
    let before = ws.fingerprint().unwrap();
    let output = ws.run(args);
    assert_one_line_error(&output, needles);
    assert!(
        stderr(&output).starts_with("error: state file "),
        "{}",
        stderr(&output)
    );
    assert!(
        ws.fingerprint().unwrap() == before,
        "the state file changed"
    );
}

#[test]
fn plan_and_apply_refuse_an_account_status_no_registrar_writes() {
    let ws = applied_then_edited(
        "UPDATE accounts SET status = 'frozen' \
         WHERE anchor = (SELECT min(anchor) FROM accounts)",
    );
    assert_refused_unchanged(
        &ws,
        &["plan"],
        &[
            "table accounts, anchor \"",
            "status \"frozen\" is none of active, deactivated",
        ],
    );
    assert_refused_unchanged(
        &ws,
        &["apply", "--auto-approve"],
        &[
            "table accounts, anchor \"",
            "status \"frozen\" is none of active, deactivated",
        ],
    );
}

#[test]
fn plan_refuses_a_registration_source_no_registrar_writes() {
    let ws = applied_then_edited("UPDATE registrations SET source = 'imported'");
    assert_refused_unchanged(
        &ws,
        &["plan"],
        &[
            "table registrations, protocol \"",
            "source \"imported\" is none of ldap, manual, self",
        ],
    );
}

#[test]
fn plan_refuses_a_serial_that_is_no_integer() {
    let ws = applied_then_edited("UPDATE meta SET value = 'seven' WHERE key = 'serial'");
    assert_refused_unchanged(
        &ws,
        &["plan"],
        &["table meta, key \"serial\": value \"seven\" is not an integer"],
    );
}

#[test]
fn plan_refuses_a_member_of_no_group() {
    let ws = applied_then_edited(
        "PRAGMA foreign_keys = OFF; \
         INSERT INTO group_members (group_name, member) VALUES ('gone', 'someone');",
    );
    assert_refused_unchanged(
        &ws,
        &["plan"],
        &["table group_members, group_name \"gone\", member \"someone\": group_name \"gone\" names no row of table groups"],
    );
}

#[test]
fn drift_refuses_a_hash_of_another_length() {
    let ws = applied_then_edited(
        "UPDATE managed_hashes SET hash = x'0102' \
         WHERE key = (SELECT min(key) FROM managed_hashes WHERE kind = 1)",
    );
    assert_refused_unchanged(
        &ws,
        &["drift"],
        &[
            "table managed_hashes, kind 1, key \"",
            "hash x'0102' is 2 bytes long, not 16",
        ],
    );
}

#[test]
fn the_store_as_applied_plans_and_drifts_as_before() {
    let ws = applied_then_edited("");
    // No change planned and no drift (exit 0 with --detailed-exitcode): every row read.
    for args in [
        &["plan", "--detailed-exitcode"][..],
        &["drift", "--detailed-exitcode"],
    ] {
        let output = ws.run(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}
