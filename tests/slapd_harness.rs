//! The real-slapd harness (`tests/common/slapd.rs`) tested on its own with OpenLDAP's
//! command-line tools, so that the LDAP source tests can trust it: start, load, search,
//! ACLs, stop; the size limit that paged searches escape; StartTLS and ldaps with the test
//! CA; and kill. Loopback only.

use std::net::TcpStream;
use std::process::{Command, Output};

mod common;

use common::slapd::{
    people_ldif, users_ldif, Options, Slapd, PEOPLE_DN, ROOT_DN, ROOT_PASSWORD, SERVICE_DN,
    SERVICE_PASSWORD,
};

const USERS: &str = "(objectClass=inetOrgPerson)";

/// The number of entries in ldapsearch's LDIF output.
fn entries(output: &Output) -> usize {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("dn: "))
        .count()
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn refuses_connections(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn starts_loads_searches_and_stops() {
    let slapd = Slapd::start(Options::default());
    assert!(slapd.dir().join("slapd.conf").exists());
    slapd.load_ldif(&users_ldif(3));
    slapd.load_ldif(&people_ldif(4..=5));

    let anonymous = slapd.ldapsearch(&["-b", PEOPLE_DN, USERS, "mail", "entryUUID"]);
    assert!(anonymous.status.success(), "{}", text(&anonymous));
    assert_eq!(entries(&anonymous), 5, "{}", text(&anonymous));
    let out = String::from_utf8_lossy(&anonymous.stdout).into_owned();
    assert!(out.contains("dn: uid=user1,ou=people,dc=example,dc=com"));
    assert!(out.contains("mail: user5@example.com"));
    assert_eq!(
        out.matches("entryUUID: ").count(),
        5,
        "slapd adds entryUUID"
    );

    let user = slapd.ldapsearch(&["-b", "uid=user2,ou=people,dc=example,dc=com", "-s", "base"]);
    let out = String::from_utf8_lossy(&user.stdout).into_owned();
    for attribute in [
        "cn: ",
        "sn: ",
        "givenName: ",
        "displayName: ",
        "title: ",
        "telephoneNumber: ",
        "l: ",
        "departmentNumber: ",
    ] {
        assert!(out.contains(attribute), "{attribute} missing from\n{out}");
    }

    // The service account binds; only it (and the rootdn) reads its password.
    let service = ["-b", SERVICE_DN, "-s", "base", "userPassword"];
    let as_self =
        slapd.ldapsearch(&[&["-D", SERVICE_DN, "-w", SERVICE_PASSWORD][..], &service].concat());
    assert!(as_self.status.success(), "{}", text(&as_self));
    assert!(String::from_utf8_lossy(&as_self.stdout).contains("userPassword"));
    let as_anonymous = slapd.ldapsearch(&service);
    assert!(as_anonymous.status.success(), "{}", text(&as_anonymous));
    assert_eq!(entries(&as_anonymous), 1);
    assert!(!String::from_utf8_lossy(&as_anonymous.stdout).contains("userPassword"));
    let wrong = slapd.ldapsearch(&[&["-D", SERVICE_DN, "-w", "nope"][..], &service].concat());
    assert_eq!(
        wrong.status.code(),
        Some(49),
        "invalid credentials: {}",
        text(&wrong)
    );

    let port = slapd.port();
    slapd.stop();
    assert!(refuses_connections(port));
    let dir = slapd.dir().to_owned();
    drop(slapd);
    assert!(!dir.exists(), "the temp dir goes with the server");
}

/// A non-paged search stops at the limit with sizeLimitExceeded; a paged one gets every
/// entry whatever its page size, smaller or larger than the limit. The rootdn is exempt.
#[test]
fn size_limit_stops_plain_searches_but_not_paged_ones() {
    let slapd = Slapd::start(Options::default().size_limit(10));
    slapd.load_ldif(&users_ldif(25));
    let service = ["-D", SERVICE_DN, "-w", SERVICE_PASSWORD];

    for bind in [&[][..], &service[..]] {
        let plain = slapd.ldapsearch(&[bind, &["-b", PEOPLE_DN, USERS, "uid"]].concat());
        assert_eq!(plain.status.code(), Some(4), "{}", text(&plain));
        assert!(String::from_utf8_lossy(&plain.stderr).contains("Size limit exceeded"));
        assert_eq!(entries(&plain), 10);

        for page in ["pr=3/noprompt", "pr=10/noprompt", "pr=200/noprompt"] {
            let paged =
                slapd.ldapsearch(&[bind, &["-E", page, "-b", PEOPLE_DN, USERS, "uid"]].concat());
            assert!(paged.status.success(), "{page}: {}", text(&paged));
            assert_eq!(entries(&paged), 25, "{page}");
        }
    }

    let root = slapd.ldapsearch(&["-D", ROOT_DN, "-w", ROOT_PASSWORD, "-b", PEOPLE_DN, USERS]);
    assert!(root.status.success(), "{}", text(&root));
    assert_eq!(entries(&root), 25);
}

#[test]
fn starttls_and_ldaps_with_the_test_ca() {
    let slapd = Slapd::start(Options::default().tls());
    slapd.load_ldif(&users_ldif(2));
    let ca = slapd.ca_file();
    assert!(ca.exists());
    let search = |url: &str, starttls: bool, ca: &std::path::Path| {
        let mut command = Command::new("ldapsearch");
        command
            .env("LDAPTLS_CACERT", ca)
            .env("LDAPTLS_REQCERT", "demand")
            .args(["-x", "-LLL", "-o", "nettimeout=5", "-H", url]);
        if starttls {
            command.arg("-ZZ");
        }
        command
            .args(["-D", SERVICE_DN, "-w", SERVICE_PASSWORD])
            .args(["-b", PEOPLE_DN, USERS, "uid"])
            .output()
            .unwrap()
    };

    let url = slapd.url();
    let ldaps = slapd.ldaps_url();
    assert!(ldaps.starts_with("ldaps://127.0.0.1:"));
    // (Not `localhost`: libldap swaps that name for the machine's hostname before checking
    // the certificate. The certificate names localhost too, for other clients.)
    for (url, starttls) in [(&url, true), (&ldaps, false)] {
        let output = search(url, starttls, &ca);
        assert!(output.status.success(), "{url}: {}", text(&output));
        assert_eq!(entries(&output), 2, "{url}");
    }

    // Another CA does not do: the server's certificate really is checked.
    let other = tempfile::tempdir().unwrap();
    let other_ca = other.path().join("other-ca.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(&other_ca, cert.cert.pem()).unwrap();
    for (url, starttls) in [(&url, true), (&ldaps, false)] {
        let output = search(url, starttls, &other_ca);
        assert!(
            !output.status.success(),
            "{url} with another CA: {}",
            text(&output)
        );
    }
}

#[test]
fn kill_makes_the_port_refuse_connections() {
    let slapd = Slapd::start(Options::default().tls());
    let port = slapd.port();
    let ldaps_port: u16 = slapd
        .ldaps_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(!refuses_connections(port));
    assert!(!refuses_connections(ldaps_port));
    let pid = slapd.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    slapd.kill();
    assert!(refuses_connections(port));
    assert!(refuses_connections(ldaps_port));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    slapd.kill(); // twice is fine
}
