//! Generates a synthetic directory for benchmarks: an LDIF file of N users plus a config
//! directory with two mappings (AOL from mail, LCS from the SIP address), or three with
//! `--mappings 3` (XMPP from the uid).
//!
//! With `--changes N` it also writes, for a delta import, `OUT_DIR/delta/` (the same
//! config whose source also reads `changes/*.ldif`, an empty directory yet, and whose
//! `directory.ldif` is a hard link to the one above: a config reads only files inside
//! its own directory) and
//! `OUT_DIR/changes.ldif`: N change records spread over the directory, per ten records
//! seven modifies (title and mail), one delete, one rename and one hire (move it into
//! `delta/changes/` to import it).
//!
//! With `--groups` the directory also has a distribution list per department
//! (`cn=dept-NAME,ou=Groups`, listing every user of the department: at 1,000,000 users,
//! 8 groups of 125,000 members) and one nesting them all (`cn=dept-all`), and the configs
//! have a group rule for them and an org-unit group `staff` over `ou=People`. With
//! `--groups-unread` the directory has the same groups but the configs no group rule: the
//! shape of a real directory whose large groups no rule reads.
//!
//! Usage: `cargo run --release --example gen_directory -- USERS OUT_DIR [--mappings 2|3]
//! [--changes N] [--groups | --groups-unread]`. The output is deterministic: the same
//! arguments give the same bytes.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

const DEPARTMENTS: [&str; 8] = [
    "Accounting",
    "Engineering",
    "Finance",
    "Legal",
    "Marketing",
    "Operations",
    "Sales",
    "Support",
];
const CITIES: [&str; 6] = [
    "Austin",
    "Berlin",
    "Bengaluru",
    "London",
    "San Jose",
    "Tokyo",
];

/// The config, reading the LDIF at `ldif` (and the change files `changes`, if any).
fn config(ldif: &str, changes: Option<&str>, mappings: usize, groups: bool) -> String {
    let changes = changes
        .map(|pattern| format!("      changes: \"{pattern}\"\n"))
        .unwrap_or_default();
    let mut text = format!(
        "sources:\n  - name: corp\n    anchor: entryUUID\n    ldif:\n      path: {ldif}\n{changes}\
         accounts:\n  profile:\n    display_name: \"{{displayName}}\"\n    department: \"{{departmentNumber}}\"\n    \
         title: \"{{title}}\"\n    telephone: \"{{telephoneNumber}}\"\n    location: \"{{l}}\"\n  \
         disabled_when: \"(userAccountControl:1.2.840.113556.1.4.803:=2)\"\n\
         mappings:\n  - name: aol-from-mail\n    protocol: aol\n    value: \"{{mail|lower|local_part}}\"\n    \
         when: \"(mail=*@example.com)\"\n  - name: lcs-sip\n    protocol: lcs\n    \
         value: \"{{msRTCSIP-PrimaryUserAddress|strip_prefix:sip:|lower}}\"\n"
    );
    if mappings >= 3 {
        text.push_str(
            "  - name: xmpp-uid\n    protocol: xmpp\n    value: \"{uid|lower}@im.example.com\"\n",
        );
    }
    if groups {
        text.push_str(
            "groups:\n  - name: staff\n    kind: org_unit\n    source: corp\n    \
             dn: ou=People,dc=example,dc=com\n  - name: \"{cn}\"\n    kind: distribution_list\n    \
             source: corp\n    filter: \"(cn=dept-*)\"\n",
        );
    }
    text.push_str("policy:\n  max_deletes: 1000000\n");
    text
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let users: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| usage());
    let out = PathBuf::from(args.next().unwrap_or_else(|| usage()));
    let (mut mappings, mut changes) = (2usize, None::<usize>);
    // Whether the directory has the department groups, and whether the config reads them.
    let (mut groups, mut group_rules) = (false, false);
    while let Some(flag) = args.next() {
        if flag == "--groups" || flag == "--groups-unread" {
            groups = true;
            group_rules = flag == "--groups";
            continue;
        }
        let number = args.next().and_then(|n| n.parse().ok());
        match (flag.as_str(), number) {
            ("--mappings", Some(n @ (2 | 3))) => mappings = n,
            ("--changes", Some(n)) => changes = Some(n),
            _ => usage(),
        }
    }
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("registrar.yaml"),
        config("directory.ldif", None, mappings, group_rules),
    )?;
    if let Some(count) = changes {
        std::fs::create_dir_all(out.join("delta/changes"))?;
        std::fs::write(
            out.join("delta/registrar.yaml"),
            config(
                "directory.ldif",
                Some("changes/*.ldif"),
                mappings,
                group_rules,
            ),
        )?;
        write_changes(&out.join("changes.ldif"), users, count)?;
    }

    let mut ldif =
        BufWriter::with_capacity(1 << 20, std::fs::File::create(out.join("directory.ldif"))?);
    writeln!(ldif, "version: 1\n")?;
    writeln!(
        ldif,
        "dn: dc=example,dc=com\nobjectClass: top\nobjectClass: domain\ndc: example\n"
    )?;
    writeln!(ldif, "dn: ou=People,dc=example,dc=com\nobjectClass: top\nobjectClass: organizationalUnit\nou: People\n")?;
    for i in 0..users {
        let given = format!("User{i}");
        let family = format!("Family{}", i % 9973);
        let uid = format!("user{i:07}");
        writeln!(ldif, "dn: uid={uid},ou=People,dc=example,dc=com")?;
        writeln!(ldif, "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson")?;
        writeln!(
            ldif,
            "uid: {uid}\ncn: {given} {family}\nsn: {family}\ngivenName: {given}"
        )?;
        writeln!(ldif, "displayName: {given} {family}")?;
        writeln!(
            ldif,
            "entryUUID: {:08x}-0000-4000-8000-{:012x}",
            i,
            i as u64 * 7919
        )?;
        writeln!(ldif, "mail: {uid}@example.com")?;
        writeln!(
            ldif,
            "departmentNumber: {}",
            DEPARTMENTS[i % DEPARTMENTS.len()]
        )?;
        writeln!(ldif, "title: Engineer {}", i % 5)?;
        writeln!(ldif, "telephoneNumber: +1 408 555 {:04}", i % 10000)?;
        writeln!(ldif, "l: {}", CITIES[i % CITIES.len()])?;
        writeln!(ldif, "msRTCSIP-PrimaryUserAddress: sip:{uid}@example.com")?;
        writeln!(
            ldif,
            "userAccountControl: {}",
            if i % 50 == 0 { 514 } else { 512 }
        )?;
        writeln!(
            ldif,
            "description: Synthetic user {i} for the registrar benchmark\n"
        )?;
    }
    if groups {
        writeln!(ldif, "dn: ou=Groups,dc=example,dc=com\nobjectClass: top\nobjectClass: organizationalUnit\nou: Groups\n")?;
        for (d, department) in DEPARTMENTS.iter().enumerate() {
            writeln!(ldif, "dn: cn=dept-{department},ou=Groups,dc=example,dc=com")?;
            writeln!(
                ldif,
                "objectClass: top\nobjectClass: groupOfNames\ncn: dept-{department}"
            )?;
            for i in (d..users).step_by(DEPARTMENTS.len()) {
                writeln!(ldif, "member: uid=user{i:07},ou=People,dc=example,dc=com")?;
            }
            writeln!(ldif)?;
        }
        writeln!(ldif, "dn: cn=dept-all,ou=Groups,dc=example,dc=com")?;
        writeln!(
            ldif,
            "objectClass: top\nobjectClass: groupOfNames\ncn: dept-all"
        )?;
        for department in DEPARTMENTS {
            writeln!(
                ldif,
                "member: cn=dept-{department},ou=Groups,dc=example,dc=com"
            )?;
        }
        writeln!(ldif)?;
    }
    ldif.flush()?;
    drop(ldif);
    if changes.is_some() {
        let linked = out.join("delta/directory.ldif");
        let _ = std::fs::remove_file(&linked);
        std::fs::hard_link(out.join("directory.ldif"), linked)?;
    }
    eprintln!("wrote {users} users to {}", out.display());
    Ok(())
}

/// `count` change records spread over the `users` generated users: per ten records,
/// seven modifies (title and mail), one delete, one rename and one hire.
fn write_changes(path: &std::path::Path, users: usize, count: usize) -> std::io::Result<()> {
    let mut ldif = BufWriter::new(std::fs::File::create(path)?);
    writeln!(ldif, "version: 1\n")?;
    // Distinct users, spread over the directory (a stride prime to most sizes).
    let user = |n: usize| format!("user{:07}", (n * 7919 + 13) % users.max(1));
    for n in 0..count {
        let uid = user(n);
        let dn = format!("uid={uid},ou=People,dc=example,dc=com");
        match n % 10 {
            7 => writeln!(ldif, "dn: {dn}\nchangetype: delete\n")?,
            8 => writeln!(
                ldif,
                "dn: {dn}\nchangetype: modrdn\nnewrdn: uid={uid}-renamed\ndeleteoldrdn: 1\n"
            )?,
            9 => writeln!(
                ldif,
                "dn: uid=hire{n:06},ou=People,dc=example,dc=com\nchangetype: add\n\
                 objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
                 objectClass: inetOrgPerson\nuid: hire{n:06}\ncn: Hire {n}\nsn: Hire\n\
                 entryUUID: ffffffff-0000-4000-8000-{n:012x}\nmail: hire{n:06}@example.com\n\
                 msRTCSIP-PrimaryUserAddress: sip:hire{n:06}@example.com\n"
            )?,
            _ => writeln!(
                ldif,
                "dn: {dn}\nchangetype: modify\nreplace: title\ntitle: Manager {n}\n-\n\
                 replace: mail\nmail: {uid}.new@example.com\n-\n"
            )?,
        }
    }
    ldif.flush()
}

fn usage() -> ! {
    eprintln!(
        "usage: gen_directory USERS OUT_DIR [--mappings 2|3] [--changes N] [--groups | --groups-unread]"
    );
    std::process::exit(2)
}
