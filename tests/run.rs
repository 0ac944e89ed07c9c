//! `registrar run` end to end: the real binary against real git repositories in temp
//! dirs (built with git2, and with the system git for a remote), a real SQLite store,
//! and its health and metrics scraped over loopback. A `*/1 * * * * *` schedule keeps
//! each test to a few seconds.
//!
//! Proves: a mapping change committed while the controller runs is applied at the next
//! run; a branch with a remote is fetched before each run; SIGTERM and SIGINT stop it
//! cleanly (exit 0) with every run in the history; a second controller on the same
//! state is refused; a failing run is recorded and turns `/healthz` to 503; `--once`.
//! On PostgreSQL (a throwaway cluster on loopback): two controllers share a store, one
//! leads and the other stands by (`/healthz`, `registrar_leader`); killed with SIGKILL,
//! the leader's place is taken and the next run applied within 15 s, with no serial
//! applied twice and no partial apply; a server that is down stops `run` with one line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use git2::{Oid, Repository};

mod common;

use common::{assert_one_line_error, commit_all, registrar, sample, stderr};

/// How long any wait in these tests may take before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

const EVERY_SECOND_APPLY: &str =
    "schedules:\n  - name: every-second\n    cron: \"*/1 * * * * *\"\n    action: apply\n";

/// A git repository (`work/`, config in `work/registrar/`, the quickstart) in a temp
/// dir, with the state file and the controller's stderr beside it.
struct Workspace {
    dir: tempfile::TempDir,
    /// What `--state` gets: the SQLite file beside the repository, or a PostgreSQL URL.
    state: PathBuf,
}

impl Workspace {
    /// The quickstart config plus `schedules`, committed on `main`.
    fn new(schedules: &str) -> (Workspace, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        Workspace::with_state(schedules, dir, state)
    }

    /// [`Workspace::new`] on the store at `url`.
    fn on_postgres(schedules: &str, url: &str) -> (Workspace, Oid) {
        Workspace::with_state(schedules, tempfile::tempdir().unwrap(), PathBuf::from(url))
    }

    fn with_state(schedules: &str, dir: tempfile::TempDir, state: PathBuf) -> (Workspace, Oid) {
        let ws = Workspace { dir, state };
        let repo = Repository::init(ws.root()).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        std::fs::create_dir_all(ws.config()).unwrap();
        for entry in std::fs::read_dir(quickstart).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, ws.config().join(path.file_name().unwrap())).unwrap();
        }
        ws.write("schedules.yaml", schedules);
        let first = ws.commit("quickstart");
        (ws, first)
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn config(&self) -> PathBuf {
        self.root().join("registrar")
    }

    fn state(&self) -> PathBuf {
        self.state.clone()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.config().join(name), text).unwrap();
    }

    /// Commits every change of the working tree on the current branch.
    fn commit(&self, message: &str) -> Oid {
        commit_all(&Repository::open(self.root()).unwrap(), message)
    }

    /// The binary with `--config` and `--state` set.
    fn command(&self, config: &Path) -> Command {
        registrar(config, &self.state())
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command(&self.config()).args(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.output(args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// The store's registrations as `protocol name` strings.
    fn registrations(&self) -> Vec<String> {
        let state = self.json(&["state", "show", "--format", "json"]);
        state["registrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["protocol"].as_str().unwrap(),
                    r["im_name"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Starts `registrar run ARGS` with the config at `config`; stderr goes to a file.
    fn start(&self, config: &Path, args: &[&str], name: &str) -> Controller {
        let log = self.dir.path().join(format!("{name}.log"));
        let child = self
            .command(config)
            .arg("run")
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Controller { child, log }
    }
}

/// A running controller.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing every one of `needles`; returns it.
    fn wait_for_line(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.stderr();
            if let Some(line) = log
                .lines()
                .find(|line| needles.iter().all(|needle| line.contains(needle)))
            {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the controller exited ({status}) before logging {needles:?}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needles:?} after {PATIENCE:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address `--listen 127.0.0.1:0` got.
    fn address(&mut self) -> String {
        let line = self.wait_for_line(&["listening on http://"]);
        let start = line.find("http://").unwrap() + "http://".len();
        line[start..].split_whitespace().next().unwrap().to_string()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends `signal` and waits for the exit code.
    fn stop(self, signal: &str) -> (Option<i32>, String) {
        self.signal(signal);
        self.wait()
    }

    /// Waits for the exit code.
    fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no exit after {PATIENCE:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` over loopback: status code and body.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// Waits until `check` holds.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn change_aol_mapping_to_im_name(config: &Path) {
    let path = config.join("mappings.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("{mail|lower|local_part}"));
    std::fs::write(
        path,
        text.replace("{mail|lower|local_part}", "{imName|lower}"),
    )
    .unwrap();
}

#[test]
fn a_mapping_change_committed_while_it_runs_is_applied_and_sigterm_exits_cleanly() {
    let (ws, first) = Workspace::new(EVERY_SECOND_APPLY);
    let mut controller = ws.start(
        &ws.config(),
        &["--rev", "main", "--listen", "127.0.0.1:0"],
        "controller",
    );
    let address = controller.address();
    controller.wait_for_line(&["every-second apply at", "applied +11", "serial 0→1"]);
    assert!(ws.registrations().contains(&"aol bjohnson".to_string()));

    let (code, body) = get(&address, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, metrics) = get(&address, "/metrics");
    assert_eq!(code, 200);
    assert_eq!(sample(&metrics, "registrar_up"), 1.0);
    // On SQLite the one controller always leads.
    assert_eq!(sample(&metrics, "registrar_leader"), 1.0);
    assert!(
        sample(
            &metrics,
            "registrar_runs_total{action=\"apply\",outcome=\"applied\"}"
        ) >= 1.0
    );
    assert_eq!(
        sample(&metrics, "registrar_changes_applied_total{action=\"add\"}"),
        11.0
    );
    assert_eq!(
        sample(&metrics, "registrar_managed_objects{kind=\"account\"}"),
        5.0
    );
    assert!(sample(&metrics, "registrar_last_success_timestamp_seconds") > 1.7e9);
    assert_eq!(get(&address, "/nowhere").0, 404);

    // The change lands on the branch while the controller runs; the working tree is
    // not what it reads (it reads the commit), so edit and commit in one go.
    change_aol_mapping_to_im_name(&ws.config());
    let second = ws.commit("aol names from imName");
    wait_until("the new aol names in the store", || {
        let registrations = ws.registrations();
        registrations.contains(&"aol barry.j".to_string())
            && !registrations.contains(&"aol bjohnson".to_string())
    });
    let short = &second.to_string()[..12];
    controller.wait_for_line(&[
        &format!("every-second apply at {short}: applied +"),
        "serial 1→2",
    ]);
    let (_, metrics) = get(&address, "/metrics");
    assert!(
        sample(
            &metrics,
            "registrar_changes_applied_total{action=\"remove\"}"
        ) >= 1.0
    );

    let (code, log) = controller.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    assert!(log.trim_end().ends_with("stopped"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    let status = ws.json(&["status", "--format", "json"]);
    assert_eq!(status["applied_revision"], second.to_string());
    assert_eq!(status["state_serial"], 2);
    let runs = status["runs"].as_array().unwrap();
    assert!(runs.len() >= 2, "{status:#}");
    for run in runs {
        assert_eq!(run["command"], "run every-second: apply", "{run}");
        assert_eq!(run["outcome"], "applied", "{run}");
        assert!(run["duration_ms"].is_u64(), "{run}");
    }
    let revisions: Vec<&str> = runs
        .iter()
        .map(|r| r["revision"].as_str().unwrap())
        .collect();
    assert!(revisions.contains(&first.to_string().as_str()));
    assert_eq!(revisions[0], second.to_string());
    // The lock is released with the process: another controller may start now.
    let output = ws.output(&["run", "--once"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// Runs the system git in `dir`.
fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_branch_with_a_remote_is_fetched_before_each_run() {
    // origin.git (bare) ← work (the first commit); the controller runs in its own clone,
    // `deploy`, whose main tracks origin/main; the change is pushed from `work`.
    let (ws, _) = Workspace::new(EVERY_SECOND_APPLY);
    let top = ws.dir.path();
    git(top, &["clone", "--quiet", "--bare", "work", "origin.git"]);
    git(&ws.root(), &["remote", "add", "origin", "../origin.git"]);
    git(&ws.root(), &["fetch", "--quiet", "origin"]);
    git(
        &ws.root(),
        &[
            "branch",
            "--quiet",
            "--set-upstream-to",
            "origin/main",
            "main",
        ],
    );
    git(top, &["clone", "--quiet", "origin.git", "deploy"]);
    let deploy_config = top.join("deploy/registrar");

    let mut controller = ws.start(&deploy_config, &["--rev", "main"], "deploy");
    controller.wait_for_line(&["following main: fetching origin", "reading origin/main"]);
    controller.wait_for_line(&["every-second apply at", "applied +11"]);

    change_aol_mapping_to_im_name(&ws.config());
    let pushed = ws.commit("aol names from imName");
    git(&ws.root(), &["push", "--quiet", "origin", "main"]);
    wait_until("the pushed change in the store", || {
        ws.registrations().contains(&"aol barry.j".to_string())
    });
    controller.wait_for_line(&[&format!("apply at {}: applied", &pushed.to_string()[..12])]);

    let (code, log) = controller.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
    // The deploy clone's own branch did not move: only origin/main did.
    let deploy = Repository::open(top.join("deploy")).unwrap();
    let local = deploy.revparse_single("main").unwrap().id();
    let tracking = deploy.revparse_single("origin/main").unwrap().id();
    assert_eq!(tracking, pushed);
    assert_ne!(local, pushed);
    assert!(!log.contains("fetch origin failed"), "{log}");
}

#[test]
fn a_second_controller_on_the_same_state_is_refused_and_sigint_stops_the_first() {
    let (ws, _) = Workspace::new(
        "schedules:\n  - name: new-year\n    cron: \"0 0 1 1 *\"\n    action: apply\n",
    );
    let mut first = ws.start(&ws.config(), &["--rev", "main"], "first");
    first.wait_for_line(&[
        "schedule new-year \"0 0 1 1 *\" apply: next ",
        "-01-01T00:00:00Z",
    ]);

    let second = ws.output(&["run", "--rev", "main"]);
    let pid = first.child.id();
    assert_one_line_error(
        &second,
        &[
            "another registrar run holds",
            "state.db.lock",
            &format!("(pid {pid})"),
        ],
    );
    // Plans and applies by hand are not locked out.
    assert_eq!(ws.output(&["plan"]).status.code(), Some(0));

    let (code, log) = first.stop("INT");
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("SIGINT: stopping"), "{log}");
}

#[test]
fn a_failing_run_is_recorded_and_turns_healthz_unhealthy() {
    let (ws, _) = Workspace::new(
        "schedules:\n  - name: every-second\n    cron: \"* * * * * *\"\n    action: plan\n",
    );
    let mut controller = ws.start(&ws.config(), &["--rev", "main", "--listen", "0"], "failing");
    let address = controller.address();
    controller.wait_for_line(&["every-second plan at", "planned +11"]);
    assert_eq!(get(&address, "/healthz").0, 200);

    // The directory file goes away in the next commit: the run cannot read its source.
    std::fs::remove_file(ws.config().join("corp.ldif")).unwrap();
    ws.commit("lose the directory");
    let line = controller.wait_for_line(&["every-second plan", ": failed in"]);
    assert!(line.contains("corp.ldif"), "{line}");
    assert!(line.contains("next attempt at"), "{line}");
    wait_until("/healthz 503", || get(&address, "/healthz").0 == 503);
    let (_, body) = get(&address, "/healthz");
    assert!(
        body.contains("schedule every-second: plan failed at"),
        "{body}"
    );
    assert!(body.contains("corp.ldif"), "{body}");
    assert_eq!(get(&address, "/livez"), (200, "alive\n".to_string()));
    let (_, metrics) = get(&address, "/metrics");
    assert_eq!(
        sample(
            &metrics,
            "registrar_runs_total{action=\"plan\",outcome=\"failed\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "registrar_schedule_consecutive_failures{schedule=\"every-second\",action=\"plan\"}"
        ),
        1.0
    );

    let (code, log) = controller.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
    // The working tree lacks the LDIF too: read the history without a config.
    let output = ws
        .command(&ws.dir.path().join("no-such-dir"))
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let runs = status["runs"].as_array().unwrap();
    assert_eq!(runs[0]["outcome"], "failed", "{status:#}");
    assert!(runs[0]["message"].as_str().unwrap().contains("corp.ldif"));
    assert!(runs.iter().any(|run| run["outcome"] == "planned"));
}

#[test]
fn once_runs_each_schedule_in_name_order_and_records_it() {
    let (ws, commit) = Workspace::new(
        "schedules:\n  - name: a-plan\n    cron: \"0 3 * * *\"\n    action: plan\n\
         \x20 - name: b-apply\n    cron: \"*/15 * * * *\"\n    action: apply\n\
         \x20 - name: c-drift\n    cron: \"0 4 * * *\"\n    action: drift\n",
    );
    let output = ws.output(&["run", "--once", "--rev", "main"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("a-plan plan at"), "{log}");
    let status = ws.json(&["status", "--format", "json"]);
    let runs: Vec<(String, String)> = status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|r| {
            (
                r["command"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("run a-plan: plan".to_string(), "planned".to_string()),
            ("run b-apply: apply".to_string(), "applied".to_string()),
            ("run c-drift: drift".to_string(), "no_drift".to_string()),
        ]
    );
    let first = &status["runs"][2];
    assert_eq!(first["revision"], commit.to_string());
    assert_eq!(first["added"], 11);
    assert_eq!(first["serial_after"], 0);
    // Drift compares with what b-apply just applied: nothing departs.
    let message = status["runs"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("No drift: the store matches revision {commit}")),
        "{message}"
    );
}

#[test]
fn a_config_without_schedules_or_a_bad_revision_is_refused_at_start() {
    let (ws, _) = Workspace::new("# no schedules yet\n");
    std::fs::remove_file(ws.config().join("schedules.yaml")).unwrap();
    ws.commit("no schedules");
    assert_one_line_error(
        &ws.output(&["run", "--rev", "main"]),
        &[
            "no schedules in",
            "at revision main (",
            "add a `schedules:` entry",
        ],
    );
    assert_one_line_error(
        &ws.output(&["run", "--rev", "nope"]),
        &["unknown revision \"nope\""],
    );
    let bad_listen = ws.output(&["run", "--listen", "not-an-address"]);
    assert_eq!(bad_listen.status.code(), Some(2));
    assert!(stderr(&bad_listen).contains("is not HOST:PORT or PORT"));
}

#[test]
fn sigterm_during_a_run_waits_for_it_and_records_it() {
    // An LDAP server that accepts connections and never answers: the run hangs on the
    // bind until the source's 2 s timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let (ws, _) = Workspace::new(EVERY_SECOND_APPLY);
    ws.write(
        "registrar.yaml",
        &format!(
            "sources:\n  - name: corp\n    ldap:\n      url: ldap://127.0.0.1:{port}\n      anonymous: true\n      base_dn: dc=example,dc=com\n      timeout_seconds: 2\n"
        ),
    );
    ws.commit("an LDAP source that hangs");
    let mut controller = ws.start(&ws.config(), &["--rev", "main", "--listen", "0"], "hang");
    let address = controller.address();
    wait_until("a run in flight", || {
        let (_, metrics) = get(&address, "/metrics");
        sample(&metrics, "registrar_run_in_progress_seconds") > 0.0
    });
    controller.signal("TERM");
    let (code, log) = controller.wait();
    assert_eq!(code, Some(0), "{log}");
    let stopping = log.find("SIGTERM: stopping").expect(&log);
    let failed = log.find(": failed in").expect(&log);
    assert!(stopping < failed, "{log}");
    assert!(log.contains("no reply within 2 s"), "{log}");
    assert!(log.trim_end().ends_with("stopped"), "{log}");
    let history = ws.json(&["status", "--format", "json"]);
    let runs = history["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{history:#}");
    assert_eq!(runs[0]["outcome"], "failed");
    assert!(
        runs[0]["duration_ms"].as_u64().unwrap() >= 1900,
        "{history:#}"
    );
}

/// A schedule that applies every 2 s.
const EVERY_TWO_SECONDS_APPLY: &str =
    "schedules:\n  - name: every-two\n    cron: \"*/2 * * * * *\"\n    action: apply\n";

/// The longest the standby may take, from the leader's death to its own first apply.
const TAKEOVER: Duration = Duration::from_secs(15);

/// A run of the history: (serial before, serial after, outcome, changes counted).
type HistoryRun = (i64, i64, String, i64);

/// The store's run history, oldest first, read with SQL.
fn history(database: &throwaway_postgres::TestDatabase) -> Vec<HistoryRun> {
    let mut client = database.client().unwrap();
    client
        .query(
            "SELECT serial_before, serial_after, outcome, \
             added + updated + removed + deactivated + reactivated FROM runs ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

#[test]
fn two_controllers_on_postgres_one_leads_and_the_standby_takes_over_when_it_is_killed() {
    let database = throwaway_postgres::shared().database();
    let (ws, _) = Workspace::on_postgres(EVERY_TWO_SECONDS_APPLY, &database.url());
    let args = ["--rev", "main", "--listen", "127.0.0.1:0"];
    let mut leader = ws.start(&ws.config(), &args, "leader");
    let leader_address = leader.address();
    leader.wait_for_line(&["leading: this controller holds the leader lock of state store"]);
    leader.wait_for_line(&["every-two apply at", "applied +11", "serial 0→1"]);

    let mut standby = ws.start(&ws.config(), &args, "standby");
    let standby_address = standby.address();
    standby.wait_for_line(&["standing by: another controller leads state store postgres://"]);
    assert_eq!(
        get(&standby_address, "/healthz"),
        (200, "standby\n".to_string())
    );
    assert_eq!(
        sample(&get(&standby_address, "/metrics").1, "registrar_leader"),
        0.0
    );
    assert_eq!(get(&leader_address, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(
        sample(&get(&leader_address, "/metrics").1, "registrar_leader"),
        1.0
    );
    // `--once` beside a leader would be a second writer of the schedules: refused.
    assert_one_line_error(
        &ws.output(&["run", "--once", "--rev", "main"]),
        &[
            "another registrar run leads state store postgres://",
            "--once",
        ],
    );

    // A change is applied by the leader, never by the standby.
    change_aol_mapping_to_im_name(&ws.config());
    ws.commit("aol names from imName");
    leader.wait_for_line(&["every-two apply at", "serial 1→2"]);
    // Back again, and the leader killed as the schedule goes on (maybe mid-run).
    let mapping = ws.config().join("mappings.yaml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(
        &mapping,
        text.replace("{imName|lower}", "{mail|lower|local_part}"),
    )
    .unwrap();
    let reverted = ws.commit("aol names from mail again");
    leader.signal("KILL");
    let killed = Instant::now();
    let _ = leader.child.wait();
    let leader_log = leader.stderr();

    let short = &reverted.to_string()[..12];
    let deadline = killed + TAKEOVER;
    let taken_over = loop {
        let log = standby.stderr();
        if let Some(line) = log
            .lines()
            .find(|line| line.contains(&format!("every-two apply at {short}: applied")))
        {
            break line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the standby did not apply within {TAKEOVER:?} of the leader's death:\n{log}\n\
             the leader's log:\n{leader_log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = standby.stderr();
    let leading = log.find("leading: this controller holds").expect(&log);
    assert!(leading < log.find(&taken_over).unwrap(), "{log}");
    // Before the takeover the standby ran nothing.
    assert!(
        !log[..leading].contains("every-two apply"),
        "a standby ran a schedule:\n{log}"
    );
    assert_eq!(get(&standby_address, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(
        sample(&get(&standby_address, "/metrics").1, "registrar_leader"),
        1.0
    );
    let (code, log) = standby.stop("TERM");
    assert_eq!(code, Some(0), "{log}");

    // The history: every change applied once, serials consecutive, no apply half there.
    let runs = history(&database);
    let changing: Vec<&HistoryRun> = runs.iter().filter(|run| run.1 != run.0).collect();
    let befores: Vec<i64> = changing.iter().map(|run| run.0).collect();
    assert_eq!(
        befores,
        (0..changing.len() as i64).collect::<Vec<_>>(),
        "{runs:?}"
    );
    for (before, after, outcome, changes) in &runs {
        if outcome == "applied" {
            // An apply that counted changes moved the serial by one; one that did not
            // left it.
            assert_eq!(*after - *before, i64::from(*changes > 0), "{runs:?}");
        } else {
            assert_eq!(before, after, "{runs:?}");
        }
    }
    assert!(changing.len() >= 3, "{runs:?}");
    let status = ws.json(&["status", "--format", "json"]);
    assert_eq!(status["state_serial"], changing.len());
    assert_eq!(status["applied_revision"], reverted.to_string());
    let registrations = ws.registrations();
    assert!(registrations.contains(&"aol bjohnson".to_string()));
    assert!(!registrations.contains(&"aol barry.j".to_string()));
    // All of the last commit is there: planning it again changes nothing.
    let plan = ws.output(&["plan", "--rev", "main", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
}

#[test]
fn a_postgres_server_that_is_down_stops_run_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://registrar_test@127.0.0.1:{port}/nowhere");
    let (ws, _) = Workspace::on_postgres(EVERY_TWO_SECONDS_APPLY, &url);
    assert_one_line_error(
        &ws.output(&["run", "--rev", "main"]),
        &[&format!("127.0.0.1:{port}"), "connection refused"],
    );
}

#[test]
fn a_leader_whose_session_is_ended_stands_by_and_leads_again_on_a_new_session() {
    let database = throwaway_postgres::shared().database();
    let (ws, _) = Workspace::on_postgres(EVERY_TWO_SECONDS_APPLY, &database.url());
    let mut controller = ws.start(&ws.config(), &["--rev", "main"], "alone");
    controller.wait_for_line(&["every-two apply at", "serial 0→1"]);
    // The server ends the session that holds the leader lock (as a restart or an
    // administrator would).
    let mut client = database.client().unwrap();
    let ended = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
             AND ((classid::bigint << 32) | objid::bigint) = $1",
            &[&registrar::store::LEADER_LOCK],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(ended, 1);
    controller.wait_for_line(&["lost the lead of state store postgres://", "standing by"]);
    wait_until("the lead taken again", || {
        let log = controller.stderr();
        let lost = log.find("lost the lead").unwrap();
        log[lost..].contains("leading: this controller holds the leader lock")
    });
    // It applies again, on the new session.
    change_aol_mapping_to_im_name(&ws.config());
    ws.commit("aol names from imName");
    controller.wait_for_line(&["every-two apply at", "serial 1→2"]);
    let (code, log) = controller.stop("TERM");
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
