//! Who is asking: proven by an LDAP bind as the person, or named by the trusted proxy's
//! header. There is no third way and no fallback: a request that proves nobody gets the
//! sign-in page (or, behind a proxy, a refusal), never a page for some default account.
//! In particular the service account the site binds with is never anyone's identity: it
//! only finds the person's entry, and `serve` then binds as that entry.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::sessions::Principal;
use super::site::Site;
use crate::adapters::ldap::{find_person, password_matches, DirectoryPerson, Found, Password};
use registrar_core::quote::quote_for_message;

/// Why a sign-in proved nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures for this login or address: locked for this long.
    Locked(Duration),
    /// No password given (an empty bind would be anonymous): nothing was sent.
    EmptyPassword,
    /// No such login, several, or the wrong password: the page does not say which.
    WrongCredentials,
    /// The directory could not be asked.
    DirectoryDown,
    /// A trusted header from an address that is not a configured proxy.
    UntrustedSender,
    /// Behind the proxy, but it sent no identity, or one the directory does not know.
    NoIdentity,
}

/// Signs `login` in with `password`, from `address`.
pub async fn sign_in_with_password(
    site: &Site,
    login: &str,
    password: Password,
    address: IpAddr,
) -> Result<Principal, Refusal> {
    if password.is_empty() {
        return Err(Refusal::EmptyPassword);
    }
    if let Err(left) = site.throttle.attempt(login, address, Instant::now()) {
        site.counters.count(&site.counters.lockouts);
        return Err(Refusal::Locked(left));
    }
    let fail = |refusal: Refusal| {
        if refusal == Refusal::DirectoryDown {
            site.throttle.withdrawn(login, address);
        } else {
            site.counters.count(&site.counters.sign_ins_failed);
        }
        refusal
    };
    let person = match find(site, login).await.map_err(fail)? {
        Some(person) => person,
        None => return Err(fail(Refusal::WrongCredentials)),
    };
    let directory = &site.directory;
    match password_matches(
        &directory.settings,
        directory.credentials.ca_pem.as_deref(),
        &person.dn,
        &password,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => return Err(fail(Refusal::WrongCredentials)),
        Err(error) => {
            eprintln!(
                "registrar serve: sign-in of {}: {error}",
                quote_for_message(login)
            );
            return Err(fail(Refusal::DirectoryDown));
        }
    }
    site.throttle.succeeded(login, address);
    site.counters.count(&site.counters.sign_ins);
    Ok(principal(site, login, person).await)
}

/// The person the trusted proxy's header names, when the sign-in is by header.
pub async fn principal_from_header(
    site: &Site,
    headers: &HeaderMap,
    address: IpAddr,
) -> Result<Principal, Refusal> {
    let Some(trusted) = &site.self_service.trusted_header else {
        return Err(Refusal::NoIdentity);
    };
    if !trusted.proxies.contains(&address.to_canonical()) {
        return Err(Refusal::UntrustedSender);
    }
    // One value, or none: a proxy that adds its header beside the client's own must not
    // let the client's be the one read.
    let mut values = headers.get_all(trusted.name.as_str()).iter();
    let (value, more) = (values.next(), values.next());
    if more.is_some() {
        return Err(Refusal::NoIdentity);
    }
    let login = value
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|login| !login.is_empty())
        .ok_or(Refusal::NoIdentity)?;
    match find(site, login).await? {
        Some(person) => Ok(principal(site, login, person).await),
        None => Err(Refusal::NoIdentity),
    }
}

/// The one entry with this login, if exactly one has it.
async fn find(site: &Site, login: &str) -> Result<Option<DirectoryPerson>, Refusal> {
    let directory = &site.directory;
    let found = find_person(
        &directory.settings,
        &directory.credentials,
        &site.self_service.login_attribute,
        login,
    )
    .await;
    match found {
        Ok(Found::One(person)) => Ok(Some(person)),
        Ok(Found::None) => Ok(None),
        Ok(Found::Several(count)) => {
            eprintln!(
                "registrar serve: login {} matches {count} entries; it signs nobody in",
                quote_for_message(login)
            );
            Ok(None)
        }
        Err(error) => {
            eprintln!(
                "registrar serve: finding login {}: {error}",
                quote_for_message(login)
            );
            Err(Refusal::DirectoryDown)
        }
    }
}

/// The principal for `person`: the store's display name first (what the IM systems show),
/// then the directory's, then the DN; and whether the account is a protected principal.
async fn principal(site: &Site, login: &str, person: DirectoryPerson) -> Principal {
    let dn = person.dn.clone();
    let stored = site
        .with_store(move |store| store.display_name_of(&dn))
        .await
        .and_then(Result::ok)
        .flatten();
    Principal {
        login: login.trim().to_string(),
        display_name: stored
            .or(person.display_name)
            .unwrap_or_else(|| person.dn.clone()),
        protected: site.config.protected_principal(&person.dn),
        dn: person.dn,
    }
}
