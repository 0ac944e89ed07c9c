//! The built binary end to end: exit codes, stdout formats, one-line errors on stderr,
//! and a store left unchanged by every failure. Each store is a real SQLite file in a temp
//! dir or a real PostgreSQL database, as `REGISTRAR_TEST_STORE` says.

use std::path::Path;
use std::process::Command;

mod common;

use common::store::{self, WriterLockHolder};
use common::workspace::Workspace;
use common::{assert_one_line_error, stderr, stdout, BIN};

fn plan_counts(text: &str) -> (u64, u64, u64, u64) {
    let line = text
        .lines()
        .find(|l| l.starts_with("Plan: "))
        .unwrap_or_else(|| panic!("no Plan: line in\n{text}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (numbers[0], numbers[1], numbers[2], numbers[3])
}

#[test]
fn quickstart_plans_adds_and_detailed_exitcode_follows_changes() {
    let ws = Workspace::new();
    let output = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stdout(&output);
    let (add, update, remove, deactivate) = plan_counts(&text);
    assert!(add > 0, "{text}");
    assert_eq!((update, remove, deactivate), (0, 0, 0), "{text}");
    assert!(text.contains("mapping aol-from-mail (aol)"), "{text}");
    assert!(ws.fingerprint().is_none(), "plan must not create the store");

    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert!(
        stdout(&applied).contains("Apply complete"),
        "{}",
        stdout(&applied)
    );

    let again = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    assert_eq!(plan_counts(&stdout(&again)), (0, 0, 0, 0));
}

#[test]
fn saved_plan_applies_exactly_and_a_stale_one_is_refused() {
    let ws = Workspace::new();
    let plan_path = ws.dir.path().join("plan.json");
    let output = ws.run(&[
        "plan",
        "--out",
        plan_path.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    // The JSON goes to the file; stdout keeps the plan for people.
    let printed = stdout(&output);
    assert!(printed.starts_with("registrar plan ("), "{printed}");
    assert!(printed.contains("Plan: 11 to add"), "{printed}");
    for key in [
        "format_version",
        "revision",
        "state_serial",
        "summary",
        "changes",
        "warnings",
    ] {
        assert!(saved.get(key).is_some(), "plan JSON lacks {key}");
    }
    for key in [
        "add",
        "update",
        "remove",
        "deactivate",
        "reactivate",
        "conflicts",
        "excluded",
        "blocked",
    ] {
        assert!(saved["summary"].get(key).is_some(), "summary lacks {key}");
    }
    let adds = saved["summary"]["add"].as_u64().unwrap();
    // The header first, then one change a line.
    let text = std::fs::read_to_string(&plan_path).unwrap();
    let at = |key: &str| text.find(&format!("\n  \"{key}\": ")).unwrap();
    for key in [
        "format_version",
        "state_serial",
        "summary",
        "revision_dirty",
    ] {
        assert!(
            at(key) < at("changes"),
            "{key} after the changes in:\n{text}"
        );
    }
    let change_lines = text.lines().filter(|l| l.starts_with("    {\"action\": "));
    assert_eq!(
        change_lines.count(),
        saved["changes"].as_array().unwrap().len(),
        "{text}"
    );

    let applied = ws.run(&["apply", "--plan", plan_path.to_str().unwrap()]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let state = ws.state_json();
    let accounts = state["accounts"].as_array().unwrap().len() as u64;
    let registrations = state["registrations"].as_array().unwrap();
    assert_eq!(accounts + registrations.len() as u64, adds);
    assert!(registrations
        .iter()
        .all(|r| r["source"] == "ldap" && r["owner"].is_string()));
    assert_eq!(state["serial"], 1);

    // The same plan again: the serial moved on, so it is stale.
    let before = ws.fingerprint();
    let stale = ws.run(&["apply", "--plan", plan_path.to_str().unwrap()]);
    assert_one_line_error(&stale, &["stale", "serial 0", "serial 1"]);
    assert_eq!(
        ws.fingerprint(),
        before,
        "a refused apply changed the store"
    );
}

/// A workspace whose directory is `users` generated people, each with an account and two
/// registrations: a plan of `3 * users` changes.
fn people_workspace(users: usize) -> Workspace {
    let ws = Workspace::new();
    for entry in std::fs::read_dir(ws.config()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    ws.write_config("directory.ldif", &common::ldap_fixture::users_ldif(users));
    ws.write_config(
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
"#,
    );
    ws
}

#[test]
fn a_saved_plan_is_written_as_it_is_read_and_a_break_in_it_applies_nothing() {
    // Thousands of changes: the writing starts well before the reading ends.
    let users = 3000;
    let ws = people_workspace(users);
    let plan_path = ws.dir.path().join("plan.json");
    let planned = ws.run(&["plan", "--out", plan_path.to_str().unwrap()]);
    assert_eq!(planned.status.code(), Some(0), "{}", stderr(&planned));
    let text = std::fs::read_to_string(&plan_path).unwrap();
    let header_end = text.find("\n  \"changes\": [").unwrap();
    assert!(text[..header_end].contains("\"revision_dirty\""));

    // Broken after most of its changes: an error naming the file, and nothing applied,
    // although the changes before the break had been written in the transaction.
    let lines: Vec<&str> = text.lines().collect();
    let change_lines = lines.iter().filter(|l| l.contains("\"action\"")).count();
    assert_eq!(change_lines, 3 * users);
    let cut = lines.len() * 9 / 10;
    let broken = format!(
        "{}\n    {{\"action\": \"add\", \"kind\": 7}}\n  ]\n}}\n",
        lines[..cut].join("\n")
    );
    let broken_path = ws.dir.path().join("broken.json");
    std::fs::write(&broken_path, broken).unwrap();
    let refused = ws.run(&["apply", "--plan", broken_path.to_str().unwrap()]);
    assert_one_line_error(&refused, &["broken.json", "not a registrar plan"]);
    let state = ws.state_json();
    assert_eq!(state["serial"], 0);
    assert_eq!(state["accounts"].as_array().unwrap().len(), 0);
    assert_eq!(state["registrations"].as_array().unwrap().len(), 0);

    // A refusal after the header while the reader waits on a full channel (five times
    // the changes: more than the batches in flight) ends the reading too.
    let at = text.find("\n  \"changes\": [").unwrap();
    let end = text.find("\n  ],\n  \"warnings\"").unwrap();
    let body = &text[at + "\n  \"changes\": [".len()..end];
    let long = format!(
        "{}\n  \"changes\": [{body},{body},{body},{body},{body}\n  ],\n  \"warnings\": []\n}}",
        text[..at].replace("\"state_serial\": 0", "\"state_serial\": 5")
    );
    let long_path = ws.dir.path().join("long.json");
    std::fs::write(&long_path, long).unwrap();
    let stale = ws.run(&["apply", "--plan", long_path.to_str().unwrap()]);
    assert_one_line_error(&stale, &["stale"]);

    // A conflict late in the plan (a name registered behind registrar's back, past the
    // first batches) fails the apply with that change named, and nothing of it lands.
    let late = format!("user{}@im.example.com", users - 10);
    store::execute(
        &ws.store,
        &format!(
            "INSERT INTO accounts (anchor, dn, dn_key, source, status) \
               VALUES ('x', 'cn=x', 'cn=x', NULL, 'active'); \
             INSERT INTO registrations VALUES ('xmpp', '{late}', '{late}', 'x', 'manual', NULL);"
        ),
    );
    let conflict = ws.run(&["apply", "--plan", plan_path.to_str().unwrap()]);
    assert_one_line_error(&conflict, &[&late]);
    let state = ws.state_json();
    assert_eq!(state["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(state["registrations"].as_array().unwrap().len(), 1);
    store::execute(
        &ws.store,
        "DELETE FROM registrations; DELETE FROM accounts;",
    );

    // The plan whole applies; so does the same plan with its keys in another order
    // (changes first: read whole, then written), to the same store.
    let applied = ws.run(&["apply", "--plan", plan_path.to_str().unwrap()]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let streamed = ws.state_json();
    assert_eq!(streamed["accounts"].as_array().unwrap().len(), users);
    assert_eq!(
        streamed["registrations"].as_array().unwrap().len(),
        2 * users
    );

    let other = people_workspace(users);
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sorted = serde_json::to_string(&document).unwrap();
    assert!(sorted.find("\"changes\"") < sorted.find("\"revision_dirty\""));
    let sorted_path = other.dir.path().join("sorted.json");
    std::fs::write(&sorted_path, sorted).unwrap();
    let applied = other.run(&["apply", "--plan", sorted_path.to_str().unwrap()]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert_eq!(other.state_json(), streamed);
    // Both kept the snapshot they imported and the hashes of what they wrote: nothing
    // left to plan, in full or by delta, and no drift.
    for ws in [&ws, &other] {
        let drift = ws.run(&["drift", "--detailed-exitcode"]);
        assert_eq!(drift.status.code(), Some(0), "{}", stdout(&drift));
        let again = ws.run(&["plan", "--mode", "delta", "--detailed-exitcode"]);
        assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
        assert!(stderr(&again).is_empty(), "{}", stderr(&again));
    }
}

#[test]
fn a_case_sensitive_protocol_keeps_the_case_of_its_names_through_a_saved_plan() {
    let ws = Workspace::new();
    let mappings = std::fs::read_to_string(ws.config().join("mappings.yaml")).unwrap();
    ws.write_config(
        "mappings.yaml",
        &mappings.replacen(
            "mappings:\n",
            "mappings:\n  - name: xmpp-from-mail\n    protocol: xmpp\n    value: \"{mail|local_part}\"\n",
            1,
        ),
    );
    ws.write_config(
        "protocols.yaml",
        "protocols:\n  - name: xmpp\n    case_sensitive: true\n",
    );
    let plan_path = ws.dir.path().join("plan.json");
    let planned = ws.run(&[
        "plan",
        "--format",
        "json",
        "--out",
        plan_path.to_str().unwrap(),
    ]);
    assert_eq!(planned.status.code(), Some(0), "{}", stderr(&planned));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let xmpp: Vec<_> = saved["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["protocol"] == "xmpp")
        .collect();
    // A name with capitals carries its key (itself); a lowercase one needs none.
    let bjohnson = xmpp.iter().find(|c| c["im_name"] == "BJohnson").unwrap();
    assert_eq!(bjohnson["im_name_key"], "BJohnson");
    let carla = xmpp.iter().find(|c| c["im_name"] == "carla.diaz").unwrap();
    assert!(carla.get("im_name_key").is_none(), "{carla}");

    let applied = ws.run(&["apply", "--plan", plan_path.to_str().unwrap()]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let again = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));

    // Another spelling is another name on xmpp, and the same name on aol.
    let register = |protocol: &str, name: &str| {
        ws.run(&[
            "state",
            "register",
            "--protocol",
            protocol,
            "--im-name",
            name,
            "--account",
            "cn=Someone Else,ou=People,dc=example,dc=com",
            "--source",
            "manual",
        ])
    };
    let other = register("xmpp", "bjohnson");
    assert_eq!(other.status.code(), Some(0), "{}", stderr(&other));
    assert_one_line_error(&register("aol", "BJOHNSON"), &["already registered"]);
    let state = ws.state_json();
    let xmpp_names: Vec<_> = state["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["protocol"] == "xmpp"
                && r["im_name"]
                    .as_str()
                    .unwrap()
                    .eq_ignore_ascii_case("bjohnson")
        })
        .map(|r| r["im_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(xmpp_names.len(), 2, "{xmpp_names:?}");
    let still = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(still.status.code(), Some(0), "{}", stdout(&still));

    // Folding case again: the managed "BJohnson" is now the name the manual "bjohnson"
    // holds, so it is removed under the key it was stored with, and skipped with a
    // warning.
    std::fs::remove_file(ws.config().join("protocols.yaml")).unwrap();
    let folded = ws.run(&["plan", "--format", "json"]);
    assert_eq!(folded.status.code(), Some(0), "{}", stderr(&folded));
    let folded: serde_json::Value = serde_json::from_slice(&folded.stdout).unwrap();
    let removed: Vec<_> = folded["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["protocol"] == "xmpp" && c["action"] == "remove")
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["im_name_key"], "BJohnson");
    assert!(folded["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["kind"] == "conflict" && w["protocol"] == "xmpp"));
    let applied = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let settled = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(settled.status.code(), Some(0), "{}", stdout(&settled));
}

#[test]
fn a_plan_file_that_cannot_be_written_fails_before_any_output() {
    let ws = Workspace::new();
    let unwritable = ws.dir.path().join("no-such-dir").join("plan.json");
    for format in ["text", "json", "markdown", "ldif"] {
        let output = ws.run(&[
            "plan",
            "--format",
            format,
            "--out",
            unwritable.to_str().unwrap(),
        ]);
        assert_one_line_error(&output, &["cannot write plan", "no-such-dir"]);
        assert!(
            output.stdout.is_empty(),
            "--format {format} printed a plan it could not save:\n{}",
            stdout(&output)
        );
    }
    assert!(ws.fingerprint().is_none());
}

#[test]
fn a_registration_made_after_planning_makes_the_saved_plan_stale() {
    let ws = Workspace::new();
    let plan_path = ws.dir.path().join("plan.json");
    assert_eq!(
        ws.run(&["plan", "--out", plan_path.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let registered = ws.run(&[
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "bjohnson",
        "--account",
        "cn=Someone Else,ou=People,dc=example,dc=com",
        "--source",
        "manual",
    ]);
    assert_eq!(registered.status.code(), Some(0), "{}", stderr(&registered));
    let before = ws.state_json();
    let stale = ws.run(&["apply", "--plan", plan_path.to_str().unwrap()]);
    assert_one_line_error(&stale, &["stale"]);
    assert_eq!(ws.state_json(), before);

    // A fresh plan reports the manual holder as a conflict and leaves it alone.
    let output = ws.run(&["plan", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["summary"]["conflicts"], 1, "{plan:#}");
    let conflict = &plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "conflict")
        .unwrap();
    assert_eq!(
        conflict["held_by"],
        "cn=someone else,ou=people,dc=example,dc=com"
    );
    assert!(!plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["im_name"] == "bjohnson"));
}

#[test]
fn state_register_records_unmanaged_rows_and_refuses_a_taken_name() {
    let ws = Workspace::new();
    let args = [
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "Helpdesk",
        "--account",
        "cn=Help Desk,ou=People,dc=example,dc=com",
        "--source",
        "self",
    ];
    assert_eq!(ws.run(&args).status.code(), Some(0));
    let state = ws.state_json();
    let registration = &state["registrations"][0];
    assert_eq!(registration["protocol"], "aol");
    assert_eq!(registration["im_name"], "Helpdesk");
    assert_eq!(registration["source"], "self");
    assert!(registration["owner"].is_null());
    assert_eq!(
        registration["account"],
        "cn=help desk,ou=people,dc=example,dc=com"
    );
    assert_eq!(state["accounts"][0]["managed"], false);

    let before = ws.fingerprint();
    let taken = ws.run(&args);
    assert_one_line_error(&taken, &["already registered", "Helpdesk"]);
    assert_eq!(ws.fingerprint(), before);
}

#[test]
fn broken_yaml_is_one_located_line_and_leaves_the_state_alone() {
    let ws = Workspace::new();
    assert_eq!(ws.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    let before = ws.fingerprint();
    ws.write_config(
        "broken.yaml",
        "mappings:\n  - name: x\n    protocol: aol\n    value: [unclosed\n",
    );
    for command in [&["validate"][..], &["plan"], &["apply", "--auto-approve"]] {
        let output = ws.run(command);
        assert_one_line_error(&output, &["broken.yaml:"]);
    }
    ws.write_config(
        "broken.yaml",
        "mappings:\n  - name: x\n    protocol: aol\n    value: \"{mail}\"\n    colour: red\n",
    );
    assert_one_line_error(
        &ws.run(&["validate"]),
        &["broken.yaml:5:5:", "unknown field `colour`"],
    );
    ws.write_config(
        "broken.yaml",
        "mappings:\n  - name: x\n    protocol: aol\n    value: \"{mail}\"\n    when: \"(mail=*\"\n",
    );
    assert_one_line_error(&ws.run(&["plan"]), &["broken.yaml:5:", "invalid filter"]);
    assert_eq!(ws.fingerprint(), before);
}

#[test]
fn unknown_source_and_duplicate_names_name_the_files() {
    let ws = Workspace::new();
    ws.write_config("extra.yaml", "mappings:\n  - name: sametime\n    protocol: st\n    value: \"{uid}\"\n    sources: [payroll]\n");
    assert_one_line_error(
        &ws.run(&["validate"]),
        &["extra.yaml:5:", "unknown source \"payroll\"", "known: corp"],
    );
    ws.write_config(
        "extra.yaml",
        "mappings:\n  - name: lcs-sip\n    protocol: lcs\n    value: \"{uid}\"\n",
    );
    assert_one_line_error(
        &ws.run(&["plan"]),
        &[
            "extra.yaml:2:",
            "duplicate mapping name \"lcs-sip\"",
            "mappings.yaml:",
        ],
    );
    assert!(ws.fingerprint().is_none());
}

#[test]
fn broken_ldif_names_file_and_line_and_applies_nothing() {
    let ws = Workspace::new();
    assert_eq!(ws.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    let before = ws.fingerprint();
    let ldif = ws.config().join("corp.ldif");
    let mut text = std::fs::read_to_string(&ldif).unwrap();
    text.push_str("\ndn: cn=Broken,ou=People,dc=example,dc=com\nobjectClass: person\nthis line has no colon\n");
    std::fs::write(&ldif, text).unwrap();
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_one_line_error(&output, &["source corp", "corp.ldif:"]);
    assert_eq!(ws.fingerprint(), before);
}

#[test]
fn a_blocked_plan_needs_allow_deletes() {
    let ws = Workspace::new();
    assert_eq!(ws.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    // Renaming a mapping without renamed_from and dropping another removes every name.
    ws.write_config(
        "mappings.yaml",
        "mappings:\n  - name: aol-renamed\n    protocol: aol\n    value: \"{mail|lower|local_part}\"\n    when: \"(mail=*@example.com)\"\npolicy:\n  max_deletes: 1\n",
    );
    let before = ws.fingerprint();
    let plan = ws.run(&["plan"]);
    assert!(stdout(&plan).contains("BLOCKED"), "{}", stdout(&plan));
    let refused = ws.run(&["apply", "--auto-approve"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("--allow-deletes"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(ws.fingerprint(), before);
    let allowed = ws.run(&["apply", "--auto-approve", "--allow-deletes"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    let state = ws.state_json();
    let owners: Vec<&str> = state["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["owner"].as_str())
        .collect();
    assert!(
        !owners.is_empty() && owners.iter().all(|o| *o == "aol-renamed"),
        "{owners:?}"
    );
}

#[test]
fn a_second_apply_while_one_holds_the_store_fails_clearly() {
    let ws = Workspace::new();
    // Create the store, then hold its write lock as a concurrent apply would.
    assert_eq!(
        ws.run(&[
            "state",
            "register",
            "--protocol",
            "aol",
            "--im-name",
            "x",
            "--account",
            "cn=x",
            "--source",
            "manual"
        ])
        .status
        .code(),
        Some(0)
    );
    // (Read before holding: on SQLite, a file this process opens and closes would drop
    // the holder's POSIX locks.)
    let before = ws.fingerprint();
    let holder = WriterLockHolder::hold(&ws.store);
    let started = std::time::Instant::now();
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_one_line_error(&output, &["locked", "try again"]);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "it should wait briefly first"
    );
    holder.release();
    assert_eq!(
        ws.fingerprint(),
        before,
        "a locked-out apply changed the store"
    );
    assert_eq!(ws.run(&["apply", "--auto-approve"]).status.code(), Some(0));
}

#[test]
fn markdown_has_the_summary_outside_details() {
    let ws = Workspace::new();
    let output = ws.run(&["plan", "--format", "markdown"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("**registrar plan**: "), "{first}");
    assert!(first.contains("to add"), "{first}");
    let details = text.find("<details>").expect("a details block");
    assert!(
        text[details..].contains("Mapping `aol-from-mail` (aol)"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("</details>"));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let output = Command::new(BIN).arg("schema").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/registrar.schema.json"),
    )
    .unwrap();
    assert_eq!(stdout(&output), committed, "schemas/registrar.schema.json is stale: run `registrar schema > schemas/registrar.schema.json`");
}

#[test]
fn missing_config_directory_is_a_clear_error() {
    let ws = Workspace::new();
    let output = Command::new(BIN)
        .args(["--config", "/nonexistent/registrar", "--state", &ws.state()])
        .arg("plan")
        .output()
        .unwrap();
    assert_one_line_error(&output, &["/nonexistent/registrar"]);
}

#[test]
fn every_example_config_validates() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut validated = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let dir = entry.unwrap().path();
        let has_yaml = dir.is_dir()
            && std::fs::read_dir(&dir)
                .unwrap()
                .any(|f| f.unwrap().path().extension().is_some_and(|e| e == "yaml"));
        if !has_yaml {
            continue;
        }
        let output = Command::new(BIN)
            .arg("--config")
            .arg(&dir)
            .arg("validate")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {}",
            dir.display(),
            stderr(&output)
        );
        validated += 1;
    }
    assert!(validated >= 1, "no example config found");
}

#[test]
fn group_and_protocol_rules_are_checked_with_their_location() {
    let ws = Workspace::new();
    let cases = [
        (
            "groups:\n  - name: \"{cn}\"\n    kind: org_unit\n    source: corp\n    dn: ou=People,dc=example,dc=com\n",
            &["extra.yaml:2:", "org_unit's name is a plain name"][..],
        ),
        (
            "groups:\n  - name: staff\n    kind: distribution_list\n    source: corp\n",
            &["extra.yaml:2:", "a distribution_list needs a filter"][..],
        ),
        (
            "groups:\n  - name: sales\n    kind: org_unit\n    source: payroll\n    dn: ou=Sales,dc=example,dc=com\n",
            &["extra.yaml:", "unknown source \"payroll\""][..],
        ),
        (
            "protocols:\n  - name: aol\n    allowed: \"^[a-z\"\n",
            &["extra.yaml:3:", "invalid regular expression"][..],
        ),
        (
            "protocols:\n  - name: aol\n    max_length: 0\n",
            &["extra.yaml:", "max_length must be at least 1"][..],
        ),
        (
            "protocols:\n  - name: aol\n  - name: aol\n",
            &["extra.yaml:3:", "duplicate protocol name \"aol\""][..],
        ),
    ];
    for (yaml, needles) in cases {
        ws.write_config("extra.yaml", yaml);
        assert_one_line_error(&ws.run(&["validate"]), needles);
    }
    assert!(ws.fingerprint().is_none());
}

#[test]
fn schedules_need_a_valid_cron_expression() {
    let ws = Workspace::new();
    for cron in ["*/15 * * * *", "30 */15 * * * *", "0 3 * * MON-FRI"] {
        ws.write_config(
            "schedules.yaml",
            &format!("schedules:\n  - name: tick\n    cron: \"{cron}\"\n    action: plan\n"),
        );
        let output = ws.run(&["validate"]);
        assert_eq!(output.status.code(), Some(0), "{cron}: {}", stderr(&output));
    }
    for (cron, needle) in [
        ("61 * * * *", "61 * * * *"),
        ("* * *", "* * *"),
        ("every day", "every day"),
    ] {
        ws.write_config(
            "schedules.yaml",
            &format!("schedules:\n  - name: tick\n    cron: \"{cron}\"\n    action: plan\n"),
        );
        assert_one_line_error(
            &ws.run(&["validate"]),
            &["schedules.yaml:3:", "invalid cron expression", needle],
        );
    }
}

#[test]
fn status_shows_runs_and_when_schedules_fire_next() {
    let ws = Workspace::new();
    ws.write_config(
        "schedules.yaml",
        "schedules:\n  - name: nightly-drift\n    cron: \"0 3 * * *\"\n    action: drift\n  - name: every-minute\n    cron: \"* * * * *\"\n    action: plan\n",
    );
    let before = ws.run(&["status", "--format", "json"]);
    assert_eq!(before.status.code(), Some(0), "{}", stderr(&before));
    let before: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    assert_eq!(before["runs"].as_array().unwrap().len(), 0);
    assert!(
        ws.fingerprint().is_none(),
        "status must not create the store"
    );

    assert_eq!(ws.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    let output = ws.run(&["status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["state_serial"], 1);
    let runs = status["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["command"], "apply", "--auto-approve");
    assert_eq!(runs[0]["serial_after"], 1);
    assert!(runs[0]["added"].as_u64().unwrap() > 0);
    let schedules = status["schedules"].as_array().unwrap();
    let names: Vec<&str> = schedules
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["every-minute", "nightly-drift"]);
    let nightly = schedules[1]["next"].as_str().unwrap();
    assert!(nightly.ends_with("T03:00:00Z"), "{nightly}");
    let minute = schedules[0]["next"].as_str().unwrap();
    assert!(minute.ends_with(":00Z"), "{minute}");

    let text = stdout(&ws.run(&["status"]));
    assert!(
        text.contains("nightly-drift \"0 3 * * *\" drift: next "),
        "{text}"
    );
    assert!(text.contains("apply [applied] serial 0→1"), "{text}");
}

#[test]
fn state_show_lists_groups_with_their_members() {
    let ws = Workspace::new();
    ws.write_config(
        "groups.yaml",
        "groups:\n  - name: \"{cn}\"\n    kind: distribution_list\n    source: corp\n    filter: \"(objectClass=groupOfNames)\"\n",
    );
    assert_eq!(ws.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    let state = ws.state_json();
    let groups = state["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{state:#}");
    assert_eq!(groups[0]["name"], "Staff");
    assert_eq!(groups[0]["owner"], "{cn}");
    assert_eq!(
        groups[0]["members"],
        serde_json::json!([
            "5f0c9a1e-0001-4c1e-9a51-000000000001",
            "5f0c9a1e-0002-4c1e-9a51-000000000002"
        ])
    );
    let text = stdout(&ws.run(&["state", "show"]));
    assert!(
        text.contains("Staff [distribution_list] 2 members"),
        "{text}"
    );
}

/// A source of users (mail, a sip address, a password, a photo), a group and an org unit.
const DISCOVER_LDIF: &str = "version: 1

dn: ou=People,dc=example,dc=com
objectClass: top
objectClass: organizationalUnit
ou: People

dn: cn=Ann Lee,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: organizationalPerson
objectClass: person
cn: Ann Lee
sn: Lee
mail: Ann.Lee@example.com
msRTCSIP-PrimaryUserAddress: sip:ann@example.com
userPassword: Hunter2-s3cr3t
jpegPhoto:: /9j/4AAQSkZJRgABAQ==

dn: cn=Bob Ray,ou=People,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: inetOrgPerson
cn: Bob Ray
sn: Ray
mail: bob@example.com
mail: bob@other.example
msRTCSIP-PrimaryUserAddress: SIP:bob@example.com
userPassword: Hunter2-s3cr3t

dn: cn=Cy Vo,ou=People,dc=example,dc=com
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: inetOrgPerson
cn: Cy Vo
sn: Vo
mail: cy@other.example
userPassword:: SHVudGVyMi1zM2NyM3Q=

dn: cn=staff,ou=People,dc=example,dc=com
objectClass: top
objectClass: groupOfNames
cn: staff
member: cn=Ann Lee,ou=People,dc=example,dc=com
member: cn=Bob Ray,ou=People,dc=example,dc=com
";

/// The row of the comment table in `text` whose first cell is `first`, split on spaces.
fn table_row<'t>(text: &'t str, first: &str) -> Vec<&'t str> {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.len() > 1 && cells[0] == "#" && cells[1] == first)
        .unwrap_or_else(|| panic!("no row {first:?} in\n{text}"))
}

#[test]
fn discover_counts_a_source_hides_secrets_and_its_starter_validates_and_plans() {
    let ws = Workspace::new();
    for entry in std::fs::read_dir(ws.config()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    ws.write_config(
        "sources.yaml",
        "sources:\n  - name: people\n    ldif:\n      path: people.ldif\n",
    );
    ws.write_config("people.ldif", DISCOVER_LDIF);

    let output = ws.run(&["discover", "--source", "people"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    for shown in [&text, &stderr(&output)] {
        assert!(!shown.contains("Hunter2"), "{shown}");
    }
    assert!(text.starts_with("# Source people: 5 entries."), "{text}");
    // The chains, however the entries ordered their classes, with `top` implied.
    let users = text
        .lines()
        .find(|l| l.contains("[top, person, organizationalPerson, inetOrgPerson]"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(users.ends_with("3  user"), "{users}");
    assert!(text.contains("[top, groupOfNames]"), "{text}");
    // The attributes: entries, values, sample.
    assert_eq!(
        table_row(&text, "mail"),
        ["#", "mail", "3", "4", "Ann.Lee@example.com"]
    );
    assert_eq!(
        table_row(&text, "userPassword"),
        ["#", "userPassword", "3", "3", "<hidden>"]
    );
    assert_eq!(
        table_row(&text, "jpegPhoto"),
        ["#", "jpegPhoto", "1", "1", "<13", "bytes>"]
    );
    assert_eq!(table_row(&text, "member")[2..4], ["1", "2"]);
    assert!(text.contains("\n# starter config\n"), "{text}");

    // JSON: the same data, the starter as a string, and still no password.
    let json_output = ws.run(&["discover", "--source", "people", "--format", "json"]);
    assert!(!stdout(&json_output).contains("Hunter2"));
    let json = common::json(&json_output);
    assert_eq!(json["source"], "people");
    assert_eq!(json["entries"], 5);
    let mail = json["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["attribute"] == "mail")
        .unwrap();
    assert_eq!((&mail["entries"], &mail["values"]), (&3.into(), &4.into()));
    let starter = json["starter"].as_str().unwrap();
    assert!(text.ends_with(starter), "{text}\n---\n{starter}");

    // The whole text output is a YAML file: next to the source it validates and plans
    // registrations from the suggested mappings.
    ws.write_config("starter.yaml", &text);
    let validate = ws.run(&["validate"]);
    assert_eq!(validate.status.code(), Some(0), "{}", stderr(&validate));
    let plan = common::json(&ws.run(&["plan", "--format", "json"]));
    let mut registrations: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "registration")
        .map(|c| {
            (
                c["mapping"].as_str().unwrap().to_string(),
                c["im_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    registrations.sort();
    // Cy's mail is not in the most common domain, which the aol mapping's `when` names.
    assert!(text.contains("when: \"(mail=*@example.com)\""), "{text}");
    let expected = [
        ("aol-from-mail", "ann.lee"),
        ("aol-from-mail", "bob"),
        ("lcs-from-msrtcsip-primaryuseraddress", "ann@example.com"),
        ("lcs-from-msrtcsip-primaryuseraddress", "bob@example.com"),
    ];
    assert_eq!(
        registrations,
        expected.map(|(m, n)| (m.to_string(), n.to_string())),
        "{plan}"
    );
}

#[test]
fn discover_starter_loads_next_to_a_config_with_mappings_and_object_types() {
    let ws = Workspace::new();
    ws.write_config(
        "types.yaml",
        "object_types:\n  user: [[top, person]]\n  group: [[top, groupOfNames]]\n",
    );
    let output = ws.run(&["discover", "--source", "corp"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("object_types is set in"), "{text}");
    assert!(text.contains("already mapped by aol-from-mail"), "{text}");
    ws.write_config("starter.yaml", &text);
    let validate = ws.run(&["validate"]);
    assert_eq!(validate.status.code(), Some(0), "{}", stderr(&validate));
}

#[test]
fn discover_an_unknown_source_is_one_line_naming_the_known_ones() {
    let ws = Workspace::new();
    let output = ws.run(&["discover", "--source", "nope"]);
    assert_one_line_error(&output, &["no source named \"nope\"", "(sources: corp)"]);
    assert!(stdout(&output).is_empty());
}

#[test]
fn plan_says_what_matched_and_warns_of_an_attribute_no_entry_holds() {
    let ws = Workspace::new();
    let plan = common::json(&ws.run(&["plan", "--format", "json"]));
    let sources = &plan["sources"];
    assert_eq!(sources["entries_read"]["corp"], 11, "{plan:#}");
    assert_eq!(sources["mappings"]["aol-from-mail"], 4, "{plan:#}");
    assert_eq!(sources["exclusions"]["service-accounts"], 1, "{plan:#}");
    assert_eq!(sources["disabled_when"], 1, "{plan:#}");
    assert_eq!(sources["attribute_holders"]["corp"]["mail"], 7, "{plan:#}");
    let unheld = |plan: &serde_json::Value| -> Vec<String> {
        plan["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["kind"] == "unheld_attribute")
            .map(|w| w["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(unheld(&plan).is_empty(), "{plan:#}");

    // A one-letter typo in a mapping's filter: nothing matches, and the plan says why.
    let mappings = ws.config().join("mappings.yaml");
    let text = std::fs::read_to_string(&mappings).unwrap();
    std::fs::write(&mappings, text.replace("(mail=*@", "(mial=*@")).unwrap();
    let plan = common::json(&ws.run(&["plan", "--format", "json"]));
    assert_eq!(plan["sources"]["mappings"]["aol-from-mail"], 0, "{plan:#}");
    let warning = "mapping aol-from-mail: filter (mial=*@example.com) reads mial, which no entry of source corp has";
    assert_eq!(unheld(&plan), [warning]);
    let text = stdout(&ws.run(&["plan"]));
    assert!(text.contains(&format!("  ! {warning}")), "{text}");
    assert!(
        text.contains("\nsources\n  source corp: 11 entries read\n  mapping aol-from-mail: 0 entries matched\n"),
        "{text}"
    );
    let markdown = stdout(&ws.run(&["plan", "--format", "markdown"]));
    assert!(
        markdown.contains("- mapping aol-from-mail: 0 entries matched"),
        "{markdown}"
    );
}
