//! Proving who a person is against an LDAP source (`registrar serve`'s sign-in): find the
//! person's entry by the login attribute with the source's own bind, then bind as that
//! entry with the password the person typed, on a connection of its own.
//!
//! An empty password is refused here before anything is sent: RFC 4513 makes a simple
//! bind with a DN and an empty password an unauthenticated bind, which servers accept.
//! The login is put into the filter through [`escape_value`], so `*` or `)` in it match
//! themselves. A login that matches no entry, or more than one, proves nobody.

use ldap3::SearchEntry;

use super::error::LdapReadError;
use super::read::{ldap_scope, scope_controls};
use super::session::{self, describe, result_text, Credentials, Password};
use crate::config::LdapSettings;
use registrar_core::filter::escape_value;

/// A person's directory entry, found by login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryPerson {
    pub dn: String,
    /// `displayName`, else `cn`, when the entry has one.
    pub display_name: Option<String>,
}

/// What a login turned up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    One(DirectoryPerson),
    None,
    /// More than one entry has that login: it proves nobody.
    Several(usize),
}

/// LDAP's invalidCredentials result code.
const INVALID_CREDENTIALS: u32 = 49;

/// Finds the entry under the source's base, scope and filter whose `login_attribute`
/// equals `login`, with the source's own bind.
pub async fn find_person(
    settings: &LdapSettings,
    credentials: &Credentials,
    login_attribute: &str,
    login: &str,
) -> Result<Found, LdapReadError> {
    let mut ldap = session::open(settings, credentials).await?;
    let filter = format!(
        "(&{}({login_attribute}={}))",
        settings.filter,
        escape_value(login)
    );
    let controls = scope_controls(settings);
    if !controls.is_empty() {
        ldap.with_controls(controls);
    }
    let search = ldap
        .with_timeout(settings.timeout)
        .search(
            &settings.base_dn,
            ldap_scope(settings.scope),
            &filter,
            vec!["displayName", "cn"],
        )
        .await
        .map_err(|e| search_error(settings, describe(&e, settings.timeout, "timeout_seconds")))?;
    let _ = ldap.unbind().await;
    let (entries, result) = (search.0, search.1);
    if result.rc != 0 {
        return Err(search_error(settings, result_text(&result)));
    }
    let mut people: Vec<DirectoryPerson> = entries
        .into_iter()
        .map(SearchEntry::construct)
        .filter(|entry| !entry.dn.is_empty())
        .map(|entry| {
            let first = |name: &str| {
                entry
                    .attrs
                    .iter()
                    .find(|(attribute, _)| attribute.eq_ignore_ascii_case(name))
                    .and_then(|(_, values)| values.first().cloned())
            };
            DirectoryPerson {
                display_name: first("displayName").or_else(|| first("cn")),
                dn: entry.dn,
            }
        })
        .collect();
    Ok(match people.len() {
        0 => Found::None,
        1 => Found::One(people.remove(0)),
        several => Found::Several(several),
    })
}

/// Binds as `dn` with `password` on a connection of its own (the source's URL, TLS
/// settings and CA): `Ok(true)` when the server accepts, `Ok(false)` when it answers
/// invalidCredentials or the password is empty (never sent), an error when the server
/// cannot be asked.
pub async fn password_matches(
    settings: &LdapSettings,
    ca_pem: Option<&[u8]>,
    dn: &str,
    password: &Password,
) -> Result<bool, LdapReadError> {
    let secret = password.expose();
    if secret.is_empty() {
        return Ok(false);
    }
    let mut ldap = session::connect(settings, ca_pem).await?;
    let bound = ldap
        .with_timeout(settings.timeout)
        .simple_bind(dn, secret)
        .await
        .map_err(|e| LdapReadError::Bind {
            who: dn.to_string(),
            reason: describe(&e, settings.timeout, "timeout_seconds"),
        });
    let _ = ldap.unbind().await;
    let result = bound?;
    match result.rc {
        0 => Ok(true),
        INVALID_CREDENTIALS => Ok(false),
        _ => Err(LdapReadError::Bind {
            who: dn.to_string(),
            reason: result_text(&result),
        }),
    }
}

fn search_error(settings: &LdapSettings, reason: String) -> LdapReadError {
    LdapReadError::Search {
        base: settings.base_dn.clone(),
        entries: 0,
        reason,
    }
}
