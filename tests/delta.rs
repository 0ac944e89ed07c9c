//! `--mode delta` end to end with the built binary: the kept snapshot after an apply (one
//! per ldif source, dropped with the source), delta plans and applies (saved or not), the
//! first delta run without a kept snapshot,
//! and each refusal (an imported file edited, removed or passed in name order, the
//! content file edited or swapped, a change that does not apply, a saved plan whose
//! files changed before apply): one line on stderr, exit 1, the store unchanged.
//! Also when a delta plan is made by region (quietly) and when it reads every kept entry
//! instead (with a note): the store written since the last apply, standing facts
//! unreadable. The store is on the backend of the run (`REGISTRAR_TEST_STORE`).

use std::path::PathBuf;
use std::process::Output;

mod common;

use common::store::{self, TestStore};
use common::{assert_one_line_error, registrar, stderr, stdout};

const PEOPLE: &str = "\
version: 1

dn: ou=People,dc=example,dc=com
objectClass: organizationalUnit
ou: People

dn: cn=Ann Lee,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
cn: Ann Lee
entryUUID: uuid-ann
mail: ann.lee@example.com

dn: cn=Bob Ode,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
cn: Bob Ode
entryUUID: uuid-bob
mail: bob.ode@example.com
";

const CONFIG: &str = "\
sources:
  - name: hr
    anchor: entryUUID
    ldif:
      path: ../people.ldif
      changes: ../changes/*.ldif
accounts:
  profile:
    display_name: \"{cn}\"
mappings:
  - name: aol-from-mail
    protocol: aol
    value: \"{mail|lower|local_part}\"
";

const HIRE: &str = "\
version: 1

dn: cn=Cy Park,ou=People,dc=example,dc=com
changetype: add
objectClass: inetOrgPerson
cn: Cy Park
entryUUID: uuid-cy
mail: cy.park@example.com
";

const RENAME: &str = "\
dn: cn=Ann Lee,ou=People,dc=example,dc=com
changetype: modrdn
newrdn: cn=Ann Kim
deleteoldrdn: 1

dn: cn=Ann Kim,ou=People,dc=example,dc=com
changetype: modify
replace: mail
mail: ann.kim@example.com
-
";

/// A config directory beside `people.ldif` and `changes/`, and a store.
struct Workspace {
    dir: tempfile::TempDir,
    store: TestStore,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The config and the LDIF files beside it share a repository, as in a config
        // repository: outside git the config directory itself is the root, and the
        // config may name no file outside it.
        git2::Repository::init(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::create_dir_all(dir.path().join("changes")).unwrap();
        std::fs::write(dir.path().join("config/registrar.yaml"), CONFIG).unwrap();
        std::fs::write(dir.path().join("people.ldif"), PEOPLE).unwrap();
        Workspace {
            dir,
            store: TestStore::fresh(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        registrar(&self.path("config"), &self.store.argument())
            .args(args)
            .output()
            .unwrap()
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

    /// What the store holds ([`store::fingerprint`]), None when there is none.
    fn fingerprint(&self) -> Option<Vec<u8>> {
        store::fingerprint(&self.store)
    }

    /// A first full apply, then a change file seen by a delta apply.
    fn with_one_change_applied() -> Self {
        let ws = Workspace::new();
        ws.ok(&["apply", "--auto-approve"]);
        ws.write("changes/0001-hire.ldif", HIRE);
        ws.ok(&["apply", "--auto-approve", "--mode", "delta"]);
        ws
    }

    /// Runs a delta plan that must be refused; the store must not change.
    fn refused(&self, needles: &[&str]) {
        let before = self.fingerprint();
        let output = self.run(&["plan", "--mode", "delta"]);
        assert_one_line_error(&output, needles);
        let output = self.run(&["apply", "--auto-approve", "--mode", "delta"]);
        assert_one_line_error(&output, needles);
        assert_eq!(
            self.fingerprint(),
            before,
            "a refused delta changed the store"
        );
    }
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

#[test]
fn delta_plans_what_full_plans_and_keeps_the_snapshot_up_to_date() {
    let ws = Workspace::with_one_change_applied();
    assert!(ws.ok(&["plan", "--mode", "delta"]).contains("No changes"));
    ws.write("changes/0002-rename.ldif", RENAME);
    let full = ws.ok(&["plan", "--format", "json"]);
    let delta = ws.ok(&["plan", "--format", "json", "--mode", "delta"]);
    assert_eq!(full, delta);
    let plan: serde_json::Value = serde_json::from_str(&delta).unwrap();
    let changes = plan["imports"][0]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1]["path"], "../changes/0002-rename.ldif");
    assert!(changes[1]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));

    let applied = ws.ok(&["apply", "--auto-approve", "--mode", "delta"]);
    assert!(
        last_line(&applied).starts_with("Apply complete: 1 added, 1 updated, 1 removed"),
        "{applied}"
    );
    assert!(ws.ok(&["plan", "--mode", "delta"]).contains("No changes"));
    assert!(ws.ok(&["plan"]).contains("No changes"));
    let status = ws.ok(&["status"]);
    assert!(status.contains("apply --mode delta"), "{status}");
    assert!(
        status.contains(
            "hr: ../people.ldif imported at serial 1, 2 change file(s), \
             the last ../changes/0002-rename.ldif at serial 3"
        ),
        "{status}"
    );
}

#[test]
fn without_a_kept_snapshot_delta_reads_in_full_with_a_note() {
    let ws = Workspace::new();
    ws.write("changes/0001-hire.ldif", HIRE);
    let output = ws.run(&["plan", "--mode", "delta"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("note: source hr has no kept snapshot yet"));
    assert!(
        stdout(&output).contains("Plan: 6 to add"),
        "{}",
        stdout(&output)
    );
    assert_eq!(ws.fingerprint(), None, "planning created the store");
    ws.ok(&["apply", "--auto-approve", "--mode", "delta"]);
    let output = ws.run(&["plan", "--mode", "delta"]);
    assert_eq!(stderr(&output), "");
    assert!(stdout(&output).contains("No changes"));
}

#[test]
fn a_saved_delta_plan_applies_exactly_and_keeps_its_snapshot() {
    let ws = Workspace::with_one_change_applied();
    ws.write("changes/0002-rename.ldif", RENAME);
    let plan = ws.path("plan.json");
    ws.ok(&["plan", "--mode", "delta", "--out", plan.to_str().unwrap()]);
    ws.ok(&["apply", "--plan", plan.to_str().unwrap()]);
    assert!(ws.ok(&["plan", "--mode", "delta"]).contains("No changes"));
    // Applied once, it is stale.
    let output = ws.run(&["apply", "--plan", plan.to_str().unwrap()]);
    assert_one_line_error(&output, &["stale"]);
}

#[test]
fn a_saved_plan_whose_change_file_changed_before_apply_is_refused() {
    let ws = Workspace::with_one_change_applied();
    ws.write("changes/0002-rename.ldif", RENAME);
    let plan = ws.path("plan.json");
    ws.ok(&["plan", "--mode", "delta", "--out", plan.to_str().unwrap()]);
    ws.write(
        "changes/0002-rename.ldif",
        &RENAME.replace("ann.kim", "annk"),
    );
    let before = ws.fingerprint();
    let output = ws.run(&["apply", "--plan", plan.to_str().unwrap()]);
    assert_one_line_error(
        &output,
        &[
            "cannot keep the snapshot",
            "source hr",
            "../changes/0002-rename.ldif has changed since it was planned",
            "nothing was applied",
        ],
    );
    assert_eq!(ws.fingerprint(), before);
    // A full plan saved before the content file changes is refused the same way.
    ws.write("changes/0002-rename.ldif", RENAME);
    let fresh = Workspace::new();
    fresh.write("changes/0001-hire.ldif", HIRE);
    let plan = fresh.path("plan.json");
    fresh.ok(&["plan", "--out", plan.to_str().unwrap()]);
    fresh.write("people.ldif", &PEOPLE.replace("bob.ode", "bobo"));
    let output = fresh.run(&["apply", "--plan", plan.to_str().unwrap()]);
    assert_one_line_error(
        &output,
        &["../people.ldif has changed since it was planned"],
    );
    assert!(fresh.fingerprint().is_none() || fresh.ok(&["state", "show"]).contains("accounts (0)"));
}

#[test]
fn an_imported_change_file_that_was_edited_is_refused() {
    let ws = Workspace::with_one_change_applied();
    ws.write("changes/0001-hire.ldif", &HIRE.replace("cy.park", "cyp"));
    ws.refused(&[
        "source hr: change file ../changes/0001-hire.ldif was imported at serial 2 and has since been edited",
        "run with --mode full",
    ]);
    // Full mode reads it as it is now.
    ws.ok(&["apply", "--auto-approve"]);
    assert!(ws.ok(&["plan", "--mode", "delta"]).contains("No changes"));
}

#[test]
fn an_imported_change_file_that_disappeared_is_refused() {
    let ws = Workspace::with_one_change_applied();
    std::fs::rename(
        ws.path("changes/0001-hire.ldif"),
        ws.path("changes/0001-hire.txt"),
    )
    .unwrap();
    ws.refused(&[
        "change file ../changes/0001-hire.ldif was imported at serial 2 and has since been removed",
        "run with --mode full",
    ]);
}

#[test]
fn a_new_change_file_sorting_before_an_imported_one_is_refused() {
    let ws = Workspace::with_one_change_applied();
    ws.write("changes/0000-early.ldif", RENAME);
    ws.refused(&[
        "change file ../changes/0000-early.ldif is new but sorts before ../changes/0001-hire.ldif",
        "run with --mode full",
    ]);
}

#[test]
fn an_edited_or_swapped_content_file_is_refused() {
    let ws = Workspace::with_one_change_applied();
    ws.write("people.ldif", &PEOPLE.replace("bob.ode", "bobo"));
    ws.refused(&[
        "source hr: content file ../people.ldif was imported at serial 1 and has since been edited",
        "run with --mode full",
    ]);
    // The content file is hashed beside the rest of the delta's work, and finishes last:
    // its refusal still comes first, since the edit may be why a change does not apply.
    ws.write(
        "changes/0002-bad.ldif",
        "version: 1\n\ndn: cn=Nobody,ou=People,dc=example,dc=com\nchangetype: modify\nreplace: cn\ncn: x\n-\n",
    );
    ws.refused(&[
        "source hr: content file ../people.ldif was imported at serial 1 and has since been edited",
    ]);
    std::fs::remove_file(ws.path("changes/0002-bad.ldif")).unwrap();
    ws.write("people.ldif", PEOPLE);
    ws.write("other.ldif", PEOPLE);
    ws.write(
        "config/registrar.yaml",
        &CONFIG.replace("../people.ldif", "../other.ldif"),
    );
    ws.refused(&[
        "its path is now ../other.ldif, but the kept snapshot was imported from ../people.ldif",
        "run with --mode full",
    ]);
}

#[test]
fn a_change_that_does_not_apply_names_file_and_line_and_applies_nothing() {
    let ws = Workspace::with_one_change_applied();
    // Modify of a missing entry, on line 4 of the second file.
    ws.write("changes/0002-rename.ldif", RENAME);
    ws.write(
        "changes/0003-bad.ldif",
        "version: 1\n\n# nobody\ndn: cn=Nobody,ou=People,dc=example,dc=com\nchangetype: modify\nreplace: cn\ncn: x\n-\n",
    );
    ws.refused(&[
        "source hr: ",
        "changes/0003-bad.ldif:4: change does not apply: cn=Nobody,ou=People,dc=example,dc=com: cannot modify: no such entry",
    ]);
    // Add of an entry that exists (in the kept snapshot, not in the new files).
    ws.write(
        "changes/0003-bad.ldif",
        HIRE.replace("cn=Cy Park", "cn=Bob Ode").as_str(),
    );
    ws.refused(&["changes/0003-bad.ldif:3: change does not apply: cn=Bob Ode,ou=People,dc=example,dc=com: cannot add: the entry already exists"]);
}

#[test]
fn mode_is_for_computed_plans_only() {
    let ws = Workspace::new();
    let output = ws.run(&["apply", "--plan", "p.json", "--mode", "delta"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot be used with"));
}

#[test]
fn each_ldif_source_keeps_its_own_snapshot() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("partner-changes")).unwrap();
    ws.write(
        "partners.ldif",
        &PEOPLE
            .replace("uuid-", "partner-")
            .replace("@example.com", "@partner.org"),
    );
    ws.write(
        "config/partners.yaml",
        "sources:\n  - name: partners\n    anchor: entryUUID\n    ldif:\n      \
         path: ../partners.ldif\n      changes: ../partner-changes/*.ldif\n",
    );
    ws.ok(&["apply", "--auto-approve"]);
    ws.write("changes/0001-hire.ldif", HIRE);
    ws.write(
        "partner-changes/0001-leave.ldif",
        "dn: cn=Bob Ode,ou=People,dc=example,dc=com\nchangetype: delete\n",
    );
    let full = ws.ok(&["plan", "--format", "json"]);
    assert_eq!(
        ws.ok(&["plan", "--format", "json", "--mode", "delta"]),
        full
    );
    ws.ok(&["apply", "--auto-approve", "--mode", "delta"]);
    let status = ws.ok(&["status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let kept = status["kept_snapshots"].as_array().unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0]["source"], "hr");
    assert_eq!(kept[1]["source"], "partners");
    assert_eq!(
        kept[1]["changes"][0]["path"],
        "../partner-changes/0001-leave.ldif"
    );
    // A source taken out of the config: its snapshot goes with the next apply.
    std::fs::remove_file(ws.path("config/partners.yaml")).unwrap();
    ws.ok(&["apply", "--auto-approve", "--allow-deletes"]);
    let status = ws.ok(&["status"]);
    assert!(status.contains("kept snapshots (1)"), "{status}");
}

#[test]
fn a_delta_plan_is_made_by_region_only_while_the_store_is_what_the_last_apply_left() {
    let ws = Workspace::with_one_change_applied();
    ws.write("changes/0002-rename.ldif", RENAME);
    let full = ws.ok(&["plan", "--format", "json"]);

    // Straight after an apply: by region, quietly, and the full plan; also with the
    // config directory named another way.
    let output = ws.run(&["plan", "--format", "json", "--mode", "delta"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    assert_eq!(stdout(&output), full);
    let relative = registrar(&PathBuf::from("config"), &ws.store.argument())
        .current_dir(ws.dir.path())
        .args(["plan", "--mode", "delta"])
        .output()
        .unwrap();
    assert_eq!(stderr(&relative), "");
    assert!(
        stdout(&relative).contains("Plan: 1 to add, 1 to update, 1 to remove"),
        "{}",
        stdout(&relative)
    );

    // A manual registration writes the store: the standing facts no longer answer for
    // it, so delta reads every kept entry, says why, and still plans what full plans.
    let registered = ws.run(&[
        "state",
        "register",
        "--protocol",
        "aol",
        "--im-name",
        "ann.kim",
        "--account",
        "cn=Someone Else,ou=People,dc=example,dc=com",
        "--source",
        "manual",
    ]);
    assert_eq!(registered.status.code(), Some(0), "{}", stderr(&registered));
    let full = ws.ok(&["plan", "--format", "json"]);
    assert!(full.contains("held by a manual registration"), "{full}");
    let output = ws.run(&["plan", "--format", "json", "--mode", "delta"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).starts_with("note: --mode delta read every kept entry: the store was written at serial 3, after the last apply of an import (serial 2)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), full);

    // The next apply leaves standing facts again.
    ws.ok(&["apply", "--auto-approve", "--mode", "delta"]);
    ws.write(
        "changes/0003-hire.ldif",
        &HIRE
            .replace("Cy Park", "Di Roe")
            .replace("uuid-cy", "uuid-di")
            .replace("cy.park", "di.roe"),
    );
    let full = ws.ok(&["plan", "--format", "json"]);
    let output = ws.run(&["plan", "--format", "json", "--mode", "delta"]);
    assert_eq!(stderr(&output), "");
    assert_eq!(stdout(&output), full);

    // Standing facts edited into nonsense are no standing facts.
    store::execute(&ws.store, "UPDATE standing_facts SET facts = 'not json'");
    let output = ws.run(&["plan", "--format", "json", "--mode", "delta"]);
    assert!(
        stderr(&output).contains("the store keeps no standing facts"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), full);
}

#[test]
fn with_group_rules_a_delta_plan_is_still_made_by_region() {
    let ws = Workspace::new();
    ws.write(
        "config/groups.yaml",
        "groups:\n  - name: people\n    kind: org_unit\n    source: hr\n    dn: ou=People,dc=example,dc=com\n",
    );
    ws.ok(&["apply", "--auto-approve"]);
    ws.write("changes/0001-hire.ldif", HIRE);
    let full = ws.ok(&["plan", "--format", "json"]);
    assert!(full.contains("\"group_member\""), "{full}");
    let output = ws.run(&["plan", "--format", "json", "--mode", "delta"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    assert_eq!(stdout(&output), full);
}

#[test]
fn a_kept_entry_of_a_source_the_config_lacks_is_an_error_not_a_panic() {
    let ws = Workspace::with_one_change_applied();
    ws.write("changes/0002-rename.ldif", RENAME);
    // A hand edit: the store says an entry of a source the config does not have
    // produces the name the change claims.
    store::execute(
        &ws.store,
        "INSERT INTO snapshot_names (protocol, name_key, source, dn_key) \
         VALUES ('aol', 'ann.kim', 'ghost', 'cn=ghost,dc=example,dc=com')",
    );
    ws.refused(&[
        "source ghost: the kept snapshot holds an entry of a source the config does not have",
        "the store was changed outside registrar",
    ]);
}
