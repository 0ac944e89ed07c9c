//! LDAP sources against a real OpenLDAP `slapd` on loopback (see `common/slapd.rs`): the
//! built binary reads the server through `ldap3`, and every failure (wrong password,
//! server down, server killed mid-search, silence, untrusted certificate) is one line on
//! stderr, exit 1, the store untouched, the password nowhere. The store is on the backend
//! of the run (`REGISTRAR_TEST_STORE`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Output;
use std::rc::Rc;
use std::thread;
use std::time::Duration;

mod common;

use common::slapd::{
    base_ldif, people_ldif, users_ldif, Options, Slapd, PEOPLE_DN, ROOT_DN, ROOT_PASSWORD,
    SERVICE_DN, SERVICE_PASSWORD,
};
use common::store::{self, TestStore};
use common::{assert_one_line_error, json, registrar, stderr, stdout};

/// The environment variable the test configs name in `password_env`.
const PASSWORD_ENV: &str = "REGISTRAR_TEST_LDAP_PASSWORD";

/// A config dir with one `people` source and one mapping, plus a store (which another
/// workspace may share).
struct Workspace {
    dir: tempfile::TempDir,
    store: Rc<TestStore>,
    password: Option<String>,
}

impl Workspace {
    /// A workspace whose `people` source is the `ldap:` block `ldap_yaml` (indented
    /// under `ldap:` by this function), read with anchor `anchor`.
    fn ldap(anchor: &str, ldap_yaml: &str) -> Self {
        let ws = Workspace::empty();
        let block: String = ldap_yaml
            .lines()
            .map(|line| format!("      {line}\n"))
            .collect();
        ws.write(
            "sources.yaml",
            &format!("sources:\n  - name: people\n    anchor: {anchor}\n    ldap:\n{block}"),
        );
        ws.write("mappings.yaml", MAPPINGS);
        ws
    }

    /// The same mappings over an LDIF file holding `ldif`.
    fn ldif(anchor: &str, ldif: &str) -> Self {
        let ws = Workspace::empty();
        ws.write("directory.ldif", ldif);
        ws.write(
            "sources.yaml",
            &format!(
                "sources:\n  - name: people\n    anchor: {anchor}\n    ldif:\n      path: directory.ldif\n"
            ),
        );
        ws.write("mappings.yaml", MAPPINGS);
        ws
    }

    fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        Workspace {
            dir,
            store: Rc::new(TestStore::fresh()),
            password: Some(SERVICE_PASSWORD.to_string()),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.config().join(name), text).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = registrar(&self.config(), &self.store.argument());
        command.args(args);
        match &self.password {
            Some(password) => command.env(PASSWORD_ENV, password),
            None => command.env_remove(PASSWORD_ENV),
        };
        command.output().unwrap()
    }

    /// `plan --format json` as JSON, after checking it succeeded.
    fn plan_json(&self) -> serde_json::Value {
        json(&self.run(&["plan", "--format", "json"]))
    }

    /// What the store holds ([`store::fingerprint`]), None when there is none.
    fn fingerprint(&self) -> Option<Vec<u8>> {
        store::fingerprint(&self.store)
    }
}

const MAPPINGS: &str = r#"mappings:
  - name: aol-from-mail
    protocol: aol
    value: "{mail|lower|local_part}"
    when: "(mail=*@example.com)"
accounts:
  profile:
    display_name: "{displayName}"
    department: "{departmentNumber}"
"#;

/// The `ldap:` block binding as the service account.
fn service_bind(url: &str, extra: &str) -> String {
    format!(
        "url: {url}\nbind_dn: {SERVICE_DN}\npassword_env: {PASSWORD_ENV}\nbase_dn: {PEOPLE_DN}\n{extra}"
    )
}

/// A server holding the base entries and `users` users.
fn server_with(users: usize, options: Options) -> Slapd {
    let slapd = Slapd::start(options);
    slapd.load_ldif(&users_ldif(users));
    slapd
}

/// The plan's changes and summary, without what differs between two reads of the same
/// directory (revision, inputs digest).
fn comparable(plan: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "summary": plan["summary"],
        "changes": plan["changes"],
        "warnings": plan["warnings"],
    })
}

fn changes_of<'a>(plan: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind)
        .collect()
}

#[test]
fn the_same_directory_read_from_ldap_and_from_ldif_gives_the_same_plan() {
    let slapd = server_with(40, Options::default());
    let from_ldap = Workspace::ldap(
        "dn",
        &service_bind(&slapd.url(), "filter: (objectClass=inetOrgPerson)"),
    );
    let from_ldif = Workspace::ldif("dn", &users_ldif(40));
    let ldap_plan = from_ldap.plan_json();
    assert_eq!(comparable(&ldap_plan), comparable(&from_ldif.plan_json()));
    assert_eq!(changes_of(&ldap_plan, "registration").len(), 40);
    // And it converges: applied, the next read of the server plans nothing.
    let applied = from_ldap.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let again = from_ldap.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn an_exported_snapshot_plans_like_the_live_directory_with_an_operational_anchor() {
    let slapd = server_with(25, Options::default());
    let live = Workspace::ldap("entryUUID", &service_bind(&slapd.url(), ""));
    let snapshot = live.dir.path().join("people.ldif");
    let out = live.run(&[
        "export",
        "--source",
        "people",
        "--out",
        snapshot.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&snapshot).unwrap();
    // entryUUID is operational: requested by name, so the snapshot carries the anchor.
    assert_eq!(
        text.matches("\nentryUUID: ").count(),
        25 + 1,
        "ou=people and its users"
    );
    assert!(!text.contains(SERVICE_PASSWORD));

    let agent = Workspace::ldif("entryUUID", &text);
    let live_plan = live.plan_json();
    assert_eq!(comparable(&live_plan), comparable(&agent.plan_json()));
    let accounts = changes_of(&live_plan, "account");
    assert_eq!(accounts.len(), 25);
    assert!(
        accounts
            .iter()
            .all(|c| c["account"].as_str().unwrap().len() == 36),
        "{accounts:?}"
    );

    // JSON export: one object per entry, the same DNs.
    let out = live.run(&["export", "--source", "people", "--format", "json"]);
    let entries: serde_json::Value = json(&out);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 25 + 1, "ou=people and its 25 users");
    assert_eq!(entries[0]["dn"], PEOPLE_DN);
    assert!(entries
        .iter()
        .all(|e| e["attributes"]["entryUUID"].is_array()));
}

#[test]
fn paging_gets_every_entry_past_the_server_size_limit() {
    let slapd = server_with(2500, Options::default().size_limit(500));
    let ws = Workspace::ldap(
        "entryUUID",
        &service_bind(
            &slapd.url(),
            "filter: (objectClass=inetOrgPerson)\npage_size: 200",
        ),
    );
    let plan = ws.plan_json();
    assert_eq!(
        plan["summary"]["add"].as_u64(),
        Some(2500 * 2),
        "accounts + registrations"
    );
    // Without paging the same bind is cut at 500: that is what the pages got past.
    let unpaged = slapd.ldapsearch(&[
        "-D",
        SERVICE_DN,
        "-w",
        SERVICE_PASSWORD,
        "-b",
        PEOPLE_DN,
        "(objectClass=inetOrgPerson)",
        "dn",
    ]);
    assert_eq!(unpaged.status.code(), Some(4), "sizeLimitExceeded expected");
    assert_eq!(
        String::from_utf8_lossy(&unpaged.stdout)
            .matches("dn: ")
            .count(),
        500
    );
}

#[test]
fn a_paged_search_the_server_cuts_short_is_an_error_not_a_short_read() {
    // slapd's default: the size limit caps paged searches too. 700 users, 500 arrive, then
    // sizeLimitExceeded on a later page: the run fails rather than plan 200 departures.
    let slapd = server_with(700, Options::default().size_limit_capping_paging(500));
    let ws = Workspace::ldap("dn", &service_bind(&slapd.url(), "page_size: 100"));
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_one_line_error(
        &output,
        &[
            "source people",
            "failed after 500 entries",
            "sizeLimitExceeded",
        ],
    );
    assert_eq!(ws.fingerprint(), None);
    // A page larger than the limit, where the server lets paging past it, gets them all.
    let slapd = server_with(700, Options::default().size_limit(500));
    let ws = Workspace::ldap("dn", &service_bind(&slapd.url(), "page_size: 1000"));
    assert_eq!(changes_of(&ws.plan_json(), "account").len(), 700);
}

#[test]
fn starttls_and_ldaps_with_a_test_ca() {
    let slapd = server_with(5, Options::default().tls());
    let ca = std::fs::read_to_string(slapd.ca_file()).unwrap();
    for (url, extra) in [(slapd.url(), "starttls: true\n"), (slapd.ldaps_url(), "")] {
        // The CA file lives beside the config, as in a config repository: the config
        // may name no file outside it.
        let ws = Workspace::ldap(
            "dn",
            &service_bind(&url, &format!("{extra}ca_file: ca.pem\n")),
        );
        ws.write("ca.pem", &ca);
        let plan = ws.plan_json();
        assert_eq!(changes_of(&plan, "account").len(), 5, "{url}");
    }
    // Without the test CA the certificate is not trusted: the read fails, clearly.
    let ws = Workspace::ldap("dn", &service_bind(&slapd.ldaps_url(), ""));
    let output = ws.run(&["plan"]);
    assert_one_line_error(&output, &["source people", "cannot connect", "certificate"]);
    // The loudly named escape hatch works, and says so on every run.
    let ws = Workspace::ldap(
        "dn",
        &service_bind(
            &slapd.url(),
            "starttls: true\ninsecure_skip_tls_verify: true\n",
        ),
    );
    let output = ws.run(&["plan"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("TLS certificate verification is off"));
}

#[test]
fn a_wrong_password_fails_cleanly_and_is_never_printed() {
    let slapd = server_with(3, Options::default());
    let mut ws = Workspace::ldap("dn", &service_bind(&slapd.url(), ""));
    ws.password = Some("not-the-password-8e1f".to_string());
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_one_line_error(
        &output,
        &["source people", SERVICE_DN, "invalidCredentials"],
    );
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!all.contains("not-the-password-8e1f"), "{all}");
    assert_eq!(
        ws.fingerprint(),
        None,
        "a failed read must not create the store"
    );

    // A missing or empty password is refused before connecting.
    ws.password = None;
    assert_one_line_error(
        &ws.run(&["plan"]),
        &["source people", PASSWORD_ENV, "not set"],
    );
    ws.password = Some(String::new());
    assert_one_line_error(&ws.run(&["plan"]), &["source people", "empty password"]);
}

#[test]
fn the_password_is_in_no_output_of_a_successful_run() {
    let slapd = server_with(3, Options::default());
    let ws = Workspace::ldap("dn", &service_bind(&slapd.url(), ""));
    for args in [
        vec!["validate"],
        vec!["plan", "--format", "json"],
        vec!["plan", "--format", "markdown"],
        vec!["apply", "--auto-approve"],
        vec!["state", "show", "--format", "json"],
        vec!["status", "--format", "json"],
        vec!["export", "--source", "people"],
    ] {
        let output = ws.run(&args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        let all = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            !all.contains(SERVICE_PASSWORD),
            "{args:?} printed the password"
        );
    }
    let store = ws.fingerprint().unwrap();
    assert!(!String::from_utf8_lossy(&store).contains(SERVICE_PASSWORD));
}

#[test]
fn a_password_file_and_an_anonymous_bind() {
    let slapd = server_with(4, Options::default());
    let mut ws = Workspace::ldap(
        "dn",
        &format!(
            "url: {}\nbind_dn: {SERVICE_DN}\npassword_file: pw.txt\nbase_dn: {PEOPLE_DN}\n",
            slapd.url()
        ),
    );
    ws.password = None;
    ws.write("pw.txt", &format!("{SERVICE_PASSWORD}\n"));
    assert_eq!(changes_of(&ws.plan_json(), "account").len(), 4);

    let anonymous = Workspace::ldap(
        "dn",
        &format!(
            "url: {}\nanonymous: true\nbase_dn: {PEOPLE_DN}\n",
            slapd.url()
        ),
    );
    assert_eq!(changes_of(&anonymous.plan_json(), "account").len(), 4);
    // Without bind_dn, anonymous must be asked for: validate says so, with the place.
    let unasked = Workspace::ldap(
        "dn",
        &format!("url: {}\nbase_dn: {PEOPLE_DN}\n", slapd.url()),
    );
    assert_one_line_error(
        &unasked.run(&["validate"]),
        &["sources.yaml:", "anonymous: true"],
    );
}

#[test]
fn a_server_that_is_down_is_a_clear_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let ws = Workspace::ldap("dn", &service_bind(&format!("ldap://127.0.0.1:{port}"), ""));
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_one_line_error(
        &output,
        &["source people", "cannot connect", &port.to_string()],
    );
    assert_eq!(ws.fingerprint(), None);
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepts the connection, reads the bind, never replies.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let ws = Workspace::ldap(
        "dn",
        &service_bind(&format!("ldap://127.0.0.1:{port}"), "timeout_seconds: 1\n"),
    );
    let output = ws.run(&["plan"]);
    assert_one_line_error(
        &output,
        &["source people", "no reply within 1 s", "timeout_seconds"],
    );
}

#[test]
fn a_server_killed_mid_search_fails_the_run_and_leaves_the_store_alone() {
    let slapd = server_with(2000, Options::default());
    // Let the first plan land, so the store has something to lose.
    let direct = Workspace::ldap("dn", &service_bind(&slapd.url(), "page_size: 100"));
    let applied = direct.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let before = direct.fingerprint().unwrap();

    // A relay between registrar and slapd that, once some pages have passed, kills the
    // server (SIGKILL) and so cuts the connection mid-search. It relays every connection
    // (the apply asks the root DSE which change feed the server offers before it reads).
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = relay.local_addr().unwrap().port();
    let server_port = slapd.port();
    let slapd = std::sync::Arc::new(slapd);
    let passed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    thread::spawn(move || {
        for client in relay.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                break;
            };
            let killer = std::sync::Arc::clone(&slapd);
            let passed = std::sync::Arc::clone(&passed);
            thread::spawn(move || {
                let (mut client_in, mut server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || {
                    let _ = std::io::copy(&mut client_in, &mut server_out);
                });
                let (mut server_in, mut client_out) = (server, client);
                let mut buffer = [0u8; 16 * 1024];
                loop {
                    let read = match server_in.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(read) => read,
                    };
                    if client_out.write_all(&buffer[..read]).is_err() {
                        break;
                    }
                    let total = passed.fetch_add(read, std::sync::atomic::Ordering::SeqCst);
                    if total + read > 100 * 1024 {
                        killer.kill();
                        break;
                    }
                }
                let _ = client_out.shutdown(Shutdown::Both);
            });
        }
    });
    let mut ws = Workspace::ldap(
        "dn",
        &service_bind(&format!("ldap://127.0.0.1:{relay_port}"), "page_size: 100"),
    );
    ws.store = Rc::clone(&direct.store);
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_one_line_error(&output, &["source people", "search of", "failed after"]);
    assert_eq!(
        ws.fingerprint().unwrap(),
        before,
        "the store must be untouched"
    );
    // The server really is gone.
    thread::sleep(Duration::from_millis(100));
    assert!(TcpStream::connect(("127.0.0.1", server_port)).is_err());
}

#[test]
fn a_filter_injection_attempt_in_a_directory_value_stays_a_value() {
    let slapd = server_with(3, Options::default());
    // A user whose mail carries filter syntax: the name is that text, literally, for
    // that user only, and a filter holding the escaped value selects exactly that entry
    // on the server and locally.
    slapd.load_ldif(&format!(
        "dn: uid=mallory,{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: mallory\ncn: M\nsn: M\n\
         mail: x*)(uid=*)(|(uid=*@example.com\n\n"
    ));
    let ws = Workspace::ldap("dn", &service_bind(&slapd.url(), ""));
    let plan = ws.plan_json();
    let names: Vec<(&str, &str)> = changes_of(&plan, "registration")
        .iter()
        .map(|c| {
            (
                c["im_name"].as_str().unwrap(),
                c["account"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&(
        "x*)(uid=*)(|(uid=*",
        &*format!("uid=mallory,{PEOPLE_DN}").to_lowercase()
    )));

    let escaped = r"(mail=x\2a\29\28uid=\2a\29\28|\28uid=\2a@example.com)";
    let ws = Workspace::ldap(
        "dn",
        &service_bind(&slapd.url(), &format!("filter: '{escaped}'\n")),
    );
    ws.write(
        "mappings.yaml",
        &MAPPINGS.replace("\"(mail=*@example.com)\"", &format!("'{escaped}'")),
    );
    let plan = ws.plan_json();
    let accounts = changes_of(&plan, "account");
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(changes_of(&plan, "registration").len(), 1);
}

#[test]
fn the_bind_dn_is_a_protected_principal() {
    // The service account is a user in scope with a mail address: it gets no name.
    let slapd = Slapd::start(Options::default());
    slapd.load_ldif(&base_ldif());
    slapd.load_ldif(&people_ldif(1..=2));
    let service_user = format!("uid=svc,{PEOPLE_DN}");
    slapd.load_ldif(&format!(
        "dn: {service_user}\nobjectClass: inetOrgPerson\nuid: svc\ncn: svc\nsn: svc\n\
         mail: svc@example.com\nuserPassword: {SERVICE_PASSWORD}\n\n"
    ));
    let ws = Workspace::ldap(
        "dn",
        &format!("url: {}\nbind_dn: {service_user}\npassword_env: {PASSWORD_ENV}\nbase_dn: {PEOPLE_DN}\n", slapd.url()),
    );
    let plan = ws.plan_json();
    let registered: Vec<&str> = changes_of(&plan, "registration")
        .iter()
        .map(|c| c["im_name"].as_str().unwrap())
        .collect();
    assert_eq!(registered, ["user1", "user2"]);
    let warnings = plan["warnings"].to_string();
    assert!(warnings.contains("protected"), "{warnings}");
}

#[test]
fn a_rootdn_bind_and_a_base_entry_read() {
    // scope: base reads one entry; the suffix entry has no user object type.
    let slapd = server_with(2, Options::default());
    let ws = Workspace::ldap(
        "dn",
        &format!(
            "url: {}\nbind_dn: {ROOT_DN}\npassword_env: {PASSWORD_ENV}\nbase_dn: uid=user1,{PEOPLE_DN}\nscope: base\n",
            slapd.url()
        ),
    );
    let mut ws = ws;
    ws.password = Some(ROOT_PASSWORD.to_string());
    let plan = ws.plan_json();
    assert_eq!(changes_of(&plan, "account").len(), 1);
    let out = ws.run(&["export", "--source", "people"]);
    assert_eq!(
        stdout(&out).matches("\ndn: ").count(),
        1,
        "{}",
        stdout(&out)
    );
}

#[test]
fn discover_reads_a_live_directory_and_never_shows_a_password() {
    // The rootdn reads everything, userPassword included.
    let slapd = server_with(30, Options::default());
    let mut ws = Workspace::ldap(
        "entryUUID",
        &format!(
            "url: {}\nbind_dn: {ROOT_DN}\npassword_env: {PASSWORD_ENV}\nbase_dn: {}\n",
            slapd.url(),
            PEOPLE_DN.trim_start_matches("ou=people,")
        ),
    );
    ws.password = Some(ROOT_PASSWORD.to_string());
    let output = ws.run(&["discover", "--source", "people"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("[top, person, organizationalPerson, inetOrgPerson]"),
        "{text}"
    );
    assert!(text.contains("userPassword"), "{text}");
    assert!(text.contains("<hidden>"), "{text}");
    let all = format!("{text}{}", stderr(&output));
    assert!(!all.contains(SERVICE_PASSWORD), "{all}");
    assert!(!all.contains(ROOT_PASSWORD), "{all}");
    // Its starter validates next to the source and plans the users' names.
    ws.write("mappings.yaml", "");
    ws.write("starter.yaml", &text);
    let plan = ws.plan_json();
    assert_eq!(changes_of(&plan, "registration").len(), 30, "{text}");
}

#[test]
fn a_referral_in_the_subtree_fails_the_read_unless_the_domain_scope_control_is_asked_for() {
    let slapd = server_with(3, Options::default());
    slapd.load_ldif(&format!(
        "dn: ou=elsewhere,{PEOPLE_DN}\nobjectClass: referral\nobjectClass: extensibleObject\n\
         ou: elsewhere\nref: ldap://other.example/ou=elsewhere,dc=example,dc=com\n"
    ));
    let ws = Workspace::ldap("dn", &service_bind(&slapd.url(), ""));
    let before = ws.fingerprint();
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_one_line_error(
        &output,
        &[
            "source people",
            "continuation reference to \"ldap://other.example/ou=elsewhere,dc=example,dc=com??sub\"",
            "referrals are not followed",
        ],
    );
    assert_eq!(ws.fingerprint(), before, "nothing applied");

    // slapd implements Active Directory's domain scope control too: asked for, it sends
    // no reference, and the users of this naming context are read.
    let scoped = Workspace::ldap("dn", &service_bind(&slapd.url(), "domain_scope: true"));
    let plan = scoped.plan_json();
    assert_eq!(changes_of(&plan, "account").len(), 3, "{plan:#}");
}
