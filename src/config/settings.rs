//! The loaded, checked configuration: the core's rules plus what only the adapters need
//! (where each source's data lives, the controller's schedules).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};

use super::problem::Location;
use super::raw;
use registrar_core::dn::normalize_dn;
use registrar_core::model::Rules;

/// One config file's text, kept for locating errors and digesting inputs.
#[derive(Debug, Clone)]
pub struct ConfigText {
    pub path: PathBuf,
    pub text: String,
}

/// Where one source's entries come from.
#[derive(Debug, Clone)]
pub enum SourceLocation {
    Ldif {
        /// Resolved against the YAML file that names it.
        path: PathBuf,
        /// The glob of change files, resolved the same way.
        changes: Option<PathBuf>,
        /// The largest value an entry may hold, decoded (`max_value_bytes`).
        max_value_bytes: usize,
    },
    Ldap(LdapSettings),
}

/// An LDAP source's connection settings, checked (the password itself is never held
/// here: only where to find it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSettings {
    pub url: String,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    /// The CA file's bytes, already read from a trusted revision (a review run, see
    /// `trust.rs`); `None`: `ca_file` is read from the files the config came from.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    pub bind: LdapBind,
    pub base_dn: String,
    pub scope: raw::Scope,
    /// Send Active Directory's domain scope control: no continuation references.
    pub domain_scope: bool,
    /// The change feed a delta read asks for.
    pub delta: raw::DeltaFeed,
    /// The filter in canonical RFC 4515 form.
    pub filter: String,
    /// The attributes to request (`*`: every user attribute), with `objectClass` and the
    /// anchor.
    pub attributes: Vec<String>,
    pub page_size: u32,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl LdapSettings {
    /// A search of the whole subtree of `base_dn` on `url`, bound as `bind`, with what a
    /// source that sets nothing else gets: every entry and user attribute, pages of
    /// 1000, the default timeouts, no TLS. For programs that search without a config.
    pub fn plain(url: &str, bind: LdapBind, base_dn: &str) -> LdapSettings {
        LdapSettings {
            url: url.to_string(),
            starttls: false,
            ca_file: None,
            ca_pem: None,
            insecure_skip_tls_verify: false,
            bind,
            base_dn: base_dn.to_string(),
            scope: raw::Scope::Subtree,
            domain_scope: false,
            delta: raw::DeltaFeed::Auto,
            filter: "(objectClass=*)".to_string(),
            attributes: vec!["*".to_string()],
            page_size: DEFAULT_PAGE_SIZE,
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECONDS.into()),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS.into()),
        }
    }
}

/// How an LDAP source authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapBind {
    Anonymous,
    Simple { dn: String, password: PasswordFrom },
}

/// Where a bind password is read from when the source is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFrom {
    Env(String),
    File(PathBuf),
}

/// Defaults of an LDAP source.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
pub const DEFAULT_CONNECT_TIMEOUT_SECONDS: u32 = 10;
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 120;

/// A source as the adapters need it.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub name: String,
    pub defined_at: Location,
    pub location: SourceLocation,
}

/// The loaded, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub rules: Rules,
    /// In name order, like `rules.sources`.
    pub sources: Vec<SourceSettings>,
    /// The files read, in name order.
    pub files: Vec<ConfigText>,
    /// The controller's schedules, in name order.
    pub schedules: Vec<Schedule>,
    /// The file that sets `object_types`, if one does (the defaults apply otherwise).
    pub object_types_file: Option<PathBuf>,
    /// The `self_service` section, checked; `None` when no file sets it.
    pub self_service: Option<SelfService>,
}

/// The checked `self_service` section (`registrar serve`).
#[derive(Debug, Clone)]
pub struct SelfService {
    /// An LDAP source of the config.
    pub source: String,
    pub login_attribute: String,
    /// Lowercase, sorted, each once.
    pub protocols: Vec<String>,
    pub max_per_account: u32,
    pub idle_timeout: Duration,
    pub trusted_header: Option<TrustedHeader>,
    pub api_tokens_file: Option<PathBuf>,
}

/// Sign-in by a reverse proxy's header.
#[derive(Debug, Clone)]
pub struct TrustedHeader {
    /// The header's name, lowercase.
    pub name: String,
    pub proxies: Vec<std::net::IpAddr>,
}

/// `self_service.max_per_account` when unset.
pub const DEFAULT_MAX_SELF_REGISTRATIONS: u32 = 5;
/// `self_service.idle_timeout_minutes` when unset.
pub const DEFAULT_IDLE_TIMEOUT_MINUTES: u32 = 30;
/// `self_service.trusted_header.name` when unset.
pub const DEFAULT_TRUSTED_HEADER: &str = "x-remote-user";

/// A controller schedule, its cron expression parsed.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// The expression as written.
    pub cron_text: String,
    pub cron: croner::Cron,
    pub action: raw::ScheduleAction,
    pub mode: raw::ImportMode,
}

impl Schedule {
    /// The first time this schedule fires strictly after `after`, in whole seconds (cron
    /// times are UTC); `None` when the expression never matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let whole = after.with_nanosecond(0).unwrap_or(after);
        self.cron.find_next_occurrence(&whole, false).ok()
    }

    /// The action's name as the config spells it: `plan`, `apply` or `drift`.
    pub fn action_name(&self) -> &'static str {
        self.action.name()
    }
}

impl Config {
    /// The settings of the source called `name`.
    pub fn source(&self, name: &str) -> Option<&SourceSettings> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Why `dn` is a protected principal, if it is (rule 9: it never holds a
    /// registration): `the bind_dn of LDAP source NAME`, or `policy.protected_principals`.
    pub fn protected_principal(&self, dn: &str) -> Option<String> {
        let key = normalize_dn(dn);
        if !self.rules.policy.protected_principals.contains(&key) {
            return None;
        }
        let bound_by = self.sources.iter().find(|source| {
            matches!(&source.location, SourceLocation::Ldap(LdapSettings {
                bind: LdapBind::Simple { dn: bind_dn, .. },
                ..
            }) if normalize_dn(bind_dn) == key)
        });
        Some(match bound_by {
            Some(source) => format!("the bind_dn of LDAP source {}", source.name),
            None => "policy.protected_principals".to_string(),
        })
    }
}
