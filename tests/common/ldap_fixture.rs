//! The LDIF of the test directory `dc=example,dc=com`: the base entries (the suffix,
//! `ou=people`, `ou=groups`, `ou=service` and the service account
//! `cn=svc-registrar,ou=service,dc=example,dc=com`) and any number of `inetOrgPerson`
//! users `uid=userN,ou=people,dc=example,dc=com`.
//!
//! The one place this shape is written: the slapd test harness (`tests/common/slapd.rs`)
//! and the LDAP benchmark's generator (`examples/gen_ldap_users.rs`, through `#[path]`)
//! both use it. Standard library only, and deterministic: the same numbers give the same
//! bytes. Operational attributes (`entryUUID`, timestamps) are left to the server.

#![allow(dead_code)] // each user of this file takes its own subset

use std::io::{self, Write};
use std::ops::RangeInclusive;

/// The directory's suffix.
pub const SUFFIX: &str = "dc=example,dc=com";
/// Where the users live.
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=com";
/// The service account a test can bind as, with [`SERVICE_PASSWORD`].
pub const SERVICE_DN: &str = "cn=svc-registrar,ou=service,dc=example,dc=com";
/// The service account's password (stored in clear: a test directory).
pub const SERVICE_PASSWORD: &str = "svc-password";

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

/// The base entries and `count` users, `user1` to `user{count}`: a whole directory to
/// load into an empty server.
pub fn users_ldif(count: usize) -> String {
    let mut ldif = base_ldif();
    ldif.push_str(&people_ldif(1..=count));
    ldif
}

/// The suffix, the three organisational units and the service account.
pub fn base_ldif() -> String {
    let mut out = Vec::new();
    write_base(&mut out).expect("writing to a Vec");
    String::from_utf8(out).expect("ASCII")
}

/// The users numbered `range` (say `1..=100`), without the base entries, so a test can
/// add more users to a directory it loaded before.
pub fn people_ldif(range: RangeInclusive<usize>) -> String {
    let mut out = Vec::with_capacity(range.clone().count() * 400);
    write_people(&mut out, range).expect("writing to a Vec");
    String::from_utf8(out).expect("ASCII")
}

/// Writes [`base_ldif`] to `out`.
pub fn write_base(out: &mut impl Write) -> io::Result<()> {
    write!(
        out,
        "dn: {SUFFIX}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
         o: Example\ndc: example\n\n"
    )?;
    for ou in ["people", "groups", "service"] {
        write!(
            out,
            "dn: ou={ou},{SUFFIX}\nobjectClass: top\nobjectClass: organizationalUnit\nou: {ou}\n\n"
        )?;
    }
    write!(
        out,
        "dn: {SERVICE_DN}\nobjectClass: top\nobjectClass: organizationalRole\n\
         objectClass: simpleSecurityObject\ncn: svc-registrar\n\
         description: The account registrar binds as\nuserPassword: {SERVICE_PASSWORD}\n\n"
    )
}

/// Writes the users numbered `range` to `out`, one entry at a time (for the benchmark's
/// hundreds of thousands).
pub fn write_people(out: &mut impl Write, range: RangeInclusive<usize>) -> io::Result<()> {
    for n in range {
        let given = format!("User{n}");
        let family = format!("Family{}", n % 9973);
        writeln!(out, "dn: uid=user{n},{PEOPLE_DN}")?;
        writeln!(
            out,
            "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
             objectClass: inetOrgPerson"
        )?;
        writeln!(
            out,
            "uid: user{n}\ncn: {given} {family}\nsn: {family}\ngivenName: {given}\n\
             displayName: {given} {family}\nmail: user{n}@example.com"
        )?;
        writeln!(out, "title: Engineer {}", n % 5)?;
        writeln!(out, "telephoneNumber: +1 408 555 {:04}", n % 10000)?;
        writeln!(out, "l: {}", CITIES[n % CITIES.len()])?;
        writeln!(
            out,
            "departmentNumber: {}\n",
            DEPARTMENTS[n % DEPARTMENTS.len()]
        )?;
    }
    Ok(())
}
