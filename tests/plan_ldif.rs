//! `plan --format ldif` end to end: the built binary's LDIF, fed to a real slapd with
//! `ldapmodify` (and to our own strict `ldif::Directory`) after each apply, keeps an LDAP
//! mirror equal to `state show --format json`, over three config and directory changes
//! that between them make every kind of change, with hostile values (filter syntax,
//! commas, `+`, leading `#` and spaces, non-ASCII, newlines) in anchors, DNs, IM names,
//! group names and profile fields. The store is on the backend of the run
//! (`REGISTRAR_TEST_STORE`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use registrar::core::dn::{AttributeValue, Dn};
use registrar::core::entry::Entry;
use registrar::core::model::ProfileField;
use registrar::ldif::{write_entry, write_version, Directory, LdifReader, Record};
use registrar::render::profile_attribute;
use serde_json::{json, Value};

mod common;

use common::slapd::{base_ldif, Options, Slapd, ROOT_DN, ROOT_PASSWORD, SUFFIX};
use common::store::{self, TestStore};
use common::{assert_one_line_error, registrar, stderr};

fn base() -> String {
    format!("ou=registrar,{SUFFIX}")
}

/// A config dir and its directory files in a temp dir, and a store.
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
        std::fs::create_dir(dir.path().join("config")).unwrap();
        Workspace {
            dir,
            store: TestStore::fresh(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        registrar(&self.path("config"), &self.store.argument())
            .args(args)
            .output()
            .unwrap()
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.path("config/registrar.yaml"), text).unwrap();
    }

    fn write_directory(&self, name: &str, entries: &[Entry]) {
        let mut out = Vec::new();
        write_version(&mut out).unwrap();
        for entry in entries {
            write_entry(&mut out, entry).unwrap();
        }
        std::fs::write(self.path(name), out).unwrap();
    }

    /// `plan --format ldif --out planN.json > planN.ldif`; returns the LDIF's path and the
    /// plan's (kind, action) pairs.
    fn plan_ldif(&self, step: usize) -> (PathBuf, BTreeSet<(String, String)>) {
        let json = self.path(&format!("plan{step}.json"));
        let output = self.run(&[
            "plan",
            "--format",
            "ldif",
            "--ldif-base",
            &base(),
            "--out",
            json.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let ldif = self.path(&format!("plan{step}.ldif"));
        std::fs::write(&ldif, &output.stdout).unwrap();
        let plan: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let kinds = plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["kind"].as_str().unwrap().to_string(),
                    c["action"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (ldif, kinds)
    }

    fn apply(&self, step: usize) {
        let json = self.path(&format!("plan{step}.json"));
        let output = self.run(&["apply", "--plan", json.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }

    /// The store as `state show --format json` prints it, without the serial and
    /// `managed` (which the mirror has as the presence of `source`), rows sorted.
    fn store(&self) -> Value {
        let output = self.run(&["state", "show", "--format", "json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let mut state: Value = serde_json::from_slice(&output.stdout).unwrap();
        for account in state["accounts"].as_array_mut().unwrap() {
            let managed = account.as_object_mut().unwrap().remove("managed").unwrap();
            assert_eq!(managed, json!(!account["source"].is_null()));
        }
        sorted(json!({
            "accounts": state["accounts"],
            "registrations": state["registrations"],
            "groups": state["groups"],
        }))
    }
}

/// Each list of `document` sorted by the rows' JSON text, so that order does not count.
fn sorted(mut document: Value) -> Value {
    for (_, rows) in document.as_object_mut().unwrap() {
        rows.as_array_mut()
            .unwrap()
            .sort_by_key(|row| row.to_string());
    }
    document
}

fn text(value: &[u8]) -> String {
    String::from_utf8(value.to_vec()).expect("UTF-8 value")
}

fn one(entry: &Entry, attribute: &str) -> Option<String> {
    let values: Vec<String> = entry.values(attribute).map(text).collect();
    assert!(values.len() <= 1, "{}: {attribute} {values:?}", entry.dn);
    values.into_iter().next()
}

/// The value of the first RDN of `dn`, checking that `dn` sits in container `ou`.
fn rdn_value(dn: &str, attribute: &str, container: &str) -> String {
    let parsed = Dn::parse(dn).unwrap_or_else(|e| panic!("{dn:?}: {e}"));
    let parent = parsed.parent().unwrap();
    assert_eq!(
        parent.normalized(),
        Dn::parse(&format!("ou={container},{}", base()))
            .unwrap()
            .normalized(),
        "{dn:?}"
    );
    let [ava] = parsed.rdn().unwrap().avas() else {
        panic!("multi-valued RDN {dn:?}")
    };
    assert!(ava.attribute_type.eq_ignore_ascii_case(attribute), "{dn:?}");
    match &ava.value {
        AttributeValue::Text(value) => value.clone(),
        AttributeValue::Ber(hex) => panic!("BER value {hex} in {dn:?}"),
    }
}

/// The store as the mirror under the base holds it, in `state show`'s shape.
fn mirror_document<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Value {
    let (mut accounts, mut registrations, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for entry in entries {
        let classes: Vec<String> = entry.values("objectClass").map(text).collect();
        let has = |class: &str| classes.iter().any(|c| c.eq_ignore_ascii_case(class));
        if has("registrarAccount") {
            let anchor = one(entry, "registrarAnchor").unwrap();
            assert_eq!(rdn_value(&entry.dn, "registrarAnchor", "accounts"), anchor);
            let mut profile = serde_json::Map::new();
            for field in ProfileField::ALL {
                if let Some(value) = one(entry, profile_attribute(field)) {
                    profile.insert(field.name().to_string(), json!(value));
                }
            }
            let active = one(entry, "registrarActive").unwrap();
            accounts.push(json!({
                "anchor": anchor,
                "dn": one(entry, "registrarEntryDn").unwrap(),
                "source": one(entry, "registrarSource"),
                "status": match active.as_str() {
                    "TRUE" => "active",
                    "FALSE" => "deactivated",
                    other => panic!("registrarActive: {other}"),
                },
                "profile": profile,
            }));
        } else if has("registrarRegistration") {
            let protocol = one(entry, "registrarProtocol").unwrap();
            let im_name = one(entry, "registrarImName").unwrap();
            let key = one(entry, "registrarKey").unwrap();
            assert_eq!(rdn_value(&entry.dn, "registrarKey", "registrations"), key);
            assert_eq!(
                key,
                format!("{protocol}:{}", im_name.trim().to_lowercase()),
                "{}",
                entry.dn
            );
            registrations.push(json!({
                "protocol": protocol,
                "im_name": im_name,
                "account": one(entry, "registrarAnchor").unwrap(),
                "source": one(entry, "registrarSource").unwrap(),
                "owner": one(entry, "registrarOwner"),
            }));
        } else if has("registrarGroup") {
            let name = one(entry, "registrarGroupName").unwrap();
            assert_eq!(rdn_value(&entry.dn, "registrarGroupName", "groups"), name);
            let mut members: Vec<String> = entry
                .values("member")
                .map(|dn| rdn_value(&text(dn), "registrarAnchor", "accounts"))
                .collect();
            members.sort();
            groups.push(json!({
                "name": name,
                "kind": one(entry, "registrarGroupKind").unwrap(),
                "source": one(entry, "registrarSource"),
                "owner": one(entry, "registrarOwner"),
                "members": members,
            }));
        } else {
            assert!(has("organizationalUnit"), "unexpected entry {entry:?}");
        }
    }
    sorted(json!({
        "accounts": accounts,
        "registrations": registrations,
        "groups": groups,
    }))
}

/// `ldapmodify -x -D rootdn -w secret -f ldif`, which must succeed.
fn ldapmodify(slapd: &Slapd, ldif: &Path) {
    let output = Command::new("ldapmodify")
        .args([
            "-x",
            "-H",
            &slapd.url(),
            "-D",
            ROOT_DN,
            "-w",
            ROOT_PASSWORD,
            "-f",
        ])
        .arg(ldif)
        .output()
        .expect("running ldapmodify");
    assert!(
        output.status.success(),
        "ldapmodify -f {} failed ({}):\n{}\n{}\n--- the LDIF:\n{}",
        ldif.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
        std::fs::read_to_string(ldif).unwrap_or_default()
    );
}

/// Every entry under the base, as slapd returns it.
fn slapd_entries(slapd: &Slapd) -> Vec<Entry> {
    let output = slapd.ldapsearch(&["-b", &base(), "(objectClass=*)", "*"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    LdifReader::new(&output.stdout[..])
        .map(|record| match record.unwrap() {
            Record::Content(entry) => entry,
            Record::Change(change) => panic!("{change:?}"),
        })
        .collect()
}

fn person(dn: &str, cn: &str, uid: &str, mail: &str) -> Entry {
    Entry::new(dn)
        .with(
            "objectClass",
            &["top", "person", "organizationalPerson", "inetOrgPerson"],
        )
        .with("cn", &[cn])
        .with("sn", &["x"])
        .with("uid", &[uid])
        .with("mail", &[mail])
}

fn list(dn: &str, cn: &str, members: &[&str]) -> Entry {
    Entry::new(dn)
        .with("objectClass", &["top", "groupOfNames"])
        .with("cn", &[cn])
        .with("mail", &["list@corp.example"])
        .with("member", members)
}

const ALICE: &str = "cn=Alice Adams,ou=People,dc=corp";
const STAR: &str = "cn=*)(uid=*,ou=People,dc=corp";
const SMITH: &str = "cn=Smith\\, John+uid=js,ou=People,dc=corp";
const HASH: &str = "cn=\\#hash\\ ,ou=People,dc=corp";
const BOB: &str = "cn=Bob Smith,ou=People,dc=corp";
const CAROL: &str = "cn=Carol Chen,ou=People,dc=corp";
const SALES: &str = "cn=Sales\\, EMEA \\+ #1,ou=Groups,dc=corp";
const VENTES: &str = "cn=ventes ünï,ou=Groups,dc=corp";

/// The people directory at each step.
fn people(step: usize) -> Vec<Entry> {
    let mut alice = person(ALICE, "Alice Adams", "alice", "alice@corp.example")
        .with("displayName", &["Ærøskøbing 東京"])
        .with("telephoneNumber", &["+1 555 0100"]);
    if step == 1 {
        alice = alice
            .with("departmentNumber", &["Sales"])
            .with("title", &["Boss"])
            .with("l", &["line one\nline two"]);
    } else {
        alice = alice
            .with("departmentNumber", &["Ventes ünï"])
            .with("title", &["Chief\r\n"]);
    }
    let star = person(STAR, "*)(uid=*", "star", "*)(uid=*@corp.example")
        .with("displayName", &["#not a comment"])
        .with("title", &[" leading and trailing "]);
    let smith = person(SMITH, "Smith, John", "js", "O'Neil+Tag@corp.example")
        .with("displayName", &["Smith, John"]);
    let hash = person(HASH, "#hash ", "hash", "Zoë@corp.example");
    let mut bob = person(BOB, "Bob Smith", "bob", "bob@corp.example");
    if step == 2 {
        bob = bob.with("employeeType", &["former"]);
    }
    let carol = person(CAROL, "Carol Chen", "carol", "carol@corp.example");
    let mut entries = vec![alice, star, smith, hash, bob];
    if step == 1 {
        entries.push(carol);
        entries.push(list(SALES, "Sales, EMEA + #1", &[ALICE, STAR, SMITH]));
        entries.push(list(VENTES, "ventes ünï", &[BOB, CAROL]));
    } else {
        entries.push(list(SALES, "Sales, EMEA + #1", &[ALICE, SMITH, HASH]));
    }
    entries
}

/// Contractors are anchored by employeeNumber, with a newline and repeated spaces in it:
/// two anchors LDAP string matching would confuse. At step 2 one moves.
fn contractors(step: usize) -> Vec<Entry> {
    let ou = if step == 1 { "Contractors" } else { "Alumni" };
    vec![
        person(
            &format!("cn=Dan,ou={ou},dc=corp"),
            "Dan",
            "dan",
            "dan@corp.example",
        )
        .with("employeeNumber", &["C-1\nx  y"]),
        person(
            "cn=Dani,ou=Contractors,dc=corp",
            "Dani",
            "dani",
            "dani@corp.example",
        )
        .with("employeeNumber", &["C-1\nx y"]),
    ]
}

fn config(step: usize) -> String {
    let aol = if step == 1 {
        "  - name: aol-from-mail\n    protocol: aol\n    value: \"{mail|lower|local_part}\"\n\
         \x20 - name: lcs-uid\n    protocol: lcs\n    value: \"{uid}\"\n"
    } else {
        // Renamed without churn, and the names change case: updates, not remove + add;
        // lcs-uid is gone: its names go.
        "  - name: aol-mail\n    protocol: aol\n    value: \"{mail|upper|local_part}\"\n\
         \x20   renamed_from: [aol-from-mail]\n"
    };
    let departure = if step == 3 { "delete" } else { "deactivate" };
    // At step 3 the group "everyone" changes kind: an update of the group.
    let everyone = if step == 3 {
        "    kind: distribution_list\n    source: hr\n    filter: \"(cn=Sales*)\"\n"
    } else {
        "    kind: org_unit\n    source: hr\n    dn: ou=People,dc=corp\n"
    };
    format!(
        "sources:\n\
         \x20 - name: hr\n    ldif:\n      path: ../people.ldif\n\
         \x20 - name: contractors\n    anchor: employeeNumber\n    ldif:\n      path: ../contractors.ldif\n\
         accounts:\n  profile:\n\
         \x20   display_name: \"{{displayName}}\"\n    department: \"{{departmentNumber}}\"\n\
         \x20   title: \"{{title}}\"\n    telephone: \"{{telephoneNumber}}\"\n    location: \"{{l}}\"\n\
         \x20   mail: \"{{mail}}\"\n\
         \x20 disabled_when: \"(employeeType=former)\"\n  on_departure: {departure}\n\
         mappings:\n{aol}\
         groups:\n\
         \x20 - name: \"{{cn}}\"\n    kind: distribution_list\n    source: hr\n    filter: \"(mail=*)\"\n\
         \x20 - name: everyone\n{everyone}"
    )
}

#[test]
fn ldapmodify_of_every_plan_keeps_slapd_mirroring_the_store() {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/registrar.ldap.schema");
    let slapd = Slapd::start(Options::default().schema(schema));
    slapd.load_ldif(&base_ldif());
    let workspace = Workspace::new();
    let mut snapshot = Directory::default();
    let mut seen = BTreeSet::new();
    for step in 1..=3 {
        workspace.write_config(&config(step));
        workspace.write_directory("people.ldif", &people(step));
        workspace.write_directory("contractors.ldif", &contractors(step));
        let (ldif, kinds) = workspace.plan_ldif(step);
        assert!(!kinds.is_empty(), "step {step} changes nothing");
        seen.extend(kinds);
        ldapmodify(&slapd, &ldif);
        // Our own reader reads the same file as change records that apply strictly.
        for record in LdifReader::new(&std::fs::read(&ldif).unwrap()[..]) {
            let Record::Change(change) = record.unwrap() else {
                panic!("a content record in {}", ldif.display())
            };
            snapshot
                .apply(&change)
                .unwrap_or_else(|e| panic!("step {step}: {e}"));
        }
        workspace.apply(step);
        let store = workspace.store();
        if step == 1 {
            // The hostile values made it into the store, so the comparison covers them.
            let text = store.to_string();
            for needle in [
                r#""im_name":"*)(uid=*""#,
                r#""im_name":"o'neil+tag""#,
                r#""im_name":"zoë""#,
                r#""anchor":"c-1\nx  y""#,
                r#""anchor":"cn=\\#hash\\ ,ou=people,dc=corp""#,
                r#""name":"Sales, EMEA + #1""#,
                r#""location":"line one\nline two""#,
                r#""title":" leading and trailing ""#,
            ] {
                assert!(text.contains(needle), "{needle} not in {text}");
            }
        }
        assert_eq!(
            mirror_document(&slapd_entries(&slapd)),
            store,
            "step {step}: slapd's mirror differs from the store"
        );
        assert_eq!(
            mirror_document(snapshot.entries()),
            store,
            "step {step}: the snapshot mirror differs from the store"
        );
    }
    // The steps made every kind of change a plan holds.
    let expected = [
        ("account", "add"),
        ("account", "update"),
        ("account", "deactivate"),
        ("account", "reactivate"),
        ("account", "remove"),
        ("registration", "add"),
        ("registration", "update"),
        ("registration", "remove"),
        ("group", "add"),
        ("group", "update"),
        ("group", "remove"),
        ("group_member", "add"),
        ("group_member", "remove"),
    ];
    for (kind, action) in expected {
        assert!(
            seen.contains(&(kind.to_string(), action.to_string())),
            "no {kind} {action} in {seen:?}"
        );
    }
    // A plan with nothing to do: ldapmodify accepts the empty LDIF too.
    let (ldif, kinds) = workspace.plan_ldif(4);
    assert!(kinds.is_empty(), "{kinds:?}");
    ldapmodify(&slapd, &ldif);
}

#[test]
fn a_bad_ldif_base_is_one_line_and_reads_nothing() {
    let workspace = Workspace::new();
    workspace.write_config(&config(1));
    // No directory files: the base is refused before anything is read.
    for (base, needle) in [
        ("cn=registrar,dc=x", "not cn="),
        ("ou=a,,", "not a DN"),
        ("", "root DN"),
    ] {
        let output = workspace.run(&["plan", "--format", "ldif", "--ldif-base", base]);
        assert_one_line_error(&output, &["--ldif-base", needle]);
        assert!(output.stdout.is_empty());
    }
    assert_eq!(store::fingerprint(&workspace.store), None);
}
