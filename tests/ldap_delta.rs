//! `--mode delta` on LDAP sources through the binary, against a real slapd with the
//! syncprov overlay: after any sequence of directory changes (applied with ldapmodify),
//! a delta plan is the full plan and a delta apply leaves the store a full apply leaves
//! (property test, with and without a session log); a cookie the server refuses, a
//! search that changed, a store written in between and a saved plan each make the next
//! delta read in full or every kept entry, with one note, and still plan exactly.

use std::path::PathBuf;
use std::process::Output;

mod common;

use common::ldap_fixture::{users_ldif, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, SUFFIX};
use common::slapd::{Options, Slapd, SyncProvider};
use common::store::{self, TestStore};
use common::{json, registrar, stderr};

/// The environment variable the configs name in `password_env`.
const PASSWORD_ENV: &str = "REGISTRAR_TEST_LDAP_PASSWORD";

/// One config directory over a slapd, with two stores: one only ever applied in full,
/// one in delta.
struct Pair {
    dir: tempfile::TempDir,
    full: TestStore,
    delta: TestStore,
}

impl Pair {
    fn new(slapd: &Slapd, anchor: &str) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        let pair = Pair {
            dir,
            full: TestStore::fresh(),
            delta: TestStore::fresh(),
        };
        pair.write_sources(slapd, anchor, FILTER);
        std::fs::write(pair.config().join("rules.yaml"), RULES).unwrap();
        pair
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn write_sources(&self, slapd: &Slapd, anchor: &str, filter: &str) {
        let sources = format!(
            "sources:\n  - name: people\n    anchor: {anchor}\n    ldap:\n      url: {url}\n      \
             bind_dn: {SERVICE_DN}\n      password_env: {PASSWORD_ENV}\n      \
             base_dn: {PEOPLE_DN}\n      filter: \"{filter}\"\n",
            url = slapd.url()
        );
        std::fs::write(self.config().join("sources.yaml"), sources).unwrap();
    }

    fn run(&self, store: &TestStore, args: &[&str]) -> Output {
        registrar(&self.config(), &store.argument())
            .args(args)
            .env(PASSWORD_ENV, SERVICE_PASSWORD)
            .output()
            .unwrap()
    }

    /// `plan --mode MODE --format json` on `store`, and its stderr.
    fn plan(&self, store: &TestStore, mode: &str) -> (serde_json::Value, String) {
        let output = self.run(store, &["plan", "--mode", mode, "--format", "json"]);
        (json(&output), stderr(&output))
    }

    /// `apply --mode MODE --auto-approve` on `store`, and its stderr.
    fn apply(&self, store: &TestStore, mode: &str) -> String {
        let output = self.run(store, &["apply", "--mode", mode, "--auto-approve"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stderr(&output)
    }

    /// The cookie the delta store keeps for the source (none: no snapshot).
    fn cookie(&self) -> Option<Vec<u8>> {
        store::column_bytes(
            &self.delta,
            "SELECT cookie FROM snapshots WHERE source = 'people'",
        )
        .pop()
    }

    fn state(&self, store: &TestStore) -> serde_json::Value {
        json(&self.run(store, &["state", "show", "--format", "json"]))
    }

    /// Both stores applied (one in full, one in delta) and compared: the same plan, and
    /// the same state after. Returns the delta plan's stderr.
    fn step(&self) -> String {
        let (full_plan, _) = self.plan(&self.full, "full");
        let (delta_plan, delta_notes) = self.plan(&self.delta, "delta");
        assert_eq!(delta_plan, full_plan, "delta notes: {delta_notes}");
        self.apply(&self.full, "full");
        self.apply(&self.delta, "delta");
        assert_eq!(self.state(&self.delta), self.state(&self.full));
        delta_notes
    }
}

/// The source's filter: a user with `description: hidden` leaves it.
const FILTER: &str =
    "(|(&(objectClass=inetOrgPerson)(!(description=hidden)))(objectClass=groupOfNames))";

/// The group the pool's users join and leave (in the base, a distribution list).
const TEAM: &str = "cn=team,ou=people,dc=example,dc=com";

const RULES: &str = r#"mappings:
  - name: aol-from-mail
    protocol: aol
    value: "{mail|lower|local_part}"
    when: "(mail=*@example.com)"
accounts:
  profile:
    display_name: "{cn}"
    mail: "{mail}"
groups:
  - name: staff
    kind: org_unit
    source: people
    dn: ou=people,dc=example,dc=com
  - name: "{cn}"
    kind: distribution_list
    source: people
    filter: "(objectClass=groupOfNames)"
"#;

fn syncprov(session_log: Option<u32>) -> Slapd {
    let slapd = Slapd::start(Options::default().sync_provider(SyncProvider { session_log }));
    slapd.load_ldif(&users_ldif(4));
    slapd.load_ldif(&format!(
        "dn: {TEAM}\nobjectClass: groupOfNames\ncn: team\nmember: uid=user1,{PEOPLE_DN}\n"
    ));
    slapd
}

/// One generated change to the directory, on the user numbered `.1` of the pool (an op
/// that cannot apply to that user as things stand is skipped).
#[derive(Debug, Clone, Copy)]
enum Op {
    Modify,
    /// Makes the user leave the source's filter (`description: hidden`), or enter it
    /// again.
    Reclass,
    Rename,
    MoveOut,
    MoveIn,
    Delete,
    Add,
    /// The user joins the team (by its DN now).
    Join,
    /// A member value of the team goes (the `.1`-th but the first, which stays: a
    /// groupOfNames needs one).
    Leave,
}

const POOL: usize = 6;

fn op_strategy() -> impl proptest::strategy::Strategy<Value = (Op, usize)> {
    use proptest::prelude::*;
    (
        prop_oneof![
            3 => Just(Op::Modify),
            1 => Just(Op::Reclass),
            1 => Just(Op::Rename),
            1 => Just(Op::MoveOut),
            1 => Just(Op::MoveIn),
            1 => Just(Op::Delete),
            2 => Just(Op::Add),
            1 => Just(Op::Join),
            1 => Just(Op::Leave),
        ],
        0usize..POOL,
    )
}

/// Where each user of the pool is (`None`: it does not exist), and whether the source's
/// filter selects it.
struct Pool {
    users: Vec<Option<(String, bool)>>,
    /// The team's member values, as written (a member renamed since keeps its old DN).
    team: Vec<String>,
    serial: usize,
}

impl Pool {
    fn new() -> Pool {
        Pool {
            users: vec![None; POOL],
            team: vec![format!("uid=user1,{PEOPLE_DN}")],
            serial: 0,
        }
    }

    /// The LDIF change record of `op` on user `n`, and the pool after it; `None` when
    /// the op does not apply.
    fn change(&mut self, (op, n): (Op, usize)) -> Option<String> {
        self.serial += 1;
        let serial = self.serial;
        let outside = format!("ou=groups,{SUFFIX}");
        match (op, self.users[n].clone()) {
            (Op::Add, None) => {
                let dn = format!("uid=p{n}-{serial},{PEOPLE_DN}");
                self.users[n] = Some((dn.clone(), true));
                Some(format!(
                    "dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: p{n}\nsn: p\n\
                     mail: p{n}-{serial}@example.com\n"
                ))
            }
            (Op::Modify, Some((dn, _))) => Some(format!(
                "dn: {dn}\nchangetype: modify\nreplace: mail\nmail: p{n}-{serial}@example.com\n\
                 -\nreplace: cn\ncn: p{n} {serial}\n"
            )),
            (Op::Reclass, Some((dn, selected))) => {
                self.users[n] = Some((dn.clone(), !selected));
                Some(if selected {
                    format!(
                        "dn: {dn}\nchangetype: modify\nreplace: description\ndescription: hidden\n"
                    )
                } else {
                    format!("dn: {dn}\nchangetype: modify\ndelete: description\n")
                })
            }
            (Op::Rename, Some((dn, person))) => {
                let parent = dn.split_once(',').map(|(_, parent)| parent.to_string())?;
                self.users[n] = Some((format!("uid=p{n}-{serial},{parent}"), person));
                Some(format!(
                    "dn: {dn}\nchangetype: modrdn\nnewrdn: uid=p{n}-{serial}\ndeleteoldrdn: 1\n"
                ))
            }
            (Op::MoveOut | Op::MoveIn, Some((dn, person))) => {
                let (rdn, parent) = dn.split_once(',')?;
                let target = match op {
                    Op::MoveOut => outside.as_str(),
                    _ => PEOPLE_DN,
                };
                if parent == target {
                    return None;
                }
                self.users[n] = Some((format!("{rdn},{target}"), person));
                Some(format!(
                    "dn: {dn}\nchangetype: modrdn\nnewrdn: {rdn}\ndeleteoldrdn: 1\nnewsuperior: {target}\n"
                ))
            }
            (Op::Delete, Some((dn, _))) => {
                self.users[n] = None;
                Some(format!("dn: {dn}\nchangetype: delete\n"))
            }
            (Op::Join, Some((dn, _))) if !self.team.contains(&dn) => {
                self.team.push(dn.clone());
                Some(format!(
                    "dn: {TEAM}\nchangetype: modify\nadd: member\nmember: {dn}\n"
                ))
            }
            (Op::Leave, _) if self.team.len() > 1 => {
                let value = self.team.remove(1 + n % (self.team.len() - 1));
                Some(format!(
                    "dn: {TEAM}\nchangetype: modify\ndelete: member\nmember: {value}\n"
                ))
            }
            _ => None,
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 10, ..Default::default() })]

    /// Whatever happened in the directory, `--mode delta` through the feed plans what
    /// `--mode full` plans, byte for byte (inputs digest included), and its apply leaves
    /// the same state; the delta is quiet (a plan by region from the cookie), never a
    /// full read. Anchored on `entryUUID` (which the config asks for) and on `uid`
    /// (where the feed's identity is asked for and taken out again).
    #[test]
    fn a_delta_through_the_feed_plans_and_applies_what_a_full_read_does(
        batches in proptest::collection::vec(proptest::collection::vec(op_strategy(), 0..8), 1..4),
        session_log in proptest::bool::ANY,
        anchor in proptest::sample::select(vec!["entryUUID", "uid"]),
    ) {
        let slapd = syncprov(session_log.then_some(100));
        let pair = Pair::new(&slapd, anchor);
        pair.apply(&pair.full, "full");
        pair.apply(&pair.delta, "full");
        let mut cookie = pair.cookie();
        proptest::prop_assert!(cookie.is_some(), "a full apply keeps the cookie");
        let groups = pair.state(&pair.delta)["groups"].to_string();
        proptest::prop_assert!(groups.contains("\"team\""), "{}", groups);
        let mut pool = Pool::new();
        for batch in batches {
            let records: Vec<String> = batch.into_iter().filter_map(|op| pool.change(op)).collect();
            if !records.is_empty() {
                slapd.modify(&records.join("\n"));
            }
            let notes = pair.step();
            proptest::prop_assert!(notes.is_empty(), "records {:?}: {}", records, notes);
            let kept = pair.cookie();
            proptest::prop_assert!(kept.is_some());
            if !records.is_empty() {
                proptest::prop_assert_ne!(&kept, &cookie, "the apply keeps the new cookie");
            }
            cookie = kept;
        }
    }
}

/// The delta store's kept cookie replaced by one the server cannot read.
fn spoil_cookie(store: &TestStore) {
    let cast = match store.backend() {
        throwaway_postgres::Backend::Sqlite => "CAST('garbage' AS BLOB)",
        throwaway_postgres::Backend::Postgres => "CAST('garbage' AS BYTEA)",
    };
    store::execute(store, &format!("UPDATE snapshots SET cookie = {cast}"));
}

/// Each way a delta cannot go through the feed from the kept snapshot says so in one
/// note, plans exactly, and its apply keeps what the next delta goes through quietly
/// again: a cookie the server refuses, a search that changed, a store written in between
/// (every kept entry is read), a saved plan applied (it keeps no LDAP snapshot).
#[test]
fn a_delta_that_cannot_go_through_the_feed_says_why_and_plans_exactly() {
    let slapd = syncprov(Some(100));
    let pair = Pair::new(&slapd, "entryUUID");
    pair.apply(&pair.full, "full");
    pair.apply(&pair.delta, "full");
    let mut pool = Pool::new();
    let mut change = |slapd: &Slapd, op| {
        let record = pool.change(op).expect("the op applies");
        slapd.modify(&record);
    };

    change(&slapd, (Op::Add, 0));
    spoil_cookie(&pair.delta);
    let notes = pair.step();
    assert_eq!(
        notes.lines().collect::<Vec<_>>(),
        [
            "note: source people is read in full: the server no longer honours its syncrepl \
          cookie (the server sent no cookie to continue from)"
        ],
        "{notes}"
    );
    change(&slapd, (Op::Modify, 0));
    assert_eq!(
        pair.step(),
        "",
        "the apply kept a cookie the server honours"
    );

    pair.write_sources(&slapd, "entryUUID", "(objectClass=inetOrgPerson)");
    change(&slapd, (Op::Reclass, 0));
    let notes = pair.step();
    assert_eq!(
        notes.lines().collect::<Vec<_>>(),
        [
            "note: source people is read in full: its search (url, bind_dn, base_dn, scope, \
             domain_scope, filter or attributes) changed since its snapshot was kept",
            "note: --mode delta read every kept entry: the config changed since the last apply"
        ],
        "{notes}"
    );
    assert_eq!(pair.step(), "");

    for store in [&pair.full, &pair.delta] {
        let output = pair.run(
            store,
            &[
                "state",
                "register",
                "--protocol",
                "aol",
                "--im-name",
                "by-hand",
                "--account",
                &format!("uid=user1,{PEOPLE_DN}"),
                "--source",
                "manual",
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
    change(&slapd, (Op::Rename, 0));
    let notes = pair.step();
    assert!(
        notes.starts_with(
            "note: --mode delta read every kept entry: the store was written at serial"
        ) && notes.lines().count() == 1,
        "{notes}"
    );
    change(&slapd, (Op::MoveOut, 0));
    assert_eq!(
        pair.step(),
        "",
        "reading every kept entry kept them all again"
    );

    let saved = pair.dir.path().join("saved.json");
    let saved = saved.to_str().unwrap();
    change(&slapd, (Op::MoveIn, 0));
    let output = pair.run(&pair.delta, &["plan", "--mode", "delta", "--out", saved]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = pair.run(&pair.delta, &["apply", "--plan", saved]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(pair.cookie(), None, "a saved plan keeps no LDAP snapshot");
    pair.apply(&pair.full, "full");
    change(&slapd, (Op::Delete, 0));
    let notes = pair.step();
    assert!(
        notes.starts_with("note: source people has no kept snapshot yet, so it is read in full"),
        "{notes}"
    );
    assert_eq!(pair.step(), "");
}

/// A source whose rules read a back link (`memberOf`, which the server keeps on the
/// other side of a group's `member` and no feed reports) is never read through a feed:
/// `--mode delta` reads it in full every run, says why once, and keeps no snapshot.
#[test]
fn a_source_whose_rules_read_a_back_link_is_read_in_full_every_run() {
    let slapd = syncprov(Some(100));
    let pair = Pair::new(&slapd, "entryUUID");
    std::fs::write(
        pair.config().join("rules.yaml"),
        RULES.replace(
            "    mail: \"{mail}\"\n",
            "    mail: \"{mail}\"\n    department: \"{memberOf}\"\n",
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let notes = pair.apply(&pair.delta, "delta");
        let notes: Vec<&str> = notes.lines().filter(|l| l.contains("people")).collect();
        assert_eq!(
            notes,
            [
                "note: source people: its filter or rules read memberOf, a back link no change \
              feed reports; --mode delta reads it in full every run"
            ],
        );
        assert_eq!(pair.cookie(), None);
    }
}

/// A server without a change feed (slapd without syncprov) keeps no snapshot: `--mode
/// delta` reads it in full every run and says why; with `delta: none` the note says the
/// config asks for it.
#[test]
fn a_server_without_a_feed_is_read_in_full_every_run() {
    let slapd = Slapd::start(Options::default());
    slapd.load_ldif(&users_ldif(3));
    let pair = Pair::new(&slapd, "entryUUID");
    let notes = pair.apply(&pair.delta, "delta");
    assert!(
        notes.contains(
            "note: source people: the server offers no change feed (DirSync, syncprov); \
             --mode delta reads it in full every run"
        ),
        "{notes}"
    );
    assert_eq!(pair.cookie(), None);
    let sources = std::fs::read_to_string(pair.config().join("sources.yaml")).unwrap();
    std::fs::write(
        pair.config().join("sources.yaml"),
        format!("{sources}      delta: none\n"),
    )
    .unwrap();
    let (plan, notes) = pair.plan(&pair.delta, "delta");
    assert_eq!(
        notes,
        "note: --mode delta read every kept entry: source people is read in full every run \
         (delta: none)\n"
    );
    assert_eq!(plan["summary"]["add"], 0, "{plan:#}");
}

/// The controller's `mode: delta` schedules read LDAP sources through the feed too: its
/// first run keeps the snapshot and cookie, the next applies what changed since, quietly,
/// and leaves the store a full apply leaves.
#[test]
fn the_controller_applies_what_changed_through_the_feed() {
    let slapd = syncprov(Some(100));
    let pair = Pair::new(&slapd, "entryUUID");
    std::fs::write(
        pair.config().join("schedules.yaml"),
        "schedules:\n  - name: sync\n    cron: \"*/15 * * * *\"\n    mode: delta\n    action: apply\n",
    )
    .unwrap();
    let once = || {
        let output = pair.run(&pair.delta, &["run", "--once"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stderr(&output)
    };
    once();
    let kept = pair.cookie();
    assert!(kept.is_some(), "the first run keeps a cookie");
    let mut pool = Pool::new();
    let records: Vec<String> = [(Op::Add, 0), (Op::Add, 1), (Op::Modify, 0)]
        .into_iter()
        .filter_map(|op| pool.change(op))
        .collect();
    slapd.modify(&records.join("\n"));
    let notes = once();
    assert!(!notes.contains("note: source"), "{notes}");
    assert_ne!(pair.cookie(), kept);
    pair.apply(&pair.full, "full");
    // The controller's store took two applies, the other one: all but the serial agree.
    let rows = |store| {
        let mut state = pair.state(store);
        state.as_object_mut().unwrap().remove("serial");
        state
    };
    assert_eq!(rows(&pair.delta), rows(&pair.full));
}

/// A store moved to the other backend (`state migrate`) keeps the LDAP snapshot, its
/// identities and its cookie: the next delta there goes through the feed, quietly, and
/// plans what a full read does.
#[test]
fn a_migrated_store_goes_on_through_the_feed() {
    use throwaway_postgres::Backend;
    let slapd = syncprov(Some(100));
    let pair = Pair::new(&slapd, "uid");
    pair.apply(&pair.full, "full");
    pair.apply(&pair.delta, "full");
    let other = match pair.delta.backend() {
        Backend::Sqlite => TestStore::on(Backend::Postgres),
        Backend::Postgres => TestStore::on(Backend::Sqlite),
    };
    let output = pair.run(
        &pair.delta,
        &["state", "migrate", "--to", &other.argument()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut pool = Pool::new();
    let records: Vec<String> = [(Op::Add, 0), (Op::Join, 0), (Op::Modify, 0)]
        .into_iter()
        .filter_map(|op| pool.change(op))
        .collect();
    slapd.modify(&records.join("\n"));
    let (full_plan, _) = pair.plan(&pair.full, "full");
    let (delta_plan, notes) = pair.plan(&other, "delta");
    assert_eq!(notes, "");
    assert_eq!(delta_plan, full_plan);
}

/// An LDIF source beside the LDAP one: a delta plan by region brings both forward at
/// once (a new change file, the feed's changes), quietly, to the full plan.
#[test]
fn an_ldif_source_and_an_ldap_source_go_forward_together() {
    let slapd = syncprov(Some(100));
    let pair = Pair::new(&slapd, "entryUUID");
    let config = pair.config();
    std::fs::create_dir(config.join("changes")).unwrap();
    std::fs::write(
        config.join("partners.ldif"),
        "dn: uid=pat,ou=partners,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: pat\n\
         cn: Pat\nsn: P\nmail: pat@example.com\nentryUUID: 00000000-0000-0000-0000-0000000000aa\n",
    )
    .unwrap();
    let sources = std::fs::read_to_string(config.join("sources.yaml")).unwrap();
    std::fs::write(
        config.join("sources.yaml"),
        format!(
            "{sources}  - name: partners\n    anchor: entryUUID\n    ldif:\n      \
             path: partners.ldif\n      changes: changes/*.ldif\n"
        ),
    )
    .unwrap();
    pair.apply(&pair.full, "full");
    pair.apply(&pair.delta, "full");
    std::fs::write(
        config.join("changes/0001.ldif"),
        "dn: uid=pia,ou=partners,dc=example,dc=org\nchangetype: add\nobjectClass: inetOrgPerson\n\
         uid: pia\ncn: Pia\nsn: P\nmail: pia@example.com\n\
         entryUUID: 00000000-0000-0000-0000-0000000000bb\n",
    )
    .unwrap();
    let mut pool = Pool::new();
    let records: Vec<String> = [(Op::Add, 0), (Op::Add, 1), (Op::Join, 1)]
        .into_iter()
        .filter_map(|op| pool.change(op))
        .collect();
    slapd.modify(&records.join("\n"));
    assert_eq!(pair.step(), "");
    let state = pair.state(&pair.delta).to_string();
    assert!(
        state.contains("\"pia\"") && state.contains("\"p1-2\""),
        "{state}"
    );
    slapd.modify(&pool.change((Op::Delete, 0)).unwrap());
    assert_eq!(pair.step(), "");
}

/// Entries the bind account may not read the identity of (an ACL hides `entryUUID`)
/// cannot be kept by it: the apply says so, keeps no snapshot, and still applies; the
/// next delta reads in full.
#[test]
fn entries_without_their_identity_keep_no_snapshot_and_the_apply_goes_on() {
    let slapd = Slapd::start(
        Options::default()
            .sync_provider(SyncProvider {
                session_log: Some(100),
            })
            .hide_from_service("entryUUID"),
    );
    slapd.load_ldif(&users_ldif(3));
    let pair = Pair::new(&slapd, "uid");
    let notes = pair.apply(&pair.delta, "full");
    assert!(
        notes.contains(&format!(
            "note: source people: entry \"uid=user1,{PEOPLE_DN}\" holds no entryUUID (the \
             identity its syncrepl feed names it by), so no snapshot is kept and --mode \
             delta reads it in full"
        )),
        "{notes}"
    );
    assert_eq!(pair.cookie(), None);
    assert_eq!(
        pair.state(&pair.delta)["accounts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (_, notes) = pair.plan(&pair.delta, "delta");
    assert!(notes.contains("has no kept snapshot yet"), "{notes}");
}
