//! Full and delta import of the same files give the same plan and the same store.
//!
//! A generated directory (users in nested OUs, distribution lists, disabled and excluded
//! users) is the content file of an `ldif` source; generated change files (hires,
//! departures, attribute changes, renames, moves of users and of a whole OU, group
//! membership) arrive one per step. Three stores follow the steps:
//! - `delta`: `plan --mode delta` and apply, on the steps that apply;
//! - `full`: `plan --mode full` and apply on the same steps;
//! - `fresh`: a new store, one full apply of the end state.
//!
//! At every step the delta plan equals the full plan (every byte of the plan JSON,
//! imports and inputs digest included); at the end the `delta` and `full` stores hold
//! the same rows (kept snapshots included) and the `fresh` store keeps the same snapshot,
//! written whole rather than updated. Everything goes through the app layer, on real
//! files and real stores (SQLite files, or PostgreSQL databases under
//! `REGISTRAR_TEST_STORE=postgres`).

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use registrar::app::{self, Context, ImportMode};
use registrar::core::entry::Entry;
use registrar::core::plan::Plan;
use registrar::ldif::{self, write_entry, Directory, Record};
use registrar::render::Color;

mod common;

use common::store::{self, Backend, TestStore};

const CONFIG: &str = r#"
sources:
  - name: hr
    anchor: entryUUID
    allow_empty: true
    ldif:
      path: directory.ldif
      changes: changes/*.ldif
accounts:
  profile:
    department: "{departmentNumber}"
    display_name: "{cn}"
  disabled_when: "(userAccountControl:1.2.840.113556.1.4.803:=2)"
mappings:
  - name: aol-from-mail
    protocol: aol
    value: "{mail|lower|local_part}"
  - name: lcs-im
    protocol: lcs
    value: "{imName}"
    when: "(departmentNumber=Sales)"
groups:
  - name: "{cn}"
    kind: distribution_list
    source: hr
    filter: "(mail=*)"
  - name: staff
    kind: org_unit
    source: hr
    dn: ou=People,dc=example,dc=com
exclusions:
  - name: legal
    filter: "(departmentNumber=Legal)"
policy:
  max_deletes: 1000000
"#;

/// [`CONFIG`] without its group rules (a region then has no group to close over).
fn config_without_groups() -> String {
    let start = CONFIG.find("groups:").unwrap();
    let end = CONFIG.find("exclusions:").unwrap();
    format!("{}{}", &CONFIG[..start], &CONFIG[end..])
}

const PEOPLE: &str = "ou=People,dc=example,dc=com";
const CONTRACTORS: &str = "ou=Contractors,ou=People,dc=example,dc=com";
const CONTRACTORS_MOVED: &str = "ou=Contractors,dc=example,dc=com";
const ALUMNI: &str = "ou=Alumni,dc=example,dc=com";
const GROUPS: &str = "ou=Groups,dc=example,dc=com";
const LOCALS: [&str; 5] = ["alice", "bob", "Carol", "dave", "ALICE"];
const DEPARTMENTS: [&str; 3] = ["Sales", "Finance", "Legal"];

/// A user as generated: where it lives and what it holds.
#[derive(Debug, Clone)]
struct User {
    /// 0: People, 1: Contractors, 2: Alumni.
    ou: u8,
    mail: Option<u8>,
    im_name: Option<u8>,
    department: u8,
    disabled: bool,
    /// 0: its own `entryUUID`; 1: none (skipped with a warning); 2: one it shares with
    /// every other user of anchor 2 (the first DN wins).
    anchor: u8,
}

fn user_strategy() -> impl Strategy<Value = User> {
    (
        0u8..3,
        proptest::option::weighted(0.8, 0u8..5),
        proptest::option::weighted(0.6, 0u8..5),
        0u8..3,
        proptest::bool::weighted(0.15),
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
    )
        .prop_map(|(ou, mail, im_name, department, disabled, anchor)| User {
            ou,
            mail,
            im_name,
            department,
            disabled,
            anchor,
        })
}

/// One change, its targets picked among the entries present when it applies.
#[derive(Debug, Clone)]
enum Op {
    Hire(User),
    Leave(u16),
    SetMail(u16, Option<u8>),
    SetDepartment(u16, u8),
    Disable(u16, bool),
    Rename(u16),
    MoveUser(u16, u8),
    /// Moves ou=Contractors (and the users in it) between ou=People and the root.
    MoveContractors,
    SetMembers(u16, Vec<u16>),
    DropGroup(u16),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => user_strategy().prop_map(Op::Hire),
        2 => any::<u16>().prop_map(Op::Leave),
        2 => (any::<u16>(), proptest::option::weighted(0.8, 0u8..5)).prop_map(|(u, m)| Op::SetMail(u, m)),
        1 => (any::<u16>(), 0u8..3).prop_map(|(u, d)| Op::SetDepartment(u, d)),
        1 => (any::<u16>(), any::<bool>()).prop_map(|(u, d)| Op::Disable(u, d)),
        2 => any::<u16>().prop_map(Op::Rename),
        2 => (any::<u16>(), 0u8..3).prop_map(|(u, o)| Op::MoveUser(u, o)),
        1 => Just(Op::MoveContractors),
        2 => (any::<u16>(), proptest::collection::vec(any::<u16>(), 0..4)).prop_map(|(g, m)| Op::SetMembers(g, m)),
        1 => any::<u16>().prop_map(Op::DropGroup),
    ]
}

/// The directory as the steps leave it, with the counter that keeps new ids fresh.
struct Model {
    snapshot: Directory,
    next_id: usize,
}

fn ou_dn(model: &Model, ou: u8) -> String {
    match ou {
        0 => PEOPLE.to_string(),
        1 if model.snapshot.get(CONTRACTORS).is_some() => CONTRACTORS.to_string(),
        1 => CONTRACTORS_MOVED.to_string(),
        _ => ALUMNI.to_string(),
    }
}

fn user_entry(model: &Model, id: usize, user: &User) -> Entry {
    let mut entry = Entry::new(format!("uid=u{id},{}", ou_dn(model, user.ou)))
        .with(
            "objectClass",
            &["top", "person", "organizationalPerson", "inetOrgPerson"],
        )
        .with("uid", &[&format!("u{id}")])
        .with("cn", &[&format!("User {id}")])
        .with("departmentNumber", &[DEPARTMENTS[user.department as usize]]);
    match user.anchor {
        0 => entry = entry.with("entryUUID", &[&format!("uuid-{id}")]),
        1 => {}
        _ => entry = entry.with("entryUUID", &["uuid-shared"]),
    }
    if let Some(local) = user.mail {
        entry = entry.with(
            "mail",
            &[&format!("{}@example.com", LOCALS[local as usize])],
        );
    }
    if let Some(name) = user.im_name {
        entry = entry.with("imName", &[LOCALS[name as usize]]);
    }
    if user.disabled {
        entry = entry.with("userAccountControl", &["514"]);
    }
    entry
}

fn container(dn: &str, class: &str, attribute: &str, value: &str) -> Entry {
    Entry::new(dn)
        .with("objectClass", &["top", class])
        .with(attribute, &[value])
}

fn group_entry(id: usize, mail: bool, members: &[String]) -> Entry {
    let mut entry = Entry::new(format!("cn=g{id},{GROUPS}"))
        .with("objectClass", &["top", "groupOfNames"])
        .with("cn", &[&format!("g{id}")]);
    if mail {
        entry = entry.with("mail", &[&format!("g{id}@example.com")]);
    }
    for member in members {
        entry = entry.with("member", &[member]);
    }
    entry
}

/// The users (by DN) and the group entries present now, in a stable order.
fn present(model: &Model) -> (Vec<String>, Vec<String>) {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    for entry in model.snapshot.entries() {
        if entry.has("uid") {
            users.push(entry.dn.clone());
        } else if entry.dn.starts_with("cn=g") {
            groups.push(entry.dn.clone());
        }
    }
    users.sort();
    groups.sort();
    (users, groups)
}

fn pick(list: &[String], at: u16) -> Option<&String> {
    (!list.is_empty()).then(|| &list[at as usize % list.len()])
}

/// The change record `op` makes of the directory as it is, if it has something to act
/// on; applied to the model on the way.
fn record(model: &mut Model, op: &Op) -> Option<String> {
    let (users, groups) = present(model);
    let text = match op {
        Op::Hire(user) => {
            let id = model.next_id;
            model.next_id += 1;
            let entry = user_entry(model, id, user);
            let mut text = format!("dn: {}\nchangetype: add\n", entry.dn);
            for attribute in &entry.attributes {
                for value in &attribute.values {
                    text.push_str(&format!(
                        "{}: {}\n",
                        attribute.description,
                        String::from_utf8_lossy(value)
                    ));
                }
            }
            text
        }
        Op::Leave(at) => format!("dn: {}\nchangetype: delete\n", pick(&users, *at)?),
        Op::SetMail(at, mail) => format!(
            "dn: {}\nchangetype: modify\nreplace: mail\n{}-\n",
            pick(&users, *at)?,
            mail.map(|m| format!("mail: {}@example.com\n", LOCALS[m as usize]))
                .unwrap_or_default()
        ),
        Op::SetDepartment(at, department) => format!(
            "dn: {}\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: {}\n-\n",
            pick(&users, *at)?,
            DEPARTMENTS[*department as usize]
        ),
        Op::Disable(at, disabled) => format!(
            "dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {}\n-\n",
            pick(&users, *at)?,
            if *disabled { 514 } else { 512 }
        ),
        Op::Rename(at) => {
            let id = model.next_id;
            model.next_id += 1;
            format!(
                "dn: {}\nchangetype: modrdn\nnewrdn: uid=u{id}\ndeleteoldrdn: 1\n",
                pick(&users, *at)?
            )
        }
        Op::MoveUser(at, ou) => {
            let dn = pick(&users, *at)?;
            let rdn = dn.split(',').next().unwrap_or_default();
            let superior = ou_dn(model, *ou);
            format!("dn: {dn}\nchangetype: moddn\nnewrdn: {rdn}\ndeleteoldrdn: 1\nnewsuperior: {superior}\n")
        }
        Op::MoveContractors => {
            let (from, to) = if model.snapshot.get(CONTRACTORS).is_some() {
                (CONTRACTORS, "dc=example,dc=com")
            } else {
                (CONTRACTORS_MOVED, PEOPLE)
            };
            format!("dn: {from}\nchangetype: moddn\nnewrdn: ou=Contractors\ndeleteoldrdn: 1\nnewsuperior: {to}\n")
        }
        Op::SetMembers(at, members) => {
            let mut text = format!(
                "dn: {}\nchangetype: modify\nreplace: member\n",
                pick(&groups, *at)?
            );
            for member in members {
                let dn = match member % 5 {
                    0 => format!("cn=nobody,{PEOPLE}"),
                    1 => pick(&groups, *member).cloned().unwrap_or_default(),
                    _ => pick(&users, *member).cloned().unwrap_or_default(),
                };
                if !dn.is_empty() && !text.contains(&format!("member: {dn}\n")) {
                    text.push_str(&format!("member: {dn}\n"));
                }
            }
            text.push_str("-\n");
            text
        }
        Op::DropGroup(at) => format!("dn: {}\nchangetype: delete\n", pick(&groups, *at)?),
    };
    let change = match ldif::LdifReader::new(text.as_bytes()).next() {
        Some(Ok(Record::Change(change))) => change,
        other => panic!("not a change record: {other:?}\n{text}"),
    };
    model
        .snapshot
        .apply(&change)
        .unwrap_or_else(|e| panic!("generated a change that does not apply: {e}\n{text}"));
    Some(text)
}

fn context(dir: &Path, state: &TestStore) -> Context {
    Context {
        config_dir: dir.join("config"),
        state: store::location(state),
        color: Color::Off,
        rev: None,
    }
}

fn plan(context: &Context, mode: ImportMode) -> Plan {
    reconcile(context, mode).plan
}

fn reconcile(context: &Context, mode: ImportMode) -> app::Reconciled {
    app::reconcile(context, None, mode).unwrap_or_else(|e| panic!("{mode:?} plan failed: {e}"))
}

fn apply(context: &Context, plan: &Plan) {
    app::apply_plan(context, plan, "test", "test".to_string())
        .unwrap_or_else(|e| panic!("apply failed: {e}"));
}

/// Every row of the store's tables, as text, in a fixed order; `serials: false` leaves
/// out the serial that imported each snapshot file.
fn dump(test_store: &TestStore, serials: bool, tables: &[&str]) -> Vec<String> {
    let selections: Vec<(&str, &str)> = tables
        .iter()
        .map(|table| match (*table, serials) {
            ("snapshots", false) => (*table, "source, content_path, content_digest"),
            ("snapshot_change_files", false) => (*table, "source, position, path, digest"),
            _ => (*table, "*"),
        })
        .collect();
    store::dump(test_store, &selections)
}

const STATE_TABLES: &[&str] = &[
    "accounts",
    "registrations",
    "groups",
    "group_members",
    "meta",
    "snapshots",
    "snapshot_change_files",
    "snapshot_entries",
];
const SNAPSHOT_TABLES: &[&str] = &["snapshots", "snapshot_change_files", "snapshot_entries"];

fn write_directory(dir: &Path, model: &Model) {
    let mut out = Vec::new();
    ldif::write_version(&mut out).unwrap();
    for entry in model.snapshot.entries() {
        write_entry(&mut out, entry).unwrap();
    }
    std::fs::write(dir.join("config/directory.ldif"), out).unwrap();
}

fn change_file(dir: &Path, step: usize) -> PathBuf {
    dir.join(format!("config/changes/{step:04}.ldif"))
}

/// 40 generated histories on SQLite; 16 on PostgreSQL, where each case's three fresh
/// databases and its applies cost several times more (`ci/test` runs both).
fn cases() -> u32 {
    match Backend::of_this_run() {
        Backend::Sqlite => 40,
        Backend::Postgres => 16,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn full_and_delta_import_give_the_same_plan_and_store(
        users in proptest::collection::vec(user_strategy(), 0..10),
        groups in proptest::collection::vec((any::<bool>(), proptest::collection::vec(0usize..12, 0..4)), 0..3),
        steps in proptest::collection::vec((proptest::collection::vec(op_strategy(), 0..6), proptest::bool::weighted(0.7)), 1..5),
        with_groups in any::<bool>(),
    ) {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        std::fs::create_dir_all(dir.join("config/changes")).unwrap();
        let config = if with_groups { CONFIG.to_string() } else { config_without_groups() };
        std::fs::write(dir.join("config/registrar.yaml"), config).unwrap();

        let mut model = Model { snapshot: Directory::default(), next_id: users.len() };
        let mut entries = vec![
            container("dc=example,dc=com", "domain", "dc", "example"),
            container(PEOPLE, "organizationalUnit", "ou", "People"),
            container(CONTRACTORS, "organizationalUnit", "ou", "Contractors"),
            container(ALUMNI, "organizationalUnit", "ou", "Alumni"),
            container(GROUPS, "organizationalUnit", "ou", "Groups"),
        ];
        model.snapshot = Directory::from_entries(entries.clone()).unwrap();
        for (id, user) in users.iter().enumerate() {
            entries.push(user_entry(&model, id, user));
        }
        for (id, (mail, members)) in groups.iter().enumerate() {
            let members: Vec<String> = members
                .iter()
                .map(|m| match entries.get(5 + m) {
                    Some(entry) => entry.dn.clone(),
                    None => format!("cn=g{},{GROUPS}", m % 3),
                })
                .collect();
            entries.push(group_entry(id, *mail, &members));
        }
        model.snapshot = Directory::from_entries(entries).unwrap();
        write_directory(dir, &model);

        let (delta_store, full_store) = (TestStore::fresh(), TestStore::fresh());
        let delta = context(dir, &delta_store);
        let full = context(dir, &full_store);
        // The first import keeps the snapshot both modes start from.
        for context in [&delta, &full] {
            let first = plan(context, ImportMode::Full);
            apply(context, &first);
        }

        for (step, (ops, apply_now)) in steps.iter().enumerate() {
            let records: Vec<String> = ops.iter().filter_map(|op| record(&mut model, op)).collect();
            std::fs::write(change_file(dir, step), format!("version: 1\n\n{}", records.join("\n"))).unwrap();
            let delta_pass = reconcile(&delta, ImportMode::Delta);
            // Every delta plan is made by region: the store's standing facts always come
            // from the last write to it.
            prop_assert!(delta_pass.region_entries.is_some(), "step {} read every kept entry", step);
            let delta_plan = delta_pass.plan;
            let full_plan = plan(&full, ImportMode::Full);
            prop_assert_eq!(
                serde_json::to_string_pretty(&delta_plan).unwrap(),
                serde_json::to_string_pretty(&full_plan).unwrap(),
                "step {}", step
            );
            // Full mode on the delta store plans the same too.
            prop_assert_eq!(&plan(&delta, ImportMode::Full), &delta_plan);
            if *apply_now {
                apply(&delta, &delta_plan);
                apply(&full, &full_plan);
                prop_assert!(plan(&delta, ImportMode::Delta).changes.is_empty(), "not converged at step {}", step);
            }
        }
        let last = plan(&delta, ImportMode::Delta);
        apply(&delta, &last);
        apply(&full, &plan(&full, ImportMode::Full));
        prop_assert_eq!(dump(&delta_store, true, STATE_TABLES), dump(&full_store, true, STATE_TABLES));

        // A fresh store keeps, written whole, the snapshot the delta store updated.
        let fresh_store = TestStore::fresh();
        let fresh = context(dir, &fresh_store);
        apply(&fresh, &plan(&fresh, ImportMode::Full));
        prop_assert_eq!(
            dump(&fresh_store, false, SNAPSHOT_TABLES),
            dump(&delta_store, false, SNAPSHOT_TABLES)
        );
        // And what it keeps is the directory the steps made.
        let kept: Vec<Entry> = store::column_bytes(&fresh_store, "SELECT record FROM snapshot_entries ORDER BY dn_key")
            .iter()
            .map(|record| ldif::parse_entry_record(record).unwrap())
            .collect();
        let expected: Vec<Entry> = model.snapshot.entries().cloned().collect();
        prop_assert_eq!(kept, expected);
    }
}
