//! The PostgreSQL store when the server misbehaves, each test on a private throwaway
//! cluster of its own (`throwaway_postgres::Cluster::start`), through the built binary:
//! - the server restarted during an apply: the apply fails cleanly (one line naming the
//!   server, exit 1), the store is as it was, and the next apply converges;
//! - the server down: `plan`, `apply` and `state show` each say so in one line naming
//!   the server, exit 1;
//! - a second writer (another session holding the writer lock) is refused with "locked
//!   … try again", the store unchanged;
//! - a saved plan made stale by a write since is refused, the store unchanged;
//! - a password in the URL works, is warned about, and is shown nowhere.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use throwaway_postgres::{Cluster, TestDatabase};

mod common;

use common::store::WRITER_LOCK;
use common::{assert_one_line_error, ldap_fixture, registrar, stderr, stdout};

/// A config directory in a temp dir (an LDIF source of `users` generated people, two
/// mappings: a plan of `3 * users` changes) and a database of a private cluster.
struct Workspace {
    dir: tempfile::TempDir,
    database: TestDatabase,
}

impl Workspace {
    fn new(cluster: &Cluster, users: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let workspace = Workspace {
            dir,
            database: cluster.database(),
        };
        std::fs::create_dir(workspace.config()).unwrap();
        workspace.write("directory.ldif", &ldap_fixture::users_ldif(users));
        workspace.write(
            "registrar.yaml",
            r#"sources:
  - name: people
    anchor: dn
    ldif:
      path: directory.ldif
mappings:
  - name: xmpp-uid
    protocol: xmpp
    value: "{uid}@im.example.com"
  - name: aol-mail
    protocol: aol
    value: "{mail|lower|local_part}"
policy:
  max_deletes: 1000000
"#,
        );
        workspace
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.config().join(name), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = registrar(&self.config(), &self.database.url());
        command.args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        stdout(&output)
    }

    /// The store's canonical dump (see `common::store::fingerprint`), read while the
    /// server is up.
    fn fingerprint(&self) -> Option<Vec<u8>> {
        common::store::fingerprint_of(&self.database)
    }

    /// `server`, as the binary names it in its errors: `127.0.0.1:PORT`.
    fn server(cluster: &Cluster) -> String {
        format!("127.0.0.1:{}", cluster.port())
    }
}

/// Whether some session of `database` holds the writer lock (an apply has begun its
/// transaction).
fn writer_lock_held(client: &mut postgres::Client) -> bool {
    let (class, object) = ((WRITER_LOCK >> 32) as u32, WRITER_LOCK as u32);
    client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
               AND classid::bigint = $1 AND objid::bigint = $2",
            &[&i64::from(class), &i64::from(object)],
        )
        .unwrap()
        .get::<_, i64>(0)
        > 0
}

#[test]
fn a_restart_during_an_apply_fails_it_cleanly_and_the_retry_converges() {
    let cluster = Cluster::start().unwrap();
    let ws = Workspace::new(&cluster, 200);
    ws.ok(&["apply", "--auto-approve"]);
    // Thousands of changes in one transaction: 3,800 hires, each an account and two
    // registrations.
    let users = 4000;
    ws.write("directory.ldif", &ldap_fixture::users_ldif(users));
    let before = ws.fingerprint().unwrap();

    let apply = ws
        .command(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the apply holds the writer lock (its transaction has begun), another thread
    // restarts the server: the apply's session ends mid-transaction.
    let apply_ended = AtomicBool::new(false);
    let output = std::thread::scope(|scope| {
        let restarter = scope.spawn(|| {
            let mut watcher = ws.database.client().unwrap();
            while !writer_lock_held(&mut watcher) {
                assert!(
                    !apply_ended.load(Ordering::SeqCst),
                    "the apply ended before it was seen writing"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(watcher);
            cluster.stop().unwrap();
            cluster.restart().unwrap();
        });
        let output = apply.wait_with_output().unwrap();
        apply_ended.store(true, Ordering::SeqCst);
        restarter.join().unwrap();
        output
    });
    assert_one_line_error(&output, &[&Workspace::server(&cluster)]);
    assert!(
        !stderr(&output).contains("locked"),
        "the apply must fail on the restart, not on a lock: {}",
        stderr(&output)
    );
    assert_eq!(
        ws.fingerprint().unwrap(),
        before,
        "a failed apply changed the store"
    );

    // The retry applies the whole plan, and then there is nothing left to do.
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(applied.contains("Apply complete"), "{applied}");
    let again = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));
    let state: serde_json::Value =
        serde_json::from_str(&ws.ok(&["state", "show", "--format", "json"])).unwrap();
    assert_eq!(state["accounts"].as_array().unwrap().len(), users);
    assert_eq!(state["registrations"].as_array().unwrap().len(), 2 * users);
}

#[test]
fn with_the_server_down_each_command_says_so_in_one_line() {
    let cluster = Cluster::start().unwrap();
    let ws = Workspace::new(&cluster, 5);
    ws.ok(&["apply", "--auto-approve"]);
    let before = ws.fingerprint().unwrap();
    cluster.stop().unwrap();
    let server = Workspace::server(&cluster);
    for args in [
        &["plan"][..],
        &["apply", "--auto-approve"],
        &["state", "show"],
    ] {
        let output = ws.run(args);
        assert_one_line_error(&output, &[&server, "PostgreSQL"]);
        assert!(
            stdout(&output).is_empty(),
            "{args:?} printed: {}",
            stdout(&output)
        );
    }
    cluster.restart().unwrap();
    assert_eq!(ws.fingerprint().unwrap(), before);
    assert!(ws.ok(&["plan"]).contains("No changes"));
}

#[test]
fn a_second_writer_is_refused_while_another_session_holds_the_lock() {
    let cluster = Cluster::start().unwrap();
    let ws = Workspace::new(&cluster, 5);
    ws.ok(&["apply", "--auto-approve"]);
    ws.write("directory.ldif", &ldap_fixture::users_ldif(8));
    let before = ws.fingerprint().unwrap();

    let mut holder = ws.database.client().unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK});"
        ))
        .unwrap();
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_one_line_error(&output, &["locked", "try again", "state store postgres://"]);
    let registered = ws.run(&[
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "x",
        "--account",
        "cn=x",
        "--source",
        "manual",
    ]);
    assert_one_line_error(&registered, &["locked", "try again"]);
    assert_eq!(ws.fingerprint().unwrap(), before, "a refused writer wrote");

    holder.batch_execute("ROLLBACK").unwrap();
    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(applied.contains("Apply complete: 9 added"), "{applied}");
}

#[test]
fn a_stale_saved_plan_is_refused() {
    let cluster = Cluster::start().unwrap();
    let ws = Workspace::new(&cluster, 5);
    ws.ok(&["apply", "--auto-approve"]);
    ws.write("directory.ldif", &ldap_fixture::users_ldif(8));
    let saved = ws.dir.path().join("plan.json");
    ws.ok(&["plan", "--out", saved.to_str().unwrap()]);
    // Another writer moves the serial on after the plan was saved.
    ws.ok(&[
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "helpdesk",
        "--account",
        "cn=Help Desk,ou=People,dc=example,dc=com",
        "--source",
        "manual",
    ]);
    let before = ws.fingerprint().unwrap();
    let stale = ws.run(&["apply", "--plan", saved.to_str().unwrap()]);
    assert_one_line_error(&stale, &["stale", "serial 1", "serial 2"]);
    assert_eq!(
        ws.fingerprint().unwrap(),
        before,
        "a stale plan was applied"
    );
    // A fresh plan applies.
    ws.ok(&["apply", "--auto-approve"]);
    assert!(ws.ok(&["plan"]).contains("No changes"));
}

#[test]
fn a_password_in_the_url_works_but_is_warned_about_and_never_shown() {
    let cluster = Cluster::start().unwrap();
    let workspace = Workspace::new(&cluster, 3);
    // The superuser logs in without a password (trust): the URL's is sent and ignored.
    let url = workspace
        .database
        .url()
        .replacen("registrar_test@", "registrar_test:s3cret-Pw@", 1);
    let output = registrar(&workspace.config(), &url)
        .args(["apply", "--auto-approve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(
        err.contains("holds a password, which any user can see in `ps`"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "postgres://registrar_test@{}/",
            Workspace::server(&cluster)
        )),
        "the warning names the store without its password: {err}"
    );
    for text in [&out, &err] {
        assert!(!text.contains("s3cret"), "the password was shown: {text}");
    }
    // What the apply recorded holds no password either.
    let dump = workspace.fingerprint().expect("the apply made a store");
    assert!(!String::from_utf8_lossy(&dump).contains("s3cret"));
}
