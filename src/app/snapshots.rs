//! Kept snapshots, the app's side: the delta read of an `ldif` source (its kept snapshot
//! with the change files it has not seen applied), and the snapshot writes an apply makes
//! so that the store keeps what its plan imported.
//!
//! Both trust files only through their digests. A delta read refuses when a file the
//! kept snapshot came from is no longer what it was (the advice is `--mode full`); an
//! apply refuses when a file its plan imported now reads differently. Neither writes: the
//! writes go to `Store::apply_keeping`, inside the apply's transaction, with the
//! footprints of the kept entries and the standing facts a delta plan by region reads
//! (`app/region.rs`).

use std::borrow::{BorrowMut, Cow};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};

use super::error::AppError;
use super::feeds::{FeedKeep, Spool};
use super::sources::{
    apply_change_file, change_files, file_digest, hex_digest, import_path, imported, read_ldif,
    source_error, FileDigestInProgress, InputsDigest, SourceError,
};
use super::writeback::Writeback;
use crate::adapters::ldif::{
    self, entry_record, parse_entry_record, BaseError, Directory, DirectoryBase, LdifError,
    LdifReader,
};
use crate::adapters::store::{
    ChangeWriter, KeptEntry, KeptFeed, KeptSnapshot, RunRecord, SnapshotWrite, SnapshotWriter,
    Standing, Store, StoreError,
};
use crate::adapters::tree::Tree;
use crate::config::{SourceLocation, SourceSettings};
use registrar_core::desired::EntryPreparer;
use registrar_core::dn::normalize_dn;
use registrar_core::drift::WrittenRow;
use registrar_core::entry::Entry;
use registrar_core::model::Rules;
use registrar_core::plan::{Change, ImportedFile, Plan, SourceImport};
use registrar_core::region::StandingFacts;

/// The kept snapshot of one source as the base of an overlay.
struct KeptBase<'s> {
    store: &'s Store,
    source: &'s str,
}

/// Why a kept entry cannot be had from the store (errors are prefixed with the source).
#[derive(Debug, thiserror::Error)]
pub enum KeptReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The kept record does not read back as an entry.
    #[error(
        "the kept snapshot holds an unreadable entry ({source}); \
         the store was changed outside registrar"
    )]
    Unreadable { source: LdifError },
}

/// Why a kept record cannot be read back.
pub(super) fn unreadable(source: LdifError) -> KeptReadError {
    KeptReadError::Unreadable { source }
}

impl KeptBase<'_> {
    fn kept_entry(&self, key: &str) -> Result<Option<Entry>, KeptReadError> {
        let record = self.store.kept_entry(self.source, key)?;
        record
            .map(|record| parse_entry_record(&record).map_err(unreadable))
            .transpose()
    }

    fn kept_below(&self, key: &str) -> Result<Vec<(String, Entry)>, KeptReadError> {
        let rows = self.store.kept_below(self.source, key)?;
        rows.into_iter()
            .map(|(key, record)| Ok((key, parse_entry_record(&record).map_err(unreadable)?)))
            .collect()
    }
}

impl DirectoryBase for KeptBase<'_> {
    fn entry(&mut self, key: &str) -> Result<Option<Entry>, BaseError> {
        self.kept_entry(key).map_err(BaseError::new)
    }

    fn below(&mut self, key: &str) -> Result<Vec<(String, Entry)>, BaseError> {
        self.kept_below(key).map_err(BaseError::new)
    }
}

/// How many bytes of kept records are parsed at a time.
const KEPT_BATCH_BYTES: usize = 1 << 18;

/// The value limit when an apply reads again the files its plan read, and for kept
/// entries read back from the store: the plan has no config of its own to say the
/// source's `max_value_bytes`; the files must have the digests the plan recorded, so they
/// are the ones the plan's read bounded, and kept entries were bounded when first read.
const REREAD_MAX_VALUE_BYTES: usize = usize::MAX;

/// Reads the `ldif` source `source` in delta mode: its snapshot `kept` in `store`, checked
/// against the files it was imported from, with the change files it has not seen
/// applied in name order. Streams every entry of the result to `on_entry` and returns
/// what was imported, as a full read of the same files would.
///
/// Refused (`run with --mode full`): the source's path names another file, the content
/// file's bytes changed, a change file the snapshot has seen was edited, removed or is
/// no longer first in name order. A change that does not apply is an error `file:line`.
pub(super) fn read_delta(
    source: &SourceSettings,
    kept: &KeptSnapshot,
    store: &Store,
    files: &Tree,
    config_dir: &Path,
    digest: &mut InputsDigest,
    on_entry: &mut dyn FnMut(Entry),
) -> Result<SourceImport, AppError> {
    let Delta {
        overlay,
        import,
        content_check,
    } = open_delta(source, kept, store, files, config_dir, digest)?;
    // The directory: the kept entries the changes did not settle, then the overlay's,
    // read while the content file is hashed.
    let streamed = stream_kept(
        store,
        source,
        &|key| overlay.is_settled(key),
        &mut |entry, _| on_entry(entry),
    );
    content_check.confirm_with(source, streamed)?;
    overlay.into_entries().for_each(on_entry);
    Ok(import)
}

/// Streams the kept entries of `source` but those `settled` says a delta settled, with
/// their identities (an LDAP source's), in DN order. Records are parsed a batch at a
/// time by one reader, which reuses its buffers.
pub(super) fn stream_kept(
    store: &Store,
    source: &SourceSettings,
    settled: &dyn Fn(&str) -> bool,
    on_entry: &mut dyn FnMut(Entry, Option<[u8; 16]>),
) -> Result<(), AppError> {
    let mut batch = Vec::with_capacity(KEPT_BATCH_BYTES + 4096);
    let mut identities = std::collections::VecDeque::new();
    let mut parse = |batch: &mut Vec<u8>,
                     identities: &mut std::collections::VecDeque<Option<[u8; 16]>>|
     -> Result<(), AppError> {
        let reader = LdifReader::new(&batch[..]).with_max_value_bytes(REREAD_MAX_VALUE_BYTES);
        ldif::for_each_entry(reader, &mut |entry| {
            on_entry(entry, identities.pop_front().flatten())
        })
        .map_err(|e| source_error(source, unreadable(e)))?;
        batch.clear();
        identities.clear();
        Ok(())
    };
    store.for_each_kept_entry(&source.name, |key, record, identity| {
        if !settled(key) {
            batch.extend_from_slice(record);
            identities.push_back(identity.and_then(|id| <[u8; 16]>::try_from(id).ok()));
            if batch.len() >= KEPT_BATCH_BYTES {
                parse(&mut batch, &mut identities)?;
            }
        }
        Ok::<_, AppError>(())
    })?;
    parse(&mut batch, &mut identities)
}

/// A delta read before its entries are streamed: the unseen change files applied to an
/// overlay over the kept snapshot, and what the read imports.
pub(super) struct Delta {
    pub(super) overlay: Directory,
    pub(super) import: SourceImport,
    /// Whether the content file still holds the bytes the snapshot was imported from:
    /// [`ContentCheck::confirm`] it before the delta's outcome is used.
    pub(super) content_check: ContentCheck,
}

/// A source's content file, being hashed to confirm that it is the one its kept
/// snapshot was imported from. Until confirmed, a delta's outcome stands on that alone.
pub(super) struct ContentCheck {
    digest: FileDigestInProgress,
    kept_digest: String,
    /// As the import names it.
    path: String,
    serial: i64,
}

impl ContentCheck {
    /// Waits for the digest: an error when the file cannot be read or its bytes are not
    /// the snapshot's (`run with --mode full`).
    pub(super) fn confirm(self, source: &SourceSettings) -> Result<(), AppError> {
        let now = self.digest.finish().map_err(|e| source_error(source, e))?;
        if now != self.kept_digest {
            return Err(source_error(
                source,
                StaleSnapshot::ContentEdited {
                    path: self.path,
                    serial: self.serial,
                },
            ));
        }
        Ok(())
    }

    /// `outcome`, once the check is confirmed; the check's error first, since a file
    /// that changed under the snapshot may be why the rest failed.
    pub(super) fn confirm_with<T>(
        self,
        source: &SourceSettings,
        outcome: Result<T, AppError>,
    ) -> Result<T, AppError> {
        self.confirm(source)?;
        outcome
    }
}

/// Why a delta read cannot use a source's kept snapshot: a file it came from is no
/// longer what it was. Each says to read the source in full instead.
#[derive(Debug, thiserror::Error)]
pub enum StaleSnapshot {
    #[error(
        "its path is now {now}, but the kept snapshot was imported from {kept} at serial \
         {serial}; run with --mode full"
    )]
    ContentMoved {
        now: String,
        kept: String,
        serial: i64,
    },
    #[error(
        "content file {path} was imported at serial {serial} and has since been edited; \
         run with --mode full"
    )]
    ContentEdited { path: String, serial: i64 },
    #[error(
        "change file {path} was imported at serial {serial} and has since been edited; run \
         with --mode full"
    )]
    ChangeEdited { path: String, serial: i64 },
    #[error(
        "change file {path} is new but sorts before {before}, which was imported at serial \
         {serial}; run with --mode full"
    )]
    ChangeSortsBefore {
        path: String,
        before: String,
        serial: i64,
    },
    #[error(
        "change file {path} was imported at serial {serial} and has since been removed (or \
         no longer matches the source's changes); run with --mode full"
    )]
    ChangeRemoved { path: String, serial: i64 },
}

/// The checks and the change files of [`read_delta`], without reading the kept entries
/// the changes do not touch (a delta plan by region reads only those it needs). The
/// content file's check goes on beside the caller's work: see [`Delta::content_check`].
pub(super) fn open_delta(
    source: &SourceSettings,
    kept: &KeptSnapshot,
    store: &Store,
    files: &Tree,
    config_dir: &Path,
    digest: &mut InputsDigest,
) -> Result<Delta, AppError> {
    let SourceLocation::Ldif { path, .. } = &source.location else {
        unreachable!("only ldif sources keep snapshots")
    };
    let error = |error: SourceError| source_error(source, error);
    let refuse = |why: StaleSnapshot| source_error(source, why);
    let content_path = import_path(config_dir, path);
    if content_path != kept.content.path {
        return Err(refuse(StaleSnapshot::ContentMoved {
            now: content_path,
            kept: kept.content.path.clone(),
            serial: kept.content.serial,
        }));
    }
    // The content file's bytes are checked on a thread of their own: the digest takes
    // the kept one meanwhile, which is what it is unless the check refuses the delta.
    let content_check = ContentCheck {
        digest: FileDigestInProgress::start(files, path).map_err(error)?,
        kept_digest: kept.content.digest.clone(),
        path: content_path.clone(),
        serial: kept.content.serial,
    };
    digest.file(path, &kept.content.digest);
    let (overlay, imported_changes) =
        match apply_change_files(source, kept, store, files, config_dir, digest) {
            Ok(applied) => applied,
            Err(e) => return content_check.confirm_with(source, Err(e)),
        };

    Ok(Delta {
        overlay,
        import: SourceImport {
            source: source.name.clone(),
            content: ImportedFile {
                path: content_path,
                digest: kept.content.digest.clone(),
            },
            changes: imported_changes,
        },
        content_check,
    })
}

/// The change files of an `ldif` source in delta mode, checked against those its kept
/// snapshot has seen, and those it has not applied in name order onto an overlay of it:
/// the overlay, and every change file as imported.
fn apply_change_files(
    source: &SourceSettings,
    kept: &KeptSnapshot,
    store: &Store,
    files: &Tree,
    config_dir: &Path,
    digest: &mut InputsDigest,
) -> Result<(Directory, Vec<ImportedFile>), AppError> {
    let SourceLocation::Ldif {
        changes,
        max_value_bytes,
        ..
    } = &source.location
    else {
        unreachable!("only ldif sources keep snapshots")
    };
    let error = |error: SourceError| source_error(source, error);
    let refuse = |why: StaleSnapshot| source_error(source, why);
    let current: Vec<PathBuf> = match changes {
        Some(pattern) => change_files(files, pattern).map_err(error)?,
        None => Vec::new(),
    };
    let names: Vec<String> = current.iter().map(|p| import_path(config_dir, p)).collect();
    for (index, seen) in kept.changes.iter().enumerate() {
        match names.get(index) {
            Some(name) if *name == seen.path => {
                let file_digest = file_digest(files, &current[index]).map_err(error)?;
                if file_digest != seen.digest {
                    return Err(refuse(StaleSnapshot::ChangeEdited {
                        path: name.clone(),
                        serial: seen.serial,
                    }));
                }
                digest.file(&current[index], &file_digest);
            }
            Some(name) if names.contains(&seen.path) => {
                return Err(refuse(StaleSnapshot::ChangeSortsBefore {
                    path: name.clone(),
                    before: seen.path.clone(),
                    serial: seen.serial,
                }));
            }
            _ => {
                return Err(refuse(StaleSnapshot::ChangeRemoved {
                    path: seen.path.clone(),
                    serial: seen.serial,
                }))
            }
        }
    }

    let mut overlay = Directory::overlay();
    let mut base = KeptBase {
        store,
        source: &source.name,
    };
    let mut imported_changes: Vec<ImportedFile> = kept
        .changes
        .iter()
        .map(|file| ImportedFile {
            path: file.path.clone(),
            digest: file.digest.clone(),
        })
        .collect();
    for change_file in &current[kept.changes.len()..] {
        let file_digest = apply_change_file(
            files,
            change_file,
            *max_value_bytes,
            &mut overlay,
            Some(&mut base),
        )
        .map_err(error)?;
        imported_changes.push(imported(config_dir, change_file, file_digest, digest));
    }
    Ok((overlay, imported_changes))
}

/// The kept entry `key` of `source`, read back.
pub(super) fn kept_entry(
    store: &Store,
    source: &str,
    key: &str,
) -> Result<Option<Entry>, KeptReadError> {
    KeptBase { store, source }.kept_entry(key)
}

/// Why an apply cannot keep the snapshot its plan imported: the files are not the ones
/// the plan read.
#[derive(Debug, thiserror::Error)]
pub enum RereadError {
    /// A file's digest now is not the one the plan recorded.
    #[error("{path} has changed since it was planned ({then} then, {now} now)")]
    Changed {
        path: String,
        then: String,
        now: String,
    },
    /// An entry the change files leave cannot be kept as a row.
    #[error(transparent)]
    Unkeepable(#[from] UnkeepableEntry),
    /// Reading the files or applying the change files failed.
    #[error(transparent)]
    Read(Box<SourceError>),
    /// The files were not read to their end.
    #[error("it was not read to the end")]
    NotReadToEnd,
    /// An LDAP source's entries, spooled as they were read, could not be read back.
    #[error("its entries spooled while it was read cannot be read back: {0}")]
    Spool(std::io::Error),
}

/// Why an entry cannot be kept as a row: it cannot be written as an LDIF record, or its
/// footprint cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum UnkeepableEntry {
    #[error(transparent)]
    Record(#[from] std::io::Error),
    #[error(transparent)]
    Footprint(#[from] serde_json::Error),
}

impl From<SourceError> for RereadError {
    fn from(error: SourceError) -> Self {
        RereadError::Read(Box::new(error))
    }
}

/// What an apply keeps, worked out before its transaction (see [`keeping`]).
pub(super) struct Keeping<'r> {
    /// In order: writes ready to go, and whole snapshots to read again as they are
    /// written.
    writes: Vec<Keep>,
    /// The spooled entries of each [`Keep::Fed`], in the same order.
    spools: Vec<Spool>,
    /// The config digest of the standing facts the apply leaves (when every snapshot is
    /// kept); the facts are the plan's totals, known once the plan is read.
    standing: Option<String>,
    preparer: Option<EntryPreparer<'r>>,
}

/// One snapshot write of an apply.
enum Keep {
    Ready(SnapshotWrite),
    /// Keep the whole snapshot this import read, read again in the transaction.
    Whole(SourceImport),
    /// Keep the whole snapshot of an LDAP source (its search as the import's content)
    /// with the feed's cookie, from the entries spooled as it was read.
    Fed(SourceImport, KeptFeed),
}

/// What an apply of `plan` keeps besides its changes: the snapshot writes that make
/// `store` keep what `plan` imported, worked out before the apply's transaction (which
/// checks that the kept snapshots are still the ones read here), and whether the plan's
/// totals stand. Only the plan's header is read (its changes may still be on their way).
/// Files are read from `files` and must have the digests the plan recorded.
///
/// Per source: nothing when the kept snapshot is already what the plan imported; an
/// update (the change files the kept snapshot has not seen, applied to it) when it was
/// imported from the same content file and the same first change files; otherwise the
/// whole snapshot, read again in the transaction ([`apply_keeping`]). Snapshots of
/// sources the plan did not import are forgotten.
///
/// With `rules` (the plan's own config, one a delta plan by region can use), every kept
/// entry gets its footprint and the plan's totals stand; when the kept footprints were
/// worked out by another config, every snapshot is read again to work them out anew.
/// Without, the standing facts are forgotten.
///
/// `feeds` is what the pass read of LDAP sources through their change feeds: a whole
/// snapshot spooled, or the kept one brought forward (forgotten instead when its
/// footprints are another config's).
pub(super) fn keeping<'r>(
    plan: &Plan,
    plan_name: &str,
    files: &Tree,
    config_dir: &Path,
    store: &Store,
    rules: Option<&'r Rules>,
    feeds: Vec<FeedKeep>,
) -> Result<Keeping<'r>, AppError> {
    let kept = store.kept_snapshots()?;
    let preparer = rules.map(EntryPreparer::new);
    let refootprint = rules.is_some()
        && store
            .kept_standing()?
            .map(|standing| standing.config_digest)
            != Some(plan.config_digest.clone());
    let mut writes = Vec::new();
    for import in &plan.imports {
        match kept.get(&import.source) {
            Some(kept) if kept.is_start_of(import) && !refootprint => {
                if kept.changes.len() < import.changes.len() {
                    let write = update(store, kept, import, files, config_dir, preparer.as_ref())
                        .map_err(|error| refuse(plan_name, import, error))?;
                    writes.push(Keep::Ready(write));
                }
            }
            _ => writes.push(Keep::Whole(import.clone())),
        }
    }
    let fed: Vec<String> = feeds.iter().map(|f| f.source().to_string()).collect();
    let mut spools = Vec::new();
    for feed in feeds {
        writes.push(match feed {
            FeedKeep::Whole {
                source,
                search,
                feed,
                spool,
            } => {
                spools.push(spool);
                let import = SourceImport {
                    source,
                    content: search,
                    changes: Vec::new(),
                };
                Keep::Fed(import, feed)
            }
            FeedKeep::Advance { source, .. } if refootprint => {
                Keep::Ready(SnapshotWrite::Forget { source })
            }
            FeedKeep::Advance {
                source,
                search,
                from,
                to,
                put,
                remove,
            } => {
                let rows: Result<Vec<KeptEntry>, UnkeepableEntry> = put
                    .into_iter()
                    .map(|(key, entry, identity)| {
                        kept_entry_row(&source, key, &entry, preparer.as_ref())
                            .map(|row| row.with_identity(identity))
                    })
                    .collect();
                match rows {
                    Ok(put) => Keep::Ready(SnapshotWrite::Advance {
                        source,
                        search,
                        from,
                        to,
                        put,
                        remove,
                    }),
                    Err(_) => Keep::Ready(SnapshotWrite::Forget { source }),
                }
            }
        });
    }
    for source in kept.keys() {
        if !plan.imports.iter().any(|import| import.source == *source) && !fed.contains(source) {
            writes.push(Keep::Ready(SnapshotWrite::Forget {
                source: source.clone(),
            }));
        }
    }
    // A source whose snapshot cannot be kept leaves a region nothing to look in.
    let all_kept = !writes
        .iter()
        .any(|write| matches!(write, Keep::Ready(SnapshotWrite::Forget { .. })));
    let standing = (rules.is_some() && all_kept).then(|| plan.config_digest.clone());
    Ok(Keeping {
        writes,
        spools,
        standing,
        preparer,
    })
}

/// Why an apply refuses to keep the snapshot `import` read.
fn refuse(plan_name: &str, import: &SourceImport, reason: RereadError) -> AppError {
    AppError::SnapshotNotKept {
        plan_name: plan_name.to_string(),
        source_name: import.source.clone(),
        reason,
    }
}

/// Kept entries per message to the writing thread, and messages waiting at most: large
/// messages (each one `COPY` on PostgreSQL, whose fixed cost fades at this size), and few
/// of them waiting, so that at most 16k entries are read ahead of the writer.
const ROWS_PER_BATCH: usize = 8192;
const BATCHES_IN_FLIGHT: usize = 2;

/// What an apply's reading side hands its writing thread, in this order: the plan's
/// changes in order, `ChangesEnd`, the standing facts the apply leaves, each whole
/// snapshot's rows and then its end (in the order of [`Keeping`]'s writes), and last the
/// rows the changes wrote.
pub(super) enum ToWriter<'p> {
    Changes(Cow<'p, [Change]>),
    ChangesEnd,
    Standing(Option<Standing>),
    Rows(Vec<KeptEntry>),
    /// The snapshot is read: `Ok(Some(why))` when it cannot be kept, `Err` when its
    /// files are not the ones the plan imported.
    End(Result<Option<UnkeepableEntry>, RereadError>),
    Written(Vec<WrittenRow>),
}

/// The channel from an apply's reading side to its writing thread; a few messages wait
/// at most, so that reading never runs far ahead of writing.
pub(super) struct ToWriterChannel<'p> {
    sender: SyncSender<ToWriter<'p>>,
    receiver: Receiver<ToWriter<'p>>,
}

impl<'p> ToWriterChannel<'p> {
    pub(super) fn new() -> Self {
        let (sender, receiver) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
        ToWriterChannel { sender, receiver }
    }

    /// Another sender, for a thread that hands over the changes.
    pub(super) fn sender(&self) -> SyncSender<ToWriter<'p>> {
        self.sender.clone()
    }
}

/// What the reading side worked out of the plan while handing its changes over.
pub(super) struct HandedOver {
    /// The plan's totals, which stand for delta plans when [`Keeping`] says so.
    pub(super) facts: StandingFacts,
    /// [`drift::written_rows`] of the plan's changes.
    pub(super) written: Vec<WrittenRow>,
}

/// Applies a plan made at store serial `planned` to `store` (opened for it, or a leading
/// controller's own session, lent) in one transaction, with what `keeping` keeps. Two threads share the work: this one reads, the other writes. Here
/// `hand_over` sends the plan's changes ([`ToWriter::Changes`], as many at a time as it
/// likes, possibly from another thread) and answers what it worked out of them (`None`
/// when the writing thread stopped listening); then the whole snapshots are read again
/// and streamed over, and the written rows follow. The writing thread writes the changes,
/// the snapshots, then the hashes, and commits only once it has heard everything. When
/// both sides fail, the reading side's error is the one told (a file broken partway
/// before a conflict it would have met, say); when only the writing thread fails, its
/// own.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_keeping<'p>(
    store: impl BorrowMut<Store> + Send,
    planned: i64,
    run: RunRecord,
    keeping: Keeping<'_>,
    plan_name: &str,
    (files, config_dir): (&Tree, &Path),
    mut progress: impl FnMut(u64) + Send,
    channel: ToWriterChannel<'p>,
    hand_over: impl FnOnce(&SyncSender<ToWriter<'p>>) -> Result<Option<HandedOver>, AppError>,
) -> Result<i64, AppError> {
    let ToWriterChannel { sender, receiver } = channel;
    let Keeping {
        writes,
        spools,
        standing,
        preparer,
    } = keeping;
    std::thread::scope(|scope| {
        let writes = &writes;
        let writing = scope.spawn(move || {
            // Declared first, so dropped last: its handle on the store file must close
            // after the store's connection (see `Writeback`).
            let _writeback = store.borrow().path().map(Writeback::start);
            let mut store = store;
            let store = store.borrow_mut();
            let unfinished = || AppError::PlanNotReadToEnd {
                plan_name: plan_name.to_string(),
            };
            let changes = |writer: &mut ChangeWriter<'_>| loop {
                match receiver.recv() {
                    Ok(ToWriter::Changes(batch)) => writer.write(&batch, &mut progress)?,
                    Ok(ToWriter::ChangesEnd) => return Ok(()),
                    _ => return Err(unfinished()),
                }
            };
            let keep = |writer: &mut SnapshotWriter<'_>| match receiver.recv() {
                Ok(ToWriter::Standing(standing)) => {
                    write_kept(writer, writes, standing, &receiver, plan_name)
                }
                _ => Err(unfinished()),
            };
            let written = || match receiver.recv() {
                Ok(ToWriter::Written(rows)) => Ok(rows),
                _ => Err(unfinished()),
            };
            store.apply_keeping(planned, run, changes, keep, written)
        });
        let read = read_side(
            &sender,
            hand_over,
            standing,
            (writes, spools),
            (files, config_dir),
            preparer.as_ref(),
        );
        drop(sender);
        let written = writing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read.and(written)
    })
}

/// The reading side of [`apply_keeping`]: everything the writing thread hears, until it
/// stops listening (it then tells why itself).
fn read_side<'p>(
    sender: &SyncSender<ToWriter<'p>>,
    hand_over: impl FnOnce(&SyncSender<ToWriter<'p>>) -> Result<Option<HandedOver>, AppError>,
    standing: Option<String>,
    (writes, spools): (&[Keep], Vec<Spool>),
    (files, config_dir): (&Tree, &Path),
    preparer: Option<&EntryPreparer>,
) -> Result<(), AppError> {
    let Some(HandedOver { facts, written }) = hand_over(sender)? else {
        return Ok(());
    };
    let standing = standing.map(|config_digest| Standing {
        config_digest,
        facts,
    });
    let send = |message| sender.send(message).is_ok();
    if !send(ToWriter::ChangesEnd) || !send(ToWriter::Standing(standing)) {
        return Ok(());
    }
    let mut spools = spools.into_iter();
    for keep in writes {
        let mut send_rows = |rows| send(ToWriter::Rows(rows));
        let end = match keep {
            Keep::Ready(_) => continue,
            Keep::Whole(import) => read_whole(import, files, config_dir, preparer, &mut send_rows),
            Keep::Fed(import, _) => match spools.next() {
                Some(spool) => read_spool(&import.source, spool, preparer, &mut send_rows),
                None => Err(RereadError::NotReadToEnd),
            },
        };
        if !send(ToWriter::End(end)) {
            return Ok(());
        }
    }
    send(ToWriter::Written(written));
    Ok(())
}

/// The writing thread's side of [`apply_keeping`]: carries out `writes` in order, the
/// whole snapshots from what `receiver` brings, and answers the standing facts (none
/// when a snapshot could not be kept after all).
fn write_kept(
    writer: &mut SnapshotWriter<'_>,
    writes: &[Keep],
    mut standing: Option<Standing>,
    receiver: &Receiver<ToWriter<'_>>,
    plan_name: &str,
) -> Result<Option<Standing>, AppError> {
    for keep in writes {
        let (import, feed) = match keep {
            Keep::Ready(write) => {
                writer.write(write)?;
                continue;
            }
            Keep::Whole(import) => (import, None),
            Keep::Fed(import, feed) => (import, Some(feed)),
        };
        writer.begin(import, feed)?;
        let mut shared_dn = false;
        let unkept = loop {
            match receiver.recv() {
                Ok(ToWriter::Rows(rows)) => {
                    shared_dn = shared_dn || !writer.add(&import.source, &rows)?;
                }
                Ok(ToWriter::End(Ok(unwritable))) => {
                    break unwritable
                        .map(|why| why.to_string())
                        .or_else(|| shared_dn.then(|| "two entries share a DN".to_string()))
                }
                Ok(ToWriter::End(Err(error))) => return Err(refuse(plan_name, import, error)),
                _ => return Err(refuse(plan_name, import, RereadError::NotReadToEnd)),
            }
        };
        // A directory with two entries of one DN cannot be kept by DN: its snapshot is
        // forgotten instead, and a delta read of it is a full one.
        if let Some(why) = unkept {
            eprintln!(
                "note: source {}: {why}; no snapshot is kept, and --mode delta reads it in full",
                import.source
            );
            writer.forget(&import.source)?;
            standing = None;
        }
    }
    Ok(standing)
}

/// `entry` of `source` as a row to keep, with its footprint when `preparer` is given.
fn kept_entry_row(
    source: &str,
    key: String,
    entry: &Entry,
    preparer: Option<&EntryPreparer>,
) -> Result<KeptEntry, UnkeepableEntry> {
    kept_record_row(source, key, entry_record(entry)?, entry, preparer)
}

/// `entry` of `source` as a row to keep, `record` being its LDIF record.
fn kept_record_row(
    source: &str,
    key: String,
    record: Vec<u8>,
    entry: &Entry,
    preparer: Option<&EntryPreparer>,
) -> Result<KeptEntry, UnkeepableEntry> {
    let footprint = preparer.map(|p| p.footprint(&p.prepare(source, entry)));
    Ok(KeptEntry::new(key, record, footprint)?)
}

/// The entries of an LDAP source spooled as they were read, as rows to keep (see
/// [`read_whole`]).
fn read_spool(
    source: &str,
    spool: Spool,
    preparer: Option<&EntryPreparer>,
    send: &mut dyn FnMut(Vec<KeptEntry>) -> bool,
) -> Result<Option<UnkeepableEntry>, RereadError> {
    let mut rows: Vec<KeptEntry> = Vec::with_capacity(ROWS_PER_BATCH);
    let mut failed = None;
    let mut listening = true;
    spool
        .read(&mut |identity, record| {
            let row = parse_entry_record(&record)
                .map_err(|e| RereadError::Spool(std::io::Error::other(e.to_string())))
                .and_then(|entry| {
                    let key = normalize_dn(&entry.dn);
                    kept_record_row(source, key, record, &entry, preparer).map_err(Into::into)
                });
            match row {
                Ok(row) => rows.push(row.with_identity(identity)),
                Err(error) => {
                    failed = Some(error);
                    return false;
                }
            }
            if rows.len() == ROWS_PER_BATCH {
                let full = std::mem::replace(&mut rows, Vec::with_capacity(ROWS_PER_BATCH));
                listening = send(full);
            }
            listening
        })
        .map_err(RereadError::Spool)?;
    match failed {
        Some(RereadError::Unkeepable(why)) => return Ok(Some(why)),
        Some(error) => return Err(error),
        None => {}
    }
    if listening && !rows.is_empty() {
        send(rows);
    }
    Ok(None)
}

/// The file `file` of an import, where `files` has it.
fn import_file(config_dir: &Path, file: &ImportedFile) -> PathBuf {
    config_dir.join(&file.path)
}

/// The digest of a file read now against the one a plan recorded.
fn check_digest(file: &ImportedFile, now: &str) -> Result<(), RereadError> {
    if now == file.digest {
        Ok(())
    } else {
        Err(RereadError::Changed {
            path: file.path.clone(),
            then: file.digest.clone(),
            now: now.to_string(),
        })
    }
}

/// Checks the digests of change files before applying them, so that an edited file is
/// told as such rather than as a change that does not apply. (Change files are small;
/// the content file is checked as it is read.)
fn check_change_files(
    changes: &[ImportedFile],
    files: &Tree,
    config_dir: &Path,
) -> Result<(), RereadError> {
    for file in changes {
        let now = file_digest(files, &import_file(config_dir, file))?;
        check_digest(file, &now)?;
    }
    Ok(())
}

/// The kept snapshot `kept` brought to `import` by applying the change files it has not
/// seen.
fn update(
    store: &Store,
    kept: &KeptSnapshot,
    import: &SourceImport,
    files: &Tree,
    config_dir: &Path,
    preparer: Option<&EntryPreparer>,
) -> Result<SnapshotWrite, RereadError> {
    let mut overlay = Directory::overlay();
    let mut base = KeptBase {
        store,
        source: &import.source,
    };
    let new_files = &import.changes[kept.changes.len()..];
    check_change_files(new_files, files, config_dir)?;
    for file in new_files {
        let path = import_file(config_dir, file);
        let now = apply_change_file(
            files,
            &path,
            REREAD_MAX_VALUE_BYTES,
            &mut overlay,
            Some(&mut base),
        )?;
        check_digest(file, &hex_digest(now))?;
    }
    let (mut put, mut remove) = (Vec::new(), Vec::new());
    for (key, entry) in overlay.touched() {
        match entry {
            Some(entry) => put.push(kept_entry_row(
                &import.source,
                key.to_string(),
                entry,
                preparer,
            )?),
            None => remove.push(key.to_string()),
        }
    }
    Ok(SnapshotWrite::Update {
        import: import.clone(),
        base_changes: kept.changes.len(),
        put,
        remove,
    })
}

/// The whole snapshot `import` read, read again: every entry as a row, handed to `send`
/// in batches until it answers `false` (nobody listens any more). `Ok(Some(why))` when
/// an entry cannot be kept as a record; `Err` when a file is not what the plan imported.
fn read_whole(
    import: &SourceImport,
    files: &Tree,
    config_dir: &Path,
    preparer: Option<&EntryPreparer>,
    send: &mut dyn FnMut(Vec<KeptEntry>) -> bool,
) -> Result<Option<UnkeepableEntry>, RereadError> {
    check_change_files(&import.changes, files, config_dir)?;
    let content = import_file(config_dir, &import.content);
    let changes: Vec<PathBuf> = import
        .changes
        .iter()
        .map(|file| import_file(config_dir, file))
        .collect();
    let mut rows: Vec<KeptEntry> = Vec::with_capacity(ROWS_PER_BATCH);
    let mut unwritable = None;
    let mut listening = true;
    let read = read_ldif(
        &import.source,
        files,
        config_dir,
        (
            &content,
            (!changes.is_empty()).then_some(changes.as_slice()),
        ),
        REREAD_MAX_VALUE_BYTES,
        &mut InputsDigest::unused(),
        &mut |entry| {
            if listening && unwritable.is_none() {
                let key = normalize_dn(&entry.dn);
                match kept_entry_row(&import.source, key, &entry, preparer) {
                    Ok(row) => rows.push(row),
                    Err(e) => unwritable = Some(e),
                }
                if rows.len() == ROWS_PER_BATCH {
                    let full = std::mem::replace(&mut rows, Vec::with_capacity(ROWS_PER_BATCH));
                    listening = send(full);
                }
            }
            // The reader fills the entry's buffers again with the next record.
            ldif::recycle([entry]);
        },
    )?;
    if listening && !rows.is_empty() {
        send(rows);
    }
    check_digest(&import.content, &read.content.digest)?;
    for (file, now) in import.changes.iter().zip(&read.changes) {
        check_digest(file, &now.digest)?;
    }
    Ok(unwritable)
}
