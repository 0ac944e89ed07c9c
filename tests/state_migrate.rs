//! `registrar state migrate --to FILE|URL` with the built binary and a real throwaway
//! PostgreSQL: a SQLite store made by real applies of the quickstart (with a group rule,
//! a change file applied by `--mode delta`, so a kept snapshot with its change file,
//! footprints and standing facts, and a manual registration) copied to PostgreSQL and back
//! to a new SQLite file, with every table's digest equal at each hop and `state show`,
//! `plan` and `plan --mode delta` the same on all three; then the refusals, each one line
//! and exit 1: a target that is not empty (left as it was), a missing source, an
//! unreachable target, the source itself as target.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::workspace::Workspace;
use common::{assert_one_line_error, stderr, stdout, BIN};
use registrar::store::{Store, StoreLocation, TableDigest, TABLES};
use throwaway_postgres::{Backend, TestStore};

/// A group rule, so that groups, members and the kept group footprints have rows.
const GROUPS: &str = "\
groups:
  - name: \"{cn}\"
    kind: distribution_list
    source: corp
    filter: \"(objectClass=groupOfNames)\"
";

/// A hire, applied by `apply --mode delta` as the kept snapshot's change file.
const HIRE: &str = "\
version: 1

dn: cn=Fay Lin,ou=People,dc=example,dc=com
changetype: add
objectClass: inetOrgPerson
cn: Fay Lin
sn: Lin
displayName: Fay Lin
entryUUID: 5f0c9a1e-0099-4c1e-9a51-000000000099
mail: FLin@example.com
";

/// The binary with `--config` and `--state` (a file path or a URL), colour off.
fn registrar(config: &Path, state: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("--state")
        .arg(state)
        .args(args)
        .env_remove("REGISTRAR_STATE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn ok(config: &Path, state: &str, args: &[&str]) -> String {
    let output = registrar(config, state, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?} on {state}: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// The quickstart with a group rule and a change-file glob, applied in full, then a hire
/// applied by a delta, then a manual registration: a row in every table.
fn populated() -> Workspace {
    let ws = Workspace::on(throwaway_postgres::Backend::Sqlite);
    let config = std::fs::read_to_string(ws.config().join("registrar.yaml")).unwrap();
    let config = config.replace(
        "      path: corp.ldif\n",
        "      path: corp.ldif\n      changes: changes/*.ldif\n",
    );
    ws.write_config("registrar.yaml", &format!("{config}{GROUPS}"));
    std::fs::create_dir(ws.config().join("changes")).unwrap();
    let state = ws.state();
    ok(&ws.config(), &state, &["apply", "--auto-approve"]);
    ws.write_config("changes/0001-hire.ldif", HIRE);
    ok(
        &ws.config(),
        &state,
        &["apply", "--auto-approve", "--mode", "delta"],
    );
    ok(
        &ws.config(),
        &state,
        &[
            "state",
            "register",
            "--protocol",
            "aol",
            "--im-name",
            "JSmith",
            "--account",
            "cn=John Smith,ou=Contractors,dc=example,dc=com",
            "--source",
            "manual",
        ],
    );
    ws
}

fn digests(state: &str) -> Vec<TableDigest> {
    Store::open(StoreLocation::parse(state).unwrap())
        .unwrap()
        .table_digests()
        .unwrap()
}

/// What a reader of each store sees: the state (text and JSON), full and delta plans.
fn views(config: &Path, state: &str) -> Vec<String> {
    [
        &["state", "show"][..],
        &["state", "show", "--format", "json"],
        &["plan"],
        &["plan", "--mode", "delta", "--format", "json"],
    ]
    .iter()
    .map(|args| ok(config, state, args))
    .collect()
}

/// The port of a loopback socket just closed: nothing listens there.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_store_goes_to_postgres_and_back_with_every_row() {
    let ws = populated();
    let config = ws.config();
    let source = ws.state();
    let original = digests(&source);
    assert_eq!(original.len(), TABLES.len());
    for table in &original {
        assert!(table.rows > 0, "{} has no rows to copy", table.table);
    }
    let seen = views(&config, &source);
    assert!(seen[2].contains("No changes"), "{}", seen[2]);

    let postgres = TestStore::on(Backend::Postgres);
    let summary = ok(
        &config,
        &source,
        &["state", "migrate", "--to", &postgres.argument()],
    );
    for table in &original {
        let line = format!(
            "  {:<22} {:>10} rows  sha256:{}\n",
            table.table,
            table.rows,
            &table.hex()[..16]
        );
        assert!(summary.contains(&line), "{line:?} not in\n{summary}");
    }
    assert!(
        summary.starts_with(&format!(
            "Copied state file {source} to state store postgres://registrar_test@127.0.0.1:"
        )),
        "{summary}"
    );
    assert_eq!(digests(&postgres.argument()), original);
    assert_eq!(views(&config, &postgres.argument()), seen);

    let back = tempfile::tempdir().unwrap();
    let back = back.path().join("back.db").display().to_string();
    ok(
        &config,
        &postgres.argument(),
        &["state", "migrate", "--to", &back],
    );
    assert_eq!(digests(&back), original);
    assert_eq!(views(&config, &back), seen);

    // The runs kept their ids, and PostgreSQL's next run takes the id after the last.
    let runs = original.iter().find(|t| t.table == "runs").unwrap().rows;
    let registered = ok(
        &config,
        &postgres.argument(),
        &[
            "state",
            "register",
            "--protocol",
            "aol",
            "--im-name",
            "fl",
            "--account",
            "cn=Fay Lin,ou=People,dc=example,dc=com",
            "--source",
            "self",
        ],
    );
    assert!(
        registered.contains("Registered aol name \"fl\""),
        "{registered}"
    );
    let mut client = postgres.database().unwrap().client().unwrap();
    let row = client
        .query_one("SELECT MIN(id), MAX(id), COUNT(*) FROM runs", &[])
        .unwrap();
    let (first, last, count): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((first, last, count as u64), (1, runs as i64 + 1, runs + 1));
}

#[test]
fn a_target_that_is_not_empty_is_refused_and_left_as_it_was() {
    let ws = populated();
    let config = ws.config();
    let source = ws.state();

    // A PostgreSQL store some apply wrote to.
    let postgres = TestStore::on(Backend::Postgres);
    let other = Workspace::on(throwaway_postgres::Backend::Sqlite);
    ok(
        &other.config(),
        &postgres.argument(),
        &["apply", "--auto-approve"],
    );
    let before = digests(&postgres.argument());
    let output = registrar(
        &config,
        &source,
        &["state", "migrate", "--to", &postgres.argument()],
    );
    assert_one_line_error(
        &output,
        &[
            "state store postgres://registrar_test@127.0.0.1:",
            "is not empty (table accounts has rows)",
            "nothing was copied",
        ],
    );
    assert_eq!(digests(&postgres.argument()), before);

    // A SQLite file holding only a registration made by hand (and its run).
    let file = other.dir.path().join("registered.db");
    let file = file.display().to_string();
    ok(
        &other.config(),
        &file,
        &[
            "state",
            "register",
            "--protocol",
            "aol",
            "--im-name",
            "x",
            "--account",
            "cn=X,dc=example,dc=com",
            "--source",
            "manual",
        ],
    );
    let bytes = std::fs::read(&file).unwrap();
    let output = registrar(&config, &source, &["state", "migrate", "--to", &file]);
    assert_one_line_error(&output, &[&format!("state file {file} is not empty")]);
    assert_eq!(std::fs::read(&file).unwrap(), bytes);

    // The source itself, however it is spelt.
    let output = registrar(
        &config,
        &source,
        &["state", "migrate", "--to", &{
            let dir = std::path::Path::new(&source).parent().unwrap();
            format!(
                "{}/../{}/state.db",
                dir.display(),
                dir.file_name().unwrap().to_string_lossy()
            )
        }],
    );
    assert_one_line_error(&output, &["the store being migrated"]);
}

#[test]
fn a_missing_source_is_refused_and_no_target_is_made() {
    let ws = Workspace::on(throwaway_postgres::Backend::Sqlite);
    let config = ws.config();
    let missing = ws.dir.path().join("missing.db").display().to_string();
    let target = ws.dir.path().join("target.db");
    let output = registrar(
        &config,
        &missing,
        &["state", "migrate", "--to", &target.display().to_string()],
    );
    assert_one_line_error(
        &output,
        &[&format!(
            "state file {missing} does not exist: there is no store to migrate"
        )],
    );
    assert!(!Path::new(&missing).exists());
    assert!(!target.exists());

    // A PostgreSQL database without a store.
    let empty = TestStore::on(Backend::Postgres);
    let output = registrar(
        &config,
        &empty.argument(),
        &["state", "migrate", "--to", &target.display().to_string()],
    );
    assert_one_line_error(&output, &["does not exist: there is no store to migrate"]);
    assert!(!target.exists());
}

#[test]
fn an_unreachable_target_is_one_line_and_the_source_is_untouched() {
    let ws = populated();
    let source = ws.state();
    let bytes = std::fs::read(ws.state()).unwrap();
    let url = format!(
        "postgres://registrar_test@127.0.0.1:{}/nowhere",
        closed_port()
    );
    let output = registrar(&ws.config(), &source, &["state", "migrate", "--to", &url]);
    assert_one_line_error(&output, &["cannot connect to PostgreSQL at 127.0.0.1:"]);
    assert_eq!(std::fs::read(ws.state()).unwrap(), bytes);
}
