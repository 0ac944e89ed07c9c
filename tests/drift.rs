//! `registrar drift` on real stores (SQLite files or PostgreSQL databases, as
//! `REGISTRAR_TEST_STORE` says) edited behind `registrar`'s back: outside
//! edits, deletions and forged rows, protected principals' registrations, orphans,
//! pending directory changes, the detailed exit code, and the HTML report as headless
//! Chromium renders it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::store;
use common::workspace::Workspace;
use common::{assert_one_line_error, json, stderr, stdout};

/// The quickstart workspace, applied.
fn applied() -> Workspace {
    let ws = Workspace::new();
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    ws
}

/// Runs SQL on the store directly, as an admin with a SQL client would.
fn sql(ws: &Workspace, sql: &str) {
    store::execute(&ws.store, sql);
}

fn report(ws: &Workspace) -> serde_json::Value {
    json(&ws.run(&["drift", "--format", "json"]))
}

fn kinds(report: &serde_json::Value, section: &str) -> Vec<String> {
    report[section]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            format!(
                "{} {} {}",
                row["kind"].as_str().unwrap_or(""),
                row["key"].as_str().unwrap_or(""),
                row["change"]
                    .as_str()
                    .or(row["owner"].as_str())
                    .unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn a_store_as_applied_has_no_drift() {
    let ws = applied();
    let output = ws.run(&["drift", "--detailed-exitcode"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("No drift"), "{}", stdout(&output));
    let report = report(&ws);
    assert_eq!(report["outside_edits"], serde_json::json!([]));
    assert_eq!(report["pending"]["changes"], serde_json::json!([]));
}

#[test]
fn rows_edited_deleted_and_forged_behind_registrars_back_are_reported() {
    let ws = applied();
    sql(
        &ws,
        "UPDATE registrations SET account = (SELECT anchor FROM accounts WHERE dn LIKE 'cn=Carla%') \
           WHERE im_name = 'bjohnson';
         UPDATE accounts SET title = 'Owner' WHERE dn LIKE 'cn=Carla%';
         DELETE FROM registrations WHERE im_name = 'cdiaz';
         INSERT INTO registrations (protocol, im_name_key, im_name, account, source, owner)
           SELECT 'aol', 'forged', 'forged', anchor, 'ldap', 'aol-from-mail' FROM accounts
           WHERE dn LIKE 'cn=Carla%';",
    );
    let output = ws.run(&["drift", "--detailed-exitcode"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let report = report(&ws);
    let edits = kinds(&report, "outside_edits");
    assert!(
        edits
            .iter()
            .any(|e| e.starts_with("account ") && e.ends_with(" edited")),
        "{edits:?}"
    );
    assert!(
        edits.contains(&"registration aol:bjohnson edited".to_string()),
        "{edits:?}"
    );
    assert!(
        edits.contains(&"registration aol:cdiaz deleted".to_string()),
        "{edits:?}"
    );
    assert!(
        edits.contains(&"registration aol:forged added".to_string()),
        "{edits:?}"
    );
    assert_eq!(edits.len(), 4, "{edits:?}");
    // The plan at the applied revision repairs them: they are pending changes too.
    let pending = report["pending"]["changes"].as_array().unwrap();
    assert!(
        pending
            .iter()
            .any(|c| c["im_name"] == "cdiaz" && c["action"] == "add"),
        "{pending:?}"
    );
    assert!(pending
        .iter()
        .any(|c| c["im_name"] == "forged" && c["action"] == "remove"));

    // After an apply, the store is as registrar left it again.
    assert_eq!(ws.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    assert_eq!(
        ws.run(&["drift", "--detailed-exitcode"]).status.code(),
        Some(0)
    );
}

#[test]
fn protected_principals_holding_names_orphans_and_unmanaged_registrations() {
    let ws = applied();
    // What a self-registration page that fell back to its service account leaves (by
    // hand, state register records it only when told to).
    let output = ws.run(&[
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "helpdesk",
        "--account",
        "cn=svc-immanager,ou=People,dc=example,dc=com",
        "--source",
        "self",
        "--allow-protected",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = ws.run(&[
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "visitor",
        "--account",
        "cn=Visitor,ou=Guests,dc=example,dc=com",
        "--source",
        "manual",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // A mapping renamed in the store (as an old tool would): its owner is unknown.
    sql(
        &ws,
        "UPDATE registrations SET owner = 'retired-mapping' WHERE im_name = 'bjohnson';",
    );
    let report = report(&ws);
    let held: Vec<&str> = report["protected_holdings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["im_name"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["helpdesk"]);
    assert_eq!(
        kinds(&report, "orphans"),
        ["registration aol:bjohnson retired-mapping"]
    );
    let unmanaged: Vec<&str> = report["unmanaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["im_name"].as_str().unwrap())
        .collect();
    assert_eq!(unmanaged, ["helpdesk", "visitor"]);
    let text = stdout(&ws.run(&["drift"]));
    assert!(
        text.contains("registrations held by protected principals"),
        "{text}"
    );
    assert!(text.contains("owner retired-mapping"), "{text}");
}

#[test]
fn directory_changes_since_the_last_apply_are_pending() {
    let ws = applied();
    let ldif = ws.config().join("corp.ldif");
    let mut text = std::fs::read_to_string(&ldif).unwrap();
    text.push_str(
        "\ndn: cn=New Hire,ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: inetOrgPerson\ncn: New Hire\nsn: Hire\n\
         mail: new.hire@example.com\nentryUUID: 5f0c9a1e-00ff-4c1e-9a51-0000000000ff\n",
    );
    std::fs::write(&ldif, text).unwrap();
    let report = report(&ws);
    assert_eq!(report["outside_edits"], serde_json::json!([]));
    let pending = report["pending"]["changes"].as_array().unwrap();
    assert!(
        pending
            .iter()
            .any(|c| c["im_name"] == "new.hire" && c["action"] == "add"),
        "{pending:?}"
    );
    let markdown = stdout(&ws.run(&["drift", "--format", "markdown"]));
    assert!(markdown.contains("#### Pending changes"), "{markdown}");
    assert!(markdown.contains("new.hire"), "{markdown}");
}

#[test]
fn drift_without_a_state_file_is_one_clear_line() {
    let ws = applied();
    store::remove(&ws.store);
    assert_one_line_error(
        &ws.run(&["drift"]),
        &[&ws.state_named(), "does not exist", "nothing was applied"],
    );
}

/// Chromium, installed by ci/test (package `chromium`).
fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect(
            "chromium not found: install it with apt-get install -y chromium (ci/test does this)",
        )
}

fn headless(args: &[&str], profile: &Path) -> Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_html_report_renders_in_a_browser_with_hostile_values_as_text() {
    let ws = applied();
    let output = ws.run(&[
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "<script>document.title='pwned'</script>",
        "--account",
        "cn=svc-immanager,ou=People,dc=example,dc=com",
        "--source",
        "self",
        "--allow-protected",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    sql(&ws, "DELETE FROM registrations WHERE im_name = 'cdiaz';");
    let page = ws.dir.path().join("drift.html");
    let output = ws.run(&[
        "drift",
        "--format",
        "html",
        "--out",
        page.to_str().unwrap(),
        "--detailed-exitcode",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external assets"
    );

    let profile = ws.dir.path().join("chromium-profile");
    let url = format!("file://{}", page.display());
    let dom = headless(&["--dump-dom", &url], &profile);
    let dom_text = stdout(&dom);
    assert!(
        dom_text.contains("<title>registrar drift: drift found</title>"),
        "{}\n{dom_text}",
        stderr(&dom)
    );
    // The hostile name is text in a cell, not a script: the title was not rewritten.
    assert!(!dom_text.contains("pwned</title>"));
    assert!(
        dom_text.contains("&lt;script&gt;document.title="),
        "{dom_text}"
    );
    assert!(!dom_text.contains("<script>document"));
    // The cards carry the counts; the sections are there with their rows.
    assert!(
        dom_text.contains("data-count=\"1\"><b>1</b>outside edits"),
        "{dom_text}"
    );
    assert!(
        dom_text.contains("data-count=\"1\"><b>1</b>protected holdings"),
        "{dom_text}"
    );
    assert!(dom_text.contains("aol:cdiaz"));
    assert!(dom_text.contains("deleted outside registrar"));

    // And it paints: a screenshot of the page is a real image.
    let shot = ws.dir.path().join("drift.png");
    let painted = headless(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600",
            &url,
        ],
        &profile,
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|_| panic!("no screenshot: {}", stderr(&painted)));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "a blank page would compress to almost nothing ({} bytes)",
        png.len()
    );
}
