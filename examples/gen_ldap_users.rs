//! Writes the test directory as LDIF on stdout: the base entries and USERS users
//! (`uid=user1` to `uid=userUSERS` under `ou=people,dc=example,dc=com`), for `slapadd`
//! in `ci/bench-ldap`.
//!
//! Usage: `cargo run --release --example gen_ldap_users -- USERS > directory.ldif`
//! The entries are those of the slapd test harness: both take them from
//! `tests/common/ldap_fixture.rs`, the one place their shape is written.

use std::io::{BufWriter, Write};

#[path = "../tests/common/ldap_fixture.rs"]
mod ldap_fixture;

fn main() -> std::io::Result<()> {
    let users: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: gen_ldap_users USERS > directory.ldif");
            std::process::exit(2)
        });
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    ldap_fixture::write_base(&mut out)?;
    ldap_fixture::write_people(&mut out, 1..=users)?;
    out.flush()
}
