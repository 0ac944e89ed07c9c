//! Delta plans by region: `plan --mode delta` at the cost of the change. The unseen
//! change files are applied to the kept snapshots (reading only the kept entries they
//! touch), and the store's footprints of the kept entries say which other entries and
//! rows the change can affect. The closure rules and the planning are `core::region`'s;
//! this module answers the closure's questions from the store (`StoreDirectory`) and
//! reads the region's rows.
//!
//! Used when the store can answer for the rest of the directory: its standing facts were
//! left by the last write to it (their serial is the store's) under this very config,
//! and every source has a kept snapshot (an LDAP source's brought forward through its
//! change feed, `feeds.rs`). Otherwise, and when the
//! region cannot settle the plan (a source left with no account, standing facts that do
//! not add up), the delta read streams every kept entry instead, with a note that says
//! why. Either way the plan is the one `--mode full` makes.

use registrar_core::ArcStr;
use std::collections::BTreeSet;
use std::path::Path;

use super::error::AppError;
use super::feeds::{open_feed_delta, FeedDelta};
use super::reading::SourcesRead;
use super::snapshots::{kept_entry, open_delta, unreadable, ContentCheck, Delta};
use super::sources::{source_error, InputsDigest};
use crate::adapters::ldif::parse_entry_record;
use crate::adapters::store::{Store, StoreError};
use crate::adapters::tree::Tree;
use crate::config::raw::DeltaFeed;
use crate::config::{Config, SourceLocation, SourceSettings};
use registrar_core::desired::EntryFootprint;
use registrar_core::entry::Entry;
use registrar_core::plan::Plan;
use registrar_core::region::{
    group_names, plan_region, EntryKey, KeptDirectory, Region, RegionEntries,
    STANDING_FACTS_VERSION,
};
use registrar_core::state::{RegistrationKey, State};

/// Why no delta plan by region can be made under `config`, if none can.
pub(super) fn blocker(config: &Config) -> Option<String> {
    config
        .sources
        .iter()
        .find_map(|source| match &source.location {
            SourceLocation::Ldap(settings) if settings.delta == DeltaFeed::None => Some(format!(
                "source {} is read in full every run (delta: none)",
                source.name
            )),
            _ => None,
        })
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
    // The content files' checks go on beside the planning (hashing hundreds of
    // megabytes): the plan stands once every one is confirmed, and the first refusal
    // comes before any other error, which a file changed under its snapshot may explain.
    let mut content_checks: Vec<(&SourceSettings, ContentCheck)> = Vec::new();
    let planned = (|| -> Result<ByRegion, AppError> {
        let mut digest = InputsDigest::of_config(&config.files);
        let mut imports = Vec::with_capacity(config.sources.len());
        let mut feeds = Vec::new();
        let mut region = RegionEntries::new(&config.rules);
        for source in &config.sources {
            let Some(kept) = kept.get(&source.name) else {
                return Ok(ByRegion::ReadEverything(None)); // the full read says why
            };
            if let SourceLocation::Ldap(settings) = &source.location {
                let read = (&config.rules, source, settings);
                let changes = match open_feed_delta(read, files, kept, store)? {
                    FeedDelta::Changed(changes) => changes,
                    // The full read that follows says why.
                    FeedDelta::ReadInFull(_) => return Ok(ByRegion::ReadEverything(None)),
                };
                for (key, after) in &changes.touched {
                    let was = changes.before(key).cloned();
                    let after = after.as_ref().map(|(entry, _)| entry.clone());
                    region.insert(&source.name, key, was, after);
                }
                let sum = changes.entries_sum();
                digest.entries(&sum);
                feeds.push(changes.advance(&source.name, sum));
                continue;
            }
            let Delta {
                overlay,
                import,
                content_check,
            } = open_delta(source, kept, store, files, config_dir, &mut digest)?;
            content_checks.push((source, content_check));
            for (key, after) in overlay.touched() {
                let before = kept_entry(store, &source.name, key)
                    .map_err(|message| source_error(source, message))?;
                region.insert(&source.name, key, before, after.cloned());
            }
            imports.push(import);
        }
        region.close(&StoreDirectory { store, config })?;

        let (before, after) = region.desired();
        for source in config.rules.sources.iter().filter(|s| !s.allow_empty) {
            let yields = after.accounts_per_source.get(&source.name).copied();
            if yields.unwrap_or(0) == 0
                && !store.kept_yielding_beyond(&source.name, &region.keys_of(&source.name))?
            {
                return why_not(format!("source {} may yield no account", source.name));
            }
        }
        let group_names = group_names(&before, &after);
        let state = region_state(store, &region, serial, &group_names)?;
        let entries = region.len();
        let (names, members) = region.into_held();
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
                Ok(counts) => counts.total(),
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
            return Err(AppError::StoreChangedWhilePlanning);
        }
        Ok(ByRegion::Planned(
            Box::new(plan),
            SourcesRead {
                inputs_digest: digest.finish(),
                imports,
                feeds,
            },
            entries,
        ))
    })();
    let mut refusal = None;
    for (source, check) in content_checks {
        if let Err(e) = check.confirm(source) {
            refusal.get_or_insert(e);
        }
    }
    match refusal {
        Some(e) => Err(e),
        None => planned,
    }
}

/// The kept snapshots and the store's registrations, answering the region's closure.
struct StoreDirectory<'c> {
    store: &'c Store,
    config: &'c Config,
}

impl KeptDirectory for StoreDirectory<'_> {
    type Error = AppError;

    fn entry(
        &self,
        source: &str,
        key: &str,
    ) -> Result<Option<(Entry, Option<EntryFootprint>)>, AppError> {
        let settings = self
            .config
            .source(source)
            .ok_or_else(|| AppError::KeptSourceUnknown {
                source_name: source.to_string(),
            })?;
        let Some((record, kept_print)) = self.store.kept_entry_with_footprint(source, key)? else {
            return Ok(None);
        };
        let entry =
            parse_entry_record(&record).map_err(|e| source_error(settings, unreadable(e)))?;
        Ok(Some((entry, kept_print)))
    }

    fn on_anchor(&self, anchor: &str) -> Result<Vec<EntryKey>, AppError> {
        Ok(self.store.kept_on_anchor(anchor)?)
    }

    fn producing(&self, name: &RegistrationKey) -> Result<Vec<EntryKey>, AppError> {
        Ok(self.store.kept_producing(name)?)
    }

    fn giving_group(&self, name: &str) -> Result<Vec<EntryKey>, AppError> {
        Ok(self.store.kept_giving_group(name)?)
    }

    fn listing(&self, source: &str, member: &str) -> Result<Vec<String>, AppError> {
        Ok(self.store.kept_listing(source, member)?)
    }

    fn names_held_by(&self, anchor: &str) -> Result<Vec<RegistrationKey>, AppError> {
        Ok(self.store.names_held_by(anchor)?)
    }

    fn holders_of(&self, names: &BTreeSet<RegistrationKey>) -> Result<Vec<ArcStr>, AppError> {
        let rows = self.store.registrations_on(names)?;
        Ok(rows.into_iter().map(|(_, row)| row.account).collect())
    }
}

/// The store's rows for `region`: the accounts on its anchors, the registrations on its
/// names, the groups its entries give (`group_names`) with their members among the
/// accounts whose memberships it holds whole.
fn region_state(
    store: &Store,
    region: &RegionEntries,
    serial: i64,
    group_names: &BTreeSet<String>,
) -> Result<State, StoreError> {
    let anchors: BTreeSet<String> = region.anchors().iter().map(|a| a.to_string()).collect();
    Ok(State {
        serial,
        accounts: store
            .accounts_with(&anchors)?
            .into_iter()
            .map(|account| (account.anchor.clone(), account))
            .collect(),
        registrations: store
            .registrations_on(region.names())?
            .into_iter()
            .collect(),
        groups: store
            .groups_among(group_names, region.members())?
            .into_iter()
            .map(|group| (group.name.clone(), group))
            .collect(),
    })
}
