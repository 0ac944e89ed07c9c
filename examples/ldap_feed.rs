//! Reads an LDAP source's change feed once, for `ci/bench-ldap`: what changed since the
//! cookie in COOKIE_FILE (none there: only the cookie of now), counted, with the time
//! the feed took; the new cookie is written back to COOKIE_FILE.
//!
//! Usage: `ldap_feed URL BIND_DN BASE_DN syncrepl|dirsync COOKIE_FILE`, the bind password
//! in `REGISTRAR_BENCH_PASSWORD`. Prints one line: `changed N deleted N present N
//! seconds S`, or `refused: REASON`.

use std::time::Instant;

use registrar::config::{LdapBind, LdapSettings, PasswordFrom};
use registrar::ldap::{changes_since, Credentials, Deletions, Feed, FeedOutcome, Password};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, bind_dn, base_dn, feed, cookie_file] = args.as_slice() else {
        eprintln!("usage: ldap_feed URL BIND_DN BASE_DN syncrepl|dirsync COOKIE_FILE");
        std::process::exit(2);
    };
    let feed = match feed.as_str() {
        "syncrepl" => Feed::ContentSync,
        "dirsync" => Feed::DirSync,
        other => {
            eprintln!("unknown feed {other:?}: syncrepl or dirsync");
            std::process::exit(2);
        }
    };
    let password = std::env::var("REGISTRAR_BENCH_PASSWORD").unwrap_or_default();
    let bind = LdapBind::Simple {
        dn: bind_dn.clone(),
        password: PasswordFrom::Env("REGISTRAR_BENCH_PASSWORD".to_string()),
    };
    let settings = LdapSettings::plain(url, bind, base_dn);
    let credentials = Credentials {
        password: Some(Password::new(password)),
        ca_pem: None,
    };
    let cookie = std::fs::read(cookie_file).ok().filter(|c| !c.is_empty());
    let started = Instant::now();
    let outcome = match changes_since(&settings, &credentials, feed, cookie.as_deref()) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        FeedOutcome::Changes(changes) => {
            let deleted = changes.changed.iter().filter(|c| c.dn.is_none()).count();
            let present = match &changes.deletions {
                Deletions::Listed => 0,
                Deletions::AllBut(present) => present.len(),
            };
            if let Err(error) = std::fs::write(cookie_file, &changes.cookie) {
                eprintln!("error: writing {cookie_file}: {error}");
                std::process::exit(1);
            }
            println!(
                "changed {} deleted {deleted} present {present} seconds {seconds:.3}",
                changes.changed.len() - deleted
            );
        }
        FeedOutcome::Refused { reason } => println!("refused: {reason}"),
    }
}
