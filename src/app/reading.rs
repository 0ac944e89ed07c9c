//! Reading a pass's inputs: the config at `--rev` or in the working tree, every source's
//! entries streamed through the desired-state builder (on two threads, see
//! [`read_desired`]), and the state in the store.
//!
//! Errors read at a git revision are prefixed with it ([`at_revision`]). Nothing here
//! plans: `reconcile.rs` puts the pieces together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;

use super::context::Context;
use super::error::AppError;
use super::feeds::{self, FeedDelta, FeedKeep};
use super::halves::{self, Halves};
use super::read_ahead::{BatchQueue, PlannerEnd};
use super::snapshots;
use super::sources::{self, InputsDigest};
use super::threads::{join, spawn_scoped, Threads};
use crate::adapters::store::{KeptSnapshot, StateHead, Store, StoreLocation};
use crate::adapters::tree::Tree;
use crate::config::raw::{DeltaFeed, ImportMode};
use crate::config::{self, Config, LdapSettings, SourceLocation, SourceSettings};
use registrar_core::desired::{Desired, DesiredBuilder, EntryPreparer, PreparedEntry};
use registrar_core::entry::Entry;
use registrar_core::model::Rules;
use registrar_core::plan::SourceImport;
use registrar_core::state::State;

/// How sources are read: in full, or in delta over the snapshots a store kept.
pub(super) struct Reading<'a> {
    pub(super) config_dir: &'a Path,
    pub(super) mode: ImportMode,
    /// The store holding the kept snapshots (delta mode, when the state file exists).
    pub(super) store: Option<&'a Store>,
    /// The snapshots it keeps, by source.
    pub(super) kept: BTreeMap<String, KeptSnapshot>,
    /// The pass applies what it reads: an LDAP source read through a change feed is
    /// spooled for the store to keep ([`FeedKeep`]).
    pub(super) keep_feeds: bool,
}

impl<'a> Reading<'a> {
    /// Every source read in full.
    pub(super) fn full(config_dir: &'a Path) -> Self {
        Reading {
            config_dir,
            mode: ImportMode::Full,
            store: None,
            kept: BTreeMap::new(),
            keep_feeds: false,
        }
    }
}

/// What reading the sources gave besides the desired state.
pub(super) struct SourcesRead {
    pub(super) inputs_digest: String,
    pub(super) imports: Vec<SourceImport>,
    /// What an apply keeps of the LDAP sources read through their change feeds.
    pub(super) feeds: Vec<FeedKeep>,
}

/// Streams every source's entries from `files` through the desired-state builder,
/// digesting the inputs (config files and source data) on the way. No directory is held
/// in memory beyond what the snapshot holds (one blob at a time at a git revision).
///
/// Two threads share the work: this one reads and parses the files and prepares each
/// entry as soon as it is read, while the entry is still in this core's cache (the
/// per-entry step is pure); a second one takes the prepared entries in reading order and
/// builds the desired state. Entries never cross to the other core: moving a parsed
/// entry between cores costs more than preparing it (measured: a million entries sent
/// to the builder to prepare took 2 to 4 s more CPU than preparing them here). A large
/// content file is read in halves (`halves.rs`), each half's entries prepared on the
/// thread that parsed them.
pub(super) fn read_desired(
    config: &Config,
    files: &Tree,
    reading: &Reading,
    sources_read: &dyn Fn(),
) -> Result<(Desired, SourcesRead), AppError> {
    let (sender, receiver) = mpsc::sync_channel::<Feed>(BATCHES_IN_FLIGHT);
    // Emptied batches go back to be filled again: a batch is too large an allocation to
    // free on one core and make again on the other, a few thousand times over.
    let (returns, returned) = mpsc::channel::<Vec<PreparedEntry>>();
    let builder = DesiredBuilder::new(&config.rules);
    let preparer = builder.preparer().clone();
    std::thread::scope(|scope| {
        let builder = spawn_scoped(scope, move || {
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
        })?;
        let read = read_sources(
            config,
            files,
            reading,
            Feeder::new(sender, returned, preparer),
        );
        sources_read();
        let desired = join(builder);
        Ok((desired, read?))
    })
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

    /// Reads `source` in `halves`: the first half's entries prepared here, the second
    /// half's on the thread that reads it, then sent after the first's, in batches as
    /// the builder takes them.
    fn read_halves(
        &mut self,
        source: &SourceSettings,
        halves: Halves,
        config_dir: &Path,
        digest: &mut InputsDigest,
    ) -> Result<SourceImport, AppError> {
        let mut second = PreparedHalf {
            preparer: self.preparer.clone(),
            source: self.source,
            batches: Vec::new(),
        };
        let import = halves::read_halves(
            source,
            halves,
            config_dir,
            digest,
            &mut |entry| self.add(entry),
            &mut |entry| second.add(entry),
        )?;
        self.flush();
        for batch in second.batches {
            let _ = self.sender.send(Feed::Prepared(batch));
        }
        Ok(import)
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

/// The entries of a file's second half, prepared on the thread that reads them and held
/// until the first half's are sent: the builder takes entries in file order.
struct PreparedHalf<'c> {
    preparer: EntryPreparer<'c>,
    source: &'c str,
    batches: Vec<Vec<PreparedEntry>>,
}

impl PreparedHalf<'_> {
    fn add(&mut self, entry: Entry) {
        let prepared = self.preparer.prepare(self.source, &entry);
        // The second half's reader fills the entry's buffers again, on this thread.
        crate::adapters::ldif::recycle([entry]);
        match self.batches.last_mut() {
            Some(batch) if batch.len() < BATCH_ENTRIES => batch.push(prepared),
            _ => {
                let mut batch = Vec::with_capacity(BATCH_ENTRIES);
                batch.push(prepared);
                self.batches.push(batch);
            }
        }
    }
}

/// Reads every source of `config` into `feeder`: in full, or in delta for the sources
/// whose snapshot the store kept (a source without one is read in full, with a note).
/// Returns the inputs digest, what each `ldif` source imported and what an apply keeps
/// of each LDAP source.
fn read_sources<'c>(
    config: &'c Config,
    files: &Tree,
    reading: &Reading,
    mut feeder: Feeder<'c>,
) -> Result<SourcesRead, AppError> {
    let mut digest = InputsDigest::of_config(&config.files);
    let mut imports = Vec::new();
    let mut feeds = Vec::new();
    for source in &config.sources {
        feeder.begin_source(&source.name);
        if let SourceLocation::Ldap(settings) = &source.location {
            let on_entry = &mut |entry| feeder.add(entry);
            feeds.extend(read_ldap_source(
                &config.rules,
                source,
                settings,
                files,
                reading,
                &mut digest,
                on_entry,
            )?);
            continue;
        }
        let delta = reading.mode == ImportMode::Delta;
        let on_entry = &mut |entry| feeder.add(entry);
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
                match halves::halves_of(source, files) {
                    Some(halves) => {
                        Some(feeder.read_halves(source, halves, reading.config_dir, &mut digest)?)
                    }
                    None => sources::read_source(
                        source,
                        files,
                        reading.config_dir,
                        &mut digest,
                        on_entry,
                    )?,
                }
            }
        };
        imports.extend(import);
    }
    feeder.flush();
    Ok(SourcesRead {
        inputs_digest: digest.finish(),
        imports,
        feeds,
    })
}

/// Reads the LDAP source `source`: in delta through its change feed from the kept
/// snapshot's cookie, or in full (a delta that cannot be had says why in a note).
fn read_ldap_source(
    rules: &Rules,
    source: &SourceSettings,
    settings: &LdapSettings,
    files: &Tree,
    reading: &Reading,
    digest: &mut InputsDigest,
    on_entry: &mut dyn FnMut(Entry),
) -> Result<Option<FeedKeep>, AppError> {
    let delta = reading.mode == ImportMode::Delta && settings.delta != DeltaFeed::None;
    // A source no feed can keep true says so once, in the full read.
    if delta && feeds::feedless(rules, source, settings).is_none() {
        match reading.store.zip(reading.kept.get(&source.name)) {
            Some((store, kept)) => {
                match feeds::open_feed_delta((rules, source, settings), files, kept, store)? {
                    FeedDelta::Changed(changes) => {
                        return feeds::stream_feed_delta(
                            source,
                            *changes,
                            store,
                            reading.keep_feeds,
                            digest,
                            on_entry,
                        )
                    }
                    FeedDelta::ReadInFull(why) => {
                        eprintln!("note: source {} is read in full: {why}", source.name)
                    }
                }
            }
            None => eprintln!(
                "note: source {} has no kept snapshot yet, so it is read in full; \
                 applying keeps one for the next --mode delta",
                source.name
            ),
        }
    }
    feeds::read_in_full(
        (rules, source, settings),
        files,
        (reading.keep_feeds, delta),
        digest,
        on_entry,
    )
}

/// The files config and sources are read from: `--rev`, or the working tree.
pub(super) fn head_files(context: &Context) -> Result<Tree, AppError> {
    Ok(match &context.rev {
        Some(rev) => Tree::at_revision(&context.config_dir, rev)?,
        None => Tree::working_tree(&context.config_dir),
    })
}

/// `result`, its error naming the revision of `files` (`role` is "" or "base ").
pub(super) fn at_revision<T>(
    files: &Tree,
    role: &str,
    result: Result<T, AppError>,
) -> Result<T, AppError> {
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
pub(super) fn read_config(context: &Context, files: &Tree, role: &str) -> Result<Config, AppError> {
    at_revision(
        files,
        role,
        config::load(files, &context.config_dir).map_err(AppError::from),
    )
}

/// The files a plan read: the config files and each LDIF file it imported.
pub(super) fn files_read(
    config: &Config,
    config_dir: &Path,
    imports: &[SourceImport],
) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = config.files.iter().map(|f| f.path.clone()).collect();
    for import in imports {
        for file in std::iter::once(&import.content).chain(&import.changes) {
            paths.push(config_dir.join(&file.path));
        }
    }
    paths
}

/// Loads the state, or an empty one at serial 0 when the file does not exist yet.
pub(super) fn load_state(location: &StoreLocation) -> Result<State, AppError> {
    match Store::open_if_exists(location)? {
        Some(store) => Ok(store.load()?),
        None => Ok(State::default()),
    }
}

/// The state streamed from the store at `location` ([`Store::stream_state`]), as a
/// [`reconcile`](super::reconcile) pass reads it: run `stream_state`'s work on a thread
/// of its own; the head comes first, then the registration batches, until the store is
/// read or no one listens. An empty store when the file does not exist yet. The
/// loader's result says why no head came, and whether every row was read: a plan made
/// from rows a failed read cut short is not a plan.
pub(super) struct StateStream {
    pub(super) head: Receiver<StateHead>,
    pub(super) batches: PlannerEnd,
    /// The batches' queue, to widen once the sources are read.
    pub(super) queue: Arc<BatchQueue>,
}

impl StateStream {
    /// The stream's two ends: the loader's work to run, and what the planner reads.
    pub(super) fn open(
        location: &StoreLocation,
    ) -> (
        impl FnOnce() -> Result<(), AppError> + Send + '_,
        StateStream,
    ) {
        let (head_sender, head) = mpsc::sync_channel(1);
        let (queue, loader_end, batches) = BatchQueue::open();
        // The loader's end goes with the loader's work: when it ends (or fails), the
        // planner's end sees no batch after those queued.
        let load = move || {
            match Store::open_if_exists(location)? {
                Some(store) => store.stream_state(
                    |head| head_sender.send(head).is_ok(),
                    |batch| loader_end.push(batch),
                )?,
                None => {
                    let _ = head_sender.send(StateHead::default());
                }
            }
            Ok(())
        };
        (
            load,
            StateStream {
                head,
                batches,
                queue,
            },
        )
    }
}
