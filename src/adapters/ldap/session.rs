//! One LDAP session, what the full read and the change feeds share: a current-thread
//! tokio runtime of its own, the connection (`ldap://`, `ldaps://`, or `ldap://`
//! upgraded with StartTLS; rustls, never OpenSSL, verifying against the system's roots or
//! a given CA file unless the source turns verification off by name), and the bind
//! (simple, with a password the caller fetched, or anonymous when asked for).
//!
//! The password lives in [`Password`], which never prints. A refused connection, a
//! failed bind or a timeout is an [`LdapReadError`] naming what failed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult};

use super::error::LdapReadError;
use crate::config::{LdapBind, LdapSettings};

/// A bind password. `Debug` and `Display` print a placeholder, so that no error, log
/// line or plan can carry it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(secret: String) -> Self {
        Password(secret)
    }

    /// Whether the password is empty (a bind with it would be anonymous).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret itself, for the one call that sends it (a bind).
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What is needed to open one LDAP source, beyond its settings: secrets and files the
/// caller read.
pub struct Credentials {
    /// The bind password; `None` for an anonymous bind.
    pub password: Option<Password>,
    /// PEM text of the certificate authorities from `ca_file`.
    pub ca_pem: Option<Vec<u8>>,
}

/// The rustls configuration trusting exactly the certificate authorities in `pem`.
pub(super) fn tls_config(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, LdapReadError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate
            .map_err(|e| LdapReadError::CaFile(format!("not a PEM certificate: {e}")))?;
        roots
            .add(certificate)
            .map_err(|e| LdapReadError::CaFile(format!("unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(LdapReadError::CaFile(
            "holds no PEM certificate".to_string(),
        ));
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// An ldap3 error as a short reason, naming the setting behind a timeout.
pub(super) fn describe(error: &LdapError, limit: Duration, setting: &str) -> String {
    match error {
        LdapError::Timeout { .. } => {
            format!("no reply within {} s ({setting})", limit.as_secs())
        }
        LdapError::EndOfStream | LdapError::ResultRecv { .. } | LdapError::OpSend { .. } => {
            "the server closed the connection".to_string()
        }
        LdapError::LdapResult { result } => result_text(result),
        LdapError::Io { source } => source.to_string(),
        other => other.to_string(),
    }
}

/// An LDAP result code with its name and the server's diagnostic text.
pub(super) fn result_text(result: &LdapResult) -> String {
    let name = result_code_name(result.rc);
    let text = result.text.trim();
    if text.is_empty() {
        format!("{name} (result code {})", result.rc)
    } else {
        format!("{name} (result code {}): {text}", result.rc)
    }
}

/// The RFC 4511 name of an LDAP result code.
pub(super) fn result_code_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "error",
    }
}

/// The runtime one read runs on.
pub(super) fn runtime(settings: &LdapSettings) -> Result<tokio::runtime::Runtime, LdapReadError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LdapReadError::Connect {
            url: settings.url.clone(),
            reason: format!("cannot start the network runtime: {e}"),
        })
}

/// Connects to the source's server and binds. The connection's driver runs on the
/// current runtime, and ends with it.
pub(super) async fn open(
    settings: &LdapSettings,
    credentials: &Credentials,
) -> Result<Ldap, LdapReadError> {
    let mut ldap = connect(settings, credentials.ca_pem.as_deref()).await?;
    match (&settings.bind, &credentials.password) {
        (LdapBind::Simple { dn, .. }, Some(Password(secret))) => {
            let who = dn.clone();
            let result = ldap
                .with_timeout(settings.timeout)
                .simple_bind(dn, secret)
                .await
                .map_err(|e| LdapReadError::Bind {
                    who: who.clone(),
                    reason: describe(&e, settings.timeout, "timeout_seconds"),
                })?;
            if result.rc != 0 {
                return Err(LdapReadError::Bind {
                    who,
                    reason: result_text(&result),
                });
            }
        }
        (LdapBind::Simple { dn, .. }, None) => {
            return Err(LdapReadError::Bind {
                who: dn.clone(),
                reason: "no password".to_string(),
            })
        }
        // An anonymous bind is the state of a fresh connection: nothing to send.
        (LdapBind::Anonymous, _) => {}
    }
    Ok(ldap)
}

/// Connects to the source's server (`ldap://`, `ldaps://` or StartTLS, verified against
/// `ca_pem` when given), without binding: a fresh connection is anonymous. The
/// connection's driver runs on the current runtime until the connection closes.
pub(super) async fn connect(
    settings: &LdapSettings,
    ca_pem: Option<&[u8]>,
) -> Result<Ldap, LdapReadError> {
    let mut connection = LdapConnSettings::new()
        .set_conn_timeout(settings.connect_timeout)
        .set_starttls(settings.starttls)
        .set_no_tls_verify(settings.insecure_skip_tls_verify);
    if let Some(pem) = ca_pem {
        connection = connection.set_config(tls_config(pem)?);
    }
    let (conn, ldap) = LdapConnAsync::with_settings(connection, &settings.url)
        .await
        .map_err(|e| LdapReadError::Connect {
            url: settings.url.clone(),
            reason: describe(&e, settings.connect_timeout, "connect_timeout_seconds"),
        })?;
    tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    Ok(ldap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let password = Password::new("hunter2".to_string());
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn result_codes_are_named() {
        let result = LdapResult {
            rc: 49,
            matched: String::new(),
            text: "bad".to_string(),
            refs: vec![],
            ctrls: vec![],
        };
        assert_eq!(
            result_text(&result),
            "invalidCredentials (result code 49): bad"
        );
    }
}
