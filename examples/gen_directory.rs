//! Generates a synthetic directory for benchmarks: an LDIF file of N users plus a config
//! directory with two mappings (AOL from mail, LCS from the SIP address).
//!
//! Usage: `cargo run --release --example gen_directory -- USERS OUT_DIR [CHANGES]`
//! With CHANGES, the source also reads `changes/*.ldif`, and `OUT_DIR/delta.ldif` holds
//! that many change records (70 % modifies, 10 % each deletes, renames and hires) for the
//! delta benchmark to copy into `changes/`. The output is deterministic: the same
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

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let users: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| usage());
    let out = PathBuf::from(args.next().unwrap_or_else(|| usage()));
    let changes: Option<usize> = args.next().map(|n| n.parse().unwrap_or_else(|_| usage()));
    std::fs::create_dir_all(&out)?;
    let changes_line = match changes {
        Some(_) => {
            std::fs::create_dir_all(out.join("changes"))?;
            "      changes: changes/*.ldif\n"
        }
        None => "",
    };

    std::fs::write(
        out.join("registrar.yaml"),
        "sources:\n  - name: corp\n    anchor: entryUUID\n    ldif:\n      path: directory.ldif\n\
         accounts:\n  profile:\n    display_name: \"{displayName}\"\n    department: \"{departmentNumber}\"\n    \
         title: \"{title}\"\n    telephone: \"{telephoneNumber}\"\n    location: \"{l}\"\n  \
         disabled_when: \"(userAccountControl:1.2.840.113556.1.4.803:=2)\"\n\
         mappings:\n  - name: aol-from-mail\n    protocol: aol\n    value: \"{mail|lower|local_part}\"\n    \
         when: \"(mail=*@example.com)\"\n  - name: lcs-sip\n    protocol: lcs\n    \
         value: \"{msRTCSIP-PrimaryUserAddress|strip_prefix:sip:|lower}\"\n\
         policy:\n  max_deletes: 1000000\n"
            .replacen(
                "directory.ldif\n",
                &format!("directory.ldif\n{changes_line}"),
                1,
            ),
    )?;

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
    ldif.flush()?;
    if let Some(count) = changes {
        write_changes(users, count, &out.join("delta.ldif"))?;
    }
    eprintln!("wrote {users} users to {}", out.display());
    Ok(())
}

/// `count` change records spread over the `users` generated users: per ten records,
/// seven modifies (title and mail), one delete, one rename and one hire.
fn write_changes(users: usize, count: usize, path: &std::path::Path) -> std::io::Result<()> {
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
    eprintln!("usage: gen_directory USERS OUT_DIR [CHANGES]");
    std::process::exit(2)
}
