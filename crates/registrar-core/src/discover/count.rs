//! Counting: [`Discovery`] takes entries one at a time and keeps counts only (objectClass
//! chains, attributes with a sample and the shape of their values, object types, mail
//! domains), and gives the [`Report`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::entry::Entry;
use crate::model::{ObjectTypes, USER_TYPE};

use super::sample::Sample;

/// How many mail domains are tracked at once to find the most common one.
pub(super) const DOMAIN_SLOTS: usize = 32;

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
    pub(super) fn user_entries(&self, attribute: &str) -> u64 {
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
    pub(super) chains: BTreeMap<Vec<String>, ChainCount>,
    /// Keyed by the description lowercased.
    pub(super) attributes: BTreeMap<String, AttributeStats>,
    types: BTreeMap<Option<String>, TypeStats>,
}

pub(super) struct AttributeStats {
    pub(super) count: AttributeCount,
    /// Only for `mail`: the most frequent domains.
    pub(super) domains: Option<FrequentValues>,
}

#[derive(Default)]
pub(super) struct TypeStats {
    pub(super) entries: u64,
    /// Keyed by the description lowercased.
    pub(super) attributes: BTreeMap<String, u64>,
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

pub(super) fn lowercase(chain: &[String]) -> Vec<String> {
    chain.iter().map(|c| c.to_ascii_lowercase()).collect()
}

/// The entry's objectClass values (trimmed, without empty ones) as text.
pub(super) fn classes(entry: &Entry) -> impl Iterator<Item = String> + '_ {
    entry
        .values("objectClass")
        .map(|value| String::from_utf8_lossy(value.trim_ascii()).into_owned())
        .filter(|class| !class.is_empty())
}

/// The set of the entry's classes, with `top` (every entry has it, written or not),
/// lowercased and sorted: entries listing the same classes in another order or case
/// share a chain.
pub(super) fn chain_key(entry: &Entry) -> Vec<String> {
    let mut key: BTreeSet<String> = classes(entry).map(|c| c.to_ascii_lowercase()).collect();
    key.insert("top".to_string());
    key.into_iter().collect()
}

/// The chain as shown, each class once, spelled as the entry spells it: the classes of
/// the configured chain that types the entry, in that chain's order (so `top` first,
/// superclasses before subclasses), then the entry's other classes in its order.
pub(super) fn chain_of(entry: &Entry, configured: &[String]) -> Vec<String> {
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
pub(super) fn look_at(value: &[u8], shape: &mut Shape, domains: Option<&mut FrequentValues>) {
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

pub(super) fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// The domain of an email-shaped value: one `@` with text on both sides, a dot inside the
/// domain, no white space or control characters.
pub(super) fn email_domain(text: &str) -> Option<&str> {
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
pub(super) struct FrequentValues {
    pub(super) counts: BTreeMap<String, u64>,
}

impl FrequentValues {
    pub(super) fn add(&mut self, value: &str) {
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
    pub(super) fn most_common(self) -> Option<String> {
        let best = self.counts.values().copied().max()?;
        self.counts
            .into_iter()
            .find(|&(_, count)| count == best)
            .map(|(value, _)| value)
    }
}
