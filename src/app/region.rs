//! Delta plans by region: `plan --mode delta` at the cost of the change. The unseen
//! change files are applied to the kept snapshots (reading only the kept entries they
//! touch), and the store's footprints of the kept entries say which other entries and
//! rows the change can affect; `core::region` plans that region against the standing
//! facts of the last apply.
//!
//! Used when the store can answer for the rest of the directory: its standing facts were
//! left by the last write to it (their serial is the store's) under this very config,
//! and every source is an `ldif` source with a kept snapshot. Otherwise, and when the
//! region cannot settle the plan (a source left with no account, standing facts that do
//! not add up), the delta read streams every kept entry instead, with a note that says
//! why. Either way the plan is the one `--mode full` makes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use super::snapshots::{kept_entry, open_delta, unreadable, Delta};
use super::sources::{source_error, InputsDigest};
use super::{AppError, SourcesRead};
use crate::adapters::ldif::parse_entry_record;
use crate::adapters::store::{Store, StoreError};
use crate::adapters::tree::Tree;
use crate::config::{Config, SourceLocation};
use registrar_core::desired::{Desired, DesiredBuilder, EntryFootprint, EntryPreparer};
use registrar_core::entry::{Attribute, Entry};
use registrar_core::model::{ExclusionSelector, GroupSelector};
use registrar_core::plan::Plan;
use registrar_core::region::{plan_region, Region, STANDING_FACTS_VERSION};
use registrar_core::state::{RegistrationKey, State};

/// Why no delta plan by region can be made under `config`, if none can.
pub(super) fn blocker(config: &Config) -> Option<String> {
    if let Some(source) = config
        .sources
        .iter()
        .find(|source| !matches!(source.location, SourceLocation::Ldif { .. }))
    {
        return Some(format!("source {} is not an ldif source", source.name));
    }
    None
}

/// What became of a delta plan by region.
pub(super) enum ByRegion {
    /// The plan, what was read, and how many entries the region held.
    Planned(Box<Plan>, SourcesRead, usize),
    /// The store cannot answer for the rest of the directory: every kept entry must be
    /// read, for this reason (worth a note once that read has gone well).
    ReadEverything(Option<String>),
}

/// The plan of `config` with every source read in delta, by region, if the store can
/// answer for the rest of the directory.
pub(super) fn plan_by_region(
    config: &Config,
    files: &Tree,
    config_dir: &Path,
    store: &Store,
) -> Result<ByRegion, AppError> {
    let why_not = |why: String| Ok(ByRegion::ReadEverything(Some(why)));
    if let Some(why) = blocker(config) {
        return why_not(why);
    }
    let serial = store.serial()?;
    let Some(standing) = store.kept_standing()? else {
        return why_not("the store keeps no standing facts yet (an apply keeps them)".to_string());
    };
    if standing.serial != serial {
        return why_not(format!(
            "the store was written at serial {serial}, after the last apply of an import (serial {})",
            standing.serial
        ));
    }
    if standing.config_digest != InputsDigest::config_only(&config.files) {
        return why_not("the config changed since the last apply".to_string());
    }
    if standing.facts.version != STANDING_FACTS_VERSION {
        return why_not(
            "the store's standing facts were kept by an older registrar (the next apply keeps \
             new ones)"
                .to_string(),
        );
    }
    if standing.facts.sources.is_none() {
        return why_not(
            "the store's standing facts predate the plan's sources figures (the next apply keeps them)"
                .to_string(),
        );
    }
    let kept = store.kept_snapshots()?;
    let mut digest = InputsDigest::of_config(&config.files);
    let mut imports = Vec::with_capacity(config.sources.len());
    let mut region = RegionEntries::new(config, store);
    for source in &config.sources {
        let Some(kept) = kept.get(&source.name) else {
            return Ok(ByRegion::ReadEverything(None)); // the full read says why
        };
        let Delta { overlay, import } =
            open_delta(source, kept, store, files, config_dir, &mut digest)?;
        for (key, after) in overlay.touched() {
            let before = kept_entry(store, &source.name, key)
                .map_err(|e| source_error(source, e.to_string()))?;
            region.insert(&source.name, key, before, after.cloned());
        }
        imports.push(import);
    }
    region.close()?;

    let (before, after) = region.desired();
    for source in config.rules.sources.iter().filter(|s| !s.allow_empty) {
        let yields = after.accounts_per_source.get(&source.name).copied();
        if yields.unwrap_or(0) == 0
            && !store.kept_yielding_beyond(&source.name, &region.keys_of(&source.name))?
        {
            return why_not(format!("source {} may yield no account", source.name));
        }
    }
    let group_names: BTreeSet<String> = before
        .groups
        .keys()
        .chain(after.groups.keys())
        .chain(before.frozen_groups.iter())
        .chain(after.frozen_groups.iter())
        .cloned()
        .collect();
    let state = region.state(serial, &group_names)?;
    let entries = region.entries.len();
    let names = std::mem::take(&mut region.names);
    let members = std::mem::take(&mut region.members);
    let mut counting = None;
    let plan = plan_region(
        &config.rules,
        Region {
            names,
            members,
            before,
            after,
            state,
        },
        &standing.facts,
        || match store.managed_counts() {
            Ok(counts) => {
                counts.accounts + counts.registrations + counts.groups + counts.group_members
            }
            Err(e) => {
                counting = Some(e);
                0
            }
        },
    );
    if let Some(e) = counting {
        return Err(e.into());
    }
    let Some(plan) = plan else {
        return why_not("the standing facts do not add up with the store".to_string());
    };
    if store.serial()? != serial || store.kept_snapshots()? != kept {
        return Err(AppError::Refused(
            "the store changed while this plan read it (another apply ran); plan again".to_string(),
        ));
    }
    Ok(ByRegion::Planned(
        Box::new(plan),
        SourcesRead {
            inputs_digest: digest.finish(),
            imports,
        },
        entries,
    ))
}

/// An entry of the region as it was (kept) and as it is, with the footprint of each.
struct Versions {
    before: Option<Entry>,
    after: Option<Entry>,
    prints: [EntryFootprint; 2],
}

impl Versions {
    /// Whether either version is a group entry a rule reads.
    fn is_group(&self) -> bool {
        self.prints
            .iter()
            .any(|print| !print.groups.is_empty() || !print.members.is_empty())
    }
}

/// The region being gathered: its entries by (source, normalised DN), the names whose
/// claims it holds whole, the accounts whose group memberships it holds whole, and every
/// anchor it involves.
struct RegionEntries<'c> {
    store: &'c Store,
    config: &'c Config,
    preparer: EntryPreparer<'c>,
    entries: BTreeMap<(String, String), Versions>,
    /// The entries the changes touched.
    touched: Vec<(String, String)>,
    /// The group entries whose members the region holds (downward from touched ones).
    expanded: BTreeSet<(String, String)>,
    names: BTreeSet<RegistrationKey>,
    members: BTreeSet<String>,
    anchors: BTreeSet<Arc<str>>,
    /// Anchors whose entries are all in the region.
    anchors_whole: BTreeSet<Arc<str>>,
}

impl<'c> RegionEntries<'c> {
    fn new(config: &'c Config, store: &'c Store) -> Self {
        RegionEntries {
            store,
            config,
            preparer: EntryPreparer::new(&config.rules),
            entries: BTreeMap::new(),
            touched: Vec::new(),
            expanded: BTreeSet::new(),
            names: BTreeSet::new(),
            members: BTreeSet::new(),
            anchors: BTreeSet::new(),
            anchors_whole: BTreeSet::new(),
        }
    }

    fn footprint(&self, source: &str, entry: Option<&Entry>) -> EntryFootprint {
        entry
            .map(|entry| {
                self.preparer
                    .footprint(&self.preparer.prepare(source, entry))
            })
            .unwrap_or_default()
    }

    fn add(&mut self, source: &str, key: &str, before: Option<Entry>, after: Option<Entry>) {
        let prints = [
            self.footprint(source, before.as_ref()),
            self.footprint(source, after.as_ref()),
        ];
        for print in &prints {
            self.anchors.extend(print.anchor.clone());
        }
        self.entries.insert(
            (source.to_string(), key.to_string()),
            Versions {
                before,
                after,
                prints,
            },
        );
    }

    /// Adds an entry the changes touched; its anchors and names are the change's.
    fn insert(&mut self, source: &str, key: &str, before: Option<Entry>, after: Option<Entry>) {
        self.add(source, key, before, after);
        let versions = &self.entries[&(source.to_string(), key.to_string())];
        let mut names = Vec::new();
        let mut anchors = Vec::new();
        for print in &versions.prints {
            names.extend(print.names.iter().cloned());
            anchors.extend(print.anchor.iter().map(|anchor| anchor.to_string()));
        }
        self.names.extend(names);
        self.members.extend(anchors);
        self.touched.push((source.to_string(), key.to_string()));
    }

    /// Adds the kept entry `key` of `source`, which the changes did not touch, unless the
    /// region has it already. Returns whether it is in the region now (a key the snapshot
    /// does not hold is not).
    fn pull(&mut self, source: &str, key: &str) -> Result<bool, AppError> {
        if self
            .entries
            .contains_key(&(source.to_string(), key.to_string()))
        {
            return Ok(true);
        }
        let settings = self
            .config
            .source(source)
            .expect("kept footprints name the config's sources");
        let Some((record, kept_print)) = self.store.kept_entry_with_footprint(source, key)? else {
            return Ok(false);
        };
        let entry = parse_entry_record(&record)
            .map_err(|e| source_error(settings, unreadable(e).to_string()))?;
        // The kept footprint is this config's (the standing facts say so): reading it
        // spares preparing the entry again, which for a large group is most of the cost.
        let print = match kept_print {
            Some(print) => print,
            None => self.footprint(source, Some(&entry)),
        };
        self.anchors.extend(print.anchor.clone());
        self.entries.insert(
            (source.to_string(), key.to_string()),
            Versions {
                before: Some(entry.clone()),
                after: Some(entry),
                prints: [print.clone(), print],
            },
        );
        Ok(true)
    }

    /// One list of the footprints of the region's entry `key` of `source`, before and
    /// after the change together.
    fn both<T: Ord + Clone>(
        &self,
        source: &str,
        key: &str,
        list: impl Fn(&EntryFootprint) -> &Vec<T>,
    ) -> BTreeSet<T> {
        let prints = &self.entries[&(source.to_string(), key.to_string())].prints;
        prints
            .iter()
            .flat_map(|print| list(print).iter().cloned())
            .collect()
    }

    /// Pulls in every kept entry on `anchor` (once per anchor); returns their keys.
    fn pull_anchor(&mut self, anchor: &Arc<str>) -> Result<Vec<(String, String)>, AppError> {
        if !self.anchors_whole.insert(anchor.clone()) {
            return Ok(Vec::new());
        }
        let keys = self.store.kept_on_anchor(anchor)?;
        for (source, key) in &keys {
            self.pull(source, key)?;
        }
        Ok(keys)
    }

    /// Closes the region over what the touched entries can affect: the entries on their
    /// anchors (whose names join the region), the names their accounts hold, every entry
    /// producing one of those names, and the entries on the anchors of those and of the
    /// names' holders (to know which entry wins each anchor). With group rules, also the
    /// groups (see [`RegionEntries::close_groups`]).
    fn close(&mut self) -> Result<(), AppError> {
        let touched: Vec<Arc<str>> = self.anchors.iter().cloned().collect();
        for anchor in &touched {
            for (source, key) in self.pull_anchor(anchor)? {
                let names = self.both(&source, &key, |print| &print.names);
                self.names.extend(names);
            }
            self.names.extend(self.store.names_held_by(anchor)?);
        }
        let names: Vec<RegistrationKey> = self.names.iter().cloned().collect();
        for name in &names {
            for (source, key) in self.store.kept_producing(name)? {
                self.pull(&source, &key)?;
            }
        }
        for (_, row) in self.store.registrations_on(&self.names)? {
            self.anchors.insert(row.account.clone());
        }
        if !self.config.rules.groups.is_empty() {
            self.close_groups()?;
        }
        let claimants: Vec<Arc<str>> = self.anchors.iter().cloned().collect();
        for anchor in &claimants {
            self.pull_anchor(anchor)?;
        }
        Ok(())
    }

    /// Closes the region over the groups the change can affect. The accounts whose
    /// memberships it holds whole are those of the touched entries and every account a
    /// touched group entry (or one giving the same group name) reaches, before or after:
    /// for each, every group entry reaching it, through nesting. Then every entry giving a
    /// group name the region's group entries give (to settle which one wins the name).
    fn close_groups(&mut self) -> Result<(), AppError> {
        // Downward: what touched group entries, and the entries competing for their
        // names, reach.
        let mut down: Vec<(String, String)> = Vec::new();
        for (source, key) in self.touched.clone() {
            if !self.entries[&(source.clone(), key.clone())].is_group() {
                continue;
            }
            for name in self.both(&source, &key, |print| &print.groups) {
                for (source, key) in self.store.kept_giving_group(&name)? {
                    self.pull(&source, &key)?;
                    down.push((source, key));
                }
            }
            down.push((source, key));
        }
        while let Some((source, key)) = down.pop() {
            if !self.expanded.insert((source.clone(), key.clone())) {
                continue;
            }
            for member in self.both(&source, &key, |print| &print.members) {
                if !self.pull(&source, &member)? {
                    continue;
                }
                let versions = &self.entries[&(source.clone(), member.clone())];
                let anchors: Vec<String> = versions
                    .prints
                    .iter()
                    .filter_map(|print| print.anchor.as_deref().map(str::to_string))
                    .collect();
                if versions.is_group() {
                    down.push((source.clone(), member.clone()));
                }
                self.members.extend(anchors);
            }
        }

        // Upward: every group entry reaching an entry of those accounts (its DN, before
        // or after), or a touched entry.
        let whole: Vec<Arc<str>> = self.members.iter().map(|a| a.as_str().into()).collect();
        for anchor in &whole {
            self.pull_anchor(anchor)?;
        }
        let mut up: Vec<(String, String)> = self.touched.clone();
        for ((source, key), versions) in &self.entries {
            let on_member = versions.prints.iter().any(|print| {
                print
                    .anchor
                    .as_deref()
                    .is_some_and(|anchor| self.members.contains(anchor))
            });
            if on_member {
                up.push((source.clone(), key.clone()));
            }
        }
        let mut listed: BTreeSet<(String, String)> = BTreeSet::new();
        while let Some((source, key)) = up.pop() {
            if !listed.insert((source.clone(), key.clone())) {
                continue;
            }
            for group in self.store.kept_listing(&source, &key)? {
                if self.pull(&source, &group)? {
                    up.push((source.clone(), group));
                }
            }
        }

        // Every entry giving a group name a region group entry gives.
        let names: BTreeSet<String> = self
            .entries
            .values()
            .flat_map(|versions| versions.prints.iter())
            .flat_map(|print| print.groups.iter().cloned())
            .collect();
        for name in names {
            for (source, key) in self.store.kept_giving_group(&name)? {
                self.pull(&source, &key)?;
            }
        }
        Ok(())
    }

    /// The normalised DNs of the region's entries of `source`.
    fn keys_of(&self, source: &str) -> BTreeSet<String> {
        self.entries
            .keys()
            .filter(|(s, _)| s == source)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// The desired state of the region's entries before the changes and after.
    ///
    /// A group entry the region only passes through (neither touched nor expanded) comes
    /// with only the members that can matter: those in the region, and those an expanded
    /// group lists. Its other members are reached, or not, the same way before and after
    /// the change, and are what they were: left out of both, they cancel, and a list of a
    /// hundred thousand members costs what its few relevant ones cost. (Not when a rule or
    /// exclusion reads `member` itself.)
    fn desired(&self) -> (Desired, Desired) {
        let relevant = self.relevant_members();
        let pruned: BTreeMap<&(String, String), Entry> = match &relevant {
            Some(relevant) => self
                .entries
                .iter()
                .filter(|(key, versions)| {
                    versions.is_group()
                        && !self.expanded.contains(*key)
                        && !self.touched.contains(*key)
                })
                .filter_map(|(key, versions)| {
                    let entry = versions.after.as_ref()?;
                    let keep = relevant.get(key.0.as_str());
                    Some((key, pruned_group(entry, &versions.prints[1], keep)))
                })
                .collect(),
            None => BTreeMap::new(),
        };
        let build = |version: fn(&Versions) -> Option<&Entry>| {
            let mut builder = DesiredBuilder::new(&self.config.rules);
            for source in &self.config.sources {
                builder.begin_source(&source.name);
            }
            for (key, versions) in &self.entries {
                let entry = pruned.get(key).or_else(|| version(versions));
                if let Some(entry) = entry {
                    builder.add_entry(&key.0, entry);
                }
            }
            builder.finish()
        };
        (
            build(|versions| versions.before.as_ref()),
            build(|versions| versions.after.as_ref()),
        )
    }

    /// Per source, the member DNs a group entry the region passes through must keep: the
    /// region's entries and what expanded groups list. `None` when a group rule or an
    /// exclusion reads the member attributes themselves (nothing is pruned then).
    fn relevant_members(&self) -> Option<BTreeMap<&str, BTreeSet<&str>>> {
        let reads_members = |attributes: Vec<&str>| {
            attributes.iter().any(|attribute| {
                let base = registrar_core::entry::base_name(attribute);
                base.eq_ignore_ascii_case("member") || base.eq_ignore_ascii_case("uniqueMember")
            })
        };
        let rules = &self.config.rules;
        let groups_read = rules.groups.iter().any(|rule| {
            reads_members(rule.name.attributes())
                || matches!(&rule.selector, GroupSelector::DistributionList(filter) if reads_members(filter.attributes()))
        });
        let exclusions_read = rules.exclusions.iter().any(|exclusion| {
            matches!(&exclusion.selector, ExclusionSelector::Filter(filter) if reads_members(filter.attributes()))
        });
        if groups_read || exclusions_read {
            return None;
        }
        let mut relevant: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (source, key) in self.entries.keys() {
            relevant.entry(source).or_default().insert(key);
        }
        for key in &self.expanded {
            let versions = &self.entries[key];
            let members = versions.prints.iter().flat_map(|print| &print.members);
            relevant
                .entry(&key.0)
                .or_default()
                .extend(members.map(String::as_str));
        }
        Some(relevant)
    }

    /// The store's rows for the region: the accounts on its anchors, the registrations
    /// on its names, the groups its entries give (`group_names`) with their members among
    /// the accounts whose memberships it holds whole.
    fn state(&self, serial: i64, group_names: &BTreeSet<String>) -> Result<State, StoreError> {
        let anchors: BTreeSet<String> = self.anchors.iter().map(|a| a.to_string()).collect();
        Ok(State {
            serial,
            accounts: self
                .store
                .accounts_with(&anchors)?
                .into_iter()
                .map(|account| (account.anchor.clone(), account))
                .collect(),
            registrations: self
                .store
                .registrations_on(&self.names)?
                .into_iter()
                .collect(),
            groups: self
                .store
                .groups_among(group_names, &self.members)?
                .into_iter()
                .map(|group| (group.name.clone(), group))
                .collect(),
        })
    }
}

/// `entry`, a group entry, with `member` values for only the members of its footprint in
/// `keep` (normalised DNs, which read back as themselves) and no other member attribute.
fn pruned_group(entry: &Entry, print: &EntryFootprint, keep: Option<&BTreeSet<&str>>) -> Entry {
    let is_member = |description: &str| {
        let base = registrar_core::entry::base_name(description);
        base.eq_ignore_ascii_case("member") || base.eq_ignore_ascii_case("uniqueMember")
    };
    let mut pruned = Entry {
        dn: entry.dn.clone(),
        attributes: entry
            .attributes
            .iter()
            .filter(|attribute| !is_member(&attribute.description))
            .cloned()
            .collect(),
    };
    let members: Vec<Vec<u8>> = print
        .members
        .iter()
        .filter(|member| keep.is_some_and(|keep| keep.contains(member.as_str())))
        .map(|member| member.as_bytes().to_vec())
        .collect();
    if !members.is_empty() {
        pruned.attributes.push(Attribute {
            description: "member".to_string(),
            values: members,
        });
    }
    pruned
}
