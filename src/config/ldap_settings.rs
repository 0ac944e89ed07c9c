//! The check of an LDAP source's connection settings: TLS, how it binds (a password is
//! only ever named, never written), its DNs, paging and timeouts, and the attributes it
//! asks for. Refusals are [`LdapSettingsError`]s, each saying what is wrong.

use std::path::Path;
use std::time::Duration;

use super::raw::{self, LdapSpec, SecretAttribute};
use super::settings::{
    LdapBind, LdapSettings, PasswordFrom, DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT_SECONDS,
};
use registrar_core::dn::{Dn, DnError};
use registrar_core::model::Anchor;
use registrar_core::quote::quote_for_message;

/// Why an LDAP source's settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum LdapSettingsError {
    #[error("url {} must start with ldap:// or ldaps://", quote_for_message(url))]
    UrlScheme { url: String },
    #[error("starttls is for ldap:// urls; ldaps:// is TLS already")]
    StarttlsOnLdaps,
    #[error("ca_file and insecure_skip_tls_verify need TLS: use ldaps:// or starttls: true")]
    TlsOptionsWithoutTls,
    #[error("set only one of ca_file and insecure_skip_tls_verify")]
    CaFileAndInsecure,
    #[error("set only one of password_env and password_file")]
    TwoPasswords,
    #[error("bind_dn {} is not a DN: {source}", quote_for_message(dn))]
    BindDn {
        dn: String,
        #[source]
        source: DnError,
    },
    #[error("bind_dn needs password_env or password_file (passwords never live in YAML)")]
    BindDnWithoutPassword,
    #[error("password_env and password_file need bind_dn")]
    PasswordWithoutBindDn,
    #[error("set bind_dn with password_env or password_file, or anonymous: true")]
    NoBind,
    #[error("anonymous: true excludes bind_dn and passwords")]
    AnonymousWithCredentials,
    #[error("base_dn {} is not a DN: {source}", quote_for_message(dn))]
    BaseDn {
        dn: String,
        #[source]
        source: DnError,
    },
    #[error("page_size must be between 1 and {}, not {page_size}", i32::MAX)]
    PageSize { page_size: u32 },
    #[error("{name} must be at least 1")]
    ZeroSeconds { name: &'static str },
    #[error("attributes {0}")]
    SecretAttribute(#[source] SecretAttribute),
}

/// Checks an LDAP source's settings.
pub(super) fn ldap_settings(
    ldap: &LdapSpec,
    anchor: &Anchor,
    base_dir: &Path,
) -> Result<LdapSettings, LdapSettingsError> {
    let url = ldap.url.trim();
    let tls = if url.starts_with("ldaps://") {
        true
    } else if url.starts_with("ldap://") {
        ldap.starttls
    } else {
        return Err(LdapSettingsError::UrlScheme {
            url: url.to_string(),
        });
    };
    if ldap.starttls && url.starts_with("ldaps://") {
        return Err(LdapSettingsError::StarttlsOnLdaps);
    }
    if !tls && (ldap.ca_file.is_some() || ldap.insecure_skip_tls_verify) {
        return Err(LdapSettingsError::TlsOptionsWithoutTls);
    }
    if ldap.ca_file.is_some() && ldap.insecure_skip_tls_verify {
        return Err(LdapSettingsError::CaFileAndInsecure);
    }
    let password = match (&ldap.password_env, &ldap.password_file) {
        (Some(_), Some(_)) => return Err(LdapSettingsError::TwoPasswords),
        (Some(var), None) => Some(PasswordFrom::Env(var.clone())),
        (None, Some(file)) => Some(PasswordFrom::File(base_dir.join(file))),
        (None, None) => None,
    };
    let bind = match (&ldap.bind_dn, password, ldap.anonymous) {
        (Some(dn), Some(password), false) => {
            if let Err(source) = Dn::parse(dn) {
                return Err(LdapSettingsError::BindDn {
                    dn: dn.clone(),
                    source,
                });
            }
            LdapBind::Simple {
                dn: dn.clone(),
                password,
            }
        }
        (Some(_), None, false) => return Err(LdapSettingsError::BindDnWithoutPassword),
        (None, None, true) => LdapBind::Anonymous,
        (None, Some(_), false) => return Err(LdapSettingsError::PasswordWithoutBindDn),
        (None, None, false) => return Err(LdapSettingsError::NoBind),
        (Some(_), _, true) | (None, Some(_), true) => {
            return Err(LdapSettingsError::AnonymousWithCredentials)
        }
    };
    if let Err(source) = Dn::parse(&ldap.base_dn) {
        return Err(LdapSettingsError::BaseDn {
            dn: ldap.base_dn.clone(),
            source,
        });
    }
    let page_size = ldap.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page_size == 0 || page_size > i32::MAX as u32 {
        return Err(LdapSettingsError::PageSize { page_size });
    }
    let seconds =
        |value: Option<u32>, default: u32, name: &'static str| match value.unwrap_or(default) {
            0 => Err(LdapSettingsError::ZeroSeconds { name }),
            n => Ok(Duration::from_secs(n.into())),
        };
    // `*` asks for every user attribute; operational anchors (entryUUID) and anything the
    // core reads regardless of the list (objectClass) are asked for by name.
    let mut attributes = ldap
        .attributes
        .clone()
        .unwrap_or_else(|| vec!["*".to_string()]);
    raw::refuse_secrets(attributes.iter().map(String::as_str))
        .map_err(LdapSettingsError::SecretAttribute)?;
    let mut wanted = vec!["objectClass".to_string()];
    if let Anchor::Attribute(name) = anchor {
        wanted.push(name.clone());
    }
    for name in wanted {
        if !attributes.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
            attributes.push(name);
        }
    }
    Ok(LdapSettings {
        url: url.to_string(),
        starttls: ldap.starttls,
        ca_file: ldap.ca_file.as_ref().map(|p| base_dir.join(p)),
        ca_pem: None,
        insecure_skip_tls_verify: ldap.insecure_skip_tls_verify,
        bind,
        base_dn: ldap.base_dn.clone(),
        scope: ldap.scope,
        domain_scope: ldap.domain_scope,
        delta: ldap.delta,
        filter: ldap
            .filter
            .as_ref()
            .map_or_else(|| "(objectClass=*)".to_string(), |f| f.0.clone()),
        attributes,
        page_size,
        connect_timeout: seconds(
            ldap.connect_timeout_seconds,
            DEFAULT_CONNECT_TIMEOUT_SECONDS,
            "connect_timeout_seconds",
        )?,
        timeout: seconds(
            ldap.timeout_seconds,
            DEFAULT_TIMEOUT_SECONDS,
            "timeout_seconds",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    fn refusal(yaml: &str) -> LdapSettingsError {
        let spec: LdapSpec = serde_yaml::from_str(yaml).unwrap();
        ldap_settings(&spec, &Anchor::Dn, Path::new("cfg")).unwrap_err()
    }

    #[test]
    fn a_bad_dn_is_refused_with_the_parse_error_as_its_source() {
        let error = refusal("url: ldaps://h\nbase_dn: dc=x\nbind_dn: nodn\npassword_env: P\n");
        assert!(matches!(&error, LdapSettingsError::BindDn { dn, .. } if dn == "nodn"));
        let source = error.source().map(ToString::to_string);
        assert_eq!(
            error.to_string(),
            format!(
                "bind_dn \"nodn\" is not a DN: {}",
                source.unwrap_or_default()
            )
        );
    }

    #[test]
    fn each_refusal_says_what_is_wrong() {
        for (yaml, message) in [
            (
                "url: http://h\nbase_dn: dc=x\nanonymous: true\n",
                "url \"http://h\" must start with ldap:// or ldaps://",
            ),
            (
                "url: ldaps://h\nbase_dn: dc=x\nanonymous: true\npage_size: 0\n",
                "page_size must be between 1 and 2147483647, not 0",
            ),
            (
                "url: ldaps://h\nbase_dn: dc=x\nanonymous: true\ntimeout_seconds: 0\n",
                "timeout_seconds must be at least 1",
            ),
            (
                "url: ldaps://h\nbase_dn: dc=x\nbind_dn: cn=a\n",
                "bind_dn needs password_env or password_file (passwords never live in YAML)",
            ),
        ] {
            assert_eq!(refusal(yaml).to_string(), message, "{yaml}");
        }
        let secret = refusal(
            "url: ldaps://h\nbase_dn: dc=x\nanonymous: true\nattributes: [cn, userPassword]\n",
        );
        let LdapSettingsError::SecretAttribute(source) = &secret else {
            panic!("{secret:?}");
        };
        assert_eq!(source.attribute, "userPassword");
        assert_eq!(secret.to_string(), format!("attributes {source}"));
    }
}
