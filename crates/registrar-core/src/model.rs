//! The checked rules the core works from: object types, account profile, mappings,
//! group rules, exclusions and policy, already parsed and cross-checked by `config`.
//!
//! These types say *what* to compute, never *where data comes from*: source locations,
//! credentials and schedules stay in the adapters. Nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::dn::normalize_dn;
use crate::entry::Entry;
use crate::filter::Filter;
use crate::template::Template;

/// Everything `desired()` and `plan()` need to know about the configuration.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Sources in name order.
    pub sources: Vec<SourceRule>,
    pub object_types: ObjectTypes,
    pub accounts: AccountRules,
    /// Mappings in name order.
    pub mappings: Vec<Mapping>,
    /// Group rules in rule-name order.
    pub groups: Vec<GroupRule>,
    pub exclusions: Vec<Exclusion>,
    pub policy: Policy,
    /// Name rules per protocol; a protocol without one gets [`ProtocolRule::default`].
    pub protocols: BTreeMap<String, ProtocolRule>,
}

impl Rules {
    /// The name rule of `protocol`.
    pub fn protocol(&self, protocol: &str) -> &ProtocolRule {
        static DEFAULT: std::sync::OnceLock<ProtocolRule> = std::sync::OnceLock::new();
        self.protocols
            .get(protocol)
            .unwrap_or_else(|| DEFAULT.get_or_init(ProtocolRule::default))
    }
}

/// What a protocol accepts as an IM name. A produced value that breaks the rule skips
/// that one registration with a warning; it never fails the run.
#[derive(Debug, Clone)]
pub struct ProtocolRule {
    /// The longest name, in characters.
    pub max_length: usize,
    /// Names must match this, when set (say `^[a-z0-9._-]+$`).
    pub allowed: Option<Regex>,
    /// Whether names differing only in case are different names. Off by default: most
    /// IM services fold case, so `Bob` and `bob` are one name.
    pub case_sensitive: bool,
}

/// The default longest IM name.
pub const DEFAULT_MAX_IM_NAME_LENGTH: usize = 256;

impl Default for ProtocolRule {
    fn default() -> Self {
        ProtocolRule {
            max_length: DEFAULT_MAX_IM_NAME_LENGTH,
            allowed: None,
            case_sensitive: false,
        }
    }
}

impl ProtocolRule {
    /// `im_name` normalised for comparison under this rule: surrounding white space
    /// removed and, unless the protocol is case-sensitive, lowercased.
    pub fn name_key(&self, im_name: &str) -> String {
        if self.case_sensitive {
            im_name.trim().to_string()
        } else {
            im_name_key(im_name)
        }
    }

    /// Whether `im_name` is already its own [`ProtocolRule::name_key`], so that the key
    /// need not be made. Decided for ASCII only: `false` may still be its own key.
    pub fn is_own_name_key(&self, im_name: &str) -> bool {
        if self.case_sensitive {
            im_name.trim().len() == im_name.len()
        } else {
            is_own_im_name_key(im_name)
        }
    }

    /// Why `im_name` cannot be registered under this rule, if it cannot.
    pub fn problem_with(&self, im_name: &str) -> Option<String> {
        if im_name.is_ascii() {
            self.problem_with_ascii(im_name.as_bytes())
        } else {
            self.problem_with_chars(im_name)
        }
    }

    fn problem_with_chars(&self, im_name: &str) -> Option<String> {
        if im_name.trim().is_empty() {
            Some("is empty".to_string())
        } else if im_name.chars().count() > self.max_length {
            Some(format!("is longer than {} characters", self.max_length))
        } else if im_name.chars().any(|c| c.is_control()) {
            Some("contains control characters".to_string())
        } else if im_name.trim().chars().any(char::is_whitespace) {
            Some("contains white space".to_string())
        } else {
            self.allowed
                .as_ref()
                .filter(|allowed| !allowed.is_match(im_name))
                .map(|allowed| {
                    format!(
                        "does not match the protocol's allowed names {}",
                        allowed.as_str()
                    )
                })
        }
    }

    /// [`ProtocolRule::problem_with`] for an ASCII name, byte by byte: the same checks in
    /// the same order, for the names directories mostly hold.
    fn problem_with_ascii(&self, name: &[u8]) -> Option<String> {
        let space = |b: &u8| (*b as char).is_whitespace();
        let start = name.iter().position(|b| !space(b)).unwrap_or(name.len());
        let end = name
            .iter()
            .rposition(|b| !space(b))
            .map_or(start, |at| at + 1);
        if start == end {
            Some("is empty".to_string())
        } else if name.len() > self.max_length {
            Some(format!("is longer than {} characters", self.max_length))
        } else if name.iter().any(|&b| b < 0x20 || b == 0x7f) {
            Some("contains control characters".to_string())
        } else if name[start..end].iter().any(space) {
            Some("contains white space".to_string())
        } else {
            let text = std::str::from_utf8(name).expect("ASCII");
            self.allowed
                .as_ref()
                .filter(|allowed| !allowed.is_match(text))
                .map(|allowed| {
                    format!(
                        "does not match the protocol's allowed names {}",
                        allowed.as_str()
                    )
                })
        }
    }
}

/// What the core needs of a source: its name, how entries are identified, and whether
/// it may legitimately be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRule {
    pub name: String,
    pub anchor: Anchor,
    pub allow_empty: bool,
}

/// The attribute that identifies an entry across renames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// The normalised DN (the default).
    Dn,
    /// An attribute such as `entryUUID` or `objectGUID`.
    Attribute(String),
}

/// Why an entry has no anchor that can be right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorProblem {
    /// The entry lacks the anchor attribute.
    Missing,
    /// Its value is empty (or white space).
    Empty,
    /// An `objectGUID` that is neither 16 bytes nor a GUID written out: the length seen.
    NotAGuid(usize),
}

impl Anchor {
    /// The anchor value of `entry`: the normalised DN, or the attribute's first value,
    /// trimmed and lowercased. A 16-byte `objectGUID` becomes its canonical GUID string
    /// (a GUID already written out, `3f2504e0-4f89-…`, is taken as it is); any other
    /// `objectGUID` cannot be right, and an empty value is no anchor.
    pub fn value_of(&self, entry: &Entry) -> Result<String, AnchorProblem> {
        match self {
            Anchor::Dn => Ok(normalize_dn(&entry.dn)),
            Anchor::Attribute(name) => {
                let raw = entry.values(name).next().ok_or(AnchorProblem::Missing)?;
                let is_guid = name.eq_ignore_ascii_case("objectGUID");
                if is_guid && raw.len() == 16 {
                    return Ok(guid_string(raw));
                }
                let text = String::from_utf8_lossy(raw).trim().to_lowercase();
                if text.is_empty() {
                    return Err(AnchorProblem::Empty);
                }
                if is_guid && !is_guid_text(&text) {
                    return Err(AnchorProblem::NotAGuid(raw.len()));
                }
                Ok(text)
            }
        }
    }
}

/// Whether `text` is a GUID written out: 8-4-4-4-12 hexadecimal digits.
fn is_guid_text(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Canonical string form of a binary Active Directory GUID (little-endian first three
/// groups), e.g. `3f2504e0-4f89-11d3-9a0c-0305e82c3301`.
pub fn guid_string(bytes: &[u8]) -> String {
    let b = bytes;
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// Object types chosen by the longest configured objectClass chain an entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTypes {
    /// (type name, chain) pairs; chains are lowercased.
    chains: Vec<(String, Vec<String>)>,
}

/// The object type name that becomes accounts.
pub const USER_TYPE: &str = "user";

/// The object type name of group entries (distribution lists and their nested groups).
pub const GROUP_TYPE: &str = "group";

impl Default for ObjectTypes {
    fn default() -> Self {
        let chain = |classes: &[&str]| classes.iter().map(|c| c.to_string()).collect();
        let mut types = BTreeMap::new();
        types.insert(
            USER_TYPE.to_string(),
            vec![
                chain(&["top", "person", "organizationalPerson"]),
                chain(&["top", "person"]),
                chain(&["top", "inetOrgPerson"]),
            ],
        );
        types.insert(
            "group".to_string(),
            vec![
                chain(&["top", "groupOfNames"]),
                chain(&["top", "groupOfUniqueNames"]),
                chain(&["top", "group"]),
            ],
        );
        types.insert(
            "org_unit".to_string(),
            vec![chain(&["top", "organizationalUnit"])],
        );
        ObjectTypes::new(types)
    }
}

impl ObjectTypes {
    /// Builds the table from `type → chains` as configured.
    pub fn new(types: BTreeMap<String, Vec<Vec<String>>>) -> Self {
        let chains = types
            .into_iter()
            .flat_map(|(name, chains)| {
                chains.into_iter().map(move |chain| {
                    let lowered = chain.iter().map(|c| c.to_ascii_lowercase()).collect();
                    (name.clone(), lowered)
                })
            })
            .collect();
        ObjectTypes { chains }
    }

    /// The type whose chain is the longest one fully present in the entry's
    /// `objectClass` values (compared ignoring case). `top` counts as present on every
    /// entry (every structural class derives from it), and classes the configuration
    /// does not name (say `inetOrgPerson` under `organizationalPerson`) are ignored.
    /// Ties go to the type name first in order.
    pub fn classify(&self, entry: &Entry) -> Option<&str> {
        self.matching_chain(entry).map(|(name, _)| name)
    }

    /// The type [`ObjectTypes::classify`] gives `entry`, with the configured chain that
    /// decided it (lowercased).
    pub fn matching_chain(&self, entry: &Entry) -> Option<(&str, &[String])> {
        // Entries carry a handful of classes: kept on the stack, as this runs per entry.
        const ON_STACK: usize = 16;
        let mut stacked: [&[u8]; ON_STACK] = [&[]; ON_STACK];
        let mut count = 0;
        let mut more: Vec<&[u8]> = Vec::new();
        for value in entry.values("objectClass").map(<[u8]>::trim_ascii) {
            if count < ON_STACK {
                stacked[count] = value;
                count += 1;
            } else {
                more.push(value);
            }
        }
        let classes = stacked[..count].iter().chain(&more);
        let has_class = |class: &str| {
            class == "top"
                || classes
                    .clone()
                    .any(|value| value.eq_ignore_ascii_case(class.as_bytes()))
        };
        let mut best: Option<(&str, &[String])> = None;
        for (name, chain) in &self.chains {
            let longer = match best {
                None => true,
                Some((best_name, best_chain)) => {
                    chain.len() > best_chain.len()
                        || (chain.len() == best_chain.len() && name.as_str() < best_name)
                }
            };
            if longer && chain.iter().all(|class| has_class(class)) {
                best = Some((name, chain));
            }
        }
        best
    }
}

/// Account fields filled from the directory, in a fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileField {
    DisplayName,
    Department,
    Title,
    Telephone,
    Location,
    Mail,
}

impl ProfileField {
    pub const ALL: [ProfileField; 6] = [
        ProfileField::DisplayName,
        ProfileField::Department,
        ProfileField::Title,
        ProfileField::Telephone,
        ProfileField::Location,
        ProfileField::Mail,
    ];

    /// The name used in YAML, JSON and the store.
    pub fn name(self) -> &'static str {
        match self {
            ProfileField::DisplayName => "display_name",
            ProfileField::Department => "department",
            ProfileField::Title => "title",
            ProfileField::Telephone => "telephone",
            ProfileField::Location => "location",
            ProfileField::Mail => "mail",
        }
    }

    /// The field called `name`, if any.
    pub fn from_name(name: &str) -> Option<ProfileField> {
        ProfileField::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The field's place in [`ProfileField::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An account's profile: a value per field, or none. Serialised as a map of the fields
/// that have a value.
///
/// Stores and directories hold hundreds of thousands of profiles, so the values share
/// one allocation: `text` holds them one after the other in field order, `ends[i]` is
/// where the value of field `i` ends (and the next one starts), and bit `i` of `present`
/// says whether field `i` has a value at all.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Profile {
    text: Box<str>,
    ends: [u32; 6],
    present: u8,
}

impl Profile {
    /// A profile with these values, by field in [`ProfileField::ALL`] order.
    pub fn from_values<S: AsRef<str>>(values: [Option<S>; 6]) -> Profile {
        let length = values.iter().flatten().map(|v| v.as_ref().len()).sum();
        let mut text = String::with_capacity(length);
        let mut ends = [0u32; 6];
        let mut present = 0u8;
        for (index, value) in values.iter().enumerate() {
            if let Some(value) = value {
                text.push_str(value.as_ref());
                present |= 1 << index;
            }
            ends[index] = u32::try_from(text.len()).expect("a profile under 4 GiB");
        }
        Profile {
            text: text.into_boxed_str(),
            ends,
            present,
        }
    }

    /// The value of `field`, if any.
    pub fn get(&self, field: ProfileField) -> Option<&str> {
        let index = field.index();
        if self.present & (1 << index) == 0 {
            return None;
        }
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.text[start as usize..self.ends[index] as usize])
    }

    /// Sets (or, with `None`, clears) `field`.
    pub fn set(&mut self, field: ProfileField, value: Option<String>) {
        let mut values: [Option<&str>; 6] = ProfileField::ALL.map(|f| self.get(f));
        values[field.index()] = value.as_deref();
        *self = Profile::from_values(values);
    }

    /// The fields that have a value, in [`ProfileField::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ProfileField, &str)> + '_ {
        ProfileField::ALL
            .into_iter()
            .filter_map(|field| self.get(field).map(|value| (field, value)))
    }
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(field, value)| (field.name(), value)))
            .finish()
    }
}

/// The serialised form of a [`Profile`]: a map of the fields that have a value.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFields<S> {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    display_name: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    department: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    title: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    telephone: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    location: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    mail: Option<S>,
}

impl Serialize for Profile {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let [display_name, department, title, telephone, location, mail] =
            ProfileField::ALL.map(|field| self.get(field));
        ProfileFields {
            display_name,
            department,
            title,
            telephone,
            location,
            mail,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = ProfileFields::<String>::deserialize(deserializer)?;
        Ok(Profile::from_values([
            fields.display_name,
            fields.department,
            fields.title,
            fields.telephone,
            fields.location,
            fields.mail,
        ]))
    }
}

/// What happens to an account whose user left scope or was disabled.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// The account is deactivated and its managed registrations removed.
    #[default]
    Deactivate,
    /// The account and its managed registrations are removed.
    Delete,
    /// Nothing changes.
    Keep,
}

/// How accounts are built from user entries.
#[derive(Debug, Clone, Default)]
pub struct AccountRules {
    pub profile: Vec<(ProfileField, Template)>,
    pub disabled_when: Option<Filter>,
    pub on_departure: Departure,
}

/// A named rule producing registrations of one protocol from user entries.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub protocol: String,
    pub value: Template,
    pub when: Option<Filter>,
    /// Source names this mapping reads; `None` means every source.
    pub sources: Option<Vec<String>>,
    /// Earlier names of this mapping whose rows it takes over without churn.
    pub renamed_from: Vec<String>,
}

impl Mapping {
    /// Whether the mapping reads entries of `source`.
    pub fn reads(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|names| names.iter().any(|name| name == source))
    }
}

/// The kinds of group.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    DistributionList,
    OrgUnit,
}

impl GroupKind {
    /// The name used in YAML, JSON and the store.
    pub fn name(self) -> &'static str {
        match self {
            GroupKind::DistributionList => "distribution_list",
            GroupKind::OrgUnit => "org_unit",
        }
    }

    /// The kind called `name`, if any.
    pub fn from_name(name: &str) -> Option<GroupKind> {
        [GroupKind::DistributionList, GroupKind::OrgUnit]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// A rule producing groups with members.
///
/// The rule's identity (the owner recorded on the groups it produces) is its `name` as
/// written in the YAML: `{cn}` for a template, `sales` for a plain name.
#[derive(Debug, Clone)]
pub struct GroupRule {
    /// The owner recorded on every group row the rule produces.
    pub owner: String,
    /// The group name: a template over the group entry for distribution lists, a literal
    /// for org units.
    pub name: Template,
    /// The source whose entries the rule reads.
    pub source: String,
    pub selector: GroupSelector,
}

/// Which groups a rule produces, and their members.
#[derive(Debug, Clone)]
pub enum GroupSelector {
    /// One group per group entry matching the filter; members from `member` and
    /// `uniqueMember`, nested groups flattened.
    DistributionList(Box<Filter>),
    /// One group holding the users at or below this normalised DN.
    OrgUnit(String),
}

impl GroupRule {
    /// The kind of group the rule produces.
    pub fn kind(&self) -> GroupKind {
        match self.selector {
            GroupSelector::DistributionList(_) => GroupKind::DistributionList,
            GroupSelector::OrgUnit(_) => GroupKind::OrgUnit,
        }
    }
}

/// A rule naming objects the controller must never touch.
#[derive(Debug, Clone)]
pub struct Exclusion {
    pub name: String,
    pub selector: ExclusionSelector,
}

/// Which objects an exclusion freezes.
#[derive(Debug, Clone)]
pub enum ExclusionSelector {
    /// Entries at or below this normalised DN.
    DnSubtree(String),
    /// Entries matching this filter.
    Filter(Box<Filter>),
    /// Registrations whose IM name matches, optionally only in one protocol.
    ImName {
        protocol: Option<String>,
        pattern: Regex,
    },
}

impl Exclusion {
    /// Whether this rule freezes accounts by DN subtree.
    pub fn freezes_by_dn(&self) -> bool {
        matches!(self.selector, ExclusionSelector::DnSubtree(_))
    }

    /// Whether this rule freezes registrations by IM name.
    pub fn freezes_by_name(&self) -> bool {
        matches!(self.selector, ExclusionSelector::ImName { .. })
    }

    /// Whether the account with this DN is frozen by a DN rule. Filters need the entry.
    pub fn freezes_dn(&self, normalized_dn: &str) -> bool {
        match &self.selector {
            ExclusionSelector::DnSubtree(subtree) => dn_is_within(normalized_dn, subtree),
            _ => false,
        }
    }

    /// Whether this entry is frozen (DN subtree or filter rule).
    pub fn freezes_entry(&self, entry: &Entry, normalized_dn: &str) -> bool {
        match &self.selector {
            ExclusionSelector::DnSubtree(subtree) => dn_is_within(normalized_dn, subtree),
            ExclusionSelector::Filter(filter) => filter.matches(entry),
            ExclusionSelector::ImName { .. } => false,
        }
    }

    /// Whether this registration is frozen by an IM-name rule.
    pub fn freezes_registration(&self, protocol: &str, im_name: &str) -> bool {
        match &self.selector {
            ExclusionSelector::ImName {
                protocol: wanted,
                pattern,
            } => wanted.as_deref().is_none_or(|p| p == protocol) && pattern.is_match(im_name),
            _ => false,
        }
    }
}

/// Whether normalised `dn` equals or lies below normalised `ancestor`.
pub fn dn_is_within(dn: &str, ancestor: &str) -> bool {
    dn == ancestor
        || (dn.len() > ancestor.len()
            && dn.ends_with(ancestor)
            && dn.as_bytes()[dn.len() - ancestor.len() - 1] == b',')
}

/// Safety rails and identities that never receive a registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Normalised DNs.
    pub protected_principals: BTreeSet<String>,
    pub max_deletes: u64,
    pub max_delete_percent: Option<f64>,
}

/// Default for `policy.max_deletes`.
pub const DEFAULT_MAX_DELETES: u64 = 500;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            protected_principals: BTreeSet::new(),
            max_deletes: DEFAULT_MAX_DELETES,
            max_delete_percent: None,
        }
    }
}

/// Normalises an IM name for comparison within a case-insensitive protocol (the
/// default, [`ProtocolRule::name_key`]): surrounding white space removed, lowercased.
pub fn im_name_key(im_name: &str) -> String {
    im_name.trim().to_lowercase()
}

/// Whether `im_name` is already its own [`im_name_key`] (trimmed and lowercase), as
/// produced names mostly are, so that the key need not be made. Decided for ASCII only:
/// `false` may still be its own key.
pub fn is_own_im_name_key(im_name: &str) -> bool {
    let bytes = im_name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            !(first as char).is_whitespace()
                && !(last as char).is_whitespace()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii() && !b.is_ascii_uppercase())
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_keep_each_field_apart_in_one_allocation() {
        let mut profile =
            Profile::from_values([Some("Ann"), None, Some(""), None, Some("Oslo"), None]);
        assert_eq!(profile.get(ProfileField::DisplayName), Some("Ann"));
        assert_eq!(profile.get(ProfileField::Department), None);
        assert_eq!(profile.get(ProfileField::Title), Some(""));
        assert_eq!(profile.get(ProfileField::Location), Some("Oslo"));
        profile.set(ProfileField::Mail, Some("ann@x".to_string()));
        profile.set(ProfileField::DisplayName, None);
        let fields: Vec<_> = profile.iter().collect();
        assert_eq!(
            fields,
            [
                (ProfileField::Title, ""),
                (ProfileField::Location, "Oslo"),
                (ProfileField::Mail, "ann@x")
            ]
        );
        let json = serde_json::to_string(&profile).unwrap();
        assert_eq!(json, r#"{"title":"","location":"Oslo","mail":"ann@x"}"#);
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), profile);
        assert_eq!(
            serde_json::from_str::<Profile>(r#"{"title":null}"#).unwrap(),
            Profile::default()
        );
        assert!(serde_json::from_str::<Profile>(r#"{"shoe_size":"9"}"#).is_err());
        assert_eq!(
            format!("{profile:?}"),
            r#"{"title": "", "location": "Oslo", "mail": "ann@x"}"#
        );
        // Equal values, equal profiles, however they were made.
        let mut built = Profile::default();
        for (field, value) in profile.iter() {
            built.set(field, Some(value.to_string()));
        }
        assert_eq!(built, profile);
    }

    #[test]
    fn ascii_names_get_the_same_answer_byte_by_byte() {
        let rules = [
            ProtocolRule::default(),
            ProtocolRule {
                max_length: 5,
                allowed: Some(Regex::new("^[a-z]+$").unwrap()),
                case_sensitive: false,
            },
        ];
        let names = [
            "",
            " ",
            "\t\u{b}\u{c}",
            "bob",
            " bob ",
            "bo b",
            "b\u{7f}",
            "b\u{1}b",
            "abcdef",
            "Bob",
            "bob\r\n",
            "\u{b}bob",
        ];
        for rule in &rules {
            for name in names {
                assert_eq!(
                    rule.problem_with_ascii(name.as_bytes()),
                    rule.problem_with_chars(name),
                    "{name:?}"
                );
            }
        }
    }

    #[test]
    fn own_name_keys_are_recognised_without_making_the_key() {
        let folding = ProtocolRule::default();
        let sensitive = ProtocolRule {
            case_sensitive: true,
            ..ProtocolRule::default()
        };
        for name in [
            "bob",
            "bob.smith@x",
            "a b",
            "Bob",
            " bob",
            "bob ",
            "björn",
            "ǅ",
            "",
        ] {
            for rule in [&folding, &sensitive] {
                if rule.is_own_name_key(name) {
                    assert_eq!(rule.name_key(name), name, "{name:?}");
                }
            }
        }
        assert!(folding.is_own_name_key("bob.smith@x"));
        assert!(!folding.is_own_name_key("Bob"));
        assert!(sensitive.is_own_name_key("Bob"));
        assert!(!folding.is_own_name_key(" bob"));
        assert!(!sensitive.is_own_name_key(" Bob"));
        assert_eq!(folding.name_key(" Bob "), "bob");
        assert_eq!(sensitive.name_key(" Bob "), "Bob");
    }

    fn classes(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    fn with_classes(list: &[&str]) -> Entry {
        Entry::new("cn=x").with("objectClass", list)
    }

    #[test]
    fn unmapped_class_below_a_mapped_chain_keeps_the_chain_type() {
        let types = ObjectTypes::default();
        let inet = with_classes(&["top", "person", "OrganizationalPerson", "inetOrgPerson"]);
        assert_eq!(types.classify(&inet), Some("user"));
        assert_eq!(
            types.classify(&with_classes(&["groupOfNames"])),
            Some("group")
        );
        assert_eq!(types.classify(&with_classes(&["top", "device"])), None);
    }

    #[test]
    fn longest_chain_wins() {
        let mut table = BTreeMap::new();
        table.insert(
            "user".to_string(),
            vec![classes(&["top", "person", "organizationalPerson", "user"])],
        );
        table.insert(
            "computer".to_string(),
            vec![classes(&[
                "top",
                "person",
                "organizationalPerson",
                "user",
                "computer",
            ])],
        );
        let types = ObjectTypes::new(table);
        let computer = with_classes(&["top", "person", "organizationalPerson", "user", "computer"]);
        assert_eq!(types.classify(&computer), Some("computer"));
        let user = with_classes(&["top", "person", "organizationalPerson", "user"]);
        assert_eq!(types.classify(&user), Some("user"));
    }

    #[test]
    fn guid_bytes_become_the_canonical_string() {
        let bytes = [
            0xe0, 0x04, 0x25, 0x3f, 0x89, 0x4f, 0xd3, 0x11, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c,
            0x33, 0x01,
        ];
        assert_eq!(guid_string(&bytes), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
    }

    #[test]
    fn an_anchor_that_cannot_be_right_says_why() {
        let guid = Anchor::Attribute("objectGUID".to_string());
        let entry = |values: &[&[u8]]| Entry {
            dn: "cn=a,dc=example,dc=com".to_string(),
            attributes: vec![crate::entry::Attribute {
                description: "objectGUID".into(),
                values: values.iter().map(|v| v.to_vec()).collect(),
            }],
        };
        let sixteen: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            guid.value_of(&entry(&[&sixteen])),
            Ok("03020100-0504-0706-0809-0a0b0c0d0e0f".to_string())
        );
        assert_eq!(
            guid.value_of(&entry(&[&sixteen[..15]])),
            Err(AnchorProblem::NotAGuid(15))
        );
        assert_eq!(
            guid.value_of(&entry(&[b"3F2504E0-4F89-11D3-9A0C-0305E82C3301"])),
            Ok("3f2504e0-4f89-11d3-9a0c-0305e82c3301".to_string())
        );
        assert_eq!(
            guid.value_of(&entry(&[b"3F2504E0-4F89-11D3-9A0C-0305E82C330"])),
            Err(AnchorProblem::NotAGuid(35))
        );
        assert_eq!(guid.value_of(&entry(&[b"  "])), Err(AnchorProblem::Empty));
        assert_eq!(guid.value_of(&entry(&[])), Err(AnchorProblem::Missing));
        let uuid = Anchor::Attribute("entryUUID".to_string());
        let mut other = entry(&[b"x"]);
        other.attributes[0].description = "entryUUID".into();
        assert_eq!(uuid.value_of(&other), Ok("x".to_string()));
    }

    #[test]
    fn dn_within_needs_a_whole_rdn_boundary() {
        assert!(dn_is_within("cn=a,ou=svc,dc=x", "ou=svc,dc=x"));
        assert!(dn_is_within("ou=svc,dc=x", "ou=svc,dc=x"));
        assert!(!dn_is_within("cn=a,xou=svc,dc=x", "ou=svc,dc=x"));
    }
}
