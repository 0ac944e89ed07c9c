//! Generates a synthetic directory for benchmarks: an LDIF file of N users plus a config
//! directory with two mappings (AOL from mail, LCS from the SIP address).
//!
//! Usage: `cargo run --release --example gen_directory -- USERS OUT_DIR`
//! The output is deterministic: the same N gives the same bytes.

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
    std::fs::create_dir_all(&out)?;

    std::fs::write(
        out.join("registrar.yaml"),
        "sources:\n  - name: corp\n    anchor: entryUUID\n    ldif:\n      path: directory.ldif\n\
         accounts:\n  profile:\n    display_name: \"{displayName}\"\n    department: \"{departmentNumber}\"\n    \
         title: \"{title}\"\n    telephone: \"{telephoneNumber}\"\n    location: \"{l}\"\n  \
         disabled_when: \"(userAccountControl:1.2.840.113556.1.4.803:=2)\"\n\
         mappings:\n  - name: aol-from-mail\n    protocol: aol\n    value: \"{mail|lower|local_part}\"\n    \
         when: \"(mail=*@example.com)\"\n  - name: lcs-sip\n    protocol: lcs\n    \
         value: \"{msRTCSIP-PrimaryUserAddress|strip_prefix:sip:|lower}\"\n\
         policy:\n  max_deletes: 1000000\n",
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
    eprintln!("wrote {users} users to {}", out.display());
    Ok(())
}

fn usage() -> ! {
    eprintln!("usage: gen_directory USERS OUT_DIR");
    std::process::exit(2)
}
