//! The commands: each one wires the adapters (config, files from the working tree or a
//! git revision, LDIF, store, renderers) around the pure core. `plan` and `apply` share
//! one reconcile pass, `reconcile()`, which reads sources in full or, with
//! `--mode delta`, from the snapshots the store kept (`snapshots.rs`).
//!
//! This is the only layer that reads the clock or the environment. It returns errors to
//! `main`, which prints them as one line each and exits 1.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::SystemTime;

use crate::adapters::git::GitError;
use crate::adapters::render::{self, Color, PlanDocument};
use crate::adapters::store::{KeptSnapshot, RunRecord, Store, StoreError};
use crate::adapters::tree::{Tree, TreeError};
use crate::config::trust;
use crate::config::{self, Config, ConfigError, ConfigText, SourceLocation};
use output::OutputFile;
use region::ByRegion;
use registrar_core::desired::{Desired, DesiredBuilder, EntryPreparer, PreparedEntry};
use registrar_core::effect::SourceTrust;
use registrar_core::effect::{self, Effect, FileDiff, FileStatus};
use registrar_core::entry::Entry;
use registrar_core::join::Join;
use registrar_core::plan::{plan, Plan, PlanError, SourceImport};
use registrar_core::state::State;
use sources::InputsDigest;

mod apply;
mod discover;
mod drift;
mod export;
mod output;
mod progress;
mod region;
mod register;
pub mod run;
mod saved_plan;
mod show;
mod snapshots;
mod sources;
mod writeback;

pub use crate::config::raw::ImportMode;
pub use apply::{apply_command, apply_plan, Approval, APPROVAL_QUESTION};
pub use discover::discover;
pub use drift::{drift_command, drift_report, DriftFormat};
pub use export::{export_source, ExportFormat};
pub use register::{AllowProtected, UnmanagedRegistration};
pub use run::{run_command, RunOptions};
pub use saved_plan::read_whole_plan;
pub use show::{show_plan, ShowFormat};

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Files(#[from] TreeError),
    #[error(transparent)]
    Git(#[from] GitError),
    /// An error reading config or sources at a git revision: each line says which.
    #[error("{}", prefix_lines(at, inner))]
    AtRevision { at: String, inner: Box<AppError> },
    #[error("source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Refused(String),
    /// Rule 9: a protected principal never receives a registration.
    #[error(
        "{dn} is a protected principal ({rule}): protected principals never hold a \
         registration; nothing was recorded (state register --allow-protected records it \
         anyway, and says so in the run history)"
    )]
    ProtectedPrincipal { dn: String, rule: String },
    #[error(transparent)]
    LdifBase(#[from] render::LdifBaseError),
}

/// `at: ` before every line of `error`'s message.
fn prefix_lines(at: &str, error: &AppError) -> String {
    error
        .to_string()
        .lines()
        .map(|line| format!("{at}: {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Output formats of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
    /// LDIF change records for ldapmodify: the store mirrored under --ldif-base.
    Ldif,
}

/// What a finished command asks `main` to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 2: `--detailed-exitcode` and there are changes.
    Changes,
}

/// The settings every command shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub config_dir: PathBuf,
    pub state_path: PathBuf,
    pub color: Color,
    /// `--rev REV`: read config and sources from this git revision instead of the
    /// working tree.
    pub rev: Option<String>,
}

/// How sources are read: in full, or in delta over the snapshots a store kept.
struct Reading<'a> {
    config_dir: &'a Path,
    mode: ImportMode,
    /// The store holding the kept snapshots (delta mode, when the state file exists).
    store: Option<&'a Store>,
    /// The snapshots it keeps, by source.
    kept: BTreeMap<String, KeptSnapshot>,
}

impl<'a> Reading<'a> {
    /// Every source read in full.
    fn full(config_dir: &'a Path) -> Self {
        Reading {
            config_dir,
            mode: ImportMode::Full,
            store: None,
            kept: BTreeMap::new(),
        }
    }
}

/// What reading the sources gave besides the desired state.
struct SourcesRead {
    inputs_digest: String,
    imports: Vec<SourceImport>,
}

/// Streams every source's entries from `files` through the desired-state builder,
/// digesting the inputs (config files and source data) on the way. No directory is held
/// in memory beyond what the snapshot holds (one blob at a time at a git revision).
///
/// Two threads share the work: this one reads and parses the files and prepares each
/// entry as soon as it is read, while the entry is still in this core's cache (the
/// per-entry step is pure); a second one takes the prepared entries in reading order and
/// builds the desired state. Entries never cross to the other core: moving a parsed
/// entry between cores costs more than preparing it.
fn read_desired(
    config: &Config,
    files: &Tree,
    reading: &Reading,
) -> Result<(Desired, SourcesRead), AppError> {
    let (sender, receiver) = mpsc::sync_channel::<Feed>(BATCHES_IN_FLIGHT);
    // Emptied batches go back to be filled again: a batch is too large an allocation to
    // free on one core and make again on the other, a few thousand times over.
    let (returns, returned) = mpsc::channel::<Vec<PreparedEntry>>();
    let builder = DesiredBuilder::new(&config.rules);
    let preparer = builder.preparer().clone();
    std::thread::scope(|scope| {
        let builder = scope.spawn(move || {
            let mut builder = builder;
            for feed in receiver {
                match feed {
                    Feed::Source(source) => builder.begin_source(source),
                    Feed::Prepared(mut prepared) => {
                        for entry in prepared.drain(..) {
                            builder.add_prepared(entry);
                        }
                        let _ = returns.send(prepared);
                    }
                }
            }
            builder.finish_with(&Threads)
        });
        let read = read_sources(
            config,
            files,
            reading,
            Feeder::new(sender, returned, preparer),
        );
        let desired = builder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok((desired, read?))
    })
}

/// The core's two-halves steps ([`Join`]) on two threads: the second half on a scoped
/// thread of its own, the first on the caller's.
pub(crate) struct Threads;

impl Join for Threads {
    fn join<A: Send, B: Send>(
        &self,
        first: impl FnOnce() -> A + Send,
        second: impl FnOnce() -> B + Send,
    ) -> (A, B) {
        std::thread::scope(|scope| {
            let second = scope.spawn(second);
            let first = first();
            let second = second
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (first, second)
        })
    }
}

/// Entries per batch sent to the builder thread, and batches waiting at most.
const BATCH_ENTRIES: usize = 256;
const BATCHES_IN_FLIGHT: usize = 8;

/// What the reading thread sends the builder thread.
enum Feed<'c> {
    /// A source was opened (it may yield no entry).
    Source(&'c str),
    /// Prepared entries, in reading order.
    Prepared(Vec<PreparedEntry>),
}

/// The reading thread's end of the channel: prepares entries and sends them in batches.
struct Feeder<'c> {
    sender: SyncSender<Feed<'c>>,
    /// Batches the builder thread has emptied, to fill again.
    returned: Receiver<Vec<PreparedEntry>>,
    preparer: EntryPreparer<'c>,
    source: &'c str,
    batch: Vec<PreparedEntry>,
}

impl<'c> Feeder<'c> {
    fn new(
        sender: SyncSender<Feed<'c>>,
        returned: Receiver<Vec<PreparedEntry>>,
        preparer: EntryPreparer<'c>,
    ) -> Self {
        Feeder {
            sender,
            returned,
            preparer,
            source: "",
            batch: Vec::with_capacity(BATCH_ENTRIES),
        }
    }

    // A send fails only when the builder thread panicked; joining it re-raises that.
    fn begin_source(&mut self, source: &'c str) {
        self.flush();
        self.source = source;
        let _ = self.sender.send(Feed::Source(source));
    }

    fn add(&mut self, entry: Entry) {
        self.batch.push(self.preparer.prepare(self.source, &entry));
        // The LDIF reader fills the entry's buffers again with the next record.
        crate::adapters::ldif::recycle([entry]);
        if self.batch.len() == BATCH_ENTRIES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let next = self
                .returned
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH_ENTRIES));
            let batch = std::mem::replace(&mut self.batch, next);
            let _ = self.sender.send(Feed::Prepared(batch));
        }
    }
}

/// Reads every source of `config` into `feeder`: in full, or in delta for the `ldif`
/// sources whose snapshot the store kept (a source without one is read in full, with a
/// note). Returns the inputs digest and what each `ldif` source imported.
fn read_sources<'c>(
    config: &'c Config,
    files: &Tree,
    reading: &Reading,
    mut feeder: Feeder<'c>,
) -> Result<SourcesRead, AppError> {
    let mut digest = InputsDigest::of_config(&config.files);
    let mut imports = Vec::new();
    for source in &config.sources {
        feeder.begin_source(&source.name);
        let on_entry = &mut |entry| feeder.add(entry);
        let delta = reading.mode == ImportMode::Delta
            && matches!(source.location, SourceLocation::Ldif { .. });
        let import = match reading.store.zip(reading.kept.get(&source.name)) {
            Some((store, kept)) if delta => Some(snapshots::read_delta(
                source,
                kept,
                store,
                files,
                reading.config_dir,
                &mut digest,
                on_entry,
            )?),
            _ => {
                if delta {
                    eprintln!(
                        "note: source {} has no kept snapshot yet, so it is read in full; \
                         applying keeps one for the next --mode delta",
                        source.name
                    );
                }
                sources::read_source(source, files, reading.config_dir, &mut digest, on_entry)?
            }
        };
        imports.extend(import);
    }
    feeder.flush();
    Ok(SourcesRead {
        inputs_digest: digest.finish(),
        imports,
    })
}

/// The files config and sources are read from: `--rev`, or the working tree.
fn head_files(context: &Context) -> Result<Tree, AppError> {
    Ok(match &context.rev {
        Some(rev) => Tree::at_revision(&context.config_dir, rev)?,
        None => Tree::working_tree(&context.config_dir),
    })
}

/// `result`, its error naming the revision of `files` (`role` is "" or "base ").
fn at_revision<T>(files: &Tree, role: &str, result: Result<T, AppError>) -> Result<T, AppError> {
    result.map_err(|error| match files.label() {
        Some(label) => AppError::AtRevision {
            at: format!("{role}revision {label}"),
            inner: Box::new(error),
        },
        None => error,
    })
}

/// The config directory at `files`, checked, with every source's desired state and the
/// inputs digest.
fn read_config(context: &Context, files: &Tree, role: &str) -> Result<Config, AppError> {
    at_revision(
        files,
        role,
        config::load(files, &context.config_dir).map_err(AppError::from),
    )
}

/// The files a plan read: the config files and each LDIF file it imported.
fn files_read(config: &Config, config_dir: &Path, imports: &[SourceImport]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = config.files.iter().map(|f| f.path.clone()).collect();
    for import in imports {
        for file in std::iter::once(&import.content).chain(&import.changes) {
            paths.push(config_dir.join(&file.path));
        }
    }
    paths
}

/// Loads the state, or an empty one at serial 0 when the file does not exist yet.
fn load_state(path: &Path) -> Result<State, AppError> {
    match Store::open_if_exists(path)? {
        Some(store) => Ok(store.load()?),
        None => Ok(State::default()),
    }
}

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
    let files = head_files(context)?;
    let config = read_config(context, &files, "")?;
    reconcile_with(context, &files, config, review, mode)
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
        let read = |path: &Path| self.files.read(path).map_err(|e| e.to_string());
        let notes = trust::use_trusted_connections(head, self.config.as_ref(), &read);
        at_revision(&self.files, "trusted ", notes.map_err(AppError::Refused))
    }
}

/// The reconcile pass over a config already read from `files` (the controller reads it
/// first, for its schedules).
fn reconcile_with(
    context: &Context,
    files: &Tree,
    mut config: Config,
    review: Option<&Review>,
    mode: ImportMode,
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
        ImportMode::Delta => Store::open_if_exists(&context.state_path)?,
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
    };
    // The store loads on a second core while the sources stream through the builder.
    let (read, state) = std::thread::scope(|scope| {
        let loader = scope.spawn(|| load_state(&context.state_path));
        let read = read_desired(&config, files, &reading);
        let state = loader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, state)
    });
    let (wanted, read) = at_revision(files, "", read)?;
    let state = state?;
    if let Some(why) = read_everything {
        eprintln!("note: --mode delta read every kept entry: {why}");
    }
    // Every snapshot write changes what `kept_snapshots` returns (files and serials): the
    // same answer before and after means the entries read were those of one snapshot.
    if let Some(store) = reading.store {
        if store.kept_snapshots()? != reading.kept {
            return Err(AppError::Refused(
                "the kept snapshots changed while this plan read them (another apply ran); plan again"
                    .to_string(),
            ));
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
    let computed = plan(&config.rules, wanted, &state)?;
    let mut reconciled = finish_reconcile(context, files, &config, computed, read, effect);
    reconciled.connection_trust = connection_trust;
    // Freeing a large directory's worth of values takes as long as building them; let
    // another thread do it while the caller renders the plan.
    std::thread::spawn(move || drop((state, config)));
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
            let read = read_desired(config, &base.files, &reading);
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

/// `registrar validate`.
pub fn validate(context: &Context, read_ldap: &[String]) -> Result<Outcome, AppError> {
    let files = head_files(context)?;
    let config = read_config(context, &files, "")?;
    for name in read_ldap {
        sources::find_source(&config, name)?;
    }
    let at = files
        .label()
        .map(|label| format!(" at revision {label}"))
        .unwrap_or_default();
    // The sources in the repository are read too (an LDAP server only when asked):
    // syntax, change files that apply, entry counts. Every source is read, whatever
    // the others give, and every failure is told.
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for source in &config.sources {
        let is_ldap = matches!(source.location, SourceLocation::Ldap(_));
        if is_ldap && !read_ldap.contains(&source.name) {
            lines.push(format!(
                "source {}: LDAP, not read (validate --sources {} reads it)",
                source.name, source.name
            ));
            continue;
        }
        let mut entries = 0u64;
        let mut digest = InputsDigest::unused();
        let read = sources::read_source(
            source,
            &files,
            &context.config_dir,
            &mut digest,
            &mut |_| entries += 1,
        );
        match at_revision(&files, "", read) {
            Ok(import) => {
                let changes = import.map_or(0, |import| import.changes.len());
                let changes = match changes {
                    0 => String::new(),
                    1 => " (with 1 change file)".to_string(),
                    n => format!(" (with {n} change files)"),
                };
                lines.push(format!(
                    "source {}: {entries} entries read{changes}",
                    source.name
                ));
            }
            Err(error) => problems.push(error.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Refused(problems.join("\n")));
    }
    println!(
        "{}{at}: valid ({} files, {} sources, {} mappings, {} exclusions)",
        context.config_dir.display(),
        config.files.len(),
        config.rules.sources.len(),
        config.rules.mappings.len(),
        config.rules.exclusions.len()
    );
    for line in lines {
        println!("  {line}");
    }
    Ok(Outcome::Success)
}

/// `registrar plan`. `ldif_base` is the base DN of `--format ldif` (`--ldif-base`).
pub fn plan_command(
    context: &Context,
    format: PlanFormat,
    out: Option<&Path>,
    detailed_exitcode: bool,
    review: Option<&Review>,
    ldif_base: &str,
    mode: ImportMode,
) -> Result<Outcome, AppError> {
    // A bad base is a usage error: refuse it before reading anything.
    let ldif_base = render::LdifBase::parse(ldif_base)?;
    let no_store = !context.state_path.exists();
    let reconciled = reconcile(context, review, mode)?;
    let computed = &reconciled.plan;
    // With `--out`, stdout keeps the plan for people: JSON goes to the file only.
    let shown = match (format, out) {
        (PlanFormat::Json, Some(_)) => PlanFormat::Text,
        _ => format,
    };
    match shown {
        // With `--out`, the plan file is written on a second core while the text prints.
        // It is created first, so a path that cannot be written fails before any output;
        // an error later in the writing still fails the command, after the text.
        PlanFormat::Text => std::thread::scope(|scope| {
            let saving = match out {
                Some(out) => {
                    let file = create_plan_file(out)?;
                    Some(scope.spawn(|| save_plan_to(&reconciled, out, file)))
                }
                None => None,
            };
            let mut stdout = BufWriter::new(std::io::stdout().lock());
            let _ = render::write_trust_text(&reconciled.connection_trust, &mut stdout)
                .and_then(|_| {
                    reconciled.effect.as_ref().map_or(Ok(()), |effect| {
                        render::write_effect_text(effect, context.color, &mut stdout)
                            .and_then(|_| writeln!(stdout))
                    })
                })
                .and_then(|_| {
                    render::write_text(
                        computed,
                        reconciled.revision_dirty,
                        context.color,
                        &mut stdout,
                    )
                })
                .and_then(|_| stdout.flush());
            saving.map_or(Ok(()), |saving| {
                saving
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        })?,
        PlanFormat::Json => {
            let mut stdout = BufWriter::new(std::io::stdout().lock());
            // A closed pipe (`registrar plan | head`) is not an error.
            let _ = render::write_json(&reconciled.document(), &mut stdout)
                .and_then(|_| stdout.flush());
        }
        PlanFormat::Markdown => {
            if let Some(out) = out {
                save_plan(&reconciled, out)?;
            }
            print_stdout(&render::markdown(
                computed,
                reconciled.effect.as_ref(),
                &reconciled.connection_trust,
            ))
        }
        // The plan against the store only: the effect of `--base` has no LDIF form.
        PlanFormat::Ldif => {
            if let Some(out) = out {
                save_plan(&reconciled, out)?;
            }
            let mut stdout = BufWriter::new(std::io::stdout().lock());
            let written =
                render::write_ldif(computed, &ldif_base, &mut stdout).and_then(|_| stdout.flush());
            match written {
                // A closed pipe (`registrar plan | head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(AppError::Refused(e.to_string()))
                }
                _ => {}
            }
        }
    }
    if no_store {
        // A mistyped --state would otherwise plan against nothing without a word.
        eprintln!(
            "note: state file {} does not exist: planning against an empty store",
            context.state_path.display()
        );
    }
    Ok(if detailed_exitcode && !computed.changes.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// Writes the plan JSON of `reconciled` to the file `out` (`plan --out`).
fn save_plan(reconciled: &Reconciled, out: &Path) -> Result<(), AppError> {
    save_plan_to(reconciled, out, create_plan_file(out)?)
}

/// Opens the plan file `out` (`output.rs`: nothing that exists changes before it is
/// finished).
fn create_plan_file(out: &Path) -> Result<OutputFile, AppError> {
    OutputFile::create(out).map_err(|e| cannot_write_plan(out, e))
}

/// Writes the plan JSON of `reconciled` to `file`, opened at `out`, and finishes it.
fn save_plan_to(reconciled: &Reconciled, out: &Path, file: OutputFile) -> Result<(), AppError> {
    // Large plans run to many megabytes: fewer, larger writes.
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    render::write_json(&reconciled.document(), &mut writer)
        .and_then(|_| writer.flush())
        .map_err(|e| cannot_write_plan(out, e))?;
    finish_plan_file(out, writer)
}

/// Finishes the plan file `out` written through `writer` (already flushed).
fn finish_plan_file(out: &Path, writer: BufWriter<OutputFile>) -> Result<(), AppError> {
    writer
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(OutputFile::finish)
        .map_err(|e| cannot_write_plan(out, e))
}

fn cannot_write_plan(out: &Path, error: std::io::Error) -> AppError {
    AppError::File {
        path: out.to_path_buf(),
        message: format!("cannot write plan: {error}"),
    }
}

/// When a command started, on the wall clock (for the history) and the monotonic one
/// (for its duration).
#[derive(Debug, Clone)]
struct Started {
    at: String,
    clock: std::time::Instant,
}

impl Started {
    fn now() -> Self {
        Started {
            at: now(),
            clock: std::time::Instant::now(),
        }
    }

    fn elapsed(&self) -> std::time::Duration {
        self.clock.elapsed()
    }

    fn millis(&self) -> u64 {
        self.elapsed().as_millis().min(u128::from(u64::MAX)) as u64
    }

    /// A run of `command` from this start, finished now, with its duration.
    fn record(&self, command: impl Into<String>) -> RunRecord {
        RunRecord {
            finished_at: now(),
            duration_ms: Some(self.millis()),
            ..RunRecord::new(command, self.at.clone())
        }
    }
}

/// Output formats of `state show`, `status` and `discover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateFormat {
    Text,
    Json,
}

/// `registrar state show`.
pub fn state_show(context: &Context, format: StateFormat) -> Result<Outcome, AppError> {
    let state = load_state(&context.state_path)?;
    // `State` keeps groups by name, so they come out in name order.
    let groups: Vec<_> = state.groups.values().collect();
    match format {
        StateFormat::Json => {
            let accounts: Vec<_> = state
                .accounts
                .values()
                .map(|a| {
                    serde_json::json!({
                        "anchor": a.anchor,
                        "dn": a.dn,
                        "source": a.source,
                        "managed": a.source.is_some(),
                        "status": a.status,
                        "profile": a.profile,
                    })
                })
                .collect();
            let registrations: Vec<_> = state
                .registrations
                .values()
                .map(|r| {
                    serde_json::json!({
                        "protocol": r.protocol,
                        "im_name": r.im_name,
                        "account": r.account,
                        "source": r.source,
                        "owner": r.owner,
                    })
                })
                .collect();
            let document = serde_json::json!({
                "serial": state.serial,
                "accounts": accounts,
                "registrations": registrations,
                "groups": groups,
            });
            let mut text = serde_json::to_string_pretty(&document).expect("serialisable");
            text.push('\n');
            print_stdout(&text);
        }
        StateFormat::Text => {
            let mut out = format!("state serial {}\n", state.serial);
            out.push_str(&format!("\naccounts ({})\n", state.accounts.len()));
            for a in state.accounts.values() {
                let source = a.source.as_deref().unwrap_or("unmanaged");
                let name = a
                    .profile
                    .get(registrar_core::model::ProfileField::DisplayName)
                    .map(|n| format!(" {n:?}"))
                    .unwrap_or_default();
                // Opaque anchors (entryUUID, objectGUID) are shown with the DN.
                let dn = if *a.anchor == *registrar_core::dn::normalize_dn(&a.dn) {
                    String::new()
                } else {
                    format!(" ({})", a.dn)
                };
                out.push_str(&format!(
                    "  {}{dn} [{}, {}]{name}\n",
                    a.anchor,
                    source,
                    a.status.name()
                ));
            }
            out.push_str(&format!(
                "\nregistrations ({})\n",
                state.registrations.len()
            ));
            for r in state.registrations.values() {
                let owner = r.owner.as_deref().unwrap_or("unmanaged");
                out.push_str(&format!(
                    "  {} {:?} → {} [{}, {owner}]\n",
                    r.protocol,
                    r.im_name,
                    r.account,
                    r.source.name()
                ));
            }
            out.push_str(&format!("\ngroups ({})\n", groups.len()));
            for g in groups {
                out.push_str(&format!(
                    "  {} [{}] {} members\n",
                    g.name,
                    g.kind,
                    g.members.len()
                ));
            }
            print_stdout(&out);
        }
    }
    Ok(Outcome::Success)
}

/// `registrar state register`.
pub fn state_register(
    context: &Context,
    registration: UnmanagedRegistration,
    allow: AllowProtected,
) -> Result<Outcome, AppError> {
    let registration = UnmanagedRegistration {
        protocol: &registration.protocol.to_ascii_lowercase(),
        ..registration
    };
    let config = read_config(context, &head_files(context)?, "")?;
    let started_at = now();
    let mut store = Store::open(&context.state_path)?;
    let allowed = if allow == AllowProtected::Record {
        " --allow-protected"
    } else {
        ""
    };
    let run = RunRecord {
        finished_at: now(),
        added: 1,
        ..RunRecord::new(
            format!(
                "state register --source {}{allowed}",
                registration.source.name()
            ),
            started_at,
        )
    };
    let registered = register::register_unmanaged(&config, &mut store, registration, allow, run)?;
    let account = registration.account_dn.trim();
    let anchor = &registered.anchor;
    // The anchor helps where it is not the DN's own normal form.
    let anchor = if *anchor == registrar_core::dn::normalize_dn(account) {
        String::new()
    } else {
        format!(", anchor {anchor}")
    };
    println!(
        "Registered {} name {:?} to {account} ({}{anchor}).",
        registration.protocol,
        registration.im_name.trim(),
        registration.source.name()
    );
    if let Some(rule) = registered.protected {
        eprintln!(
            "warning: {account} is a protected principal ({rule}); recorded because of \
             --allow-protected, and drift reports it"
        );
    }
    Ok(Outcome::Success)
}

/// How many runs `status` lists.
const STATUS_RUNS: usize = 10;

/// `registrar status`: the last runs, the revision last applied, when each schedule
/// fires next, and the snapshots kept for delta import. Schedules come from the config (at `--rev`, or the working tree); without
/// a config directory there are none to show.
pub fn status(context: &Context, format: StateFormat) -> Result<Outcome, AppError> {
    let schedules = if context.config_dir.is_dir() || context.rev.is_some() {
        let files = head_files(context)?;
        read_config(context, &files, "")?.schedules
    } else {
        Vec::new()
    };
    let store = Store::open_if_exists(&context.state_path)?;
    let (serial, runs, kept) = match &store {
        Some(store) => (
            store.serial()?,
            store.runs(STATUS_RUNS)?,
            store.kept_snapshots()?,
        ),
        None => (0, Vec::new(), BTreeMap::new()),
    };
    let applied_revision = match &store {
        Some(store) => store.applied_revision()?,
        None => None,
    };
    let now = chrono::Utc::now();
    let next: Vec<(String, String, String, Option<String>)> = schedules
        .iter()
        .map(|schedule| {
            let next = schedule
                .next_after(now)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            (
                schedule.name.clone(),
                schedule.cron_text.clone(),
                schedule.action_name().to_string(),
                next,
            )
        })
        .collect();
    match format {
        StateFormat::Json => {
            let document = serde_json::json!({
                "state_serial": serial,
                "applied_revision": applied_revision,
                "runs": runs,
                "schedules": next.iter().map(|(name, cron, action, next)| serde_json::json!({
                    "name": name, "cron": cron, "action": action, "next": next,
                })).collect::<Vec<_>>(),
                "kept_snapshots": kept.values().map(|snapshot| {
                    let file = |file: &crate::adapters::store::KeptFile| serde_json::json!({
                        "path": file.path, "digest": file.digest, "serial": file.serial,
                    });
                    serde_json::json!({
                        "source": snapshot.source,
                        "content": file(&snapshot.content),
                        "changes": snapshot.changes.iter().map(file).collect::<Vec<_>>(),
                    })
                }).collect::<Vec<_>>(),
            });
            let mut text = serde_json::to_string_pretty(&document).expect("serialisable");
            text.push('\n');
            print_stdout(&text);
        }
        StateFormat::Text => {
            let mut out = format!(
                "state serial {serial}, applied revision {}\n",
                applied_revision.as_deref().unwrap_or("(none recorded)")
            );
            out.push_str(&format!("\nlast runs ({})\n", runs.len()));
            for run in &runs {
                out.push_str(&format!(
                    "  {} {} [{}] serial {}→{}: +{} ~{} -{} deactivated {} reactivated {}{}{}{}\n",
                    run.finished_at,
                    run.command,
                    run.outcome,
                    run.serial_before,
                    run.serial_after,
                    run.added,
                    run.updated,
                    run.removed,
                    run.deactivated,
                    run.reactivated,
                    run.revision
                        .as_deref()
                        .map(|r| format!(" at {}", &r[..r.len().min(12)]))
                        .unwrap_or_default(),
                    run.duration_ms
                        .map(|ms| format!(" in {:.2}s", ms as f64 / 1000.0))
                        .unwrap_or_default(),
                    run.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ));
            }
            out.push_str(&format!("\nschedules ({})\n", next.len()));
            for (name, cron, action, next) in &next {
                out.push_str(&format!(
                    "  {name} \"{cron}\" {action}: next {}\n",
                    next.as_deref().unwrap_or("never")
                ));
            }
            out.push_str(&format!("\nkept snapshots ({})\n", kept.len()));
            for snapshot in kept.values() {
                let last = snapshot
                    .changes
                    .last()
                    .map(|file| format!(", the last {} at serial {}", file.path, file.serial))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  {}: {} imported at serial {}, {} change file(s){last}\n",
                    snapshot.source,
                    snapshot.content.path,
                    snapshot.content.serial,
                    snapshot.changes.len()
                ));
            }
            print_stdout(&out);
        }
    }
    Ok(Outcome::Success)
}

/// `registrar schema`.
pub fn schema() -> Result<Outcome, AppError> {
    print_stdout(&config::raw::json_schema());
    Ok(Outcome::Success)
}

/// Writes to stdout, ignoring a closed pipe (`registrar plan | head`).
fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The current time as RFC 3339 UTC, e.g. `2026-11-22T01:39:10Z`.
pub fn now() -> String {
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(seconds)
}

/// Formats Unix seconds as RFC 3339 UTC (civil-from-days, proleptic Gregorian).
fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_311_550), "2026-11-22T01:39:10Z");
    }
}
