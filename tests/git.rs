//! The git workflow end to end, on real repositories built with git2 in temp dirs and
//! the built binary: `--rev` (branches, tags, `HEAD~1`, shas), the revision recorded in
//! plans and in the run history, `plan --base` for review, apply at a merge commit, a
//! plan from another revision refused, and the bad inputs (unknown revision, config
//! directory missing at a revision, a path escaping the repository, no repository).
//! The store is on the backend of the run (`REGISTRAR_TEST_STORE`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use git2::{Oid, Repository, Signature};

mod common;

use common::store::{self, TestStore};
use common::{assert_one_line_error, json, stderr, stdout, BIN};

const PEOPLE: &str = "\
dn: cn=Ann Lee,ou=People,dc=example,dc=com
objectClass: top
objectClass: person
cn: Ann Lee
mail: ann.lee@example.com
uid: alee

dn: cn=Bob Stone,ou=People,dc=example,dc=com
objectClass: top
objectClass: person
cn: Bob Stone
mail: bob.stone@example.com
uid: bstone
";

fn config(mapping: &str, template: &str) -> String {
    format!(
        "sources:\n  - name: corp\n    ldif:\n      path: people.ldif\n\
         mappings:\n  - name: {mapping}\n    protocol: aol\n    value: \"{template}\"\n"
    )
}

/// A git repository in a temp dir, and a store (outside the tree).
struct Repo {
    dir: tempfile::TempDir,
    repo: Repository,
    store: TestStore,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let repo = Repository::init(dir.path().join("work")).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        Repo {
            dir,
            repo,
            store: TestStore::fresh(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// What `--state` takes.
    fn state(&self) -> String {
        self.store.argument()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.root().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Commits every change of the working tree on the current branch.
    fn commit(&self, message: &str) -> Oid {
        common::commit_all(&self.repo, message)
    }

    fn branch(&self, name: &str) {
        let head = self.repo.head().unwrap().peel_to_commit().unwrap();
        self.repo.branch(name, &head, false).unwrap();
    }

    fn checkout(&self, name: &str) {
        let reference = format!("refs/heads/{name}");
        let object = self.repo.revparse_single(&reference).unwrap();
        self.repo
            .checkout_tree(&object, Some(git2::build::CheckoutBuilder::new().force()))
            .unwrap();
        self.repo.set_head(&reference).unwrap();
    }

    /// A merge commit of `branch` into the current branch (no conflicts expected).
    fn merge(&self, branch: &str, message: &str) -> Oid {
        let ours = self.repo.head().unwrap().peel_to_commit().unwrap();
        let theirs = self
            .repo
            .revparse_single(branch)
            .unwrap()
            .peel_to_commit()
            .unwrap();
        let mut index = self.repo.merge_commits(&ours, &theirs, None).unwrap();
        assert!(!index.has_conflicts());
        let tree = self
            .repo
            .find_tree(index.write_tree_to(&self.repo).unwrap())
            .unwrap();
        let signature = Signature::now("Test", "test@example.com").unwrap();
        let merge = self
            .repo
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &[&ours, &theirs],
            )
            .unwrap();
        self.repo
            .checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
            .unwrap();
        merge
    }

    fn tag(&self, name: &str, target: Oid) {
        let object = self.repo.find_object(target, None).unwrap();
        self.repo.tag_lightweight(name, &object, false).unwrap();
    }

    /// Runs the binary in the repository's root with `--config registrar`.
    fn run(&self, args: &[&str]) -> Output {
        run_in(&self.root(), &self.state(), args)
    }

    /// What the store holds ([`store::fingerprint`]), None when there is none.
    fn fingerprint(&self) -> Option<Vec<u8>> {
        store::fingerprint(&self.store)
    }

    /// (owner, im_name) of every registration in the store.
    fn registrations(&self) -> Vec<(String, String)> {
        let output = self.run(&["state", "show", "--format", "json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let state: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut rows: Vec<(String, String)> = state["registrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["owner"].as_str().unwrap_or("").to_string(),
                    r["im_name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        rows.sort();
        rows
    }

    /// The revision recorded by the latest run in the history.
    fn last_run_revision(&self) -> Option<String> {
        let store = registrar::store::Store::open(store::location(&self.store)).unwrap();
        store.runs(1).unwrap()[0].revision.clone()
    }
}

fn run_in(dir: &Path, state: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(["--config", "registrar", "--state"])
        .arg(state)
        .args(args)
        .env_remove("REGISTRAR_STATE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// (action, mapping, im_name, reason) of the registration changes of a JSON change list.
fn registration_changes(changes: &serde_json::Value) -> Vec<(String, String, String, String)> {
    let mut rows: Vec<_> = changes
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "registration")
        .map(|c| {
            let text = |key: &str| c[key].as_str().unwrap_or("").to_string();
            (
                text("action"),
                text("mapping"),
                text("im_name"),
                text("reason"),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn row(action: &str, mapping: &str, name: &str, reason: &str) -> (String, String, String, String) {
    (
        action.to_string(),
        mapping.to_string(),
        name.to_string(),
        reason.to_string(),
    )
}

/// A repository whose main branch holds the `aol-mail` mapping, applied at main.
fn applied_main() -> (Repo, Oid) {
    let repo = Repo::new();
    repo.write(
        "registrar/registrar.yaml",
        &config("aol-mail", "{mail|local_part}"),
    );
    repo.write("registrar/people.ldif", PEOPLE);
    let first = repo.commit("registrar: aol names from mail");
    let applied = repo.run(&["apply", "--auto-approve", "--rev", "main"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert_eq!(
        repo.registrations(),
        vec![
            ("aol-mail".to_string(), "ann.lee".to_string()),
            ("aol-mail".to_string(), "bob.stone".to_string())
        ]
    );
    (repo, first)
}

#[test]
fn review_merge_apply_at_the_merge_commit_and_refuse_an_old_plan() {
    let (repo, first) = applied_main();
    assert_eq!(repo.last_run_revision(), Some(first.to_string()));

    // A plan saved at the old commit, while it was current.
    let old_plan = repo.file("old-plan.json");
    let saved = repo.run(&["plan", "--rev", "main", "--out", old_plan.to_str().unwrap()]);
    assert_eq!(saved.status.code(), Some(0), "{}", stderr(&saved));

    // A branch that replaces the mapping.
    repo.branch("uid-names");
    repo.checkout("uid-names");
    repo.write("registrar/registrar.yaml", &config("aol-uid", "{uid}"));
    let head = repo.commit("registrar: aol names from uid");

    // Review on the branch: the effect of the change since main.
    let reviewed = json(&repo.run(&["plan", "--base", "main", "--format", "json"]));
    let effect = &reviewed["effect"];
    assert_eq!(effect["base"], first.to_string());
    assert_eq!(effect["head"], head.to_string());
    assert_eq!(effect["head_dirty"], false);
    let expected = vec![
        row("add", "aol-uid", "alee", ""),
        row("add", "aol-uid", "bstone", ""),
        row("remove", "aol-mail", "ann.lee", "mapping removed"),
        row("remove", "aol-mail", "bob.stone", "mapping removed"),
    ];
    assert_eq!(registration_changes(&effect["changes"]), expected);
    assert_eq!(effect["summary"]["add"], 2);
    assert_eq!(effect["summary"]["remove"], 2);
    let files = effect["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["path"], "registrar/registrar.yaml");
    assert_eq!(files[0]["status"], "modified");
    let diff = files[0]["diff"].as_str().unwrap();
    assert!(diff.contains("-    value: \"{mail|local_part}\""), "{diff}");
    assert!(diff.contains("+    value: \"{uid}\""), "{diff}");
    // Beside it, the plan against the store (which main was applied to) agrees.
    assert_eq!(reviewed["revision"], head.to_string());
    assert_eq!(reviewed["revision_dirty"], false);
    assert_eq!(registration_changes(&reviewed["changes"]), expected);

    let markdown = stdout(&repo.run(&["plan", "--base", "main", "--format", "markdown"]));
    let first_line = markdown.lines().next().unwrap();
    assert!(
        first_line
            .starts_with("**registrar plan**: this change: 2 to add, 0 to update, 2 to remove"),
        "{first_line}"
    );
    let details = markdown.find("<details>").unwrap();
    assert!(!markdown[..details].contains("Mapping `"));
    assert!(
        markdown[details..].contains("Mapping `aol-uid` (aol)"),
        "{markdown}"
    );
    assert!(
        markdown[details..].contains("Mapping `aol-mail` (aol)"),
        "{markdown}"
    );
    assert!(
        markdown
            .contains("```diff\n--- a/registrar/registrar.yaml\n+++ b/registrar/registrar.yaml\n"),
        "{markdown}"
    );
    assert_eq!(
        markdown.matches("<details>").count(),
        markdown.matches("</details>").count()
    );

    let text = stdout(&repo.run(&["plan", "--base", "main"]));
    let effect_at = text.find("registrar effect of the change").unwrap();
    let plan_at = text.find("registrar plan (revision").unwrap();
    assert!(effect_at < plan_at, "{text}");
    assert!(
        text[..plan_at].contains("Effect: 2 to add, 0 to update, 2 to remove, 0 to deactivate."),
        "{text}"
    );

    // Merge, then apply on main exactly the plan made at the merge commit.
    repo.checkout("main");
    let merge = repo.merge("uid-names", "Merge branch uid-names");
    let merge_plan = repo.file("merge-plan.json");
    let output = repo.run(&[
        "plan",
        "--rev",
        &merge.to_string(),
        "--out",
        merge_plan.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let planned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merge_plan).unwrap()).unwrap();
    assert_eq!(planned["revision"], merge.to_string());
    let applied = repo.run(&[
        "apply",
        "--plan",
        merge_plan.to_str().unwrap(),
        "--rev",
        "main",
    ]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert_eq!(
        repo.registrations(),
        vec![
            ("aol-uid".to_string(), "alee".to_string()),
            ("aol-uid".to_string(), "bstone".to_string())
        ]
    );
    assert_eq!(repo.last_run_revision(), Some(merge.to_string()));

    // Nothing left to do at main.
    let again = repo.run(&["plan", "--rev", "main", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));

    // The plan saved at the old commit is refused, naming both commits.
    let before = repo.fingerprint();
    let refused = repo.run(&[
        "apply",
        "--plan",
        old_plan.to_str().unwrap(),
        "--rev",
        "main",
    ]);
    assert_one_line_error(
        &refused,
        &[
            &first.to_string(),
            &merge.to_string(),
            "nothing was applied",
        ],
    );
    assert_eq!(repo.fingerprint(), before);
}

#[test]
fn any_commit_ish_works_and_the_files_come_from_that_commit() {
    let (repo, first) = applied_main();
    repo.tag("v1", first);
    // The next commit changes the template and removes Bob from the directory.
    repo.write("registrar/registrar.yaml", &config("aol-mail", "{uid}"));
    repo.write(
        "registrar/people.ldif",
        PEOPLE.split("\n\n").next().unwrap(),
    );
    let second = repo.commit("uid names; Bob left");
    // And the working tree breaks the YAML, which no revision reads.
    repo.write("registrar/registrar.yaml", "mappings: [unclosed\n");

    for rev in ["v1", "HEAD~1", &first.to_string()[..10], &first.to_string()] {
        let plan = json(&repo.run(&["plan", "--rev", rev, "--format", "json"]));
        assert_eq!(plan["revision"], first.to_string(), "--rev {rev}");
        assert_eq!(plan["revision_dirty"], false);
        assert!(
            plan["changes"].as_array().unwrap().is_empty(),
            "--rev {rev}: {plan:#}"
        );
    }
    let plan = json(&repo.run(&["plan", "--rev", "main", "--format", "json"]));
    assert_eq!(plan["revision"], second.to_string());
    assert_eq!(
        registration_changes(&plan["changes"]),
        vec![
            row("add", "aol-mail", "alee", ""),
            row(
                "remove",
                "aol-mail",
                "ann.lee",
                "mapping aol-mail now produces another value for the entry"
            ),
            row("remove", "aol-mail", "bob.stone", "account left scope"),
        ]
    );
    let validated = repo.run(&["validate", "--rev", "v1"]);
    assert_eq!(validated.status.code(), Some(0), "{}", stderr(&validated));
    assert!(
        stdout(&validated).contains("at revision v1"),
        "{}",
        stdout(&validated)
    );
    // Without --rev, the broken working tree is what is read.
    assert_one_line_error(&repo.run(&["validate"]), &["registrar/registrar.yaml:"]);
}

#[test]
fn a_working_tree_plan_records_head_and_whether_it_was_dirty() {
    let (repo, first) = applied_main();
    let clean = json(&repo.run(&["plan", "--format", "json"]));
    assert_eq!(clean["revision"], first.to_string());
    assert_eq!(clean["revision_dirty"], false);

    // Files elsewhere in the repository do not make the config dirty.
    repo.write("README.md", "notes\n");
    let unrelated = json(&repo.run(&["plan", "--format", "json"]));
    assert_eq!(unrelated["revision_dirty"], false);

    // An untracked config file does.
    repo.write("registrar/extra.yaml", "exclusions: []\n");
    let dirty_plan = repo.file("dirty.json");
    let output = repo.run(&[
        "plan",
        "--format",
        "json",
        "--out",
        dirty_plan.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("-dirty, state serial"),
        "{}",
        stdout(&output)
    );
    let dirty: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dirty_plan).unwrap()).unwrap();
    assert_eq!(dirty["revision"], first.to_string());
    assert_eq!(dirty["revision_dirty"], true);
    let before = repo.fingerprint();
    assert_one_line_error(
        &repo.run(&[
            "apply",
            "--plan",
            dirty_plan.to_str().unwrap(),
            "--rev",
            "HEAD",
        ]),
        &["uncommitted changes", &first.to_string()],
    );
    assert_eq!(repo.fingerprint(), before);

    // A modified source file does too, and the run history says so.
    std::fs::remove_file(repo.root().join("registrar/extra.yaml")).unwrap();
    repo.write(
        "registrar/people.ldif",
        PEOPLE.split("\n\n").next().unwrap(),
    );
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert_eq!(repo.last_run_revision(), Some(format!("{first}-dirty")));
}

#[test]
fn plan_base_against_a_revision_without_config_shows_everything_added() {
    let repo = Repo::new();
    repo.write("README.md", "empty\n");
    repo.commit("start");
    repo.branch("add-registrar");
    repo.checkout("add-registrar");
    repo.write(
        "registrar/registrar.yaml",
        &config("aol-mail", "{mail|local_part}"),
    );
    repo.write("registrar/people.ldif", PEOPLE);
    repo.commit("add registrar");
    let plan = json(&repo.run(&["plan", "--base", "main", "--format", "json"]));
    let effect = &plan["effect"];
    assert_eq!(
        registration_changes(&effect["changes"]),
        vec![
            row("add", "aol-mail", "ann.lee", ""),
            row("add", "aol-mail", "bob.stone", ""),
        ]
    );
    assert_eq!(effect["files"][0]["status"], "added");
}

#[test]
fn bad_revisions_and_paths_are_one_clear_line_and_apply_nothing() {
    let repo = Repo::new();
    repo.write("README.md", "no config yet\n");
    let bare = repo.commit("start");
    repo.tag("before-config", bare);
    repo.write(
        "registrar/registrar.yaml",
        &config("aol-mail", "{mail|local_part}"),
    );
    repo.write("registrar/people.ldif", PEOPLE);
    repo.commit("config");
    assert_eq!(
        repo.run(&["apply", "--auto-approve"]).status.code(),
        Some(0)
    );
    let before = repo.fingerprint();
    assert!(before.is_some());

    // Unknown revision.
    for command in ["validate", "plan", "apply"] {
        let output = repo.run(&[command, "--rev", "no-such-branch"]);
        assert_one_line_error(
            &output,
            &[
                "unknown revision \"no-such-branch\"",
                &repo.root().canonicalize().unwrap().display().to_string(),
            ],
        );
    }
    let output = repo.run(&["plan", "--base", "no-such-branch"]);
    assert_one_line_error(&output, &["unknown revision \"no-such-branch\""]);

    // The config directory does not exist at that revision.
    let output = repo.run(&["apply", "--auto-approve", "--rev", "before-config"]);
    assert_one_line_error(
        &output,
        &["config directory registrar does not exist at revision before-config"],
    );

    // A path that escapes the repository.
    repo.write(
        "registrar/registrar.yaml",
        "sources:\n  - name: corp\n    ldif:\n      path: ../../etc/passwd\n",
    );
    let escaping = repo.commit("escape");
    for command in ["validate", "plan", "apply"] {
        let output = repo.run(&[command, "--rev", "HEAD"]);
        assert_one_line_error(
            &output,
            &[
                &format!("revision HEAD ({})", &escaping.to_string()[..12]),
                "registrar/registrar.yaml:4:",
                "\"../../etc/passwd\"",
                "escapes the git repository",
            ],
        );
    }
    assert_eq!(repo.fingerprint(), before);

    // A config directory that is not in a git repository.
    let plain = tempfile::tempdir().unwrap();
    std::fs::create_dir(plain.path().join("registrar")).unwrap();
    std::fs::write(
        plain.path().join("registrar/registrar.yaml"),
        config("aol-mail", "{mail|local_part}"),
    )
    .unwrap();
    std::fs::write(plain.path().join("registrar/people.ldif"), PEOPLE).unwrap();
    let state = TestStore::fresh();
    let output = run_in(
        plain.path(),
        &state.argument(),
        &["apply", "--auto-approve", "--rev", "main"],
    );
    assert_one_line_error(
        &output,
        &["revision main", "registrar is not inside a git repository"],
    );
    assert_eq!(store::fingerprint(&state), None);
    // Without --rev the same directory works, with no revision.
    let plan = json(&run_in(
        plain.path(),
        &state.argument(),
        &["plan", "--format", "json"],
    ));
    assert!(plan["revision"].is_null());
    assert_eq!(plan["revision_dirty"], false);
}

#[test]
fn drift_compares_the_store_with_the_last_applied_revision() {
    let (repo, first) = applied_main();
    // A change merged but not applied yet: the mapping renamed to aol-uid with uid names.
    repo.write("registrar/registrar.yaml", &config("aol-uid", "{uid}"));
    let second = repo.commit("registrar: aol names from uid");

    // Against the applied revision there is nothing to report, whatever HEAD holds now.
    let output = repo.run(&["drift", "--format", "json", "--detailed-exitcode"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["revision"], first.to_string());
    assert_eq!(report["orphans"], serde_json::json!([]));

    // Against the new head, the applied rows belong to a mapping that is gone, and the
    // plan at that head would replace them.
    let report = json(&repo.run(&["drift", "--format", "json", "--rev", "main"]));
    assert_eq!(report["revision"], second.to_string());
    let orphans: Vec<&str> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["owner"].as_str().unwrap())
        .collect();
    assert_eq!(orphans, ["aol-mail", "aol-mail"]);
    assert_eq!(
        registration_changes(&report["pending"]["changes"]),
        vec![
            row("add", "aol-uid", "alee", ""),
            row("add", "aol-uid", "bstone", ""),
            row("remove", "aol-mail", "ann.lee", "mapping removed"),
            row("remove", "aol-mail", "bob.stone", "mapping removed"),
        ]
    );

    // Once applied, the new head is the one compared with, and all is in order again.
    assert_eq!(
        repo.run(&["apply", "--auto-approve", "--rev", "main"])
            .status
            .code(),
        Some(0)
    );
    let report = json(&repo.run(&["drift", "--format", "json"]));
    assert_eq!(report["revision"], second.to_string());
    assert_eq!(report["pending"]["changes"], serde_json::json!([]));
}

#[test]
fn a_delta_plan_at_a_commit_keeps_that_commits_files_whatever_the_working_tree_holds() {
    let repo = Repo::new();
    repo.write(
        "registrar/registrar.yaml",
        &config("aol-mail", "{mail|local_part}").replace(
            "      path: people.ldif\n",
            "      path: people.ldif\n      changes: changes/*.ldif\n",
        ),
    );
    repo.write("registrar/people.ldif", PEOPLE);
    repo.commit("registrar: a source with change files");
    let applied = repo.run(&["apply", "--auto-approve", "--rev", "main"]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));

    let hire = "dn: cn=Cy Park,ou=People,dc=example,dc=com\nchangetype: add\n\
                objectClass: person\ncn: Cy Park\nmail: cy.park@example.com\n";
    repo.write("registrar/changes/0001-hire.ldif", hire);
    let second = repo.commit("a hire");
    let plan = repo.file("plan.json");
    let saved = repo.run(&[
        "plan",
        "--rev",
        &second.to_string(),
        "--mode",
        "delta",
        "--out",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(saved.status.code(), Some(0), "{}", stderr(&saved));
    assert!(stdout(&saved).contains("cy.park"), "{}", stdout(&saved));

    // The working tree moves on (uncommitted): the plan still applies from its commit.
    repo.write(
        "registrar/changes/0001-hire.ldif",
        &hire.replace("cy.park", "cyp"),
    );
    let applied = repo.run(&["apply", "--plan", plan.to_str().unwrap()]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let again = repo.run(&["plan", "--rev", "main", "--mode", "delta"]);
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));
    // The working tree's edited copy is not what was imported.
    let refused = repo.run(&["plan", "--mode", "delta"]);
    assert_one_line_error(
        &refused,
        &["changes/0001-hire.ldif was imported at serial 2 and has since been edited"],
    );
}

/// A content file large enough to be read in two halves at once (`app/halves.rs`) plans
/// exactly as the same file read whole from its commit (`--rev` reads blobs whole): the
/// halves meet at a record boundary, and the second half's entries come after the
/// first's. Entries of the two halves meet in the plan: one DN at each end of the file
/// (a shared anchor), and one IM name claimed at each end (a collision).
#[test]
fn a_large_file_read_in_halves_plans_as_the_file_read_whole_at_its_commit() {
    let repo = Repo::new();
    let user = |n: usize, dn: &str, mail: &str| {
        format!("dn: {dn}\nobjectClass: person\ncn: user {n}\nmail: {mail}\nuid: u{n}\n\n")
    };
    let mut ldif = user(0, "cn=twice,dc=example,dc=com", "shared@example.com");
    let mut n = 1;
    while ldif.len() < 9 << 20 {
        let dn = format!("cn=user {n},ou=People,dc=example,dc=com");
        ldif.push_str(&user(n, &dn, &format!("user.{n}@example.com")));
        n += 1;
    }
    ldif.push_str(&user(n, "cn=twice,dc=example,dc=com", "other@example.com"));
    ldif.push_str(&user(
        n + 1,
        "cn=last,dc=example,dc=com",
        "shared@example.com",
    ));
    repo.write(
        "registrar/registrar.yaml",
        &config("aol-mail", "{mail|local_part}"),
    );
    repo.write("registrar/people.ldif", &ldif);
    repo.commit("a large directory");

    let in_halves = repo.run(&["plan", "--format", "json"]);
    assert_eq!(in_halves.status.code(), Some(0), "{}", stderr(&in_halves));
    let whole = repo.run(&["plan", "--rev", "HEAD", "--format", "json"]);
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let (in_halves, whole) = (json(&in_halves), json(&whole));
    // n + 1 accounts (two entries share one), and the names of all but the two that
    // claim "shared".
    assert_eq!(
        in_halves["summary"]["add"],
        2 * n,
        "{}",
        in_halves["summary"]
    );
    assert_eq!(in_halves["summary"]["conflicts"], 1);
    let warnings = in_halves["warnings"].to_string();
    assert!(warnings.contains("share anchor"), "{warnings}");
    assert!(warnings.contains("shared"), "{warnings}");
    assert!(in_halves == whole, "the plans differ");
}
