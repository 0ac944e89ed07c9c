//! [`EntryPreparer`]: what one entry contributes (its account, each mapping's claims,
//! warnings, skip counts; or a group entry's names and members), from the entry and the
//! rules alone, and the entry's [`EntryFootprint`].

use arcstr::ArcStr;
use std::collections::BTreeMap;

use crate::dn::normalize_dn;
use crate::entry::Entry;
use crate::matched::{Hits, Watch};
use crate::model::{
    dn_is_within, Anchor, AnchorProblem, GroupSelector, Profile, Rules, SourceRule, GROUP_TYPE,
    USER_TYPE,
};
use crate::quote::{quote_for_message, shown_for_message};
use crate::state::RegistrationKey;
use crate::template::RenderOutcome;

use super::desired_state::{mapping_bit, DesiredAccount, SkipCounts, Warning, WarningKind};
use super::groups::{member_dn, valid_group_name, MEMBER_ATTRIBUTES};

/// The names the builder hands out, each allocated once.
#[derive(Debug, Clone)]
pub(super) struct Names {
    /// By index in `Rules::sources`.
    pub(super) sources: Vec<ArcStr>,
    /// By index in `Rules::mappings`: the mapping's name, and its protocol's (shared by
    /// the mappings of one protocol).
    pub(super) mappings: Vec<ArcStr>,
    pub(super) protocols: Vec<ArcStr>,
    /// By index in `Rules::mappings`: the rank of the mapping's protocol among the
    /// protocols in name order.
    pub(super) protocol_ranks: Vec<u16>,
}

impl Names {
    pub(super) fn new(rules: &Rules) -> Self {
        let mut protocols: BTreeMap<&str, ArcStr> = BTreeMap::new();
        for mapping in &rules.mappings {
            protocols
                .entry(mapping.protocol.as_str())
                .or_insert_with(|| mapping.protocol.as_str().into());
        }
        let protocol_rank: BTreeMap<&str, u16> = protocols
            .keys()
            .enumerate()
            .map(|(rank, name)| (*name, rank as u16))
            .collect();
        Names {
            sources: rules
                .sources
                .iter()
                .map(|s| s.name.as_str().into())
                .collect(),
            mappings: rules
                .mappings
                .iter()
                .map(|m| m.name.as_str().into())
                .collect(),
            protocols: rules
                .mappings
                .iter()
                .map(|m| protocols[m.protocol.as_str()].clone())
                .collect(),
            protocol_ranks: rules
                .mappings
                .iter()
                .map(|m| protocol_rank[m.protocol.as_str()])
                .collect(),
        }
    }
}

/// The per-entry step of building the desired state: what one entry contributes, worked
/// out from the entry and the rules alone. It holds no state, so several threads can
/// prepare entries while one [`DesiredBuilder`](crate::desired::DesiredBuilder) takes the results in reading order.
#[derive(Debug, Clone)]
pub struct EntryPreparer<'r> {
    pub(super) rules: &'r Rules,
    /// Whether any rule needs entries' normalised DNs (parsing a DN costs).
    pub(super) needs_normalized_dn: bool,
    pub(super) names: Names,
    /// What counting an entry's figures looks at.
    pub(super) watch: Watch,
}

/// Where one entry can touch the plan: the anchor it arrives with (a user, or one an
/// exclusion freezes) and the names its mappings produce (claimed, or frozen by an
/// IM-name exclusion). A delta plan finds the entries it must look at again through
/// these: entries sharing an anchor settle together, and so do the claims on a name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFootprint {
    pub anchor: Option<ArcStr>,
    /// The entry makes an account (a user entry with an anchor, not frozen).
    pub yields_account: bool,
    /// Sorted, without duplicates.
    pub names: Vec<RegistrationKey>,
    /// A group entry a distribution-list rule reads: the group names it gives (sorted,
    /// without duplicates) and its member DNs, normalised (none when it is frozen).
    pub groups: Vec<String>,
    pub members: Vec<String>,
}

/// What [`EntryPreparer::prepare`] made of one entry, for
/// [`DesiredBuilder::add_prepared`](crate::desired::DesiredBuilder::add_prepared),
/// with the figures it adds to (its source's entries read, the rules it matched, the
/// watched attributes it holds: [`crate::matched`]).
#[derive(Debug)]
pub struct PreparedEntry(pub(super) Prepared, pub(super) Hits);

#[derive(Debug)]
pub(super) enum Prepared {
    /// Neither a user nor a group entry a rule reads, or of an unknown source.
    Ignored,
    /// A user entry without its source's anchor attribute.
    MissingAnchor(Warning),
    /// A user entry an exclusion freezes: no account has this anchor.
    Frozen {
        anchor: ArcStr,
        source: usize,
        /// The normalised DN, when a group rule reads the source.
        group_dn: Option<String>,
    },
    User(Candidate),
    Group(GroupEntry),
}

/// An account as one entry makes it, with the claims the entry makes.
#[derive(Debug)]
pub(super) struct Candidate {
    pub(super) account: DesiredAccount,
    /// Index in `Rules::sources`.
    pub(super) source: usize,
    pub(super) claims: Vec<PendingClaim>,
    /// The normalised DN, kept only when a group rule reads the account's source.
    pub(super) group_dn: Option<String>,
    /// What counts only if the candidate is the one kept when it arrives: an entry that
    /// loses to another with the same anchor leaves no trace but a warning.
    pub(super) effects: Option<Box<Effects>>,
}

/// A value a mapping produced for an entry.
#[derive(Debug)]
pub(super) struct PendingClaim {
    /// Index in `Rules::mappings`.
    pub(super) mapping: usize,
    pub(super) im_name: ArcStr,
    pub(super) name_key: ArcStr,
}

/// Skip counts, warnings and frozen names an entry gives rise to.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// (mapping index, counts).
    pub(super) skipped: Vec<(usize, SkipCounts)>,
    pub(super) warnings: Vec<Warning>,
    pub(super) frozen_registrations: Vec<RegistrationKey>,
}

impl Effects {
    pub(super) fn skip(&mut self, mapping: usize) -> &mut SkipCounts {
        if let Some(at) = self.skipped.iter().position(|(m, _)| *m == mapping) {
            return &mut self.skipped[at].1;
        }
        self.skipped.push((mapping, SkipCounts::default()));
        &mut self.skipped.last_mut().expect("just pushed").1
    }
}

/// A group entry as a distribution-list rule's source yields it.
#[derive(Debug)]
pub(super) struct GroupEntry {
    pub(super) source: usize,
    /// Normalised.
    pub(super) dn: String,
    pub(super) frozen: bool,
    /// (rule index, group name) for each distribution-list rule that matches the entry
    /// and gives a usable name.
    pub(super) lists: Vec<(usize, String)>,
    pub(super) warnings: Vec<Warning>,
    /// Normalised member DNs (`member` and `uniqueMember`); none when frozen.
    pub(super) members: Vec<String>,
}

/// What the mappings make of one enabled user entry.
#[derive(Default)]
struct MappedNames {
    claims: Vec<PendingClaim>,
    /// Bits of the mappings whose `when` filter rejected the entry ([`mapping_bit`]).
    rejected_by: u32,
    /// Bits of the mappings that produced a name for it.
    produced_by: u32,
}

/// The warning for a user entry of `source` whose anchor is missing or unusable.
fn missing_anchor(source: &SourceRule, entry: &Entry, problem: AnchorProblem) -> Warning {
    let attribute = match &source.anchor {
        Anchor::Attribute(name) => name.as_str(),
        Anchor::Dn => "dn",
    };
    let what = match problem {
        AnchorProblem::Missing => format!("has no anchor attribute {attribute}"),
        AnchorProblem::Empty => format!("has an empty anchor {attribute}"),
        AnchorProblem::NotAGuid(bytes) => format!(
            "has an {attribute} of {bytes} bytes, which is no GUID (16 bytes, or \
             written out as 8-4-4-4-12 hex digits)"
        ),
    };
    Warning {
        account: Some(entry.dn.clone()),
        ..Warning::new(
            WarningKind::MissingAnchor,
            format!(
                "entry {} of source {} {what}; skipped",
                shown_for_message(&entry.dn),
                source.name
            ),
        )
    }
}

impl<'r> EntryPreparer<'r> {
    /// The per-entry step for `rules`.
    pub fn new(rules: &'r Rules) -> Self {
        let needs_normalized_dn = rules.sources.iter().any(|s| s.anchor == Anchor::Dn)
            || !rules.policy.protected_principals.is_empty()
            || rules.exclusions.iter().any(|e| e.freezes_by_dn());
        EntryPreparer {
            rules,
            needs_normalized_dn,
            names: Names::new(rules),
            watch: Watch::new(rules),
        }
    }

    /// What one entry of `source_name` contributes. Users become accounts; group entries
    /// are recorded when a distribution-list rule reads the source; other entries are
    /// ignored.
    pub fn prepare(&self, source_name: &str, entry: &Entry) -> PreparedEntry {
        let Some(source) = self
            .rules
            .sources
            .iter()
            .position(|s| s.name == source_name)
        else {
            return PreparedEntry(Prepared::Ignored, Hits::default());
        };
        let mut hits = Hits::of_source(source);
        self.watch.count_attributes(source, entry, &mut hits);
        let prepared = self.prepare_entry(source, entry, &mut hits);
        PreparedEntry(prepared, hits)
    }

    /// The footprint of an entry this preparer prepared.
    pub fn footprint(&self, prepared: &PreparedEntry) -> EntryFootprint {
        match &prepared.0 {
            Prepared::Ignored | Prepared::MissingAnchor(_) => EntryFootprint::default(),
            Prepared::Group(group) => {
                let mut groups: Vec<String> =
                    group.lists.iter().map(|(_, name)| name.clone()).collect();
                groups.sort_unstable();
                groups.dedup();
                let mut members = group.members.clone();
                members.sort_unstable();
                members.dedup();
                EntryFootprint {
                    groups,
                    members,
                    ..EntryFootprint::default()
                }
            }
            Prepared::Frozen { anchor, .. } => EntryFootprint {
                anchor: Some(anchor.clone()),
                ..EntryFootprint::default()
            },
            Prepared::User(candidate) => {
                let mut names: Vec<RegistrationKey> = candidate
                    .claims
                    .iter()
                    .map(|claim| RegistrationKey {
                        protocol: self.names.protocols[claim.mapping].clone(),
                        name_key: claim.name_key.clone(),
                    })
                    .chain(
                        candidate
                            .effects
                            .iter()
                            .flat_map(|effects| effects.frozen_registrations.iter().cloned()),
                    )
                    .collect();
                names.sort_unstable();
                names.dedup();
                EntryFootprint {
                    anchor: Some(candidate.account.anchor.clone()),
                    yields_account: true,
                    names,
                    ..EntryFootprint::default()
                }
            }
        }
    }

    /// What one entry of the source at `source_index` in `Rules::sources` is: ignored, a
    /// group entry, a user without an anchor, a frozen user, or a user's candidate account.
    fn prepare_entry(&self, source_index: usize, entry: &Entry, hits: &mut Hits) -> Prepared {
        let rules = self.rules;
        let source = &rules.sources[source_index];
        let reads_groups = rules.groups.iter().any(|g| g.source == source.name);
        match rules.object_types.classify(entry) {
            Some(USER_TYPE) => {}
            Some(GROUP_TYPE) if reads_groups => {
                return Prepared::Group(self.prepare_group(source_index, entry, hits))
            }
            _ => return Prepared::Ignored,
        }
        let anchor = match source.anchor.value_of(entry) {
            Ok(anchor) => anchor,
            Err(problem) => {
                return Prepared::MissingAnchor(missing_anchor(source, entry, problem));
            }
        };
        let normalized_dn = if self.needs_normalized_dn || reads_groups {
            normalize_dn(&entry.dn)
        } else {
            String::new()
        };
        for (index, rule) in rules.groups.iter().enumerate() {
            if let GroupSelector::OrgUnit(subtree) = &rule.selector {
                if rule.source == source.name && dn_is_within(&normalized_dn, subtree) {
                    hits.set(self.watch.group_bit(index));
                }
            }
        }
        if self.freezes(entry, &normalized_dn, hits) {
            return Prepared::Frozen {
                anchor: anchor.into(),
                source: source_index,
                group_dn: reads_groups.then_some(normalized_dn),
            };
        }
        let dn = (normalized_dn, reads_groups);
        Prepared::User(self.prepare_user(source_index, entry, anchor, dn, hits))
    }

    /// A user entry with its `anchor`, not frozen: its candidate account and claims.
    /// `normalized_dn` is kept as the candidate's `group_dn` when `reads_groups`.
    fn prepare_user(
        &self,
        source_index: usize,
        entry: &Entry,
        anchor: String,
        (normalized_dn, reads_groups): (String, bool),
        hits: &mut Hits,
    ) -> Candidate {
        let rules = self.rules;
        let source = &rules.sources[source_index];
        let enabled = rules
            .accounts
            .disabled_when
            .as_ref()
            .is_none_or(|filter| !filter.matches(entry));
        if !enabled {
            hits.set(self.watch.disabled_bit());
        }
        let protected = !rules.policy.protected_principals.is_empty()
            && rules.policy.protected_principals.contains(&normalized_dn);
        let mut values: [Option<String>; 6] = Default::default();
        for (field, template) in &rules.accounts.profile {
            values[field.index()] = template.render_first(entry);
        }
        let profile = Profile::from_values(values);

        let mut effects = Effects::default();
        let mut mapped = MappedNames::default();
        if enabled {
            mapped = self.map_names(&source.name, entry, &anchor, protected, &mut effects, hits);
        } else {
            // Counted under skipped: each mapping that would have read this user.
            for (index, mapping) in rules.mappings.iter().enumerate() {
                if mapping.reads(&source.name)
                    && mapping.when.as_ref().is_none_or(|f| f.matches(entry))
                {
                    effects.skip(index).disabled += 1;
                }
            }
        }
        let has_effects = !effects.skipped.is_empty()
            || !effects.warnings.is_empty()
            || !effects.frozen_registrations.is_empty();
        Candidate {
            account: DesiredAccount {
                anchor: anchor.into(),
                dn: entry.dn.as_str().into(),
                source: self.names.sources[source_index].clone(),
                enabled,
                profile,
                protected,
                rejected_by: mapped.rejected_by,
                produced_by: mapped.produced_by,
            },
            source: source_index,
            claims: mapped.claims,
            group_dn: reads_groups.then_some(normalized_dn),
            effects: has_effects.then(|| Box::new(effects)),
        }
    }

    /// What the mappings reading `source_name` make of an enabled user entry: its claims,
    /// and which mappings rejected it and produced a name for it. A protected principal's
    /// names are withheld, with a warning.
    fn map_names(
        &self,
        source_name: &str,
        entry: &Entry,
        anchor: &str,
        protected: bool,
        effects: &mut Effects,
        hits: &mut Hits,
    ) -> MappedNames {
        let mut mapped = MappedNames::default();
        let mut withheld = 0usize;
        for (index, mapping) in self.rules.mappings.iter().enumerate() {
            if !mapping.reads(source_name) {
                continue;
            }
            if mapping.when.as_ref().is_some_and(|f| !f.matches(entry)) {
                mapped.rejected_by |= mapping_bit(index).unwrap_or(0);
                continue;
            }
            hits.set(self.watch.mapping_bit(index));
            let values = match mapping.value.render_outcome(entry) {
                RenderOutcome::Values(values) => values,
                RenderOutcome::MissingAttribute(_) => {
                    effects.skip(index).missing_attribute += 1;
                    continue;
                }
                RenderOutcome::Empty => continue,
            };
            for im_name in values {
                let Some((im_name, name_key)) =
                    self.claimable(index, im_name, entry, anchor, effects, hits)
                else {
                    continue;
                };
                if protected {
                    withheld += 1;
                    continue;
                }
                mapped.produced_by |= mapping_bit(index).unwrap_or(0);
                mapped.claims.push(PendingClaim {
                    mapping: index,
                    im_name,
                    name_key,
                });
            }
        }
        if withheld > 0 {
            effects.warnings.push(Warning {
                account: Some(anchor.to_string()),
                ..Warning::new(
                    WarningKind::ProtectedPrincipal,
                    format!(
                        "{} is a protected principal: {withheld} registration(s) withheld",
                        shown_for_message(&entry.dn)
                    ),
                )
            });
        }
        mapped
    }

    /// A value `im_name` the mapping at `index` produced for `entry`: its IM name and name
    /// key when it can be claimed. `None` when the protocol refuses it (counted, with a
    /// warning) or an exclusion freezes it (recorded among the frozen names).
    fn claimable(
        &self,
        index: usize,
        im_name: String,
        entry: &Entry,
        anchor: &str,
        effects: &mut Effects,
        hits: &mut Hits,
    ) -> Option<(ArcStr, ArcStr)> {
        let mapping = &self.rules.mappings[index];
        let protocol_rule = self.rules.protocol(&mapping.protocol);
        if let Some(problem) = protocol_rule.problem_with(&im_name) {
            effects.skip(index).invalid_name += 1;
            let message = format!(
                "mapping {} produced {} name {} for {}, which {problem}; skipped",
                mapping.name,
                mapping.protocol,
                quote_for_message(&im_name),
                shown_for_message(&entry.dn)
            );
            effects.warnings.push(Warning {
                kind: WarningKind::InvalidName,
                protocol: Some(mapping.protocol.clone()),
                im_name: Some(im_name),
                account: Some(anchor.to_string()),
                held_by: None,
                mapping: Some(mapping.name.clone()),
                group: None,
                message,
            });
            return None;
        }
        let im_name: ArcStr = im_name.into();
        let name_key: ArcStr = if protocol_rule.is_own_name_key(&im_name) {
            im_name.clone()
        } else {
            protocol_rule.name_key(&im_name).into()
        };
        let mut frozen = false;
        for (index, exclusion) in self.rules.exclusions.iter().enumerate() {
            if exclusion.freezes_registration(&mapping.protocol, &name_key) {
                hits.set(self.watch.exclusion_bit(index));
                frozen = true;
            }
        }
        if frozen {
            effects.frozen_registrations.push(RegistrationKey {
                protocol: mapping.protocol.as_str().into(),
                name_key,
            });
            return None;
        }
        Some((im_name, name_key))
    }

    /// Whether an exclusion freezes the entry, counting each one that does.
    pub(super) fn freezes(&self, entry: &Entry, normalized_dn: &str, hits: &mut Hits) -> bool {
        let mut frozen = false;
        for (index, exclusion) in self.rules.exclusions.iter().enumerate() {
            if exclusion.freezes_entry(entry, normalized_dn) {
                hits.set(self.watch.exclusion_bit(index));
                frozen = true;
            }
        }
        frozen
    }

    /// A group entry: the names it gives under each distribution-list rule that matches
    /// it, and its member DNs (for itself and for lists that nest it).
    pub(super) fn prepare_group(
        &self,
        source_index: usize,
        entry: &Entry,
        hits: &mut Hits,
    ) -> GroupEntry {
        let rules = self.rules;
        let source = rules.sources[source_index].name.as_str();
        let dn = normalize_dn(&entry.dn);
        let frozen = self.freezes(entry, &dn, hits);
        let mut lists = Vec::new();
        let mut warnings = Vec::new();
        for (index, rule) in rules.groups.iter().enumerate() {
            let GroupSelector::DistributionList(filter) = &rule.selector else {
                continue;
            };
            if rule.source != source {
                continue;
            }
            if !filter.matches(entry) {
                continue;
            }
            hits.set(self.watch.group_bit(index));
            let name = rule.name.render(entry).into_iter().next();
            let Some(name) = name.as_deref().and_then(valid_group_name) else {
                warnings.push(Warning {
                    group: name.clone(),
                    ..Warning::new(
                        WarningKind::InvalidGroupName,
                        format!(
                            "group entry \"{}\" gives no usable name for group rule {} ({}); skipped",
                            shown_for_message(&entry.dn),
                            rule.owner,
                            match &name {
                                Some(name) => format!("got {}", quote_for_message(name)),
                                None => "an attribute the name reads is missing".to_string(),
                            }
                        ),
                    )
                });
                continue;
            };
            lists.push((index, name.to_string()));
        }
        let members = if frozen {
            Vec::new()
        } else {
            MEMBER_ATTRIBUTES
                .iter()
                .flat_map(|attribute| entry.values(attribute))
                .map(member_dn)
                .collect()
        };
        GroupEntry {
            source: source_index,
            dn,
            frozen,
            lists,
            warnings,
            members,
        }
    }
}
