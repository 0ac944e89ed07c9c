//! The YAML configuration format, as close as possible to what the user typed.
//!
//! serde reads these types (unknown keys rejected) and schemars turns them into the JSON
//! Schema committed as `schemas/registrar.schema.json`. Filters, templates, regexes and
//! cron expressions are parsed while reading, so a syntax error carries the YAML
//! position. Cross-references (unknown source names, duplicates) are checked later, in
//! `config::check`. Nothing here does I/O.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use registrar_core::attribute_name::first_secret;
use registrar_core::filter::{Filter, FilterError};
use registrar_core::model::Departure;
pub use registrar_core::model::GroupKind;
use registrar_core::quote::quote_for_message;
use registrar_core::template::{Template, TemplateError};

/// One YAML file of the config directory. Every section is optional; the files of a
/// directory are merged.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "registrar configuration file")]
pub struct ConfigFile {
    /// Where directory entries come from.
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    /// Object types by objectClass chain: `type: [[top, person, organizationalPerson]]`.
    /// Defaults cover person/organizationalPerson, groupOfNames/group and
    /// organizationalUnit. At most one file may set it.
    #[serde(default)]
    pub object_types: Option<BTreeMap<String, Vec<Vec<String>>>>,
    /// How accounts are built from user entries. At most one file may set it.
    #[serde(default)]
    pub accounts: Option<AccountsSpec>,
    /// Rules turning entry attributes into IM registrations.
    #[serde(default)]
    pub mappings: Vec<MappingSpec>,
    /// Distribution lists and org-unit groups.
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    /// Objects the controller must never touch.
    #[serde(default)]
    pub exclusions: Vec<ExclusionSpec>,
    /// Protected principals and safety rails. At most one file may set it.
    #[serde(default)]
    pub policy: Option<PolicySpec>,
    /// What each IM protocol accepts as a name.
    #[serde(default)]
    pub protocols: Vec<ProtocolSpec>,
    /// When `registrar run` reconciles.
    #[serde(default)]
    pub schedules: Vec<ScheduleSpec>,
    /// The employees' self-registration page and the lookup API (`registrar serve`).
    /// At most one file may set it.
    #[serde(default)]
    pub self_service: Option<SelfServiceSpec>,
}

impl ConfigFile {
    /// Adds the sections of `part` (another part of the same file) to these.
    pub fn merge(&mut self, part: ConfigFile) {
        let ConfigFile {
            sources,
            object_types,
            accounts,
            mappings,
            groups,
            exclusions,
            policy,
            protocols,
            schedules,
            self_service,
        } = part;
        self.sources.extend(sources);
        self.object_types = object_types.or(self.object_types.take());
        self.accounts = accounts.or(self.accounts.take());
        self.mappings.extend(mappings);
        self.groups.extend(groups);
        self.exclusions.extend(exclusions);
        self.policy = policy.or(self.policy.take());
        self.protocols.extend(protocols);
        self.schedules.extend(schedules);
        self.self_service = self_service.or(self.self_service.take());
    }
}

/// A directory source: exactly one of `ldap` or `ldif`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Unique name, referred to by mappings and groups.
    pub name: Name,
    /// Attribute identifying an entry across renames (`objectGUID`, `entryUUID`); `dn`
    /// (the default) uses the DN.
    #[serde(default)]
    pub anchor: Option<String>,
    /// Allow this source to yield no accounts while the store holds accounts from it.
    #[serde(default)]
    pub allow_empty: bool,
    /// Pull entries from an LDAP server.
    #[serde(default)]
    pub ldap: Option<LdapSpec>,
    /// Read entries from LDIF files.
    #[serde(default)]
    pub ldif: Option<LdifSpec>,
}

/// An LDAP server to search (Active Directory, OpenLDAP, …).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapSpec {
    /// `ldap://host:389` (add `starttls: true` to encrypt) or `ldaps://host:636`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the certificate authorities to trust (relative to this YAML file);
    /// without it, the system's trusted roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// DANGER: accept any server certificate, so anyone on the network path can read the
    /// bind password and forge the directory. For a lab only.
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// DN to bind as (simple bind); it is a protected principal. Needs `password_env` or
    /// `password_file`.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// Environment variable holding the bind password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the bind password (relative to this YAML file; one trailing newline
    /// is ignored).
    #[serde(default)]
    pub password_file: Option<String>,
    /// Bind anonymously: must be asked for, and excludes `bind_dn`.
    #[serde(default)]
    pub anonymous: bool,
    /// Search base.
    pub base_dn: String,
    /// Search scope.
    #[serde(default)]
    pub scope: Scope,
    /// Send the domain scope control (Active Directory's; OpenLDAP honours it too), so
    /// that the server sends no continuation references to other naming contexts (the
    /// configuration partition, DNS zones, child domains) and the source reads this
    /// naming context only. Without it, a continuation reference fails the read:
    /// referrals are never followed.
    #[serde(default)]
    pub domain_scope: bool,
    /// How `--mode delta` reads this source: through the server's change feed from the
    /// cookie the last apply kept (`auto`, the default: DirSync on Active Directory,
    /// `syncrepl` where OpenLDAP's syncprov serves RFC 4533, whichever the server
    /// offers), or in full every run (`none`).
    #[serde(default)]
    pub delta: DeltaFeed,
    /// RFC 4515 search filter (default `(objectClass=*)`).
    #[serde(default)]
    pub filter: Option<FilterText>,
    /// Attributes to request (default: every user attribute). `objectClass` and the
    /// source's anchor are always requested too.
    #[serde(default)]
    pub attributes: Option<Vec<String>>,
    /// Simple Paged Results page size (default 1000, Active Directory's limit).
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Seconds to wait for the connection (TCP and TLS) before failing (default 10).
    #[serde(default)]
    pub connect_timeout_seconds: Option<u32>,
    /// Seconds to wait for any one reply of the server (bind, each entry or page) before
    /// failing (default 120).
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
}

/// The change feed an LDAP source's delta read asks the server for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeltaFeed {
    /// Whichever the server's `supportedControl` offers (none: read in full).
    #[default]
    Auto,
    /// Active Directory's DirSync control (1.2.840.113556.1.4.841).
    Dirsync,
    /// RFC 4533 content synchronization, refreshOnly (OpenLDAP's syncprov).
    Syncrepl,
    /// No feed: every run reads the source in full, and no snapshot is kept.
    None,
}

impl DeltaFeed {
    /// The name as the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            DeltaFeed::Auto => "auto",
            DeltaFeed::Dirsync => "dirsync",
            DeltaFeed::Syncrepl => "syncrepl",
            DeltaFeed::None => "none",
        }
    }
}

/// LDAP search scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Base,
    One,
    #[default]
    Subtree,
}

/// LDIF files holding a source's entries.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LdifSpec {
    /// The content-record file, relative to this YAML file.
    pub path: String,
    /// A glob of change-record files applied in name order, relative to this YAML file.
    #[serde(default)]
    pub changes: Option<String>,
    /// The largest value (in bytes, decoded) an entry may hold, plain, base64 or read
    /// from a `:<` URL; a larger one is an error naming its line. Default 16 MiB
    /// (16777216).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_value_bytes: Option<u64>,
}

/// How accounts are built.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountsSpec {
    /// Profile field templates.
    #[serde(default)]
    pub profile: ProfileSpec,
    /// Users matching this filter are treated as disabled.
    #[serde(default)]
    pub disabled_when: Option<FilterText>,
    /// What happens to a user who leaves scope or is disabled.
    #[serde(default)]
    pub on_departure: Departure,
}

/// Templates for the account profile fields.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    #[serde(default)]
    pub display_name: Option<TemplateText>,
    #[serde(default)]
    pub department: Option<TemplateText>,
    #[serde(default)]
    pub title: Option<TemplateText>,
    #[serde(default)]
    pub telephone: Option<TemplateText>,
    #[serde(default)]
    pub location: Option<TemplateText>,
    #[serde(default)]
    pub mail: Option<TemplateText>,
}

/// A mapping: protocol + value template (+ filter) → registrations.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// Unique name; the owner recorded on every row the mapping produces.
    pub name: Name,
    /// IM protocol, e.g. `aol`, `lcs`, `sametime`.
    pub protocol: Name,
    /// Value template, e.g. `{mail|lower|local_part}`.
    pub value: TemplateText,
    /// Only entries matching this RFC 4515 filter.
    #[serde(default)]
    pub when: Option<FilterText>,
    /// Only these sources (default: all).
    #[serde(default)]
    pub sources: Option<Vec<String>>,
    /// Earlier names of this mapping; their rows are taken over without churn.
    #[serde(default)]
    pub renamed_from: Vec<String>,
}

/// A group rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name, a template over the group entry (e.g. `{cn}`) or a plain name.
    pub name: TemplateText,
    /// `distribution_list` (from group entries) or `org_unit` (a subtree's users).
    pub kind: GroupKind,
    /// The source to read.
    pub source: String,
    /// For distribution lists: which group entries.
    #[serde(default)]
    pub filter: Option<FilterText>,
    /// For org units: the subtree.
    #[serde(default)]
    pub dn: Option<String>,
}

/// An exclusion: `dn_subtree`, `filter`, or `im_name` (optionally with `protocol`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExclusionSpec {
    /// Unique name.
    pub name: Name,
    /// Entries at or below this DN.
    #[serde(default)]
    pub dn_subtree: Option<String>,
    /// Entries matching this filter.
    #[serde(default)]
    pub filter: Option<FilterText>,
    /// With `im_name`: only this protocol.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Registrations whose IM name matches this regular expression.
    #[serde(default)]
    pub im_name: Option<RegexText>,
}

/// The names an IM protocol accepts. A produced value that breaks these rules skips that
/// one registration with a warning; it never fails the run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtocolSpec {
    /// The protocol, as mappings name it (e.g. `aol`).
    pub name: Name,
    /// The longest name in characters (default 256).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_length: Option<usize>,
    /// A regular expression every name must match, e.g. `^[a-z0-9._-]+$`.
    #[serde(default)]
    pub allowed: Option<RegexText>,
    /// Names differing only in case are different names (default false: `Bob` and
    /// `bob` are one name, and a case-only change is an update).
    #[serde(default)]
    pub case_sensitive: bool,
}

/// Protected principals and safety rails.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// DNs that must never hold a registration.
    #[serde(default)]
    pub protected_principals: Vec<String>,
    /// Removals plus deactivations above this block the plan (default 500).
    #[serde(default)]
    pub max_deletes: Option<u64>,
    /// Removals plus deactivations above this share of managed rows block the plan.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub max_delete_percent: Option<f64>,
}

/// The employees' self-registration page and the lookup API (`registrar serve`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelfServiceSpec {
    /// The LDAP source people sign in against: its connection and bind find the person's
    /// entry under its base, scope and filter, then `serve` binds as that entry with the
    /// password given.
    pub source: Name,
    /// The attribute a person signs in with, e.g. `uid` or `sAMAccountName`.
    pub login_attribute: String,
    /// The protocols people may register names for themselves.
    pub protocols: Vec<Name>,
    /// The most self registrations one account may hold (default 5).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub max_per_account: Option<u32>,
    /// Minutes without a request after which a session ends (default 30).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1440))]
    pub idle_timeout_minutes: Option<u32>,
    /// Sign-in by a header a reverse proxy sets after its own authentication, instead of
    /// the password form. Only the listed proxy addresses may send it.
    #[serde(default)]
    pub trusted_header: Option<TrustedHeaderSpec>,
    /// A file listing the lookup API's bearer tokens by their SHA-256 (64 hex digits a
    /// line, `#` comments); outside git, like `password_file`. Without it, the API is off.
    #[serde(default)]
    pub api_tokens_file: Option<String>,
}

/// Sign-in by a reverse proxy's header.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedHeaderSpec {
    /// The header carrying the signed-in person's login (the `login_attribute` value);
    /// default `X-Remote-User`.
    #[serde(default)]
    pub name: Option<String>,
    /// The proxies' addresses (IPv4 or IPv6, no ranges); a request with the header from
    /// any other address is refused (403).
    pub proxies: Vec<String>,
}

/// A controller schedule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Unique name.
    pub name: Name,
    /// Cron expression: 5 fields, or 6 with seconds first.
    pub cron: CronText,
    /// Import mode.
    #[serde(default)]
    pub mode: ImportMode,
    /// What each tick does.
    pub action: ScheduleAction,
}

/// How sources are read: `full` reads every file again; `delta` applies the change
/// files not yet imported to the snapshot the store kept (see `--mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    #[default]
    Full,
    Delta,
}

/// What a schedule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleAction {
    Plan,
    Apply,
    Drift,
}

impl ScheduleAction {
    /// The name as the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            ScheduleAction::Plan => "plan",
            ScheduleAction::Apply => "apply",
            ScheduleAction::Drift => "drift",
        }
    }
}

impl ImportMode {
    /// The name as the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            ImportMode::Full => "full",
            ImportMode::Delta => "delta",
        }
    }
}

/// A name: letters, digits, `-`, `_` and `.`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[schemars(transparent)]
pub struct Name(#[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))] pub String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let valid = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(Name(text))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid name {}: use letters, digits, '.', '_' and '-', starting with a letter or digit",
                quote_for_message(&text)
            )))
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Defines a string newtype that is parsed while the YAML is read, so that a syntax
/// error carries the YAML position.
macro_rules! parsed_text {
    ($(#[$doc:meta])* $name:ident, $parsed:ty, $what:literal, $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, JsonSchema)]
        #[schemars(transparent)]
        pub struct $name(pub String, #[schemars(skip)] pub $parsed);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                let parse: fn(&str) -> Result<$parsed, ValueError> = $parse;
                match parse(&text) {
                    Ok(parsed) => Ok($name(text, parsed)),
                    Err(message) => Err(serde::de::Error::custom(format!(
                        concat!("invalid ", $what, " {}: {}"),
                        quote_for_message(&text),
                        message
                    ))),
                }
            }
        }
    };
}

parsed_text!(
    /// An RFC 4515 filter, e.g. `(&(objectClass=user)(mail=*))`.
    FilterText,
    Filter,
    "filter",
    |text| {
        let filter = Filter::parse(text)?;
        refuse_secrets(filter.attributes())?;
        Ok(filter)
    }
);
parsed_text!(
    /// A value template, e.g. `{mail|lower|local_part}`.
    TemplateText,
    Template,
    "template",
    |text| {
        let template = Template::parse(text)?;
        refuse_secrets(template.attributes())?;
        Ok(template)
    }
);

/// Refuses a filter or template that reads a secret attribute (`userPassword`,
/// `unicodePwd`, …): what a revision's config reads can end up in a plan posted on a
/// pull request, and credentials stay in the directory (DESIGN.md, "Trust").
pub fn refuse_secrets<'a>(
    attributes: impl IntoIterator<Item = &'a str>,
) -> Result<(), SecretAttribute> {
    match first_secret(attributes) {
        Some(secret) => Err(SecretAttribute {
            attribute: secret.to_string(),
        }),
        None => Ok(()),
    }
}

/// A config that reads a secret attribute: its message is [`secret_message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", secret_message(attribute))]
pub struct SecretAttribute {
    pub attribute: String,
}

/// Why a filter, template, cron expression or regular expression in the config was
/// refused while it was read (serde_yaml carries it on as the text of its error).
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Secret(#[from] SecretAttribute),
    #[error(transparent)]
    Cron(#[from] croner::errors::CronError),
    /// Its message on one line (the regex crate's spans several).
    #[error("{}", .0.to_string().replace('\n', " "))]
    Regex(#[from] regex::Error),
}

/// Why the config may not read the attribute `secret`.
pub fn secret_message(secret: &str) -> String {
    format!(
        "reads {secret}, a secret attribute: credentials stay in the directory, and no \
         template, filter, anchor or requested attribute may name one"
    )
}
parsed_text!(
    /// A cron expression: 5 fields (`*/15 * * * *`), or 6 with seconds first.
    CronText,
    croner::Cron,
    "cron expression",
    |text| Ok(parse_cron(text)?)
);

/// Parses a cron expression as the config reads it: 5 fields (`*/15 * * * *`, at second
/// 0), or 6 with seconds first (`*/10 * * * * *`).
pub fn parse_cron(text: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(text)
}
parsed_text!(
    /// A regular expression (Rust `regex` syntax).
    RegexText,
    regex::Regex,
    "regular expression",
    |text| Ok(regex::Regex::new(text)?)
);

/// The JSON Schema of a config file, pretty-printed with a final newline.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(ConfigFile);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is always serialisable");
    text.push('\n');
    text
}
