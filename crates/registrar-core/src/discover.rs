//! What a source holds, for `registrar discover`: the objectClass chains and attributes of
//! its entries, with counts and a sample value each, and a starter configuration built
//! from them (object types, and a mapping per attribute that likely holds IM names).
//!
//! [`Discovery`] is fed one entry at a time and keeps counts only: its memory grows with
//! the number of distinct chains and attributes (and of object types), never with the
//! number of entries. Values of secret attributes (passwords, their hashes, key
//! material; see [`is_secret`]) are never kept or looked at: their sample is `<hidden>`.
//!
//! This module is pure: no I/O. The same entries in the same order give the same report
//! and the same starter, byte for byte. It must not read the config files: what it needs
//! of the configuration (object types, existing mappings) is passed in.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::attribute_name::is_secret_attribute;
use crate::entry::{base_name, Entry};
use crate::filter::{escape_value, Filter};
use crate::model::{Mapping, ObjectTypes, USER_TYPE};
pub use crate::quote::printable;
use crate::template::Template;

/// The longest sample shown, in characters; a longer value is cut and ends with `…`.
pub const SAMPLE_CHARS: usize = 40;

/// How many mail domains are tracked at once to find the most common one.
const DOMAIN_SLOTS: usize = 32;

/// Substrings of attribute names (lowercased, options removed) whose values are not
/// shown as samples, beyond the secrets the config may not read: a sample errs on the
/// side of hiding (`pwdLastSet` is hidden here, though a filter may read it).
const HIDDEN_PARTS: &[&str] = &["pwd", "secret", "privatekey"];

/// Whether the values of the attribute `description` must never be shown: the secrets
/// of [`is_secret_attribute`] (passwords and their hashes, `unicodePwd`,
/// `krbPrincipalKey`, trust secrets), and anything whose name contains `pwd`, `secret`
/// or `privatekey`.
pub fn is_secret(description: &str) -> bool {
    if is_secret_attribute(description) {
        return true;
    }
    let name = base_name(description).to_ascii_lowercase();
    HIDDEN_PARTS.iter().any(|part| name.contains(part))
}

/// The first value seen of an attribute, as it may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sample {
    /// Text, control and invisible characters escaped (`\n`, `\u{202e}`), cut to
    /// [`SAMPLE_CHARS`] characters.
    Text(String),
    /// A value that is not text (not UTF-8, or holding control characters): its length.
    Binary { bytes: usize },
    /// A secret attribute: never shown.
    Hidden,
}

impl Sample {
    /// The sample of `value`, a value of the attribute `description`.
    pub fn of(description: &str, value: &[u8]) -> Sample {
        if is_secret(description) {
            return Sample::Hidden;
        }
        match std::str::from_utf8(value) {
            Ok(text)
                if !text
                    .chars()
                    .any(|c| c.is_control() && !"\t\n\r".contains(c)) =>
            {
                let mut shown = printable(&text.chars().take(SAMPLE_CHARS).collect::<String>());
                if text.chars().nth(SAMPLE_CHARS).is_some() {
                    shown.push('…');
                }
                Sample::Text(shown)
            }
            _ => Sample::Binary { bytes: value.len() },
        }
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sample::Text(text) => f.write_str(text),
            Sample::Binary { bytes } => write!(f, "<{bytes} bytes>"),
            Sample::Hidden => f.write_str("<hidden>"),
        }
    }
}

/// What the values of an attribute look like, for the IM-attribute heuristics. Counted
/// over text values only, and never for secret attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Values that are UTF-8 text.
    pub text: u64,
    /// Values shaped like an email address, `local@domain.tld`.
    pub email: u64,
    /// Values starting with `sip:` (any case).
    pub sip: u64,
    /// Values starting with `xmpp:` (any case).
    pub xmpp: u64,
    /// The most common domain of the email-shaped values, lowercased; only for `mail`.
    pub top_domain: Option<String>,
}

/// The counts of one objectClass chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainCount {
    /// The classes as `object_types` writes a chain: `top` first, then the classes of the
    /// configured chain that types them in its order, then the others in the order the
    /// first entry with this set of classes listed them, spelled as there.
    pub chain: Vec<String>,
    /// The object type the configured object types give it, if any.
    pub object_type: Option<String>,
    pub entries: u64,
}

/// The counts of one attribute description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeCount {
    /// As first spelled by the source (descriptions differing in case are merged).
    pub attribute: String,
    /// Entries holding it.
    pub entries: u64,
    /// Values over all entries.
    pub values: u64,
    /// The first value seen.
    pub sample: Sample,
    #[serde(skip)]
    pub shape: Shape,
}

/// The attributes entries of one object type hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeCount {
    /// `None` for entries no object type matches.
    pub object_type: Option<String>,
    pub entries: u64,
    /// Each attribute with the number of entries of this type holding it, most common
    /// first.
    pub attributes: Vec<TypeAttribute>,
}

/// One attribute of an object type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeAttribute {
    pub attribute: String,
    pub entries: u64,
}

/// What a source holds. Chains and attributes come most common first, then by name;
/// object types by name, the unmatched entries last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub entries: u64,
    pub chains: Vec<ChainCount>,
    pub attributes: Vec<AttributeCount>,
    pub object_types: Vec<TypeCount>,
}

impl Report {
    /// How many entries of the `user` object type hold `attribute` (ignoring case).
    fn user_entries(&self, attribute: &str) -> u64 {
        self.object_types
            .iter()
            .find(|t| t.object_type.as_deref() == Some(USER_TYPE))
            .and_then(|t| {
                t.attributes
                    .iter()
                    .find(|a| a.attribute.eq_ignore_ascii_case(attribute))
            })
            .map_or(0, |a| a.entries)
    }
}

/// The aggregator: feed it entries with [`Discovery::add`], then take the [`Report`].
pub struct Discovery<'t> {
    object_types: &'t ObjectTypes,
    entries: u64,
    /// Keyed by the chain's classes lowercased, sorted, with `top`.
    chains: BTreeMap<Vec<String>, ChainCount>,
    /// Keyed by the description lowercased.
    attributes: BTreeMap<String, AttributeStats>,
    types: BTreeMap<Option<String>, TypeStats>,
}

struct AttributeStats {
    count: AttributeCount,
    /// Only for `mail`: the most frequent domains.
    domains: Option<FrequentValues>,
}

#[derive(Default)]
struct TypeStats {
    entries: u64,
    /// Keyed by the description lowercased.
    attributes: BTreeMap<String, u64>,
}

impl<'t> Discovery<'t> {
    /// An empty aggregate; entries are typed with `object_types`.
    pub fn new(object_types: &'t ObjectTypes) -> Self {
        Discovery {
            object_types,
            entries: 0,
            chains: BTreeMap::new(),
            attributes: BTreeMap::new(),
            types: BTreeMap::new(),
        }
    }

    /// Counts one entry.
    pub fn add(&mut self, entry: &Entry) {
        self.entries += 1;
        let object_types = self.object_types;
        let chain = self.chains.entry(chain_key(entry)).or_insert_with(|| {
            let (object_type, configured) = match object_types.matching_chain(entry) {
                Some((name, chain)) => (Some(name.to_string()), chain),
                None => (None, [].as_slice()),
            };
            ChainCount {
                chain: chain_of(entry, configured),
                object_type,
                entries: 0,
            }
        });
        chain.entries += 1;
        let type_stats = self.types.entry(chain.object_type.clone()).or_default();
        type_stats.entries += 1;
        for attribute in &entry.attributes {
            if attribute.values.is_empty() {
                continue;
            }
            let key = attribute.description.to_ascii_lowercase();
            match type_stats.attributes.get_mut(&key) {
                Some(entries) => *entries += 1,
                None => {
                    type_stats.attributes.insert(key.clone(), 1);
                }
            }
            let stats = self
                .attributes
                .entry(key)
                .or_insert_with(|| AttributeStats {
                    count: AttributeCount {
                        attribute: attribute.description.clone(),
                        entries: 0,
                        values: 0,
                        sample: Sample::of(&attribute.description, &attribute.values[0]),
                        shape: Shape::default(),
                    },
                    domains: attribute
                        .description
                        .eq_ignore_ascii_case("mail")
                        .then(FrequentValues::default),
                });
            stats.count.entries += 1;
            stats.count.values += attribute.values.len() as u64;
            if stats.count.sample != Sample::Hidden {
                for value in &attribute.values {
                    look_at(value, &mut stats.count.shape, stats.domains.as_mut());
                }
            }
        }
    }

    /// The report: counts sorted for output.
    pub fn finish(self) -> Report {
        let mut chains: Vec<ChainCount> = self.chains.into_values().collect();
        chains.sort_by(|a, b| {
            (Reverse(a.entries), lowercase(&a.chain))
                .cmp(&(Reverse(b.entries), lowercase(&b.chain)))
        });
        let spelling: BTreeMap<&String, &str> = self
            .attributes
            .iter()
            .map(|(key, stats)| (key, stats.count.attribute.as_str()))
            .collect();
        let mut object_types: Vec<TypeCount> = self
            .types
            .iter()
            .map(|(name, stats)| {
                let mut attributes: Vec<(&String, u64)> =
                    stats.attributes.iter().map(|(k, n)| (k, *n)).collect();
                attributes.sort_by_key(|&(key, entries)| (Reverse(entries), key));
                TypeCount {
                    object_type: name.clone(),
                    entries: stats.entries,
                    attributes: attributes
                        .into_iter()
                        .map(|(key, entries)| TypeAttribute {
                            attribute: spelling
                                .get(key)
                                .copied()
                                .unwrap_or(key.as_str())
                                .to_string(),
                            entries,
                        })
                        .collect(),
                }
            })
            .collect();
        // `None` sorts first in the map; the unmatched entries go last.
        if self.types.contains_key(&None) {
            object_types.rotate_left(1);
        }
        let mut attributes: Vec<(String, AttributeCount)> = self
            .attributes
            .into_iter()
            .map(|(key, stats)| {
                let mut count = stats.count;
                count.shape.top_domain = stats.domains.and_then(|d| d.most_common());
                (key, count)
            })
            .collect();
        attributes.sort_by(|(a_key, a), (b_key, b)| {
            (Reverse(a.entries), a_key).cmp(&(Reverse(b.entries), b_key))
        });
        Report {
            entries: self.entries,
            chains,
            attributes: attributes.into_iter().map(|(_, count)| count).collect(),
            object_types,
        }
    }
}

fn lowercase(chain: &[String]) -> Vec<String> {
    chain.iter().map(|c| c.to_ascii_lowercase()).collect()
}

/// The entry's objectClass values (trimmed, without empty ones) as text.
fn classes(entry: &Entry) -> impl Iterator<Item = String> + '_ {
    entry
        .values("objectClass")
        .map(|value| String::from_utf8_lossy(value.trim_ascii()).into_owned())
        .filter(|class| !class.is_empty())
}

/// The set of the entry's classes, with `top` (every entry has it, written or not),
/// lowercased and sorted: entries listing the same classes in another order or case
/// share a chain.
fn chain_key(entry: &Entry) -> Vec<String> {
    let mut key: BTreeSet<String> = classes(entry).map(|c| c.to_ascii_lowercase()).collect();
    key.insert("top".to_string());
    key.into_iter().collect()
}

/// The chain as shown, each class once, spelled as the entry spells it: the classes of
/// the configured chain that types the entry, in that chain's order (so `top` first,
/// superclasses before subclasses), then the entry's other classes in its order.
fn chain_of(entry: &Entry, configured: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    let mut push = |class: &str| {
        if !chain.iter().any(|seen| seen.eq_ignore_ascii_case(class)) {
            chain.push(class.to_string());
        }
    };
    push("top");
    for wanted in configured {
        if let Some(class) = classes(entry).find(|c| c.eq_ignore_ascii_case(wanted)) {
            push(&class);
        }
    }
    classes(entry).for_each(|class| push(&class));
    chain
}

/// Counts what one value of a (non-secret) attribute looks like.
fn look_at(value: &[u8], shape: &mut Shape, domains: Option<&mut FrequentValues>) {
    let Ok(text) = std::str::from_utf8(value) else {
        return;
    };
    let text = text.trim();
    shape.text += 1;
    if starts_with_ignoring_case(text, "sip:") {
        shape.sip += 1;
    } else if starts_with_ignoring_case(text, "xmpp:") {
        shape.xmpp += 1;
    }
    if let Some(domain) = email_domain(text) {
        shape.email += 1;
        if let Some(domains) = domains {
            domains.add(&domain.to_lowercase());
        }
    }
}

fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// The domain of an email-shaped value: one `@` with text on both sides, a dot inside the
/// domain, no white space or control characters.
fn email_domain(text: &str) -> Option<&str> {
    let (local, domain) = text.split_once('@')?;
    let well_formed = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control());
    well_formed.then_some(domain)
}

/// The most frequent values of a stream in bounded memory (Misra–Gries): any value more
/// frequent than 1/[`DOMAIN_SLOTS`] of the stream is kept; counts are lower bounds.
#[derive(Default)]
struct FrequentValues {
    counts: BTreeMap<String, u64>,
}

impl FrequentValues {
    fn add(&mut self, value: &str) {
        if let Some(count) = self.counts.get_mut(value) {
            *count += 1;
        } else if self.counts.len() < DOMAIN_SLOTS {
            self.counts.insert(value.to_string(), 1);
        } else {
            self.counts.values_mut().for_each(|count| *count -= 1);
            self.counts.retain(|_, count| *count > 0);
        }
    }

    /// The value with the highest count, the first in order on a tie.
    fn most_common(self) -> Option<String> {
        let best = self.counts.values().copied().max()?;
        self.counts
            .into_iter()
            .find(|&(_, count)| count == best)
            .map(|(value, _)| value)
    }
}

/// What the starter is built against: the source and what the configuration already has.
pub struct StarterContext<'a> {
    /// The source discovered; every suggested mapping reads only it.
    pub source: &'a str,
    /// The configured mappings: their names (and former names) are taken, and an
    /// attribute one of them already maps for a protocol is not suggested again.
    pub existing: &'a [Mapping],
    /// The config file that sets `object_types`, if one does: only one file may, so the
    /// starter then shows its chains as comments.
    pub object_types_set_in: Option<&'a str>,
}

/// One suggested mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub name: String,
    pub protocol: String,
    /// The attribute read.
    pub attribute: String,
    /// The value template.
    pub value: String,
    /// The `when` filter, if any.
    pub when: Option<String>,
    /// Why: what the attribute holds.
    pub reason: String,
}

/// The starter configuration: the suggested mappings, the weaker candidates (shown
/// commented out), and the YAML text holding both and the object types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starter {
    /// At most one per protocol, in protocol order.
    pub mappings: Vec<Suggestion>,
    /// Other candidates, commented out in the YAML.
    pub alternatives: Vec<Suggestion>,
    /// Protocols left out because a configured mapping already reads the attribute:
    /// (protocol, attribute, the mapping's name).
    pub already_mapped: Vec<(String, String, String)>,
    pub yaml: String,
}

/// A candidate before naming: the protocol, how strong it is (lower is better), the
/// template and filter.
struct Candidate<'r> {
    protocol: &'static str,
    rank: u8,
    attribute: &'r AttributeCount,
    users: u64,
    value: String,
    when: Option<String>,
    reason: String,
}

/// The likely IM attribute `attribute` is, if any: at most one candidate per attribute,
/// from the first rule that fits. Attributes with options, secret ones, ones that are
/// mostly not text, and ones no user entry holds are never candidates.
///
/// | attribute | protocol | value |
/// |---|---|---|
/// | mostly `sip:` values (`msRTCSIP-PrimaryUserAddress` first) | `lcs` | `{a\|strip_prefix:sip:\|lower}` |
/// | `jabberID`, `xmppAddr`, `jid`, names with `jabber`/`xmpp`, or mostly `xmpp:` values | `jabber` | `{a\|lower}` (with `strip_prefix:xmpp:` when some have it) |
/// | names with `screenname`, `aim`, `aimId`, `aolId` | `aol` | `{a\|lower}` |
/// | `mail` with mostly email-shaped values | `aol` | `{mail\|lower\|local_part}`, `when` the most common domain |
/// | `imName`, `imAddress`, `imHandle`, `imId`, `imAccount` | `aol` | `{a\|lower}` (`local_part` when email-shaped) |
/// | `userPrincipalName` (email-shaped) | `lcs` | `{userPrincipalName\|lower}` |
/// | `uid`, then `sAMAccountName` | `sametime` | `{a\|lower}` |
fn candidate<'r>(report: &Report, attribute: &'r AttributeCount) -> Option<Candidate<'r>> {
    let shape = &attribute.shape;
    let users = report.user_entries(&attribute.attribute);
    let mostly = |n: u64| n > 0 && 2 * n > attribute.values;
    if attribute.attribute.contains(';')
        || attribute.sample == Sample::Hidden
        || users == 0
        || !mostly(shape.text)
    {
        return None;
    }
    let a = attribute.attribute.as_str();
    let name = a.to_ascii_lowercase();
    let make = |protocol, rank, value: String, when, reason: String| Candidate {
        protocol,
        rank,
        attribute,
        users,
        value,
        when,
        reason,
    };
    let emails = mostly(shape.email);
    if mostly(shape.sip) {
        let rank = if name == "msrtcsip-primaryuseraddress" {
            0
        } else {
            1
        };
        return Some(make(
            "lcs",
            rank,
            format!("{{{a}|strip_prefix:sip:|lower}}"),
            None,
            "sip: addresses".to_string(),
        ));
    }
    let jabber_name =
        name.contains("jabber") || name.contains("xmpp") || name == "jid" || name == "imjabber";
    if jabber_name || mostly(shape.xmpp) {
        let value = if shape.xmpp > 0 {
            format!("{{{a}|strip_prefix:xmpp:|lower}}")
        } else {
            format!("{{{a}|lower}}")
        };
        let reason = if jabber_name {
            "a Jabber/XMPP address by its name"
        } else {
            "xmpp: addresses"
        };
        return Some(make(
            "jabber",
            u8::from(!jabber_name),
            value,
            None,
            reason.to_string(),
        ));
    }
    if name.contains("screenname") || matches!(name.as_str(), "aim" | "aimid" | "aolid") {
        return Some(make(
            "aol",
            0,
            format!("{{{a}|lower}}"),
            None,
            "a screen name by its name".to_string(),
        ));
    }
    if name == "mail" && emails {
        let when = shape
            .top_domain
            .as_ref()
            .map(|domain| format!("({a}=*@{})", escape_value(domain)));
        return Some(make(
            "aol",
            1,
            format!("{{{a}|lower|local_part}}"),
            when,
            "email addresses".to_string(),
        ));
    }
    let im_name = name
        .strip_prefix("im")
        .is_some_and(|rest| matches!(rest, "name" | "address" | "handle" | "id" | "account"));
    if im_name {
        let value = if emails {
            format!("{{{a}|lower|local_part}}")
        } else {
            format!("{{{a}|lower}}")
        };
        return Some(make(
            "aol",
            2,
            value,
            None,
            "an IM name by its name".to_string(),
        ));
    }
    if name == "userprincipalname" && emails {
        return Some(make(
            "lcs",
            2,
            format!("{{{a}|lower}}"),
            None,
            "sign-in names (user principal names)".to_string(),
        ));
    }
    if name == "uid" || name == "samaccountname" {
        return Some(make(
            "sametime",
            u8::from(name != "uid"),
            format!("{{{a}|lower}}"),
            None,
            "login names".to_string(),
        ));
    }
    None
}

/// Builds the starter configuration for `report`'s source.
pub fn starter(report: &Report, context: &StarterContext<'_>) -> Starter {
    let mut candidates: Vec<Candidate<'_>> = report
        .attributes
        .iter()
        .filter_map(|attribute| candidate(report, attribute))
        // Never suggest what would not load.
        .filter(|c| Template::parse(&c.value).is_ok())
        .filter(|c| c.when.as_deref().is_none_or(|w| Filter::parse(w).is_ok()))
        .collect();
    candidates.sort_by(|a, b| {
        (
            a.protocol,
            a.rank,
            Reverse(a.users),
            a.attribute.attribute.to_ascii_lowercase(),
        )
            .cmp(&(
                b.protocol,
                b.rank,
                Reverse(b.users),
                b.attribute.attribute.to_ascii_lowercase(),
            ))
    });

    let mut taken: BTreeSet<&str> = BTreeSet::new();
    for mapping in context.existing {
        taken.insert(&mapping.name);
        taken.extend(mapping.renamed_from.iter().map(String::as_str));
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut unique_name = |protocol: &str, attribute: &str| {
        let stem: String = format!("{protocol}-from-{}", attribute.to_ascii_lowercase())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let mut name = stem.clone();
        let mut n = 2;
        while taken.contains(name.as_str()) || names.contains(&name) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        names.insert(name.clone());
        name
    };

    let mut mappings = Vec::new();
    let mut alternatives = Vec::new();
    let mut already_mapped = Vec::new();
    let mut covered_protocols: BTreeSet<&str> = BTreeSet::new();
    for candidate in &candidates {
        // An attribute the config already maps from this source, for any protocol, is
        // not suggested again (the README's promise); its protocol counts as covered only
        // when the mapping is for that protocol.
        let existing = context.existing.iter().find(|m| {
            m.reads(context.source)
                && m.value
                    .attributes()
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&candidate.attribute.attribute))
        });
        if let Some(existing) = existing {
            if existing.protocol == candidate.protocol {
                covered_protocols.insert(candidate.protocol);
            }
            if already_mapped
                .iter()
                .any(|(_, attribute, _): &(String, String, String)| {
                    attribute.eq_ignore_ascii_case(&candidate.attribute.attribute)
                })
            {
                continue;
            }
            already_mapped.push((
                candidate.protocol.to_string(),
                candidate.attribute.attribute.clone(),
                existing.name.clone(),
            ));
            continue;
        }
        let suggestion = Suggestion {
            name: unique_name(candidate.protocol, &candidate.attribute.attribute),
            protocol: candidate.protocol.to_string(),
            attribute: candidate.attribute.attribute.clone(),
            value: candidate.value.clone(),
            when: candidate.when.clone(),
            reason: format!(
                "{} on {} user {}{}",
                candidate.reason,
                candidate.users,
                plural(candidate.users, "entry", "entries"),
                if candidate.when.is_some() {
                    "; when: the most common domain"
                } else {
                    ""
                }
            ),
        };
        if covered_protocols.insert(candidate.protocol) {
            mappings.push(suggestion);
        } else {
            alternatives.push(suggestion);
        }
    }
    let yaml = starter_yaml(report, context, &mappings, &alternatives, &already_mapped);
    Starter {
        mappings,
        alternatives,
        already_mapped,
        yaml,
    }
}

/// The starter as YAML: comments say where everything comes from; every scalar from the
/// directory is quoted by [`yaml_scalar`].
fn starter_yaml(
    report: &Report,
    context: &StarterContext<'_>,
    mappings: &[Suggestion],
    alternatives: &[Suggestion],
    already_mapped: &[(String, String, String)],
) -> String {
    let source = context.source;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Starter configuration for source {}, from `registrar discover` ({} {}).",
        printable(source),
        report.entries,
        plural(report.entries, "entry", "entries")
    );
    out.push_str(
        "# The mappings are guesses from attribute names and values: review them, then save\n\
         # this as a .yaml file in the config directory, next to the one defining the source.\n",
    );

    // Object types: the chains found, under the type the current object types give them.
    let mut typed: BTreeMap<&str, Vec<&ChainCount>> = BTreeMap::new();
    let mut untyped = Vec::new();
    for chain in &report.chains {
        match &chain.object_type {
            Some(name) => typed.entry(name).or_default().push(chain),
            None => untyped.push(chain),
        }
    }
    let mut types = String::from("object_types:\n");
    for (name, chains) in &typed {
        let _ = writeln!(types, "  {}:", yaml_scalar(name));
        for chain in chains {
            let _ = writeln!(
                types,
                "    - {}  # {} {}",
                yaml_flow_list(&chain.chain),
                chain.entries,
                plural(chain.entries, "entry", "entries")
            );
        }
    }
    for chain in &untyped {
        let _ = writeln!(
            types,
            "  # no object type: {}  # {} {}",
            yaml_flow_list(&chain.chain),
            chain.entries,
            plural(chain.entries, "entry", "entries")
        );
    }
    if let Some(file) = context.object_types_set_in {
        let _ = writeln!(
            out,
            "# object_types is set in {} (only one file may set it); the chains of source {} are:",
            printable(file),
            printable(source)
        );
        for line in types.lines() {
            let _ = writeln!(out, "# {line}");
        }
    } else if typed.contains_key(USER_TYPE) {
        let _ = writeln!(
            out,
            "# The objectClass chains of source {}, typed as the current object types type \
             them.\n# Other sources' chains must be listed too if they differ.",
            printable(source)
        );
        out.push_str(&types);
    } else {
        let _ = writeln!(
            out,
            "# object_types: left as configured, since source {} holds no user entry.",
            printable(source)
        );
    }

    if mappings.is_empty() {
        out.push_str("mappings: []\n");
        if already_mapped.is_empty() {
            out.push_str("# No attribute of user entries looks like it holds IM names.\n");
        }
    } else {
        out.push_str("mappings:\n");
    }
    for suggestion in mappings {
        write_mapping(&mut out, source, suggestion, "  ");
    }
    for (protocol, attribute, mapping) in already_mapped {
        let _ = writeln!(
            out,
            "  # {protocol} from {}: already mapped by {mapping}",
            printable(attribute)
        );
    }
    if !alternatives.is_empty() {
        out.push_str("  # Other candidates, to uncomment instead (at most one mapping per protocol is\n  # suggested):\n");
        for suggestion in alternatives {
            write_mapping(&mut out, source, suggestion, "  # ");
        }
    }
    out
}

fn write_mapping(out: &mut String, source: &str, suggestion: &Suggestion, indent: &str) {
    let _ = writeln!(
        out,
        "{indent}# {} from {}: {}",
        suggestion.protocol,
        printable(&suggestion.attribute),
        printable(&suggestion.reason)
    );
    let _ = writeln!(out, "{indent}- name: {}", yaml_scalar(&suggestion.name));
    let _ = writeln!(
        out,
        "{indent}  protocol: {}",
        yaml_scalar(&suggestion.protocol)
    );
    let _ = writeln!(out, "{indent}  sources: {}", yaml_flow_list(&[source]));
    let _ = writeln!(out, "{indent}  value: {}", yaml_quoted(&suggestion.value));
    if let Some(when) = &suggestion.when {
        let _ = writeln!(out, "{indent}  when: {}", yaml_quoted(when));
    }
}

fn plural<'w>(n: u64, one: &'w str, many: &'w str) -> &'w str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `[a, b]`, each item a [`yaml_scalar`].
fn yaml_flow_list(items: &[impl AsRef<str>]) -> String {
    let items: Vec<String> = items.iter().map(|i| yaml_scalar(i.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// `text` as a YAML scalar that reads back as the same string, in block or flow context:
/// plain when it is a simple name (a letter, then letters, digits, `.`, `_`, `-`) that
/// YAML would not take for a boolean or null, double-quoted otherwise.
pub fn yaml_scalar(text: &str) -> String {
    let simple = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if simple {
        text.to_string()
    } else {
        yaml_quoted(text)
    }
}

/// `text` as a double-quoted YAML scalar. Characters YAML does not allow raw, or reads
/// as line breaks (`U+0085`, `U+2028`, `U+2029`), are escaped, as are the invisible ones
/// [`printable`] escapes.
pub fn yaml_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control()
                || matches!(c,
                    '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}'
                    | '\u{feff}' | '\u{fffe}' | '\u{ffff}') =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Attribute;

    fn user(dn: &str) -> Entry {
        Entry::new(dn).with(
            "objectClass",
            &["top", "person", "organizationalPerson", "inetOrgPerson"],
        )
    }

    fn report_of(entries: &[Entry]) -> Report {
        let types = ObjectTypes::default();
        let mut discovery = Discovery::new(&types);
        for entry in entries {
            discovery.add(entry);
        }
        discovery.finish()
    }

    fn attribute<'r>(report: &'r Report, name: &str) -> &'r AttributeCount {
        report
            .attributes
            .iter()
            .find(|a| a.attribute.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("no {name} in {report:#?}"))
    }

    fn context<'a>(source: &'a str, existing: &'a [Mapping]) -> StarterContext<'a> {
        StarterContext {
            source,
            existing,
            object_types_set_in: None,
        }
    }

    #[test]
    fn chains_merge_order_case_and_top_and_are_typed() {
        let entries = [
            user("cn=a"),
            Entry::new("cn=b").with(
                "objectClass",
                &["inetOrgPerson", "organizationalPerson", "PERSON"],
            ),
            Entry::new("ou=x").with("objectClass", &["top", "organizationalUnit"]),
            Entry::new("cn=d").with("objectClass", &["top", "device"]),
            Entry::new("dc=x"),
        ];
        let report = report_of(&entries);
        assert_eq!(report.entries, 5);
        let first = &report.chains[0];
        assert_eq!(
            first.chain,
            ["top", "person", "organizationalPerson", "inetOrgPerson"]
        );
        assert_eq!(first.entries, 2);
        assert_eq!(first.object_type.as_deref(), Some("user"));
        let rest: Vec<(Vec<String>, Option<&str>)> = report.chains[1..]
            .iter()
            .map(|c| (c.chain.clone(), c.object_type.as_deref()))
            .collect();
        let chain = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rest,
            [
                (chain(&["top"]), None),
                (chain(&["top", "device"]), None),
                (chain(&["top", "organizationalUnit"]), Some("org_unit")),
            ]
        );
        let types: Vec<(Option<&str>, u64)> = report
            .object_types
            .iter()
            .map(|t| (t.object_type.as_deref(), t.entries))
            .collect();
        assert_eq!(types, [(Some("org_unit"), 1), (Some("user"), 2), (None, 2)]);
    }

    #[test]
    fn chains_list_the_configured_chain_first_superclass_first() {
        let reversed = Entry::new("cn=b").with(
            "objectClass",
            &[
                "inetOrgPerson",
                "posixAccount",
                "organizationalPerson",
                "Person",
            ],
        );
        let report = report_of(&[reversed]);
        assert_eq!(
            report.chains[0].chain,
            [
                "top",
                "Person",
                "organizationalPerson",
                "inetOrgPerson",
                "posixAccount"
            ]
        );
        let untyped = report_of(&[Entry::new("cn=d").with("objectClass", &["device", "TOP"])]);
        assert_eq!(untyped.chains[0].chain, ["top", "device"]);
    }

    #[test]
    fn attributes_count_entries_and_values_with_the_first_spelling_and_sample() {
        let entries = [
            user("cn=a").with("mail", &["a@example.com", "a2@example.com"]),
            user("cn=b")
                .with("MAIL", &["b@example.com"])
                .with("cn", &["B"]),
            user("cn=c").with("cn", &["C"]),
        ];
        let report = report_of(&entries);
        let mail = attribute(&report, "mail");
        assert_eq!(
            (mail.attribute.as_str(), mail.entries, mail.values),
            ("mail", 2, 3)
        );
        assert_eq!(mail.sample, Sample::Text("a@example.com".into()));
        assert_eq!(mail.shape.email, 3);
        assert_eq!(mail.shape.top_domain.as_deref(), Some("example.com"));
        // objectClass on all three first; then cn and mail (2 each) by name.
        let order: Vec<&str> = report
            .attributes
            .iter()
            .map(|a| a.attribute.as_str())
            .collect();
        assert_eq!(order, ["objectClass", "cn", "mail"]);
        let user_type = &report.object_types[0];
        assert_eq!(user_type.object_type.as_deref(), Some("user"));
        assert_eq!(report.user_entries("MAIL"), 2);
    }

    #[test]
    fn secrets_are_never_sampled_nor_looked_at() {
        for name in [
            "userPassword",
            "unicodePwd",
            "sambaNTPassword",
            "sambaLMPassword",
            "ntPwdHistory",
            "lmPwdHistory",
            "supplementalCredentials",
            "msDS-ManagedPassword",
            "ms-Mcs-AdmPwd",
            "userPassword;binary",
            "krbPrincipalKey",
        ] {
            assert!(is_secret(name), "{name}");
            let report = report_of(&[user("cn=a").with(name, &["sip:hunter2@example.com"])]);
            let secret = attribute(&report, name);
            assert_eq!(secret.sample, Sample::Hidden);
            assert_eq!(secret.sample.to_string(), "<hidden>");
            assert_eq!(secret.shape, Shape::default(), "{name}");
            let starter = starter(&report, &context("corp", &[]));
            assert!(starter.mappings.is_empty(), "{name}");
            assert!(!starter.yaml.contains("hunter2"));
            assert!(!format!("{report:?}").contains("hunter2"));
            assert!(!serde_json::to_string(&report).unwrap().contains("hunter2"));
        }
        for name in ["mail", "cn", "passportNumber", "uid"] {
            assert!(!is_secret(name), "{name}");
        }
    }

    #[test]
    fn binary_and_long_values_are_shortened() {
        let mut entry = user("cn=a").with("description", &[&"x".repeat(100)]);
        entry.attributes.push(Attribute {
            description: "objectGUID".into(),
            values: vec![vec![0xe0, 0x04, 0x25, 0x3f, 0x89, 0x00, 0xff]],
        });
        entry.push_value("jpegPhoto", vec![0xff, 0xd8, 0xff]);
        entry.push_value("note", "line one\nline\u{202e}two".as_bytes().to_vec());
        let report = report_of(&[entry]);
        assert_eq!(
            attribute(&report, "objectGUID").sample,
            Sample::Binary { bytes: 7 }
        );
        assert_eq!(
            attribute(&report, "jpegPhoto").sample.to_string(),
            "<3 bytes>"
        );
        let description = attribute(&report, "description").sample.to_string();
        assert_eq!(description, format!("{}…", "x".repeat(SAMPLE_CHARS)));
        assert_eq!(
            attribute(&report, "note").sample.to_string(),
            "line one\\nline\\u{202e}two"
        );
    }

    #[test]
    fn memory_follows_distinct_chains_and_attributes_not_entries() {
        let types = ObjectTypes::default();
        let mut discovery = Discovery::new(&types);
        for n in 0..2000 {
            discovery
                .add(&user(&format!("cn=u{n}")).with("mail", &[&format!("u{n}@d{n}.example")]));
        }
        assert_eq!(discovery.chains.len(), 1);
        assert_eq!(discovery.attributes.len(), 2);
        let domains = discovery.attributes["mail"].domains.as_ref().unwrap();
        assert!(domains.counts.len() <= DOMAIN_SLOTS);
    }

    #[test]
    fn the_most_common_domain_survives_many_rare_ones() {
        let mut frequent = FrequentValues::default();
        for n in 0..1000 {
            frequent.add(&format!("rare{n}.example"));
            frequent.add("corp.example");
        }
        assert_eq!(frequent.most_common().as_deref(), Some("corp.example"));
    }

    fn directory() -> Vec<Entry> {
        vec![
            user("cn=a")
                .with("mail", &["A@Example.com"])
                .with("msRTCSIP-PrimaryUserAddress", &["sip:a@example.com"])
                .with("uid", &["a"])
                .with("imName", &["a.im"])
                .with("userPassword", &["{SSHA}secret"]),
            user("cn=b")
                .with("mail", &["b@example.com", "b@other.example"])
                .with("msRTCSIP-PrimaryUserAddress", &["SIP:b@example.com"])
                .with("jabberID", &["b@jabber.example"])
                .with("uid", &["b"]),
            user("cn=c")
                .with("mail", &["c@other.example"])
                .with("uid", &["c"]),
            Entry::new("cn=g")
                .with("objectClass", &["top", "groupOfNames"])
                .with("mail", &["group@example.com"])
                .with("member", &["cn=a"]),
        ]
    }

    #[test]
    fn starter_suggests_one_mapping_per_protocol_from_likely_attributes() {
        let report = report_of(&directory());
        let starter = starter(&report, &context("corp", &[]));
        let chosen: Vec<(&str, &str, &str, Option<&str>)> = starter
            .mappings
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.protocol.as_str(),
                    s.value.as_str(),
                    s.when.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            chosen,
            [
                (
                    "aol-from-mail",
                    "aol",
                    "{mail|lower|local_part}",
                    Some("(mail=*@example.com)")
                ),
                ("jabber-from-jabberid", "jabber", "{jabberID|lower}", None),
                (
                    "lcs-from-msrtcsip-primaryuseraddress",
                    "lcs",
                    "{msRTCSIP-PrimaryUserAddress|strip_prefix:sip:|lower}",
                    None
                ),
                ("sametime-from-uid", "sametime", "{uid|lower}", None),
            ]
        );
        let alternatives: Vec<&str> = starter
            .alternatives
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(alternatives, ["aol-from-imname"]);
        assert!(starter.mappings[0].reason.contains("on 3 user entries"));
        assert!(!starter.yaml.contains("secret"), "{}", starter.yaml);
    }

    #[test]
    fn starter_yaml_reads_back_to_the_suggestions() {
        let report = report_of(&directory());
        let starter = starter(&report, &context("corp", &[]));
        let yaml: serde_yaml::Value = serde_yaml::from_str(&starter.yaml).unwrap();
        let mappings = yaml["mappings"].as_sequence().unwrap();
        assert_eq!(mappings.len(), starter.mappings.len());
        for (read, suggestion) in mappings.iter().zip(&starter.mappings) {
            assert_eq!(read["name"].as_str(), Some(suggestion.name.as_str()));
            assert_eq!(
                read["protocol"].as_str(),
                Some(suggestion.protocol.as_str())
            );
            assert_eq!(read["value"].as_str(), Some(suggestion.value.as_str()));
            assert_eq!(read["when"].as_str(), suggestion.when.as_deref());
            assert_eq!(read["sources"][0].as_str(), Some("corp"));
            Template::parse(read["value"].as_str().unwrap()).unwrap();
        }
        let user_chains = yaml["object_types"]["user"].as_sequence().unwrap();
        assert_eq!(user_chains.len(), 1);
        assert_eq!(
            serde_yaml::to_string(&user_chains[0]).unwrap(),
            "- top\n- person\n- organizationalPerson\n- inetOrgPerson\n"
        );
        assert!(yaml["object_types"]["group"].is_sequence());
        // Uncommenting the alternatives gives valid YAML too.
        let uncommented = starter
            .yaml
            .replace("  # - ", "  - ")
            .replace("  #   ", "    ");
        let again: serde_yaml::Value = serde_yaml::from_str(&uncommented).unwrap();
        assert_eq!(
            again["mappings"].as_sequence().unwrap().len(),
            starter.mappings.len() + starter.alternatives.len()
        );
    }

    #[test]
    fn the_mail_domain_is_escaped_into_the_filter() {
        let entries = [user("cn=a").with("mail", &["a@we*ird(x).example", "b@we*ird(x).example"])];
        let report = report_of(&entries);
        let starter = starter(&report, &context("corp", &[]));
        let when = starter.mappings[0].when.as_deref().unwrap();
        assert_eq!(when, "(mail=*@we\\2aird\\28x\\29.example)");
        let filter = Filter::parse(when).unwrap();
        assert!(filter.matches(&entries[0]));
        assert!(!filter.matches(&user("cn=b").with("mail", &["a@weXird(x).example"])));
        let yaml: serde_yaml::Value = serde_yaml::from_str(&starter.yaml).unwrap();
        assert_eq!(yaml["mappings"][0]["when"].as_str(), Some(when));
    }

    #[test]
    fn existing_mappings_are_not_suggested_again_and_their_names_are_taken() {
        let mapping = |name: &str, protocol: &str, value: &str, renamed_from: &[&str]| Mapping {
            name: name.into(),
            protocol: protocol.into(),
            value: Template::parse(value).unwrap(),
            when: None,
            sources: None,
            renamed_from: renamed_from.iter().map(|s| s.to_string()).collect(),
        };
        let existing = [
            mapping("lcs-sip", "lcs", "{msRTCSIP-PrimaryUserAddress|lower}", &[]),
            mapping("aol-from-mail", "aol", "{imName}", &["sametime-from-uid"]),
        ];
        let report = report_of(&directory());
        let starter = starter(&report, &context("corp", &existing));
        let names: Vec<&str> = starter.mappings.iter().map(|s| s.name.as_str()).collect();
        // aol: mail is new (imName is mapped); lcs is covered; the names are free ones.
        assert_eq!(
            names,
            [
                "aol-from-mail-2",
                "jabber-from-jabberid",
                "sametime-from-uid-2"
            ]
        );
        assert!(starter.alternatives.is_empty());
        assert_eq!(
            starter.already_mapped,
            [
                ("aol".into(), "imName".into(), "aol-from-mail".into()),
                (
                    "lcs".into(),
                    "msRTCSIP-PrimaryUserAddress".into(),
                    "lcs-sip".into()
                )
            ]
        );
        assert!(starter.yaml.contains("already mapped by lcs-sip"));
    }

    #[test]
    fn an_attribute_mapped_for_another_protocol_is_not_suggested_again() {
        let existing = [Mapping {
            name: "lcs-from-mail".into(),
            protocol: "lcs".into(),
            value: Template::parse("{mail|lower}").unwrap(),
            when: None,
            sources: None,
            renamed_from: Vec::new(),
        }];
        let report = report_of(&directory());
        let starter = starter(&report, &context("corp", &existing));
        let suggested: Vec<&str> = starter
            .mappings
            .iter()
            .chain(&starter.alternatives)
            .map(|s| s.attribute.as_str())
            .collect();
        assert!(
            !suggested.iter().any(|a| a.eq_ignore_ascii_case("mail")),
            "{suggested:?}"
        );
        assert!(starter
            .already_mapped
            .iter()
            .any(|(_, attribute, mapping)| attribute == "mail" && mapping == "lcs-from-mail"));
        // The protocol of the suggestion is still open: aol is suggested from another
        // attribute.
        assert!(starter.mappings.iter().any(|s| s.protocol == "aol"));
    }

    #[test]
    fn object_types_set_elsewhere_or_no_users_leave_the_section_out() {
        let report = report_of(&directory());
        let mut ctx = context("corp", &[]);
        ctx.object_types_set_in = Some("types.yaml");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&starter(&report, &ctx).yaml).unwrap();
        assert!(yaml.get("object_types").is_none());
        assert!(yaml["mappings"].is_sequence());

        let groups_only = report_of(&[Entry::new("cn=g").with("objectClass", &["groupOfNames"])]);
        let starter = starter(&groups_only, &context("corp", &[]));
        let yaml: serde_yaml::Value = serde_yaml::from_str(&starter.yaml).unwrap();
        assert!(yaml.get("object_types").is_none());
        assert_eq!(yaml["mappings"].as_sequence().map(Vec::len), Some(0));
    }

    #[test]
    fn yaml_scalars_read_back_as_the_same_string() {
        for text in [
            "corp",
            "true",
            "No",
            "null",
            "1",
            "0x1f",
            ".inf",
            "",
            " lead",
            "a: b",
            "#x",
            "a, b]",
            "{mail|lower}",
            "(mail=*@x\\2a)",
            "'\"\\",
            "tab\there",
            "line\nbreak",
            "nel\u{85}ls\u{2028}ps\u{2029}",
            "bom\u{feff}del\u{7f}",
            "Lučić",
            "😀",
        ] {
            for yaml in [
                format!("v: {}", yaml_scalar(text)),
                format!("v: [{}]", yaml_scalar(text)),
                format!("v: {}", yaml_quoted(text)),
            ] {
                let read: serde_yaml::Value =
                    serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
                let value = if read["v"].is_sequence() {
                    &read["v"][0]
                } else {
                    &read["v"]
                };
                assert_eq!(value.as_str(), Some(text), "{yaml:?}");
            }
        }
    }
}
