//! One reconcile pass, shared by `plan`, `apply`, `drift` and the controller: config +
//! sources + state → plan ([`reconcile`]). With a review (`--base`, `--trusted-rev`) it
//! also reads the head's LDAP sources with a trusted revision's connection settings and
//! computes the effect of the change since the base; with `--mode delta` it first tries
//! a plan by region (`region.rs`).
//!
//! It does not print the plan or write the store: its callers do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::context::Context;
use super::error::AppError;
use super::feeds::FeedKeep;
use super::reading::{
    at_revision, files_read, head_files, read_config, read_desired, Reading, SourcesRead,
    StateStream,
};
use super::region::{self, ByRegion};
use super::sources::InputsDigest;
use super::threads::{join, spawn_scoped};
use crate::adapters::render::PlanDocument;
use crate::adapters::store::{Store, StreamedRows};
use crate::adapters::tree::{Tree, TreeError};
use crate::config::raw::ImportMode;
use crate::config::trust;
use crate::config::{Config, ConfigText};
use registrar_core::desired::Desired;
use registrar_core::effect::SourceTrust;
use registrar_core::effect::{self, Effect, FileDiff, FileStatus};
use registrar_core::plan::{plan_with_rows, Plan, PlanError};

/// What one reconcile pass produced.
#[derive(Debug)]
pub struct Reconciled {
    /// The plan, with `revision` set to the commit the config was read at.
    pub plan: Plan,
    /// The config came from a working tree that differed from that commit.
    pub revision_dirty: bool,
    /// With a base revision: the effect of the change since it.
    pub effect: Option<Effect>,
    /// A delta plan by region: how many entries it read (`None`: every entry was read).
    pub region_entries: Option<usize>,
    /// A review: the head's LDAP sources read with a trusted revision's connection
    /// settings, or not read (one note per source whose reading differs from its config).
    pub connection_trust: Vec<SourceTrust>,
    /// What an apply keeps of the LDAP sources read through their change feeds.
    pub(super) feeds: Vec<FeedKeep>,
}

/// What a reconcile pass is for: an apply also keeps what it read of the LDAP sources
/// with a change feed (the cookie taken first, every entry spooled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Plan,
    Apply,
}

impl Reconciled {
    /// The plan JSON document of this pass.
    pub fn document(&self) -> PlanDocument<'_> {
        PlanDocument {
            plan: &self.plan,
            revision_dirty: self.revision_dirty,
            effect: self.effect.as_ref(),
            connection_trust: &self.connection_trust,
        }
    }
}

/// A review of a revision nobody has merged yet (`plan --base`, `plan --trusted-rev`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Review<'a> {
    /// `--base REV`: also the effect of the change since this revision.
    pub base: Option<&'a str>,
    /// The revision whose LDAP connection and credential settings the head's sources
    /// are read with (`--base` unless `--trusted-rev` names another); `None` with
    /// `--trust-head`, which reads the head as configured.
    pub trusted: Option<&'a str>,
}

/// One reconcile pass: config + sources + state → plan, from the working tree or the
/// `--rev` revision; with a `review`, the head's LDAP sources read with the trusted
/// revision's connection settings, and with its `base` also the effect of the change
/// since that revision. `mode` says how `ldif` sources are read (the base is always read
/// in full). Shared by `plan` and `apply`.
pub fn reconcile(
    context: &Context,
    review: Option<&Review>,
    mode: ImportMode,
) -> Result<Reconciled, AppError> {
    reconcile_for(context, review, (mode, Purpose::Plan))
}

/// [`reconcile`] for `purpose`.
pub(super) fn reconcile_for(
    context: &Context,
    review: Option<&Review>,
    (mode, purpose): (ImportMode, Purpose),
) -> Result<Reconciled, AppError> {
    let files = head_files(context)?;
    let config = read_config(context, &files, "")?;
    reconcile_with(context, &files, config, review, (mode, purpose))
}

/// A git revision's config, read in full: the base of a review, or the revision trusted
/// for its connection settings. A revision without the config directory has none.
struct BaseRevision {
    rev: String,
    files: Tree,
    commit: String,
    config: Option<Config>,
}

impl BaseRevision {
    fn load(context: &Context, rev: &str) -> Result<BaseRevision, AppError> {
        match Tree::at_revision(&context.config_dir, rev) {
            Ok(files) => {
                let config = read_config(context, &files, "base ")?;
                Ok(BaseRevision {
                    rev: rev.to_string(),
                    commit: files.commit().unwrap_or_default(),
                    files,
                    config: Some(config),
                })
            }
            Err(TreeError::MissingDir { commit, .. }) => Ok(BaseRevision {
                rev: rev.to_string(),
                // Never read: there is no config directory to read files of.
                files: Tree::at_revision(&context.config_dir, "HEAD")
                    .unwrap_or_else(|_| Tree::working_tree(&context.config_dir)),
                commit,
                config: None,
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Reads the head's LDAP sources with this revision's connection settings (see
    /// `config::trust`).
    fn trust_connections(&self, head: &mut Config) -> Result<Vec<SourceTrust>, AppError> {
        let read = |path: &Path| self.files.read(path);
        let notes = trust::use_trusted_connections(head, self.config.as_ref(), &read);
        at_revision(
            &self.files,
            "trusted ",
            notes.map_err(AppError::UntrustedConnections),
        )
    }
}

/// The reconcile pass over a config already read from `files` (the controller reads it
/// first, for its schedules).
pub(super) fn reconcile_with(
    context: &Context,
    files: &Tree,
    mut config: Config,
    review: Option<&Review>,
    (mode, purpose): (ImportMode, Purpose),
) -> Result<Reconciled, AppError> {
    let review = review.copied().unwrap_or_default();
    let base = review
        .base
        .map(|rev| BaseRevision::load(context, rev))
        .transpose()?;
    let trusted = match (review.trusted, &base) {
        (Some(rev), Some(base)) if base.rev == rev => None,
        (Some(rev), _) => Some(BaseRevision::load(context, rev)?),
        (None, _) => None,
    };
    let connection_trust = match (review.trusted, trusted.as_ref().or(base.as_ref())) {
        (Some(_), Some(trusted)) => trusted.trust_connections(&mut config)?,
        _ => Vec::new(),
    };
    for note in &connection_trust {
        eprintln!("note: {}", note.message());
    }
    let base = base.as_ref();
    // Delta reads the kept snapshots through a store opened (and migrated) here, before
    // the loader thread opens its own.
    let store = match mode {
        ImportMode::Full => None,
        ImportMode::Delta => Store::open_if_exists(&context.state)?,
    };
    // Why a delta plan reads every kept entry, told once that read went well.
    let mut read_everything = None;
    if let (Some(store), None) = (&store, review.base.or(review.trusted)) {
        let by_region = region::plan_by_region(&config, files, &context.config_dir, store);
        match at_revision(files, "", by_region)? {
            ByRegion::Planned(computed, read, entries) => {
                let mut reconciled =
                    finish_reconcile(context, files, &config, *computed, read, None);
                reconciled.region_entries = Some(entries);
                return Ok(reconciled);
            }
            ByRegion::ReadEverything(why) => read_everything = why,
        }
    }
    let reading = Reading {
        config_dir: &context.config_dir,
        mode,
        store: store.as_ref(),
        kept: match &store {
            Some(store) => store.kept_snapshots()?,
            None => BTreeMap::new(),
        },
        keep_feeds: purpose == Purpose::Apply,
    };
    // The store loads on a second core while the sources stream through the builder;
    // its registrations then stream to the planner as its walk reaches them.
    let (computed, read, effect, state) = std::thread::scope(|scope| {
        let (load, stream) = StateStream::open(&context.state);
        let loader = spawn_scoped(scope, load)?;
        // Once the sources are read, one core finishes the desired state and the
        // other reads registrations ahead of the walk.
        let read = read_desired(&config, files, &reading, &|| stream.queue.widen());
        let (wanted, read) = at_revision(files, "", read)?;
        let Ok(head) = stream.head.recv() else {
            // The loader stopped before the state: its error says why.
            join(loader)?;
            return Err(AppError::Thread(std::io::Error::other(
                "the store's reader stopped before the state",
            )));
        };
        if let Some(why) = read_everything {
            eprintln!("note: --mode delta read every kept entry: {why}");
        }
        // Every snapshot write changes what `kept_snapshots` returns (files and
        // serials): the same answer before and after means the entries read were those
        // of one snapshot.
        if let Some(store) = reading.store {
            if store.kept_snapshots()? != reading.kept {
                return Err(AppError::KeptSnapshotsChanged);
            }
        }
        let effect = match base {
            Some(base) => Some(effect_since(
                context,
                base,
                &config,
                &wanted,
                files.commit(),
                revision_dirty(context, files, &config, &read),
            )?),
            None => None,
        };
        let rows = StreamedRows::new(stream.batches);
        let registrations = head.registrations.with_rows(rows);
        let computed = plan_with_rows(&config.rules, wanted, &head.state, registrations);
        // Every row was read, or the plan is not one.
        join(loader)?;
        Ok((computed?, read, effect, head.state))
    })?;
    let mut reconciled = finish_reconcile(context, files, &config, computed, read, effect);
    reconciled.connection_trust = connection_trust;
    // Freeing a large directory's worth of values takes as long as building them; let
    // another thread do it while the caller renders the plan.
    // A thread the system cannot start drops them here instead.
    let _ = std::thread::Builder::new().spawn(move || drop((state, config)));
    Ok(reconciled)
}

/// Whether the working tree differs from its commit in a file the pass read (config or
/// imported LDIF).
fn revision_dirty(context: &Context, files: &Tree, config: &Config, read: &SourcesRead) -> bool {
    let read_paths = files_read(config, &context.config_dir, &read.imports);
    let read_paths: Vec<&Path> = read_paths.iter().map(PathBuf::as_path).collect();
    files.is_dirty(&context.config_dir, &read_paths)
}

/// A reconcile pass's plan with what the caller records: the revision, the digests and
/// the imports.
fn finish_reconcile(
    context: &Context,
    files: &Tree,
    config: &Config,
    mut computed: Plan,
    read: SourcesRead,
    effect: Option<Effect>,
) -> Reconciled {
    let revision_dirty = revision_dirty(context, files, config, &read);
    computed.revision = files.commit();
    computed.inputs_digest = read.inputs_digest;
    computed.config_digest = InputsDigest::config_only(&config.files);
    computed.imports = read.imports;
    Reconciled {
        plan: computed,
        revision_dirty,
        effect,
        region_entries: None,
        connection_trust: Vec::new(),
        feeds: read.feeds,
    }
}

/// The effect of the change from `base` to the head (`head_config` and `head`, read at
/// `head_commit`): each revision's desired state from its own files. A base without the
/// config directory counts as producing nothing (the change introduces the config).
fn effect_since(
    context: &Context,
    base: &BaseRevision,
    head_config: &Config,
    head: &Desired,
    head_commit: Option<String>,
    head_dirty: bool,
) -> Result<Effect, AppError> {
    let (base_desired, base_texts) = match &base.config {
        Some(config) => {
            let reading = Reading::full(&context.config_dir);
            let read = read_desired(config, &base.files, &reading, &|| {});
            let (desired, _) = at_revision(&base.files, "base ", read)?;
            (desired, config.files.clone())
        }
        None => (Desired::default(), Vec::new()),
    };
    let base_commit = base.commit.clone();
    let effect = at_revision_named(
        format!("effect since base revision {}", base.rev),
        effect::effect(&head_config.rules, head.clone(), &base_desired),
    )?;
    Ok(Effect {
        base: base_commit,
        head: head_commit,
        head_dirty,
        summary: effect.summary,
        changes: effect.changes,
        files: config_diffs(&base_texts, &head_config.files),
    })
}

fn at_revision_named<T>(at: String, result: Result<T, PlanError>) -> Result<T, AppError> {
    result.map_err(|error| AppError::AtRevision {
        at,
        inner: Box::new(error.into()),
    })
}

/// The unified diffs of the config files that differ between `base` and `head`, by
/// file name (both are the same config directory), in name order.
fn config_diffs(base: &[ConfigText], head: &[ConfigText]) -> Vec<FileDiff> {
    let name = |file: &ConfigText| file.path.file_name().map(|n| n.to_os_string());
    let mut names: Vec<_> = base.iter().chain(head).filter_map(name).collect();
    names.sort();
    names.dedup();
    let mut diffs = Vec::new();
    for file_name in names {
        let find = |files: &[ConfigText]| {
            files
                .iter()
                .find(|f| name(f).as_ref() == Some(&file_name))
                .cloned()
        };
        let (old, new) = (find(base), find(head));
        let (status, path) = match (&old, &new) {
            (Some(old), Some(new)) if old.text == new.text => continue,
            (Some(_), Some(new)) => (FileStatus::Modified, &new.path),
            (None, Some(new)) => (FileStatus::Added, &new.path),
            (Some(old), None) => (FileStatus::Removed, &old.path),
            (None, None) => continue,
        };
        let path = path.display().to_string();
        let old_text = old.map(|f| f.text).unwrap_or_default();
        let new_text = new.map(|f| f.text).unwrap_or_default();
        let diff = similar::TextDiff::from_lines(&old_text, &new_text)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{path}"), &format!("b/{path}"))
            .to_string();
        diffs.push(FileDiff { path, status, diff });
    }
    diffs
}
