//! What the rules matched: per source the entries read, per rule the entries it matched,
//! and per source the entries holding each attribute a template or filter reads, with a
//! warning for every such attribute that no entry of its source holds (a typo such as
//! `(objectClas=group)` matches nothing, and would otherwise quietly remove everything
//! the rule produced).
//!
//! What "matched" means, per rule:
//!
//! - a mapping: user entries of a source it reads (with an anchor, not frozen by an
//!   exclusion, enabled) that pass its `when` filter;
//! - a group rule: for a distribution list, the group entries of its source its filter
//!   selects (frozen ones too); for an org unit, the user entries (with an anchor) at or
//!   below it;
//! - an exclusion: the entries it froze (user entries with an anchor, group entries a
//!   group rule reads); for an IM-name exclusion, the user entries with a name it froze;
//! - `disabled_when`: the user entries (with an anchor, not frozen) it marked disabled.
//!
//! Every figure counts entries, each entry on its own (two entries sharing an anchor
//! count twice), so a figure is a sum over entries: a delta plan by region works it out
//! as the standing total less the region's share before the change plus its share
//! after. The warnings are worked out from the totals, at the end, in both modes.
//!
//! An attribute a filter reads only under a negation (`(!(locked=TRUE))`) is not
//! watched: that no entry holds it is the point. A source that yielded no entry gets no
//! warning (every attribute would be missing; its `entries_read` of 0 says it).
//!
//! Counting is cheap: the watched attributes are known from the rules, a few per source,
//! and each entry sets bits in a [`Hits`] (two words inline) that the builder adds up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::{Warning, WarningKind};
use crate::entry::Entry;
use crate::filter::Filter;
use crate::model::{ExclusionSelector, GroupSelector, Rules};
use crate::quote::shown_for_message;
use crate::template::Template;

/// The plan's `sources` block: what was read and what each rule matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matched {
    /// Per source read: every entry it yielded.
    #[serde(default)]
    pub entries_read: BTreeMap<String, u64>,
    /// Per mapping: entries in scope that pass its `when` filter.
    #[serde(default)]
    pub mappings: BTreeMap<String, u64>,
    /// Per group rule (by its owner name): the entries it selects.
    #[serde(default)]
    pub group_rules: BTreeMap<String, u64>,
    /// Per exclusion: the entries it froze.
    #[serde(default)]
    pub exclusions: BTreeMap<String, u64>,
    /// Users `disabled_when` marked disabled, when the config has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_when: Option<u64>,
    /// Per source read, per attribute a template or filter of a rule reading the source
    /// reads (as the config writes it): the entries holding it (or a subtype).
    #[serde(default)]
    pub attribute_holders: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Matched {
    /// `standing` less the region's share before a change (`was`) plus its share after
    /// (`now`). `None` when a figure would go below zero (the standing figures cannot be
    /// the store's).
    pub fn shift(standing: &Matched, was: &Matched, now: &Matched) -> Option<Matched> {
        fn map(
            standing: &BTreeMap<String, u64>,
            was: &BTreeMap<String, u64>,
            now: &BTreeMap<String, u64>,
        ) -> Option<BTreeMap<String, u64>> {
            let mut out = BTreeMap::new();
            for key in standing.keys().chain(was.keys()).chain(now.keys()) {
                if out.contains_key(key) {
                    continue;
                }
                let get = |map: &BTreeMap<String, u64>| i128::from(*map.get(key).unwrap_or(&0));
                let total = get(standing) - get(was) + get(now);
                out.insert(key.clone(), u64::try_from(total).ok()?);
            }
            Some(out)
        }
        let mut holders = BTreeMap::new();
        let empty = BTreeMap::new();
        for source in standing
            .attribute_holders
            .keys()
            .chain(was.attribute_holders.keys())
            .chain(now.attribute_holders.keys())
        {
            if holders.contains_key(source) {
                continue;
            }
            let [standing, was, now] =
                [standing, was, now].map(|m| m.attribute_holders.get(source).unwrap_or(&empty));
            holders.insert(source.clone(), map(standing, was, now)?);
        }
        let disabled_when = match (standing.disabled_when, was.disabled_when, now.disabled_when) {
            (None, None, None) => None,
            (standing, was, now) => {
                let get = |count: Option<u64>| i128::from(count.unwrap_or(0));
                Some(u64::try_from(get(standing) - get(was) + get(now)).ok()?)
            }
        };
        Some(Matched {
            entries_read: map(&standing.entries_read, &was.entries_read, &now.entries_read)?,
            mappings: map(&standing.mappings, &was.mappings, &now.mappings)?,
            group_rules: map(&standing.group_rules, &was.group_rules, &now.group_rules)?,
            exclusions: map(&standing.exclusions, &was.exclusions, &now.exclusions)?,
            disabled_when,
            attribute_holders: holders,
        })
    }

    /// Whether nothing was read (a plan saved before this block existed).
    pub fn is_empty(&self) -> bool {
        *self == Matched::default()
    }
}

/// One template or filter reading one attribute in one source.
#[derive(Debug, Clone)]
struct Reader {
    /// What reads it: `group rule dl: filter (objectClas=group)`.
    what: String,
    /// The mapping, for a mapping's template or filter.
    mapping: Option<String>,
    /// Index in `Rules::sources`.
    source: usize,
    /// Index in `Watch::attributes[source]`.
    attribute: usize,
}

/// The watched attributes of one source by the first byte of their description, either
/// case, a bit per watched index: counting an entry looks each attribute it holds up
/// once, rather than scanning the entry once per watched attribute (a million entries
/// times a dozen watched attributes times their own dozen attributes).
#[derive(Debug, Clone)]
struct ByFirstByte(Box<[u64; 256]>);

impl ByFirstByte {
    /// The index of `watched`, or `None` when it has more than 64 descriptions.
    fn new(watched: &[String]) -> Option<Self> {
        if watched.len() > 64 {
            return None;
        }
        let mut table = Box::new([0u64; 256]);
        for (index, description) in watched.iter().enumerate() {
            if let Some(&first) = description.as_bytes().first() {
                table[usize::from(first.to_ascii_lowercase())] |= 1 << index;
                table[usize::from(first.to_ascii_uppercase())] |= 1 << index;
            }
        }
        Some(ByFirstByte(table))
    }

    /// The indices of the watched descriptions that may describe `description`: those
    /// starting with its first byte.
    fn candidates(&self, description: &str) -> impl Iterator<Item = usize> {
        let mut bits = description
            .as_bytes()
            .first()
            .map_or(0, |&first| self.0[usize::from(first)]);
        std::iter::from_fn(move || {
            let index = bits.trailing_zeros() as usize;
            bits &= bits.checked_sub(1)?;
            Some(index)
        })
    }
}

/// The attributes the rules read, per source, and who reads them: what counting an
/// entry looks at.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Per source index: the attribute descriptions watched (distinct, ignoring case).
    attributes: Vec<Vec<String>>,
    /// Per source index: the same, by first byte (see [`ByFirstByte`]).
    by_first_byte: Vec<Option<ByFirstByte>>,
    readers: Vec<Reader>,
    mappings: usize,
    groups: usize,
    exclusions: usize,
}

impl Watch {
    /// What `rules` read.
    pub fn new(rules: &Rules) -> Self {
        let mut watch = Watch {
            attributes: vec![Vec::new(); rules.sources.len()],
            by_first_byte: Vec::new(),
            readers: Vec::new(),
            mappings: rules.mappings.len(),
            groups: rules.groups.len(),
            exclusions: rules.exclusions.len(),
        };
        for (source, source_rule) in rules.sources.iter().enumerate() {
            let name = source_rule.name.as_str();
            for mapping in rules.mappings.iter().filter(|m| m.reads(name)) {
                let who = format!("mapping {}", mapping.name);
                let what = Some(mapping.name.clone());
                watch.template(source, &who, &mapping.value, what.clone());
                if let Some(filter) = &mapping.when {
                    watch.filter(source, &who, filter, what);
                }
            }
            for (field, template) in &rules.accounts.profile {
                let who = format!("profile {}", field.name());
                watch.template(source, &who, template, None);
            }
            if let Some(filter) = &rules.accounts.disabled_when {
                watch.filter(source, "disabled_when", filter, None);
            }
            for rule in rules.groups.iter().filter(|g| g.source == name) {
                let who = format!("group rule {}", rule.owner);
                if let GroupSelector::DistributionList(filter) = &rule.selector {
                    watch.filter(source, &who, filter, None);
                    watch.template(source, &who, &rule.name, None);
                }
            }
            for exclusion in &rules.exclusions {
                if let ExclusionSelector::Filter(filter) = &exclusion.selector {
                    let who = format!("exclusion {}", exclusion.name);
                    watch.filter(source, &who, filter, None);
                }
            }
        }
        watch.by_first_byte = watch
            .attributes
            .iter()
            .map(|watched| ByFirstByte::new(watched))
            .collect();
        watch
    }

    /// The attribute descriptions the rules read of the source at `source` (its index in
    /// `Rules::sources`), distinct ignoring case.
    pub fn attributes_of(&self, source: usize) -> &[String] {
        self.attributes.get(source).map_or(&[], Vec::as_slice)
    }

    fn template(&mut self, source: usize, who: &str, template: &Template, mapping: Option<String>) {
        let what = format!("{who}: template {}", shown_for_message(template.as_str()));
        for attribute in template.attributes() {
            self.read(source, &what, attribute, mapping.clone());
        }
    }

    fn filter(&mut self, source: usize, who: &str, filter: &Filter, mapping: Option<String>) {
        let what = format!("{who}: filter {}", shown_for_message(filter.to_string()));
        for attribute in filter.asserted_attributes() {
            self.read(source, &what, attribute, mapping.clone());
        }
    }

    fn read(&mut self, source: usize, what: &str, attribute: &str, mapping: Option<String>) {
        let watched = &mut self.attributes[source];
        let index = match watched
            .iter()
            .position(|seen| seen.eq_ignore_ascii_case(attribute))
        {
            Some(index) => index,
            None => {
                watched.push(attribute.to_string());
                watched.len() - 1
            }
        };
        self.readers.push(Reader {
            what: what.to_string(),
            mapping,
            source,
            attribute: index,
        });
    }

    /// The bit counting mapping `index`.
    pub(crate) fn mapping_bit(&self, index: usize) -> usize {
        index
    }

    /// The bit counting group rule `index`.
    pub(crate) fn group_bit(&self, index: usize) -> usize {
        self.mappings + index
    }

    /// The bit counting exclusion `index`.
    pub(crate) fn exclusion_bit(&self, index: usize) -> usize {
        self.mappings + self.groups + index
    }

    /// The bit counting `disabled_when`.
    pub(crate) fn disabled_bit(&self) -> usize {
        self.mappings + self.groups + self.exclusions
    }

    fn attributes_from(&self) -> usize {
        self.disabled_bit() + 1
    }

    /// Sets, in `hits`, the bits of the watched attributes of `source` that `entry`
    /// holds.
    pub(crate) fn count_attributes(&self, source: usize, entry: &Entry, hits: &mut Hits) {
        let from = self.attributes_from();
        let watched = &self.attributes[source];
        let Some(by_first_byte) = &self.by_first_byte[source] else {
            for (index, attribute) in watched.iter().enumerate() {
                if entry.has(attribute) {
                    hits.set(from + index);
                }
            }
            return;
        };
        for attribute in entry.attributes.iter().filter(|a| !a.values.is_empty()) {
            for index in by_first_byte.candidates(&attribute.description) {
                if attribute.is_described_by(&watched[index]) {
                    hits.set(from + index);
                }
            }
        }
    }

    /// A tally with every rule and watched attribute at zero.
    pub(crate) fn tally(&self) -> Tally {
        Tally {
            entries_read: vec![None; self.attributes.len()],
            counts: vec![0; self.attributes_from()],
            holders: self.attributes.iter().map(|a| vec![0; a.len()]).collect(),
        }
    }

    /// One warning for every attribute a template or filter reads that no entry of its
    /// source holds, in a source that yielded entries.
    pub(crate) fn unheld_warnings(&self, rules: &Rules, matched: &Matched) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for reader in &self.readers {
            let source = rules.sources[reader.source].name.as_str();
            if matched.entries_read.get(source).copied().unwrap_or(0) == 0 {
                continue;
            }
            let attribute = &self.attributes[reader.source][reader.attribute];
            let held = matched
                .attribute_holders
                .get(source)
                .and_then(|holders| holders.get(attribute))
                .copied()
                .unwrap_or(0);
            if held > 0 {
                continue;
            }
            warnings.push(Warning {
                mapping: reader.mapping.clone(),
                ..Warning::new(
                    WarningKind::UnheldAttribute,
                    format!(
                        "{} reads {}, which no entry of source {source} has",
                        reader.what,
                        shown_for_message(attribute)
                    ),
                )
            });
        }
        warnings.sort();
        warnings.dedup();
        warnings
    }
}

/// The counters one entry adds to: its source and a set of bits ([`Watch`] numbers
/// them). Two words inline, so that an entry allocates nothing unless the config has
/// more than 128 rules and watched attributes.
#[derive(Debug, Clone, Default)]
pub struct Hits {
    /// Index in `Rules::sources`; `None` for an entry of no known source.
    source: Option<usize>,
    inline: [u64; 2],
    spill: Vec<u64>,
}

impl Hits {
    /// No bit set, for an entry of `source`.
    pub fn of_source(source: usize) -> Self {
        Hits {
            source: Some(source),
            ..Hits::default()
        }
    }

    /// Sets `bit`.
    pub fn set(&mut self, bit: usize) {
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if word < self.inline.len() {
            self.inline[word] |= mask;
        } else {
            let word = word - self.inline.len();
            if self.spill.len() <= word {
                self.spill.resize(word + 1, 0);
            }
            self.spill[word] |= mask;
        }
    }

    /// The bits set, in order.
    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.inline
            .iter()
            .chain(self.spill.iter())
            .enumerate()
            .flat_map(|(word, &bits)| {
                let mut rest = bits;
                std::iter::from_fn(move || {
                    let bit = rest.trailing_zeros() as usize;
                    (rest != 0).then(|| {
                        rest &= rest - 1;
                        word * 64 + bit
                    })
                })
            })
    }
}

/// The running figures of a desired state being built.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Per source index: `None` until the source is begun.
    entries_read: Vec<Option<u64>>,
    /// Per rule bit ([`Watch`]).
    counts: Vec<u64>,
    /// Per source index, per watched attribute.
    holders: Vec<Vec<u64>>,
}

impl Tally {
    /// Records that source `index` was read, even if it yields nothing.
    pub fn begin_source(&mut self, index: usize) {
        self.entries_read[index].get_or_insert(0);
    }

    /// Adds one entry's hits.
    pub fn add(&mut self, hits: &Hits) {
        let Some(source) = hits.source else {
            return;
        };
        *self.entries_read[source].get_or_insert(0) += 1;
        if hits.inline == [0; 2] && hits.spill.is_empty() {
            return;
        }
        let rules = self.counts.len();
        for bit in hits.ones() {
            if bit < rules {
                self.counts[bit] += 1;
            } else if let Some(count) = self.holders[source].get_mut(bit - rules) {
                *count += 1;
            }
        }
    }

    /// The figures by name.
    pub fn matched(&self, rules: &Rules, watch: &Watch) -> Matched {
        let mut matched = Matched::default();
        for (index, mapping) in rules.mappings.iter().enumerate() {
            *matched.mappings.entry(mapping.name.clone()).or_default() +=
                self.counts[watch.mapping_bit(index)];
        }
        for (index, rule) in rules.groups.iter().enumerate() {
            *matched.group_rules.entry(rule.owner.clone()).or_default() +=
                self.counts[watch.group_bit(index)];
        }
        for (index, exclusion) in rules.exclusions.iter().enumerate() {
            *matched
                .exclusions
                .entry(exclusion.name.clone())
                .or_default() += self.counts[watch.exclusion_bit(index)];
        }
        if rules.accounts.disabled_when.is_some() {
            matched.disabled_when = Some(self.counts[watch.disabled_bit()]);
        }
        for (index, source) in rules.sources.iter().enumerate() {
            let Some(read) = self.entries_read[index] else {
                continue;
            };
            *matched.entries_read.entry(source.name.clone()).or_default() += read;
            let holders = matched
                .attribute_holders
                .entry(source.name.clone())
                .or_default();
            for (attribute, count) in watch.attributes[index].iter().zip(&self.holders[index]) {
                *holders.entry(attribute.clone()).or_default() += count;
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{desired, SourceEntries};
    use crate::dn::normalize_dn;
    use crate::model::{Anchor, Exclusion, GroupRule, Mapping, ProfileField, Rules, SourceRule};

    fn user(cn: &str, more: &[(&str, &str)]) -> Entry {
        let mut entry = Entry::new(format!("cn={cn},ou=people,dc=x"))
            .with("objectClass", &["top", "person"])
            .with("cn", &[cn]);
        for (attribute, value) in more {
            entry = entry.with(attribute, &[value]);
        }
        entry
    }

    fn group(cn: &str) -> Entry {
        Entry::new(format!("cn={cn},ou=groups,dc=x"))
            .with("objectClass", &["top", "groupOfNames"])
            .with("cn", &[cn])
            .with("member", &["cn=a,ou=people,dc=x"])
    }

    fn filter(text: &str) -> Filter {
        Filter::parse(text).unwrap()
    }

    fn mapping(name: &str, value: &str, when: Option<&str>) -> Mapping {
        Mapping {
            name: name.to_string(),
            protocol: "aol".to_string(),
            value: Template::parse(value).unwrap(),
            when: when.map(filter),
            sources: None,
            renamed_from: Vec::new(),
        }
    }

    fn source(name: &str) -> SourceRule {
        SourceRule {
            name: name.to_string(),
            anchor: Anchor::Dn,
            allow_empty: false,
        }
    }

    /// Two sources (hr and an empty one), two mappings (one with `when`), a list rule and
    /// an org-unit rule, a filter and an IM-name exclusion, `disabled_when`, a profile.
    fn rules(list_filter: &str, display_name: &str) -> Rules {
        let mut rules = Rules {
            sources: vec![source("hr"), source("empty")],
            mappings: vec![
                mapping("mail", "{mail|local_part}", None),
                mapping("sales", "{sn}", Some("(department=sales)")),
            ],
            groups: vec![
                GroupRule {
                    owner: "dl".to_string(),
                    name: Template::parse("{cn}").unwrap(),
                    source: "hr".to_string(),
                    selector: GroupSelector::DistributionList(Box::new(filter(list_filter))),
                },
                GroupRule {
                    owner: "people".to_string(),
                    name: Template::parse("people").unwrap(),
                    source: "hr".to_string(),
                    selector: GroupSelector::OrgUnit(normalize_dn("ou=people,dc=x")),
                },
            ],
            exclusions: vec![
                Exclusion {
                    name: "vip".to_string(),
                    selector: ExclusionSelector::Filter(Box::new(filter("(title=vip)"))),
                },
                Exclusion {
                    name: "bots".to_string(),
                    selector: ExclusionSelector::ImName {
                        protocol: None,
                        pattern: regex::Regex::new("^bot").unwrap(),
                    },
                },
            ],
            ..Rules::default()
        };
        rules.accounts.disabled_when = Some(filter("(&(locked=TRUE)(!(neverSet=x)))"));
        rules.accounts.profile = vec![(
            ProfileField::DisplayName,
            Template::parse(display_name).unwrap(),
        )];
        rules
    }

    fn entries() -> Vec<Entry> {
        vec![
            user(
                "a",
                &[("mail", "a@x"), ("department", "sales"), ("sn", "ay")],
            ),
            user("b", &[("mail", "b@x"), ("displayName;lang-fr", "Bé")]),
            user("c", &[("mail", "c@x"), ("locked", "TRUE")]),
            user("d", &[("mail", "d@x"), ("title", "vip")]),
            user("bot", &[("mail", "bot1@x")]),
            group("staff"),
        ]
    }

    fn run(rules: &Rules, hr: Vec<Entry>) -> Matched {
        let sources = [
            SourceEntries {
                source: "hr".to_string(),
                entries: hr,
            },
            SourceEntries {
                source: "empty".to_string(),
                entries: Vec::new(),
            },
        ];
        desired(rules, &sources).matched
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn each_rule_counts_the_entries_it_matched() {
        let rules = rules("(objectClass=groupOfNames)", "{displayName}");
        let matched = run(&rules, entries());
        assert_eq!(matched.entries_read, counts(&[("empty", 0), ("hr", 6)]));
        // c is disabled, d frozen: neither is in a mapping's scope.
        assert_eq!(matched.mappings, counts(&[("mail", 3), ("sales", 1)]));
        // The list rule selects the group entry; the org unit holds the five users.
        assert_eq!(matched.group_rules, counts(&[("dl", 1), ("people", 5)]));
        assert_eq!(matched.exclusions, counts(&[("bots", 1), ("vip", 1)]));
        assert_eq!(matched.disabled_when, Some(1));
        // `cn` is held by every entry, `displayName` through `displayName;lang-fr`;
        // `neverSet`, read only under a negation, is not watched.
        let hr = &matched.attribute_holders["hr"];
        assert_eq!(hr["cn"], 6);
        assert_eq!(hr["displayName"], 1);
        assert_eq!(hr["objectClass"], 6);
        assert_eq!(hr["department"], 1);
        assert!(!hr.contains_key("neverSet"));
        assert_eq!(matched.attribute_holders["empty"]["mail"], 0);
        assert!(Watch::new(&rules)
            .unheld_warnings(&rules, &matched)
            .is_empty());
    }

    #[test]
    fn an_attribute_no_entry_holds_is_one_warning_per_reader() {
        let rules = rules("(objectClas=groupOfNames)", "{displayNme}");
        let matched = run(&rules, entries());
        assert_eq!(matched.group_rules["dl"], 0);
        let messages: Vec<String> = Watch::new(&rules)
            .unheld_warnings(&rules, &matched)
            .into_iter()
            .inspect(|w| assert_eq!(w.kind, WarningKind::UnheldAttribute))
            .map(|w| w.message)
            .collect();
        // Nothing about the empty source: its entries read say 0.
        assert_eq!(
            messages,
            [
                "group rule dl: filter (objectClas=groupOfNames) reads objectClas, which no entry of source hr has",
                "profile display_name: template {displayNme} reads displayNme, which no entry of source hr has",
            ]
        );
    }

    /// The watched indices `count_attributes` finds in `entry`, and those `Entry::has`
    /// finds looking each watched description up in turn.
    fn counted_and_looked_up(watched: &[String], entry: &Entry) -> (Vec<usize>, Vec<usize>) {
        let watch = Watch {
            attributes: vec![watched.to_vec()],
            by_first_byte: vec![ByFirstByte::new(watched)],
            readers: Vec::new(),
            mappings: 0,
            groups: 0,
            exclusions: 0,
        };
        let mut hits = Hits::of_source(0);
        watch.count_attributes(0, entry, &mut hits);
        let from = watch.attributes_from();
        let counted = hits.ones().map(|bit| bit - from).collect();
        let looked_up = (0..watched.len())
            .filter(|&index| entry.has(&watched[index]))
            .collect();
        (counted, looked_up)
    }

    #[test]
    fn counting_an_entry_finds_what_looking_each_attribute_up_finds() {
        let mut watched: Vec<String> = [
            "cn",
            "CN;lang-fr",
            "cn;x-y",
            "mail",
            "mailHost",
            "Member",
            "m",
            "sn",
            "uid",
            "é",
        ]
        .map(String::from)
        .to_vec();
        let mut entry = Entry::new("cn=a,dc=x")
            .with("Cn;LANG-FR", &["a"])
            .with("mailhost", &["h"])
            .with("MEMBER", &["cn=b,dc=x"])
            .with("é", &["e"])
            .with("ui", &["u"]);
        // An attribute a reader left without values holds nothing.
        entry.attributes.push(crate::entry::Attribute {
            description: "sn".to_string(),
            values: Vec::new(),
        });
        let (counted, looked_up) = counted_and_looked_up(&watched, &entry);
        assert_eq!(counted, [0, 1, 4, 5, 9]);
        assert_eq!(counted, looked_up);
        // Past 64 watched descriptions, each is looked up in turn: the same answer.
        watched.extend((0..60).map(|n| format!("c{n}")));
        assert!(ByFirstByte::new(&watched).is_none());
        let (counted, looked_up) = counted_and_looked_up(&watched, &entry);
        assert_eq!(counted, [0, 1, 4, 5, 9]);
        assert_eq!(counted, looked_up);
    }

    #[test]
    fn hits_past_the_inline_words_spill_and_read_back_in_order() {
        let mut hits = Hits::of_source(0);
        for bit in [300, 0, 63, 64, 127, 128, 5] {
            hits.set(bit);
        }
        assert_eq!(
            hits.ones().collect::<Vec<_>>(),
            [0, 5, 63, 64, 127, 128, 300]
        );
    }

    #[test]
    fn figures_shift_by_the_difference_and_refuse_to_go_negative() {
        let rules = rules("(objectClass=groupOfNames)", "{displayName}");
        let all = entries();
        let standing = run(&rules, all.clone());
        // A region of two entries: d leaves the exclusion, e arrives with nothing.
        let was = run(&rules, vec![all[3].clone()]);
        let changed = vec![
            user("d", &[("mail", "d@x")]),
            user("e", &[("displayName", "E")]),
        ];
        let now = run(&rules, changed.clone());
        let mut after = all.clone();
        after.remove(3);
        after.extend(changed);
        assert_eq!(
            Matched::shift(&standing, &was, &now),
            Some(run(&rules, after))
        );
        assert_eq!(Matched::shift(&was, &standing, &was), None);
    }
}
