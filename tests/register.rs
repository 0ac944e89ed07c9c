//! `state register`, the administrator's writer of manual and self registrations, keeps
//! rule 9: a protected principal (a `policy.protected_principals` entry, or an LDAP
//! source's `bind_dn`) is refused with one line naming it and the rule, for `manual` and
//! `self` alike, and the store is left as it was; `--allow-protected` records it, says so
//! in the run history, and `drift` keeps reporting the row. Messages name the DN.

mod common;

use common::workspace::Workspace;
use common::{assert_one_line_error, json, stderr, stdout};

/// The quickstart's policy entry.
const POLICY_PRINCIPAL: &str = "cn=svc-immanager,ou=People,dc=example,dc=com";
/// The bind DN of the LDAP source the tests add.
const BIND_DN: &str = "cn=svc-registrar,ou=Service,dc=example,dc=com";

fn register(ws: &Workspace, account: &str, source: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "selfie2",
        "--account",
        account,
        "--source",
        source,
    ];
    args.extend_from_slice(extra);
    ws.run(&args)
}

/// The quickstart plus an LDAP source binding as [`BIND_DN`] (never contacted:
/// `state register` reads only the config).
fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write_config(
        "directory.yaml",
        &format!(
            "sources:\n  - name: ad\n    ldap:\n      url: ldap://127.0.0.1:9\n      \
             bind_dn: {BIND_DN}\n      password_env: UNUSED_PASSWORD\n      \
             base_dn: dc=example,dc=com\n"
        ),
    );
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(
        applied.status.code(),
        Some(1),
        "the LDAP source is down on purpose"
    );
    ws
}

#[test]
fn protected_principals_are_refused_for_manual_and_self_and_the_store_is_unchanged() {
    let ws = workspace();
    // A store with something in it, so that "unchanged" means something.
    let ok = register(&ws, "cn=Someone,ou=People,dc=example,dc=com", "manual", &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let before = ws.fingerprint().unwrap();
    for (account, rule) in [
        (POLICY_PRINCIPAL, "(policy.protected_principals)"),
        // Another spelling of the same DN is the same principal.
        (
            "CN=svc-immanager, OU=People, DC=example, DC=com",
            "(policy.protected_principals)",
        ),
        (BIND_DN, "(the bind_dn of LDAP source ad)"),
    ] {
        for source in ["manual", "self"] {
            let output = register(&ws, account, source, &[]);
            assert_one_line_error(
                &output,
                &[
                    account,
                    "is a protected principal",
                    rule,
                    "nothing was recorded",
                    "--allow-protected",
                ],
            );
            assert_eq!(ws.fingerprint().unwrap(), before, "{account} {source}");
        }
    }
}

#[test]
fn allow_protected_records_it_says_so_and_drift_still_reports_it() {
    let ws = workspace();
    let output = register(&ws, POLICY_PRINCIPAL, "self", &["--allow-protected"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!(
            "Registered aol name \"selfie2\" to {POLICY_PRINCIPAL} (self)."
        )),
        "{}",
        stdout(&output)
    );
    assert!(
        stderr(&output).contains("is a protected principal (policy.protected_principals)"),
        "{}",
        stderr(&output)
    );
    let state = ws.state_json();
    let registration = &state["registrations"][0];
    assert_eq!(registration["im_name"], "selfie2");
    assert_eq!(registration["source"], "self");

    let status = json(&ws.run(&["status", "--format", "json"]));
    let run = status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|run| {
            run["command"]
                .as_str()
                .is_some_and(|c| c.contains("state register"))
        })
        .unwrap_or_else(|| panic!("no state register run in {status}"));
    assert_eq!(
        run["command"],
        "state register --source self --allow-protected"
    );
    assert!(
        run["message"]
            .as_str()
            .is_some_and(|m| m.contains("protected principal") && m.contains(POLICY_PRINCIPAL)),
        "{run}"
    );

    // drift (against the quickstart alone, the LDAP source removed) lists the holding.
    std::fs::remove_file(ws.config().join("directory.yaml")).unwrap();
    let drift = ws.run(&["drift", "--format", "json"]);
    assert_eq!(drift.status.code(), Some(0), "{}", stderr(&drift));
    let report: serde_json::Value = serde_json::from_slice(&drift.stdout).unwrap();
    let holdings = report["protected_holdings"].to_string();
    assert!(holdings.contains("selfie2"), "{report}");
}

#[test]
fn messages_name_the_account_by_its_dn() {
    let ws = Workspace::new();
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    // The quickstart's accounts are anchored on entryUUID: the DN is what a person knows.
    let barry = "cn=Barry Johnson,ou=People,dc=example,dc=com";
    let output = register(&ws, barry, "manual", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let said = stdout(&output);
    assert!(
        said.contains(&format!("to {barry} (manual, anchor ")),
        "{said}"
    );
    let again = register(
        &ws,
        "cn=Someone Else,ou=People,dc=example,dc=com",
        "self",
        &[],
    );
    assert_one_line_error(
        &again,
        &["\"selfie2\" is already registered to", barry, "(anchor "],
    );
}
