//! Unmanaged registrations (`source: manual` or `self`): the one way they are written.
//! `state register` goes through [`register_unmanaged`], and so must every other writer
//! of them (the self-service page), so that rule 9 is checked in one place: a protected
//! principal (`policy.protected_principals`, every LDAP source's `bind_dn`) never
//! receives a registration. That is how names ended up on the old IM compliance
//! servers' service account: one path that did not check who the account was. An
//! administrator who truly needs it passes `AllowProtected::Record`, and the run
//! history says so.

use crate::adapters::store::{RunRecord, Store};
use crate::config::Config;
use registrar_core::state::RegistrationSource;

use super::error::AppError;

/// One manual or self registration to record.
#[derive(Debug, Clone, Copy)]
pub struct UnmanagedRegistration<'a> {
    /// Lowercase protocol name.
    pub protocol: &'a str,
    /// The name as given (surrounding white space is dropped).
    pub im_name: &'a str,
    /// The account's DN; a DN the store does not know becomes an unmanaged account.
    pub account_dn: &'a str,
    /// `Manual` or `Self_`: never `Ldap`, which only mappings write.
    pub source: RegistrationSource,
    /// The most registrations of `source` the account may hold (self-service's
    /// `max_per_account`); `None`: no limit.
    pub per_account: Option<u32>,
}

/// What to do when the account is a protected principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowProtected {
    /// Refuse, and record nothing (the default everywhere).
    Refuse,
    /// Record it, and say so in the run history (`state register --allow-protected`).
    Record,
}

/// A registration recorded.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The account's anchor in the store.
    pub anchor: String,
    /// Why the account is a protected principal, when it is one and was allowed.
    pub protected: Option<String>,
}

/// Records `registration` in `store` under the name key `config`'s protocol rule gives
/// it, as one transaction that bumps the serial and records `run`; refuses a protected
/// principal (unless `allow`), a `source: ldap` row, empty names and DNs, and a name
/// anyone holds. Nothing is written when it refuses.
pub fn register_unmanaged(
    config: &Config,
    store: &mut Store,
    registration: UnmanagedRegistration,
    allow: AllowProtected,
    mut run: RunRecord,
) -> Result<Registered, AppError> {
    if registration.source == RegistrationSource::Ldap {
        return Err(AppError::RegistrationFromLdap);
    }
    let (im_name, account_dn) = (registration.im_name.trim(), registration.account_dn.trim());
    if im_name.is_empty() || account_dn.is_empty() {
        return Err(AppError::EmptyRegistration);
    }
    let protected = config.protected_principal(account_dn);
    if let (Some(rule), AllowProtected::Refuse) = (&protected, allow) {
        return Err(AppError::ProtectedPrincipal {
            dn: account_dn.to_string(),
            rule: rule.clone(),
        });
    }
    if let Some(rule) = &protected {
        run.message = Some(format!(
            "{account_dn} is a protected principal ({rule}); recorded with --allow-protected"
        ));
    }
    // The name is stored under the key the config's rule for the protocol gives it
    // (case-sensitive or not), as a mapping's name would be.
    let name_key = config
        .rules
        .protocol(registration.protocol)
        .name_key(im_name);
    let anchor = store.register(
        (registration.protocol, &name_key),
        im_name,
        account_dn,
        (registration.source, registration.per_account),
        run,
    )?;
    Ok(Registered { anchor, protected })
}
