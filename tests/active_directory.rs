//! LDAP sources against a real Active Directory: Samba's AD domain controller on loopback
//! (`common/samba.rs`), one domain for the whole file, each test in an organizational
//! unit of its own. What is tested here is what only an AD does: binary `objectGUID`
//! anchors that survive moves and renames, `userAccountControl` bits, the
//! `objectCategory=person` filter, nested groups and a group of more than 1,500 members
//! (ranged values), continuation references to the domain's other naming contexts, and
//! LDAPS with the DC's CA.

use std::path::PathBuf;
use std::process::Output;

mod common;

use common::samba::{
    guid_text, unicode_password, value_of, SambaDc, Unit, ADMIN_DN, ADMIN_PASSWORD, DOMAIN_DN,
    SERVICE_DN, SERVICE_PASSWORD,
};
use common::store::TestStore;
use common::{assert_one_line_error, json, registrar, stderr};

/// The environment variable the test configs name in `password_env`.
const PASSWORD_ENV: &str = "REGISTRAR_TEST_AD_PASSWORD";

/// The users of [`people_ldif`], by `cn`: (OU, mail, display name, userAccountControl).
const PEOPLE: [(&str, &str, &str, &str, u32); 5] = [
    ("alice", "Sales", "alice", "Alice Archer", 512),
    ("bob", "Engineering", "bob", "Bob Baker", 512),
    ("carol", "Sales", "carol", "Carol Cole", 514),
    ("zoe", "Engineering", "zoe", "Zoë Ångström-Øster", 512),
    ("dave", "Sales", "dave", "Dave Dunn", 512),
];

/// Two OUs, the users of [`PEOPLE`] (enabled ones with a password, as AD wants),
/// a contact with a mail address (`objectCategory=person` too, but no user), a group
/// `leads` holding bob, and a group `sales-team` holding alice, carol and `leads`.
fn people_ldif(unit: &Unit) -> String {
    let mut ldif = String::new();
    for ou in ["Sales", "Engineering"] {
        ldif += &format!(
            "dn: OU={ou},{}\nobjectClass: organizationalUnit\n\n",
            unit.dn
        );
    }
    for (cn, ou, local, display, control) in PEOPLE {
        ldif += &format!(
            "dn: CN={cn},OU={ou},{dn}\nobjectClass: user\nsAMAccountName: {tag}-{cn}\n\
             mail: {local}@ad.registrar.test\ndisplayName: {display}\n\
             userAccountControl: {control}\n",
            dn = unit.dn,
            tag = unit.tag,
        );
        if control & 2 == 0 {
            ldif += &format!("unicodePwd:: {}\n", unicode_password("User-Passw0rd!"));
        }
        ldif += "\n";
    }
    ldif += &format!(
        "dn: CN=outside,{dn}\nobjectClass: contact\nmail: outside@ad.registrar.test\n\n\
         dn: CN=leads,{dn}\nobjectClass: group\nsAMAccountName: {tag}-leads\n\
         mail: leads@ad.registrar.test\nmember: CN=bob,OU=Engineering,{dn}\n\n\
         dn: CN=sales-team,{dn}\nobjectClass: group\nsAMAccountName: {tag}-sales\n\
         mail: sales@ad.registrar.test\nmember: CN=alice,OU=Sales,{dn}\n\
         member: CN=carol,OU=Sales,{dn}\nmember: CN=leads,{dn}\n",
        dn = unit.dn,
        tag = unit.tag,
    );
    ldif
}

/// A config dir reading `base_dn` of the shared DC (as the service account unless
/// said), and a store.
struct Workspace {
    dir: tempfile::TempDir,
    store: TestStore,
    password: &'static str,
}

impl Workspace {
    /// The source `corp-ad` on `base_dn` with the `ldap:` lines `extra` added, anchored
    /// on `objectGUID`, with the mappings, account rules and group rule AD users write.
    fn new(url: &str, base_dn: &str, extra: &str) -> Self {
        Workspace::bound_as((SERVICE_DN, SERVICE_PASSWORD), url, base_dn, extra)
    }

    /// [`Workspace::new`], bound as `bind_dn` with `password`.
    fn bound_as(
        (bind_dn, password): (&str, &'static str),
        url: &str,
        base_dn: &str,
        extra: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let extra: String = extra
            .lines()
            .map(|line| format!("      {line}\n"))
            .collect();
        std::fs::write(
            config.join("sources.yaml"),
            format!(
                "sources:\n  - name: corp-ad\n    anchor: objectGUID\n    ldap:\n\
                 \x20     url: {url}\n      bind_dn: {bind_dn}\n\
                 \x20     password_env: {PASSWORD_ENV}\n      base_dn: {base_dn}\n\
                 \x20     filter: (|(&(objectCategory=person)(objectClass=user))(objectClass=group))\n\
                 {extra}"
            ),
        )
        .unwrap();
        std::fs::write(config.join("rules.yaml"), RULES).unwrap();
        Workspace {
            dir,
            store: TestStore::fresh(),
            password,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_on(&self.store, args)
    }

    /// `args` run with this config on another store.
    fn run_on(&self, store: &TestStore, args: &[&str]) -> Output {
        registrar(&self.config(), &store.argument())
            .args(args)
            .env(PASSWORD_ENV, self.password)
            .output()
            .unwrap()
    }

    fn plan_json(&self) -> serde_json::Value {
        json(&self.run(&["plan", "--format", "json"]))
    }

    fn apply(&self) {
        let applied = self.run(&["apply", "--auto-approve"]);
        assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    }

    /// `plan --mode MODE --format json` on `store`, and its stderr.
    fn plan_in(&self, store: &TestStore, mode: &str) -> (serde_json::Value, String) {
        let output = self.run_on(store, &["plan", "--mode", mode, "--format", "json"]);
        (json(&output), stderr(&output))
    }

    /// `apply --mode MODE --auto-approve` on `store`, and its stderr.
    fn apply_in(&self, store: &TestStore, mode: &str) -> String {
        let applied = self.run_on(store, &["apply", "--mode", mode, "--auto-approve"]);
        assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
        stderr(&applied)
    }

    fn state(&self, store: &TestStore) -> serde_json::Value {
        json(&self.run_on(store, &["state", "show", "--format", "json"]))
    }
}

const RULES: &str = r#"accounts:
  profile:
    display_name: "{displayName}"
  disabled_when: "(userAccountControl:1.2.840.113556.1.4.803:=2)"
mappings:
  - name: aol-from-mail
    protocol: aol
    value: "{mail|lower|local_part}"
groups:
  - name: "{cn}"
    kind: distribution_list
    source: corp-ad
    filter: "(&(objectClass=group)(mail=*))"
"#;

fn changes<'a>(
    plan: &'a serde_json::Value,
    action: &str,
    kind: &str,
) -> Vec<&'a serde_json::Value> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind && c["action"] == action)
        .collect()
}

/// The anchor registrar must give the entry at `dn`: its `objectGUID` as the server
/// sends it, written out.
fn anchor_of(dc: &SambaDc, dn: &str) -> String {
    let entry = dc.search(dn, "(objectClass=*)", &["objectGUID"]);
    guid_text(&value_of(&entry, "objectGUID").expect("an objectGUID"))
}

#[test]
fn a_domain_reads_with_guid_anchors_disabled_accounts_and_nested_groups() {
    let dc = SambaDc::shared();
    let unit = dc.unit("people");
    dc.add(&people_ldif(&unit));
    let ws = Workspace::new(dc.url(), &unit.dn, "");
    let plan = ws.plan_json();

    // Every enabled user, anchored on its objectGUID; not carol (514: disabled from the
    // start, so never an account), not the contact, not the groups.
    let accounts = changes(&plan, "add", "account");
    let mut anchors: Vec<&str> = accounts
        .iter()
        .map(|c| c["account"].as_str().unwrap())
        .collect();
    anchors.sort_unstable();
    let mut expected: Vec<String> = PEOPLE
        .iter()
        .filter(|person| person.4 & 2 == 0)
        .map(|(cn, ou, ..)| anchor_of(dc, &format!("CN={cn},OU={ou},{}", unit.dn)))
        .collect();
    expected.sort_unstable();
    assert_eq!(anchors, expected, "{plan:#}");
    assert_eq!(anchors.len(), PEOPLE.len() - 1);

    // The non-ASCII display name arrives as the server holds it.
    let zoe = anchor_of(dc, &format!("CN=zoe,OU=Engineering,{}", unit.dn));
    let zoe_add = accounts
        .iter()
        .find(|c| c["account"] == zoe.as_str())
        .unwrap();
    assert!(
        zoe_add.to_string().contains("Zoë Ångström-Øster"),
        "{zoe_add:#}"
    );

    // carol (514) is disabled: no registration, not a member of sales-team.
    let registrations: Vec<&str> = changes(&plan, "add", "registration")
        .iter()
        .map(|c| c["im_name"].as_str().unwrap())
        .collect();
    assert_eq!(registrations.len(), 4, "{registrations:?}");
    assert!(!registrations.contains(&"carol"), "{registrations:?}");
    assert!(
        !registrations.contains(&"outside"),
        "the contact is no user"
    );

    // sales-team holds alice and, through leads, bob.
    let alice = anchor_of(dc, &format!("CN=alice,OU=Sales,{}", unit.dn));
    let bob = anchor_of(dc, &format!("CN=bob,OU=Engineering,{}", unit.dn));
    let mut sales: Vec<&str> = changes(&plan, "add", "group_member")
        .iter()
        .filter(|c| c["group"] == "sales-team")
        .map(|c| c["member"].as_str().unwrap())
        .collect();
    sales.sort_unstable();
    let mut wanted = vec![alice.as_str(), bob.as_str()];
    wanted.sort_unstable();
    assert_eq!(sales, wanted, "{plan:#}");

    // Applied, the domain plans nothing more.
    ws.apply();
    let again = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));

    // alice is disabled (512 -> 514) and carol enabled (514 -> 544: enabled, with
    // PASSWD_NOTREQD, as accounts without a password are): the bit decides, not the value.
    dc.modify(&format!(
        "dn: CN=alice,OU=Sales,{dn}\nchangetype: modify\nreplace: userAccountControl\n\
         userAccountControl: 514\n\n\
         dn: CN=carol,OU=Sales,{dn}\nchangetype: modify\nreplace: userAccountControl\n\
         userAccountControl: 544\n",
        dn = unit.dn
    ));
    let carol = anchor_of(dc, &format!("CN=carol,OU=Sales,{}", unit.dn));
    let plan = ws.plan_json();
    let deactivated: Vec<&str> = changes(&plan, "deactivate", "account")
        .iter()
        .map(|c| c["account"].as_str().unwrap())
        .collect();
    assert_eq!(deactivated, [alice.as_str()], "{plan:#}");
    let added: Vec<&str> = changes(&plan, "add", "account")
        .iter()
        .map(|c| c["account"].as_str().unwrap())
        .collect();
    assert_eq!(added, [carol.as_str()], "{plan:#}");
}

#[test]
fn a_move_a_rename_and_a_deletion_keep_what_the_anchor_holds() {
    let dc = SambaDc::shared();
    let unit = dc.unit("moves");
    dc.add(&people_ldif(&unit));
    let ws = Workspace::new(dc.url(), &unit.dn, "");
    ws.apply();
    let dave = anchor_of(dc, &format!("CN=dave,OU=Sales,{}", unit.dn));
    let alice = anchor_of(dc, &format!("CN=alice,OU=Sales,{}", unit.dn));
    let bob = anchor_of(dc, &format!("CN=bob,OU=Engineering,{}", unit.dn));

    // dave moves to Engineering, alice is renamed, bob is deleted.
    dc.modify(&format!(
        "dn: CN=dave,OU=Sales,{dn}\nchangetype: modrdn\nnewrdn: CN=dave\ndeleteoldrdn: 1\n\
         newsuperior: OU=Engineering,{dn}\n\n\
         dn: CN=alice,OU=Sales,{dn}\nchangetype: modrdn\nnewrdn: CN=alice-renamed\ndeleteoldrdn: 1\n\n\
         dn: CN=bob,OU=Engineering,{dn}\nchangetype: delete\n",
        dn = unit.dn
    ));
    assert_eq!(
        anchor_of(dc, &format!("CN=dave,OU=Engineering,{}", unit.dn)),
        dave,
        "a move keeps the objectGUID"
    );
    let plan = ws.plan_json();
    // Nothing of dave's or alice's is removed or added again: their anchors held.
    for kind in ["account", "registration"] {
        for action in ["add", "remove"] {
            let touched: Vec<_> = changes(&plan, action, kind)
                .into_iter()
                .filter(|c| c["account"] == dave.as_str() || c["account"] == alice.as_str())
                .collect();
            assert!(touched.is_empty(), "{action} {kind}: {touched:?}");
        }
    }
    // bob is gone: deactivated (on_departure's default), his registration freed.
    let deactivated: Vec<&str> = changes(&plan, "deactivate", "account")
        .iter()
        .map(|c| c["account"].as_str().unwrap())
        .collect();
    assert_eq!(deactivated, [bob.as_str()], "{plan:#}");
    ws.apply();
    let again = ws.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
}

#[test]
fn a_group_of_more_than_1500_members_arrives_whole_plain_or_ranged() {
    const MEMBERS: usize = 1_600;
    let dc = SambaDc::shared();
    let unit = dc.unit("large");
    let mut ldif = String::new();
    let mut group = format!(
        "dn: CN=everyone,{dn}\nobjectClass: group\nsAMAccountName: {tag}-everyone\n\
         mail: everyone@ad.registrar.test\n",
        dn = unit.dn,
        tag = unit.tag
    );
    for n in 0..MEMBERS {
        // Disabled accounts need no password, which keeps the adds fast; the group rule
        // counts them as skipped members, the plan as deactivated accounts.
        ldif += &format!(
            "dn: CN=m{n},{dn}\nobjectClass: user\nsAMAccountName: {tag}-m{n}\n\
             mail: m{n}@ad.registrar.test\nuserAccountControl: 514\n\n",
            dn = unit.dn,
            tag = unit.tag
        );
        group += &format!("member: CN=m{n},{}\n", unit.dn);
    }
    dc.add(&(ldif + &group));
    let plain = Workspace::new(dc.url(), &unit.dn, "");
    // Windows cuts `member` at 1,500 values (MaxValRange) and registrar reads the rest
    // with `member;range=1500-*`; Samba never cuts a plain `member`, but honours a range
    // asked for, so asking for ranges of 1,000 takes the same path against a real DC.
    let ranged = Workspace::new(
        dc.url(),
        &unit.dn,
        "attributes: [\"*\", \"member;range=0-999\"]",
    );
    let mut read = Vec::new();
    for ws in [&plain, &ranged] {
        let exported = ws.run(&["export", "--source", "corp-ad", "--format", "json"]);
        let entries = json(&exported);
        let everyone = entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["dn"].as_str().unwrap().starts_with("CN=everyone,"))
            .expect("the group is read");
        let attributes = everyone["attributes"].as_object().unwrap();
        assert!(
            attributes.keys().all(|name| !name.contains(";range=")),
            "{:?}",
            attributes.keys().collect::<Vec<_>>()
        );
        let mut members: Vec<String> = attributes["member"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_ascii_lowercase())
            .collect();
        members.sort_unstable();
        assert_eq!(members.len(), MEMBERS);
        read.push(members);
    }
    assert_eq!(read[0], read[1]);
}

#[test]
fn a_continuation_reference_fails_the_read_unless_the_source_keeps_to_its_domain() {
    let dc = SambaDc::shared();
    // A subtree search of the domain's root meets CN=Configuration, another naming
    // context: the server sends a continuation reference to it.
    let ws = Workspace::new(dc.url(), DOMAIN_DN, "");
    let before = common::store::fingerprint(&ws.store);
    let output = ws.run(&["apply", "--auto-approve"]);
    assert_one_line_error(
        &output,
        &[
            "source corp-ad",
            "continuation reference to \"ldap://",
            "CN=Configuration,DC=ad,DC=registrar,DC=test",
            "referrals are not followed",
            "domain_scope: true",
        ],
    );
    assert_eq!(common::store::fingerprint(&ws.store), before);

    // With the domain scope control the server sends none: the domain reads whole.
    let unit = dc.unit("scoped");
    dc.add(&people_ldif(&unit));
    let scoped = Workspace::new(dc.url(), DOMAIN_DN, "domain_scope: true");
    let plan = scoped.plan_json();
    let anchors: Vec<&str> = changes(&plan, "add", "account")
        .iter()
        .map(|c| c["account"].as_str().unwrap())
        .collect();
    let alice = anchor_of(dc, &format!("CN=alice,OU=Sales,{}", unit.dn));
    assert!(anchors.contains(&alice.as_str()), "{anchors:?}");
    // The service account and the administrator are users of the domain too.
    assert!(anchors.len() > PEOPLE.len(), "{anchors:?}");
}

#[test]
fn ldaps_verifies_the_dc_with_its_ca_file() {
    let dc = SambaDc::shared();
    let unit = dc.unit("tls");
    dc.add(&people_ldif(&unit));
    // The CA file sits beside the YAML: a config reads no file outside its directory.
    let trusted = Workspace::new(dc.ldaps_url(), &unit.dn, "ca_file: dc-ca.pem");
    std::fs::copy(dc.ca_file(), trusted.config().join("dc-ca.pem")).unwrap();
    let plan = trusted.plan_json();
    assert_eq!(
        changes(&plan, "add", "account").len(),
        PEOPLE.len() - 1,
        "all but carol"
    );

    // Without the CA, the system's roots do not know the DC: one line, nothing read.
    let untrusted = Workspace::new(dc.ldaps_url(), &unit.dn, "");
    let output = untrusted.run(&["plan"]);
    assert_one_line_error(&output, &["source corp-ad", "ldaps://127.0.0.1:636"]);
    assert!(!stderr(&output).contains(SERVICE_PASSWORD));
}

/// `--mode delta` through DirSync plans what a full read plans, and its apply leaves the
/// same store, through a scripted sequence: attributes changed, a rename, a move inside
/// the base and one out of it, an account disabled, a deletion, an addition, a group's
/// members changed. Bound as the domain's administrator: DirSync needs the "Replicating
/// Directory Changes" right, and Samba shows deleted objects to administrators only.
/// Bound as an ordinary account, the server refuses the feed and the source is read in
/// full every run, with a note.
#[test]
fn a_delta_through_dirsync_plans_and_applies_what_a_full_read_does() {
    // Every attribute (back links included), and a list without them, where the group
    // entries listing a renamed or deleted member are found by the kept footprints.
    for (name, extra) in [
        ("delta", ""),
        (
            "delta-listed",
            "attributes: [cn, mail, displayName, member, userAccountControl]",
        ),
    ] {
        delta_through_dirsync(name, extra);
    }
}

/// [`a_delta_through_dirsync_plans_and_applies_what_a_full_read_does`] in the unit
/// `name`, the source's `ldap:` block with `extra`.
fn delta_through_dirsync(name: &str, extra: &str) {
    let dc = SambaDc::shared();
    let unit = dc.unit(name);
    dc.add(&people_ldif(&unit));
    let dn = &unit.dn;
    // One config over two stores: one only ever applied in full, one in delta.
    let ws = Workspace::bound_as((ADMIN_DN, ADMIN_PASSWORD), dc.url(), dn, extra);
    let (full, delta) = (&ws.store, &TestStore::fresh());
    ws.apply_in(full, "full");
    let first = ws.apply_in(delta, "full");
    assert!(
        !first.contains("feed"),
        "the apply kept a DirSync cookie: {first}"
    );
    let steps = [
        format!(
            "dn: CN=alice,OU=Sales,{dn}\nchangetype: modify\nreplace: displayName\n\
             displayName: Alice Ashdown\n-\nreplace: mail\nmail: aa@ad.registrar.test\n"
        ),
        format!("dn: CN=bob,OU=Engineering,{dn}\nchangetype: modrdn\nnewrdn: CN=robert\ndeleteoldrdn: 1\n"),
        format!(
            "dn: CN=dave,OU=Sales,{dn}\nchangetype: modrdn\nnewrdn: CN=dave\ndeleteoldrdn: 1\n\
             newsuperior: OU=Engineering,{dn}\n"
        ),
        format!(
            "dn: CN=zoe,OU=Engineering,{dn}\nchangetype: modify\nreplace: userAccountControl\n\
             userAccountControl: 514\n"
        ),
        format!("dn: CN=carol,OU=Sales,{dn}\nchangetype: delete\n"),
        format!(
            "dn: CN=erin,OU=Sales,{dn}\nchangetype: add\nobjectClass: user\n\
             sAMAccountName: {tag}-erin\nmail: erin@ad.registrar.test\ndisplayName: Erin\n\
             userAccountControl: 514\n",
            tag = unit.tag
        ),
        format!(
            "dn: CN=leads,{dn}\nchangetype: modify\nadd: member\nmember: CN=erin,OU=Sales,{dn}\n\
             -\ndelete: member\nmember: CN=robert,OU=Engineering,{dn}\n"
        ),
        format!(
            "dn: CN=dave,OU=Engineering,{dn}\nchangetype: modrdn\nnewrdn: CN=dave-{tag}\n\
             deleteoldrdn: 1\nnewsuperior: CN=Users,{DOMAIN_DN}\n",
            tag = unit.tag
        ),
    ];
    let mut changing_steps = 0;
    for step in &steps {
        dc.modify(step);
        let (full_plan, _) = ws.plan_in(full, "full");
        let (delta_plan, notes) = ws.plan_in(delta, "delta");
        assert_eq!(delta_plan, full_plan, "after {step}");
        assert!(notes.is_empty(), "after {step}: {notes}");
        changing_steps += usize::from(!full_plan["changes"].as_array().unwrap().is_empty());
        ws.apply_in(full, "full");
        assert_eq!(ws.apply_in(delta, "delta"), "", "after {step}");
        assert_eq!(ws.state(delta), ws.state(full), "after {step}");
    }
    assert!(
        changing_steps >= 6,
        "{changing_steps} steps changed anything"
    );

    // An ordinary account: the feed is refused, and the source read in full.
    let ordinary = Workspace::new(dc.url(), dn, "");
    let notes = ordinary.apply_in(&ordinary.store, "delta");
    assert!(
        notes.contains("note: source corp-ad: the server refused its dirsync feed"),
        "{notes}"
    );
}
