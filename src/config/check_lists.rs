//! The checks of the list sections besides `sources`: mappings, groups, exclusions,
//! protocols and schedules, each item's name unique within its kind.

use super::check::Checker;
use super::locate::Locator;
use super::problem::Location;
use super::raw::{self, ExclusionSpec, GroupSpec, MappingSpec, ProtocolSpec, ScheduleSpec};
use registrar_core::dn::normalize_dn;
use registrar_core::model::{
    Exclusion, ExclusionSelector, GroupRule, GroupSelector, Mapping, ProtocolRule,
    DEFAULT_MAX_IM_NAME_LENGTH,
};

impl Checker<'_> {
    /// Takes a file's mappings.
    pub(super) fn mappings(&mut self, mappings: &[MappingSpec], locate: &Locator<'_>) {
        for (index, mapping) in mappings.iter().enumerate() {
            let at = locate.list_item("mappings", index);
            if !self.unique("mapping", &mapping.name.0, at) {
                continue;
            }
            self.rules.mappings.push(Mapping {
                name: mapping.name.0.clone(),
                protocol: mapping.protocol.0.to_ascii_lowercase(),
                value: mapping.value.1.clone(),
                when: mapping.when.as_ref().map(|f| f.1.clone()),
                sources: mapping.sources.clone(),
                renamed_from: mapping.renamed_from.clone(),
            });
        }
    }

    /// Checks a file's group rules: each kind with the selector it takes.
    pub(super) fn groups(&mut self, groups: &[GroupSpec], locate: &Locator<'_>) {
        for (index, group) in groups.iter().enumerate() {
            let at = locate.list_item("groups", index);
            if !self.unique("group", &group.name.0, at.clone()) {
                continue;
            }
            if let Some(selector) = self.group_selector(group, at) {
                self.rules.groups.push(GroupRule {
                    owner: group.name.0.clone(),
                    name: group.name.1.clone(),
                    source: group.source.clone(),
                    selector,
                });
            }
        }
    }

    /// What a group rule selects: a distribution list by a filter, an org unit (its name
    /// plain, not a template) by a DN.
    fn group_selector(&mut self, group: &GroupSpec, at: Location) -> Option<GroupSelector> {
        let name = &group.name.0;
        let refused = match (group.kind, &group.filter, &group.dn) {
            (raw::GroupKind::DistributionList, Some(filter), None) => {
                return Some(GroupSelector::DistributionList(Box::new(filter.1.clone())))
            }
            (raw::GroupKind::DistributionList, None, _) => "a distribution_list needs a filter",
            (raw::GroupKind::DistributionList, Some(_), Some(_)) => {
                "a distribution_list takes a filter, not a dn"
            }
            (raw::GroupKind::OrgUnit, _, None) => "an org_unit needs a dn",
            (raw::GroupKind::OrgUnit, Some(_), Some(_)) => "an org_unit takes a dn, not a filter",
            (raw::GroupKind::OrgUnit, None, Some(dn)) => {
                let literal = group.name.1.attributes().is_empty()
                    && !group.name.1.render(&Default::default()).is_empty();
                if literal {
                    return Some(GroupSelector::OrgUnit(normalize_dn(dn)));
                }
                "an org_unit's name is a plain name, not a template"
            }
        };
        self.problem(at, format!("group {name:?}: {refused}"));
        None
    }

    /// Checks a file's exclusions: each selects by exactly one of DN subtree, filter or
    /// IM name.
    pub(super) fn exclusions(&mut self, exclusions: &[ExclusionSpec], locate: &Locator<'_>) {
        for (index, exclusion) in exclusions.iter().enumerate() {
            let at = locate.list_item("exclusions", index);
            if !self.unique("exclusion", &exclusion.name.0, at.clone()) {
                continue;
            }
            let selector = match (&exclusion.dn_subtree, &exclusion.filter, &exclusion.im_name) {
                (Some(dn), None, None) if exclusion.protocol.is_none() => {
                    Some(ExclusionSelector::DnSubtree(normalize_dn(dn)))
                }
                (None, Some(filter), None) if exclusion.protocol.is_none() => {
                    Some(ExclusionSelector::Filter(Box::new(filter.1.clone())))
                }
                (None, None, Some(pattern)) => Some(ExclusionSelector::ImName {
                    protocol: exclusion.protocol.as_ref().map(|p| p.to_ascii_lowercase()),
                    pattern: pattern.1.clone(),
                }),
                _ => {
                    self.problem(
                        at,
                        format!(
                            "exclusion {} must have exactly one of dn_subtree, filter or im_name (protocol goes only with im_name)",
                            exclusion.name
                        ),
                    );
                    None
                }
            };
            if let Some(selector) = selector {
                self.rules.exclusions.push(Exclusion {
                    name: exclusion.name.0.clone(),
                    selector,
                });
            }
        }
    }

    /// Checks a file's protocol rules.
    pub(super) fn protocols(&mut self, protocols: &[ProtocolSpec], locate: &Locator<'_>) {
        for (index, protocol) in protocols.iter().enumerate() {
            let at = locate.list_item("protocols", index);
            if !self.unique("protocol", &protocol.name.0, at.clone()) {
                continue;
            }
            if protocol.max_length == Some(0) {
                self.problem(
                    locate.token_after(&at, "max_length"),
                    format!("protocol {}: max_length must be at least 1", protocol.name),
                );
            }
            self.rules.protocols.insert(
                protocol.name.0.to_ascii_lowercase(),
                ProtocolRule {
                    max_length: protocol.max_length.unwrap_or(DEFAULT_MAX_IM_NAME_LENGTH),
                    allowed: protocol.allowed.as_ref().map(|r| r.1.clone()),
                    case_sensitive: protocol.case_sensitive,
                },
            );
        }
    }

    /// Checks a file's schedules' names (their cron expressions were read with them).
    pub(super) fn schedules(&mut self, schedules: &[ScheduleSpec], locate: &Locator<'_>) {
        for (index, schedule) in schedules.iter().enumerate() {
            let at = locate.list_item("schedules", index);
            self.unique("schedule", &schedule.name.0, at);
        }
    }
}
