//! The LDAP change feeds (`registrar::ldap::changes_since`) against real servers: RFC 4533
//! content synchronization on OpenLDAP's syncprov overlay (with and without a session
//! log, a cookie the log no longer covers, a cookie the server does not know), and
//! DirSync on Samba's AD DC. Each test
//! makes known changes (modify, rename, move, delete, add) after taking a cookie and
//! checks that the feed names exactly those entries, by identity, with their DN now or
//! none.

use std::collections::{BTreeMap, HashSet};

mod common;

use common::samba::{value_of, SambaDc, ADMIN_DN, ADMIN_PASSWORD};
use common::slapd::{
    people_ldif, users_ldif, Options, Slapd, SyncProvider, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD,
    SUFFIX,
};
use registrar::config::{LdapBind, LdapSettings, PasswordFrom};
use registrar::ldap::{
    changes_since, server_features, Changes, Credentials, Deletions, Feed, FeedOutcome, Password,
};

/// A source's settings: `base` on `url`, bound as `bind_dn`.
fn settings(url: &str, bind_dn: &str, base: &str) -> LdapSettings {
    let bind = LdapBind::Simple {
        dn: bind_dn.to_string(),
        password: PasswordFrom::Env("UNUSED".to_string()),
    };
    LdapSettings::plain(url, bind, base)
}

fn credentials(password: &str) -> Credentials {
    Credentials {
        password: Some(Password::new(password.to_string())),
        ca_pem: None,
    }
}

fn changes(outcome: FeedOutcome) -> Changes {
    match outcome {
        FeedOutcome::Changes(changes) => changes,
        FeedOutcome::Refused { reason } => panic!("the feed was refused: {reason}"),
    }
}

/// What the feed says of each entry, by identity: its DN now (lowercased) or none. The
/// last word on an entry wins, as a reader applying them in order would see.
fn by_id(changes: &Changes) -> BTreeMap<[u8; 16], Option<String>> {
    changes
        .changed
        .iter()
        .map(|change| {
            (
                change.id,
                change.dn.as_ref().map(|dn| dn.to_ascii_lowercase()),
            )
        })
        .collect()
}

/// An `entryUUID` as its 16 bytes.
fn uuid_of(slapd: &Slapd, dn: &str) -> [u8; 16] {
    let output = slapd.ldapsearch(&["-b", dn, "-s", "base", "(objectClass=*)", "entryUUID"]);
    let text = String::from_utf8_lossy(&output.stdout);
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix("entryUUID: "))
        .unwrap_or_else(|| panic!("no entryUUID for {dn}: {text}"));
    let hex: String = value.chars().filter(|c| *c != '-').collect();
    std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
}

fn user(n: usize) -> String {
    format!("uid=user{n},{PEOPLE_DN}")
}

fn syncprov(session_log: Option<u32>) -> Slapd {
    let slapd = Slapd::start(Options::default().sync_provider(SyncProvider { session_log }));
    slapd.load_ldif(&users_ldif(6));
    slapd
}

/// user1 modified, user2 renamed, user3 deleted, user4 moved out of the base, user7
/// added.
fn make_changes(slapd: &Slapd) {
    slapd.modify(&format!(
        "dn: {u1}\nchangetype: modify\nreplace: mail\nmail: one@example.com\n\n\
         dn: {u2}\nchangetype: modrdn\nnewrdn: uid=user2b\ndeleteoldrdn: 1\n\n\
         dn: {u3}\nchangetype: delete\n\n\
         dn: {u4}\nchangetype: modrdn\nnewrdn: uid=user4\ndeleteoldrdn: 1\n\
         newsuperior: ou=groups,{SUFFIX}\n",
        u1 = user(1),
        u2 = user(2),
        u3 = user(3),
        u4 = user(4),
    ));
    slapd.load_ldif(&people_ldif(7..=7));
}

#[test]
fn syncrepl_names_what_changed_since_the_cookie_and_nothing_else() {
    let slapd = syncprov(Some(100));
    let source = settings(&slapd.url(), SERVICE_DN, PEOPLE_DN);
    let login = credentials(SERVICE_PASSWORD);
    let features = server_features(&source, &login).unwrap();
    assert_eq!(features.feeds, [Feed::ContentSync]);

    let start = changes(changes_since(&source, &login, Feed::ContentSync, None).unwrap());
    assert!(start.changed.is_empty(), "{start:?}");
    let ids: Vec<[u8; 16]> = (1..=4).map(|n| uuid_of(&slapd, &user(n))).collect();
    make_changes(&slapd);
    let added = uuid_of(&slapd, &user(7));

    let since =
        changes(changes_since(&source, &login, Feed::ContentSync, Some(&start.cookie)).unwrap());
    assert_eq!(
        since.deletions,
        Deletions::Listed,
        "the session log covers it"
    );
    let expected: BTreeMap<[u8; 16], Option<String>> = [
        (ids[0], Some(user(1))),
        (ids[1], Some(format!("uid=user2b,{PEOPLE_DN}"))),
        (ids[2], None),
        (ids[3], None),
        (added, Some(user(7))),
    ]
    .into_iter()
    .collect();
    assert_eq!(by_id(&since), expected, "{since:?}");
    assert_ne!(since.cookie, start.cookie);

    // From the new cookie, nothing changed.
    let again =
        changes(changes_since(&source, &login, Feed::ContentSync, Some(&since.cookie)).unwrap());
    assert!(again.changed.is_empty(), "{again:?}");
    assert_eq!(again.deletions, Deletions::Listed);
}

#[test]
fn the_feed_keeps_to_the_subtree_the_full_read_keeps_to() {
    let slapd = syncprov(Some(100));
    slapd.load_ldif(&format!(
        "dn: ou=elsewhere,{PEOPLE_DN}\nobjectClass: referral\nobjectClass: extensibleObject\n\
         ou: elsewhere\nref: ldap://other.example/ou=elsewhere,dc=example,dc=com\n"
    ));
    let mut source = settings(&slapd.url(), SERVICE_DN, PEOPLE_DN);
    let login = credentials(SERVICE_PASSWORD);
    // Without domain_scope the full read fails on the reference, and so does the feed.
    let refused = changes_since(&source, &login, Feed::ContentSync, None);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("continuation reference")),
        "{refused:?}"
    );
    // With it, neither meets the reference.
    source.domain_scope = true;
    let start = changes(changes_since(&source, &login, Feed::ContentSync, None).unwrap());
    slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: mail\nmail: one@example.com\n",
        user(1)
    ));
    let since =
        changes(changes_since(&source, &login, Feed::ContentSync, Some(&start.cookie)).unwrap());
    let expected: BTreeMap<[u8; 16], Option<String>> = [(uuid_of(&slapd, &user(1)), Some(user(1)))]
        .into_iter()
        .collect();
    assert_eq!(by_id(&since), expected, "{since:?}");
}

#[test]
fn without_a_session_log_deletions_come_as_the_entries_still_present() {
    let slapd = syncprov(None);
    let source = settings(&slapd.url(), SERVICE_DN, PEOPLE_DN);
    let login = credentials(SERVICE_PASSWORD);
    let start = changes(changes_since(&source, &login, Feed::ContentSync, None).unwrap());
    let kept: Vec<[u8; 16]> = (1..=6).map(|n| uuid_of(&slapd, &user(n))).collect();
    slapd.modify(&format!("dn: {}\nchangetype: delete\n", user(3)));

    let since =
        changes(changes_since(&source, &login, Feed::ContentSync, Some(&start.cookie)).unwrap());
    let Deletions::AllBut(present) = &since.deletions else {
        panic!("expected the present phase: {since:?}");
    };
    let changed: HashSet<[u8; 16]> = since.changed.iter().map(|c| c.id).collect();
    // Every entry left is present or changed; the deleted one is neither.
    for (n, id) in kept.iter().enumerate() {
        let there = present.contains(id) || changed.contains(id);
        assert_eq!(there, n + 1 != 3, "user{}", n + 1);
    }
}

#[test]
fn past_its_session_log_the_server_falls_back_to_the_present_phase_and_is_still_exact() {
    let slapd = syncprov(Some(1));
    let source = settings(&slapd.url(), SERVICE_DN, PEOPLE_DN);
    let login = credentials(SERVICE_PASSWORD);
    let start = changes(changes_since(&source, &login, Feed::ContentSync, None).unwrap());
    let left: HashSet<[u8; 16]> = [PEOPLE_DN.to_string(), user(4), user(5), user(6)]
        .iter()
        .map(|dn| uuid_of(&slapd, dn))
        .collect();
    for n in 1..=3 {
        slapd.modify(&format!("dn: {}\nchangetype: delete\n", user(n)));
    }
    let since =
        changes(changes_since(&source, &login, Feed::ContentSync, Some(&start.cookie)).unwrap());
    assert!(since.changed.is_empty(), "{since:?}");
    assert_eq!(since.deletions, Deletions::AllBut(left));
}

#[test]
fn a_cookie_the_server_does_not_know_is_refused_so_the_source_is_read_in_full() {
    let slapd = syncprov(Some(100));
    let source = settings(&slapd.url(), SERVICE_DN, PEOPLE_DN);
    let login = credentials(SERVICE_PASSWORD);
    let answer = changes_since(&source, &login, Feed::ContentSync, Some(b"not a cookie"));
    assert!(
        matches!(answer, Ok(FeedOutcome::Refused { ref reason }) if reason.contains("no cookie")),
        "{answer:?}"
    );
}

#[test]
fn dirsync_names_what_changed_in_the_domain_by_guid() {
    let dc = SambaDc::shared();
    let unit = dc.unit("dirsync");
    dc.add(&format!(
        "dn: OU=Moved,{dn}\nobjectClass: organizationalUnit\n\n{users}",
        dn = unit.dn,
        users = ["alice", "bob", "carol", "dave"]
            .iter()
            .map(|cn| format!(
                "dn: CN={cn},{dn}\nobjectClass: user\nsAMAccountName: {tag}-{cn}\n\
                 mail: {cn}@ad.registrar.test\nuserAccountControl: 514\n\n",
                dn = unit.dn,
                tag = unit.tag
            ))
            .collect::<String>()
    ));
    // On Samba only an administrator sees deleted objects through DirSync (Windows
    // shows them to any account with Replicating Directory Changes).
    let source = settings(dc.url(), ADMIN_DN, &unit.dn);
    let login = credentials(ADMIN_PASSWORD);
    let features = server_features(&source, &login).unwrap();
    assert!(features.feeds.contains(&Feed::DirSync), "{features:?}");
    assert!(!features.feeds.contains(&Feed::ContentSync), "{features:?}");

    let guid = |dn: &str| -> [u8; 16] {
        let entry = dc.search(dn, "(objectClass=*)", &["objectGUID"]);
        value_of(&entry, "objectGUID").unwrap().try_into().unwrap()
    };
    let ids: Vec<[u8; 16]> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|cn| guid(&format!("CN={cn},{}", unit.dn)))
        .collect();
    let start = changes(changes_since(&source, &login, Feed::DirSync, None).unwrap());
    assert!(start.changed.is_empty(), "{start:?}");

    dc.modify(&format!(
        "dn: CN=alice,{dn}\nchangetype: modify\nreplace: mail\nmail: alice2@ad.registrar.test\n\n\
         dn: CN=bob,{dn}\nchangetype: modrdn\nnewrdn: CN=bobby\ndeleteoldrdn: 1\n\n\
         dn: CN=carol,{dn}\nchangetype: delete\n\n\
         dn: CN=dave,{dn}\nchangetype: modrdn\nnewrdn: CN=dave\ndeleteoldrdn: 1\n\
         newsuperior: OU=Moved,{dn}\n",
        dn = unit.dn
    ));
    dc.add(&format!(
        "dn: CN=erin,{dn}\nobjectClass: user\nsAMAccountName: {tag}-erin\n\
         userAccountControl: 514\n",
        dn = unit.dn,
        tag = unit.tag
    ));
    let erin = guid(&format!("CN=erin,{}", unit.dn));

    let since =
        changes(changes_since(&source, &login, Feed::DirSync, Some(&start.cookie)).unwrap());
    assert_eq!(since.deletions, Deletions::Listed);
    let unit_dn = unit.dn.to_ascii_lowercase();
    let ours: BTreeMap<[u8; 16], Option<String>> = by_id(&since)
        .into_iter()
        .filter(|(id, _)| ids.contains(id) || *id == erin)
        .collect();
    let expected: BTreeMap<[u8; 16], Option<String>> = [
        (ids[0], Some(format!("cn=alice,{unit_dn}"))),
        (ids[1], Some(format!("cn=bobby,{unit_dn}"))),
        (ids[2], None),
        (ids[3], Some(format!("cn=dave,ou=moved,{unit_dn}"))),
        (erin, Some(format!("cn=erin,{unit_dn}"))),
    ]
    .into_iter()
    .collect();
    assert_eq!(ours, expected, "{since:?}");

    let again =
        changes(changes_since(&source, &login, Feed::DirSync, Some(&since.cookie)).unwrap());
    assert!(
        again
            .changed
            .iter()
            .all(|c| !ids.contains(&c.id) && c.id != erin),
        "{again:?}"
    );
    // A cookie the server cannot read is refused: the caller reads in full.
    let refused = changes_since(&source, &login, Feed::DirSync, Some(b"not a cookie")).unwrap();
    assert!(
        matches!(refused, FeedOutcome::Refused { .. }),
        "{refused:?}"
    );
}

/// One generated change to the directory, on the user numbered `.1` of the pool (an op
/// that cannot apply to that user as things stand is skipped).
#[derive(Debug, Clone, Copy)]
enum Op {
    Modify,
    Rename,
    MoveOut,
    MoveIn,
    Delete,
    Add,
}

fn op_strategy() -> impl proptest::strategy::Strategy<Value = (Op, usize)> {
    use proptest::prelude::*;
    (
        prop_oneof![
            3 => Just(Op::Modify),
            1 => Just(Op::Rename),
            1 => Just(Op::MoveOut),
            1 => Just(Op::MoveIn),
            1 => Just(Op::Delete),
            1 => Just(Op::Add),
        ],
        0usize..POOL,
    )
}

/// The users a property case works on: `uid=pN-…` in `ou=people` (the base) or
/// `ou=groups` (outside it).
const POOL: usize = 8;

/// Where each user of the pool is: `None` when it does not exist.
struct Pool {
    dns: Vec<Option<String>>,
    serial: usize,
}

impl Pool {
    /// The LDIF change record of `op` on user `n`, and the pool after it; `None` when
    /// the op does not apply.
    fn change(&mut self, (op, n): (Op, usize)) -> Option<String> {
        self.serial += 1;
        let serial = self.serial;
        let people = PEOPLE_DN;
        let outside = format!("ou=groups,{SUFFIX}");
        match (op, self.dns[n].clone()) {
            (Op::Add, None) => {
                let dn = format!("uid=p{n}-{serial},{people}");
                self.dns[n] = Some(dn.clone());
                Some(format!(
                    "dn: {dn}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: p{n}\nsn: p\n\
                     mail: p{n}-{serial}@example.com\n"
                ))
            }
            (Op::Modify, Some(dn)) => Some(format!(
                "dn: {dn}\nchangetype: modify\nreplace: mail\nmail: p{n}-{serial}@example.com\n"
            )),
            (Op::Rename, Some(dn)) => {
                let parent = dn.split_once(',').map(|(_, parent)| parent.to_string())?;
                self.dns[n] = Some(format!("uid=p{n}-{serial},{parent}"));
                Some(format!(
                    "dn: {dn}\nchangetype: modrdn\nnewrdn: uid=p{n}-{serial}\ndeleteoldrdn: 1\n"
                ))
            }
            (Op::MoveOut | Op::MoveIn, Some(dn)) => {
                let (rdn, parent) = dn.split_once(',')?;
                let target = if matches!(op, Op::MoveOut) {
                    outside.as_str()
                } else {
                    people
                };
                if parent == target {
                    return None;
                }
                self.dns[n] = Some(format!("{rdn},{target}"));
                Some(format!(
                    "dn: {dn}\nchangetype: modrdn\nnewrdn: {rdn}\ndeleteoldrdn: 1\nnewsuperior: {target}\n"
                ))
            }
            (Op::Delete, Some(dn)) => {
                self.dns[n] = None;
                Some(format!("dn: {dn}\nchangetype: delete\n"))
            }
            _ => None,
        }
    }
}

/// A full read of the source: each entry's DN (lowercased) and content, by entryUUID.
fn full_read(source: &LdapSettings, login: &Credentials) -> BTreeMap<[u8; 16], (String, String)> {
    let mut entries = BTreeMap::new();
    registrar::ldap::read_entries(source, login, &mut |entry| {
        let text = String::from_utf8_lossy(entry.values("entryUUID").next().unwrap()).into_owned();
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        let id: [u8; 16] =
            std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap());
        let content = format!("{:?}", entry.values("mail").collect::<Vec<_>>());
        entries.insert(id, (entry.dn.to_ascii_lowercase(), content));
    })
    .unwrap();
    entries
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Whatever happened since the cookie, the snapshot a full read gave then, brought
    /// forward by the feed, has the entries (by identity, at their DN) a full read gives
    /// now, and every entry whose content changed is among those the feed names: what a
    /// delta read needs to be exact. With and without a session log.
    #[test]
    fn the_feed_brings_a_full_read_forward_to_the_next_one(
        batches in proptest::collection::vec(proptest::collection::vec(op_strategy(), 0..8), 1..4),
        session_log in proptest::bool::ANY,
    ) {
        let slapd = syncprov(session_log.then_some(100));
        let mut source = settings(&slapd.url(), SERVICE_DN, PEOPLE_DN);
        source.attributes = vec!["*".to_string(), "entryUUID".to_string()];
        let login = credentials(SERVICE_PASSWORD);
        let mut pool = Pool { dns: vec![None; POOL], serial: 0 };
        let mut cookie =
            changes(changes_since(&source, &login, Feed::ContentSync, None).unwrap()).cookie;
        let mut before = full_read(&source, &login);
        for batch in batches {
            let records: Vec<String> = batch.into_iter().filter_map(|op| pool.change(op)).collect();
            if !records.is_empty() {
                slapd.modify(&records.join("\n"));
            }
            let feed = changes(changes_since(&source, &login, Feed::ContentSync, Some(&cookie)).unwrap());
            let after = full_read(&source, &login);
            let named: HashSet<[u8; 16]> = feed.changed.iter().map(|c| c.id).collect();
            let mut brought: BTreeMap<[u8; 16], String> =
                before.iter().map(|(id, (dn, _))| (*id, dn.clone())).collect();
            if let Deletions::AllBut(present) = &feed.deletions {
                brought.retain(|id, _| present.contains(id) || named.contains(id));
            }
            for change in &feed.changed {
                match &change.dn {
                    Some(dn) => brought.insert(change.id, dn.to_ascii_lowercase()),
                    None => brought.remove(&change.id),
                };
            }
            let now: BTreeMap<[u8; 16], String> =
                after.iter().map(|(id, (dn, _))| (*id, dn.clone())).collect();
            proptest::prop_assert_eq!(&brought, &now, "records: {:?}", records);
            for (id, (_, content)) in &after {
                if before.get(id).map(|(_, old)| old) != Some(content) {
                    proptest::prop_assert!(named.contains(id), "changed but not named: {:?}", after[id]);
                }
            }
            cookie = feed.cookie;
            before = after;
        }
    }
}

/// A full read of an AD source: each object's DN (lowercased) and mail, by objectGUID.
fn full_read_ad(
    source: &LdapSettings,
    login: &Credentials,
) -> BTreeMap<[u8; 16], (String, String)> {
    let mut entries = BTreeMap::new();
    registrar::ldap::read_entries(source, login, &mut |entry| {
        let id: [u8; 16] = entry
            .values("objectGUID")
            .next()
            .unwrap()
            .try_into()
            .unwrap();
        let content = format!("{:?}", entry.values("mail").collect::<Vec<_>>());
        entries.insert(id, (entry.dn.to_ascii_lowercase(), content));
    })
    .unwrap();
    entries
}

#[test]
fn dirsync_brings_a_full_read_of_an_ou_forward_through_moves_in_and_out() {
    let dc = SambaDc::shared();
    let unit = dc.unit("forward");
    let outside = dc.unit("outside");
    let user = |cn: &str, parent: &str| {
        format!(
            "dn: CN={cn},{parent}\nchangetype: add\nobjectClass: user\n\
             sAMAccountName: {tag}-{cn}\nmail: {cn}@ad.registrar.test\nuserAccountControl: 514\n",
            tag = unit.tag
        )
    };
    let mut people: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|cn| user(cn, &unit.dn))
        .collect();
    people.push(user("g", &outside.dn));
    dc.modify(&people.join("\n"));

    let source = settings(dc.url(), ADMIN_DN, &unit.dn);
    let login = credentials(ADMIN_PASSWORD);
    let base = unit.dn.to_ascii_lowercase();
    let mut cookie = changes(changes_since(&source, &login, Feed::DirSync, None).unwrap()).cookie;
    let mut before = full_read_ad(&source, &login);
    let (u, o) = (&unit.dn, &outside.dn);
    let steps = [
        format!(
            "dn: CN=a,{u}\nchangetype: modify\nreplace: mail\nmail: a2@ad.registrar.test\n\n{}",
            user("h", u)
        ),
        format!(
            "dn: CN=b,{u}\nchangetype: modrdn\nnewrdn: CN=b2\ndeleteoldrdn: 1\n\n\
             dn: CN=c,{u}\nchangetype: modrdn\nnewrdn: CN=c\ndeleteoldrdn: 1\nnewsuperior: {o}\n\n\
             dn: CN=g,{o}\nchangetype: modrdn\nnewrdn: CN=g\ndeleteoldrdn: 1\nnewsuperior: {u}\n"
        ),
        format!(
            "dn: CN=d,{u}\nchangetype: delete\n\n\
             dn: CN=e,{u}\nchangetype: modify\nreplace: mail\nmail: e2@ad.registrar.test\n\n\
             dn: CN=h,{u}\nchangetype: delete\n"
        ),
        format!(
            "dn: CN=c,{o}\nchangetype: modrdn\nnewrdn: CN=c3\ndeleteoldrdn: 1\nnewsuperior: {u}\n\n\
             dn: CN=c3,{u}\nchangetype: modify\nreplace: mail\nmail: c3@ad.registrar.test\n"
        ),
    ];
    for step in steps {
        dc.modify(&step);
        let feed = changes(changes_since(&source, &login, Feed::DirSync, Some(&cookie)).unwrap());
        assert_eq!(feed.deletions, Deletions::Listed);
        let after = full_read_ad(&source, &login);
        let named: HashSet<[u8; 16]> = feed.changed.iter().map(|c| c.id).collect();
        let mut brought: BTreeMap<[u8; 16], String> = before
            .iter()
            .map(|(id, (dn, _))| (*id, dn.clone()))
            .collect();
        for change in &feed.changed {
            // DirSync speaks for the whole domain: an object now outside the base has
            // left the source.
            match change.dn.as_ref().map(|dn| dn.to_ascii_lowercase()) {
                Some(dn) if dn == base || dn.ends_with(&format!(",{base}")) => {
                    brought.insert(change.id, dn)
                }
                _ => brought.remove(&change.id),
            };
        }
        let now: BTreeMap<[u8; 16], String> = after
            .iter()
            .map(|(id, (dn, _))| (*id, dn.clone()))
            .collect();
        assert_eq!(brought, now, "after:\n{step}");
        for (id, (dn, content)) in &after {
            if before.get(id).map(|(_, old)| old) != Some(content) {
                assert!(named.contains(id), "{dn} changed but was not named");
            }
        }
        cookie = feed.cookie;
        before = after;
    }
}
