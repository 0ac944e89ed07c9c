//! The check of the `self_service` section (`registrar serve`): one file may set it, its
//! source must be an LDAP source of the config (people sign in by binding to it), the
//! login attribute must be an attribute name and no secret, the proxies addresses, and
//! the limits within their ranges.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::check::Checker;
use super::locate::Locator;
use super::problem::Location;
use super::raw::SelfServiceSpec;
use super::settings::{
    SelfService, SourceLocation, TrustedHeader, DEFAULT_IDLE_TIMEOUT_MINUTES,
    DEFAULT_MAX_SELF_REGISTRATIONS, DEFAULT_TRUSTED_HEADER,
};
use registrar_core::attribute_name::is_secret_attribute;
use registrar_core::quote::quote_for_message;

impl Checker<'_> {
    /// Checks `self_service` as far as one file tells; its source is checked once every
    /// file is in ([`Checker::self_service_source`]).
    pub(super) fn self_service(&mut self, spec: Option<&SelfServiceSpec>, locate: &Locator<'_>) {
        let Some(spec) = spec else {
            return;
        };
        let at = locate.section("self_service");
        self.single("self_service", at.clone());
        let login = spec.login_attribute.trim();
        if !is_attribute_name(login) || is_secret_attribute(login) {
            self.problem(
                locate.token_after(&at, "login_attribute"),
                format!(
                    "self_service.login_attribute {} is not an attribute people sign in with \
                     (an attribute name, not a secret one)",
                    quote_for_message(login)
                ),
            );
        }
        if spec.protocols.is_empty() {
            self.problem(
                locate.token_after(&at, "protocols"),
                "self_service.protocols names no protocol: list those people may register \
                 names for"
                    .to_string(),
            );
        }
        let mut protocols: Vec<String> = spec
            .protocols
            .iter()
            .map(|name| name.0.to_ascii_lowercase())
            .collect();
        protocols.sort();
        protocols.dedup();
        let max_per_account = spec
            .max_per_account
            .unwrap_or(DEFAULT_MAX_SELF_REGISTRATIONS);
        if !(1..=1000).contains(&max_per_account) {
            self.problem(
                locate.token_after(&at, "max_per_account"),
                format!("self_service.max_per_account must be 1 to 1000, not {max_per_account}"),
            );
        }
        let idle = spec
            .idle_timeout_minutes
            .unwrap_or(DEFAULT_IDLE_TIMEOUT_MINUTES);
        if !(1..=1440).contains(&idle) {
            self.problem(
                locate.token_after(&at, "idle_timeout_minutes"),
                format!("self_service.idle_timeout_minutes must be 1 to 1440, not {idle}"),
            );
        }
        let trusted_header = spec
            .trusted_header
            .as_ref()
            .map(|header| self.trusted_header(header, locate, &at));
        // A second file's section is a problem (`single`); the first one stands.
        self.self_service.get_or_insert((
            SelfService {
                source: spec.source.0.clone(),
                login_attribute: login.to_string(),
                protocols,
                max_per_account,
                idle_timeout: Duration::from_secs(u64::from(idle) * 60),
                trusted_header,
                api_tokens_file: spec.api_tokens_file.as_ref().map(PathBuf::from),
            },
            locate.token_after(&at, "source"),
        ));
    }

    fn trusted_header(
        &mut self,
        spec: &super::raw::TrustedHeaderSpec,
        locate: &Locator<'_>,
        at: &Location,
    ) -> TrustedHeader {
        let typed = spec
            .name
            .as_deref()
            .unwrap_or(DEFAULT_TRUSTED_HEADER)
            .trim();
        if !is_header_name(typed) {
            self.problem(
                locate.token_after(at, "trusted_header"),
                format!(
                    "self_service.trusted_header.name {} is not a header name",
                    quote_for_message(typed)
                ),
            );
        }
        let name = typed.to_ascii_lowercase();
        if spec.proxies.is_empty() {
            self.problem(
                locate.token_after(at, "proxies"),
                "self_service.trusted_header.proxies lists no address: only the proxies \
                 listed may send the header"
                    .to_string(),
            );
        }
        let mut proxies = Vec::with_capacity(spec.proxies.len());
        for proxy in &spec.proxies {
            match proxy.trim().parse::<IpAddr>() {
                Ok(address) => proxies.push(address.to_canonical()),
                Err(_) => self.problem(
                    locate.token_after(at, "proxies"),
                    format!(
                        "self_service.trusted_header.proxies: {} is not an IP address",
                        quote_for_message(proxy)
                    ),
                ),
            }
        }
        TrustedHeader { name, proxies }
    }

    /// Checks, every file in, that `self_service.source` names an LDAP source.
    pub(super) fn self_service_source(&mut self) {
        let Some((self_service, at)) = &self.self_service else {
            return;
        };
        let problem = match self.settings.iter().find(|s| s.name == self_service.source) {
            Some(source) if matches!(source.location, SourceLocation::Ldap(_)) => return,
            Some(_) => format!(
                "self_service.source {} is an LDIF source: people sign in by binding to an \
                 LDAP source",
                self_service.source
            ),
            None => format!(
                "self_service.source {} is not a source of the config",
                self_service.source
            ),
        };
        let at = at.clone();
        self.problem(at, problem);
    }
}

/// Whether `name` is an attribute name: a descriptor (a letter, then letters, digits and
/// hyphens) or a numeric OID.
fn is_attribute_name(name: &str) -> bool {
    let descriptor = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !name.is_empty()
        && name
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
    descriptor || oid
}

/// Whether `name` is an HTTP header name (RFC 9110's token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}
