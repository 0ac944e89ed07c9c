//! Kept snapshots: per `ldif` source, the directory it was last imported as (one LDIF
//! content record per entry, keyed by normalised DN) and the files it came from
//! (content file and change files, with their digests and the serial that imported
//! them); per LDAP source read through a change feed, the entries it was last read as
//! (each with its 16-byte identity), the digest of its search and the feed's cookie.
//! Delta import reads them; an apply writes them in its own transaction.
//!
//! Like the rest of the store, this carries out what it is given: which rows to write is
//! decided by the caller ([`SnapshotWrite`]). It only checks that an update lands on the
//! kept snapshot it was computed from.

use std::collections::{BTreeMap, BTreeSet};

use super::database::{params, Database, OptionalRow, Param, SqlError, SqlResult};

use super::bulk::{Bulk, BulkRow, Constraint, Deferred};
use super::error::{blob_literal, store_error, StoreError, UnreadableValue, ValueProblem};
use super::location::StoreLocation;
use super::open::Store;
use crate::adapters::ldif::{below_range, tree_key};
use registrar_core::desired::EntryFootprint;
use registrar_core::plan::{ImportedFile, SourceImport};
use registrar_core::region::StandingFacts;
use registrar_core::state::RegistrationKey;

/// One file of a kept snapshot, and the state serial of the apply that imported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFile {
    /// Relative to the config directory, as in [`ImportedFile`].
    pub path: String,
    pub digest: String,
    pub serial: i64,
}

impl KeptFile {
    /// Whether this is the file `file` names, with the same bytes.
    pub fn is(&self, file: &ImportedFile) -> bool {
        self.path == file.path && self.digest == file.digest
    }
}

/// What the store keeps of one source's last import (without its entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSnapshot {
    pub source: String,
    /// An `ldif` source's content file; an LDAP source's search (its description, and
    /// the digest of what it asks).
    pub content: KeptFile,
    /// In the order they were applied.
    pub changes: Vec<KeptFile>,
    /// An LDAP source's change feed and the cookie to ask it with (`None`: an `ldif`
    /// source).
    pub feed: Option<KeptFeed>,
}

/// A change feed's position: the feed (`syncrepl`, `dirsync`), the cookie the server
/// gave with the entries kept, and the digest of those entries (the app's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFeed {
    pub feed: String,
    pub cookie: Vec<u8>,
    pub entries_digest: String,
}

impl KeptSnapshot {
    /// Whether `import`, read from the same content file, applies the change files this
    /// snapshot has seen first, in the same order, each with the same bytes: then the
    /// snapshot plus `import`'s remaining change files is what `import` reads.
    pub fn is_start_of(&self, import: &SourceImport) -> bool {
        self.source == import.source
            && self.content.is(&import.content)
            && self.changes.len() <= import.changes.len()
            && self
                .changes
                .iter()
                .zip(&import.changes)
                .all(|(kept, file)| kept.is(file))
    }
}

/// An entry row: its normalised DN and its LDIF content record.
pub type EntryRow = (String, Vec<u8>);

/// A kept entry's LDIF content record and its footprint (`None`: it has none, or its
/// lists do not read).
pub type KeptRecord = (Vec<u8>, Option<EntryFootprint>);

/// An entry to keep: its normalised DN, its LDIF content record and, when the store keeps
/// footprints (see [`Standing`]), its footprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptEntry {
    pub key: String,
    pub record: Vec<u8>,
    pub footprint: Option<EntryFootprint>,
    /// An LDAP entry's identity (`entryUUID`, `objectGUID`), by which a feed names it.
    pub identity: Option<[u8; 16]>,
    /// The footprint's lists as the row keeps them (JSON; `None` when empty), made with
    /// the entry on the thread that reads it: the writing thread has work enough.
    lists: Option<String>,
}

impl KeptEntry {
    pub fn new(
        key: String,
        record: Vec<u8>,
        footprint: Option<EntryFootprint>,
    ) -> Result<KeptEntry, serde_json::Error> {
        let lists = footprint
            .as_ref()
            .map(FootprintLists::of)
            .filter(|lists| !lists.is_empty())
            .map(|lists| serde_json::to_string(&lists))
            .transpose()?;
        Ok(KeptEntry {
            key,
            record,
            footprint,
            identity: None,
            lists,
        })
    }

    /// This entry with the identity a change feed names it by.
    pub fn with_identity(self, identity: [u8; 16]) -> KeptEntry {
        KeptEntry {
            identity: Some(identity),
            ..self
        }
    }
}

/// The standing facts an apply leaves: the totals of the plan it applied, valid for the
/// config with this digest and the serial the apply gives the store. The kept entries'
/// footprints are that config's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub config_digest: String,
    pub facts: StandingFacts,
}

/// What an apply keeps besides its changes: the snapshot writes, and the standing facts
/// (none forgets them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptWrites {
    pub snapshots: Vec<SnapshotWrite>,
    pub standing: Option<Standing>,
}

/// Standing facts as the store has them: valid while the store is at `serial`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptStanding {
    pub serial: i64,
    pub config_digest: String,
    pub facts: StandingFacts,
}

/// A change to the kept snapshots, written by [`Store::apply_keeping`] in the apply's
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotWrite {
    /// Keep no snapshot of `source` (it cannot be kept, or the source is gone).
    Forget { source: String },
    /// Keep `entries` as the whole snapshot `import` read (an LDAP source's through
    /// `feed`).
    Replace {
        import: SourceImport,
        feed: Option<KeptFeed>,
        entries: Vec<KeptEntry>,
    },
    /// Bring the kept snapshot, which has seen the first `base_changes` change files of
    /// `import`, to what `import` read: write `put`, delete `remove`.
    Update {
        import: SourceImport,
        base_changes: usize,
        put: Vec<KeptEntry>,
        remove: Vec<String>,
    },
    /// Bring the kept snapshot of an LDAP source, kept from the search `search` with the
    /// cookie `from`, to what its feed said since: write `put`, delete `remove`, and keep
    /// the cookie `to`.
    Advance {
        source: String,
        search: ImportedFile,
        from: Vec<u8>,
        to: KeptFeed,
        put: Vec<KeptEntry>,
        remove: Vec<String>,
    },
}

impl Store {
    /// The kept snapshots by source, without their entries.
    pub fn kept_snapshots(&self) -> Result<BTreeMap<String, KeptSnapshot>, StoreError> {
        let mut kept = BTreeMap::new();
        let mut statement = self
            .connection
            .prepare(
                "SELECT source, content_path, content_digest, imported_serial, feed, cookie, \
                 entries_digest FROM snapshots",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![], |row| {
                Ok(KeptSnapshot {
                    source: row.get(0)?,
                    content: KeptFile {
                        path: row.get(1)?,
                        digest: row.get(2)?,
                        serial: row.get(3)?,
                    },
                    changes: Vec::new(),
                    feed: match (row.get::<Option<String>>(4)?, row.get(5)?, row.get(6)?) {
                        (Some(feed), Some(cookie), Some(entries_digest)) => Some(KeptFeed {
                            feed,
                            cookie,
                            entries_digest,
                        }),
                        _ => None,
                    },
                })
            })
            .map_err(|e| self.error(e))?;
        for snapshot in rows {
            kept.insert(snapshot.source.clone(), snapshot);
        }
        let mut statement = self
            .connection
            .prepare(
                "SELECT source, path, digest, imported_serial FROM snapshot_change_files \
                 ORDER BY source, position",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![], |row| {
                Ok((
                    row.get::<String>(0)?,
                    KeptFile {
                        path: row.get(1)?,
                        digest: row.get(2)?,
                        serial: row.get(3)?,
                    },
                ))
            })
            .map_err(|e| self.error(e))?;
        for (source, file) in rows {
            if let Some(snapshot) = kept.get_mut(&source) {
                snapshot.changes.push(file);
            }
        }
        Ok(kept)
    }

    /// The record of the kept entry of `source` whose normalised DN is `key`, if any.
    pub fn kept_entry(&self, source: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.connection
            .prepare("SELECT record FROM snapshot_entries WHERE source = ?1 AND dn_key = ?2")
            .and_then(|mut statement| {
                statement
                    .query_row(params![source, key], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.error(e))
    }

    /// The normalised DN of the kept entry of `source` with the identity `identity`, if
    /// any (an LDAP source read through a change feed).
    pub fn kept_key_of(
        &self,
        source: &str,
        identity: &[u8; 16],
    ) -> Result<Option<String>, StoreError> {
        self.connection
            .prepare("SELECT dn_key FROM snapshot_entries WHERE source = ?1 AND identity = ?2")
            .and_then(|mut statement| {
                statement
                    .query_row(params![source, &identity[..]], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| self.error(e))
    }

    /// Every kept entry of `source` that has an identity: the identity and the
    /// normalised DN.
    pub fn kept_identities(&self, source: &str) -> Result<Vec<([u8; 16], String)>, StoreError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT identity, dn_key FROM snapshot_entries \
                 WHERE source = ?1 AND identity IS NOT NULL",
            )
            .map_err(|e| self.error(e))?;
        statement
            .query_map(params![source], |row| {
                let (identity, key) = (row.get::<Vec<u8>>(0)?, row.get::<String>(1)?);
                match <[u8; 16]>::try_from(identity.as_slice()) {
                    Ok(identity) => Ok((identity, key)),
                    Err(_) => Err(UnreadableValue {
                        table: "snapshot_entries",
                        row: format!("source {source:?} dn_key {key:?}"),
                        column: "identity",
                        found: blob_literal(&identity),
                        problem: ValueProblem::Length {
                            found: identity.len(),
                            expected: 16,
                        },
                    }
                    .into_sql(0)),
                }
            })
            .map_err(|e| self.error(e))
    }

    /// The kept entries of `source` strictly below the normalised DN `key`, as
    /// `ldif::Directory` finds them (through `ldif::tree_key`).
    pub fn kept_below(&self, source: &str, key: &str) -> Result<Vec<EntryRow>, StoreError> {
        let (after, before) = below_range(&tree_key(key));
        let mut statement = self
            .connection
            .prepare(
                "SELECT dn_key, record FROM snapshot_entries \
                 WHERE source = ?1 AND tree > ?2 AND tree < ?3 ORDER BY dn_key",
            )
            .map_err(|e| self.error(e))?;
        statement
            .query_map(params![source, after, before], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .map_err(|e| self.error(e))
    }

    /// The standing facts, if an apply left some.
    pub fn kept_standing(&self) -> Result<Option<KeptStanding>, StoreError> {
        let row: Option<(i64, String, String)> = self
            .connection
            .query_row(
                "SELECT serial, config_digest, facts FROM standing_facts WHERE id = 1",
                params![],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        let Some((serial, config_digest, facts)) = row else {
            return Ok(None);
        };
        // Unreadable facts (an older or edited store) are no facts: plans are made in full.
        Ok(serde_json::from_str(&facts).ok().map(|facts| KeptStanding {
            serial,
            config_digest,
            facts,
        }))
    }

    /// The kept entries (source, normalised DN) whose footprint has `anchor`.
    pub fn kept_on_anchor(&self, anchor: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.kept_keys(
            "SELECT source, dn_key FROM snapshot_entries WHERE anchor = ?1",
            params![anchor],
        )
    }

    /// The kept entries (source, normalised DN) whose footprint produces `name`.
    pub fn kept_producing(
        &self,
        name: &RegistrationKey,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.kept_keys(
            "SELECT source, dn_key FROM snapshot_names WHERE protocol = ?1 AND name_key = ?2",
            params![name.protocol, name.name_key],
        )
    }

    /// The kept entry `key` of `source` with the footprint kept beside it (`None`: the
    /// entry has no footprint, or its lists do not read).
    pub fn kept_entry_with_footprint(
        &self,
        source: &str,
        key: &str,
    ) -> Result<Option<KeptRecord>, StoreError> {
        type Row = (Vec<u8>, Option<String>, bool, Option<String>);
        let row: Option<Row> = self
            .connection
            .prepare(
                "SELECT record, anchor, yields, footprint FROM snapshot_entries \
                 WHERE source = ?1 AND dn_key = ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![source, key], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .optional()
            })
            .map_err(|e| self.error(e))?;
        Ok(row.map(|(record, anchor, yields, lists)| {
            let lists = match lists.as_deref() {
                None => Some(FootprintLists::default()),
                Some(text) => serde_json::from_str::<FootprintLists>(text).ok(),
            };
            let footprint = lists.map(|lists| EntryFootprint {
                anchor: anchor.map(Into::into),
                yields_account: yields,
                names: lists
                    .names
                    .into_iter()
                    .map(|[protocol, name_key]| RegistrationKey {
                        protocol: protocol.into(),
                        name_key: name_key.into(),
                    })
                    .collect(),
                groups: lists.groups.into_iter().map(|g| g.into_owned()).collect(),
                members: lists.members.into_iter().map(|m| m.into_owned()).collect(),
            });
            (record, footprint)
        }))
    }

    /// The kept entries (source, normalised DN) whose footprint gives the group `name`.
    pub fn kept_giving_group(&self, name: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.kept_keys(
            "SELECT source, dn_key FROM snapshot_groups WHERE name = ?1",
            params![name],
        )
    }

    /// The kept group entries of `source` (normalised DNs) that list `member` (a
    /// normalised DN) as a member.
    pub fn kept_listing(&self, source: &str, member: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.kept_keys(
            "SELECT source, dn_key FROM snapshot_members WHERE source = ?1 AND member = ?2",
            params![source, member],
        )?;
        Ok(rows.into_iter().map(|(_, key)| key).collect())
    }

    fn kept_keys(
        &self,
        sql: &str,
        parameters: &[Param<'_>],
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.connection
            .query_map(sql, parameters, |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.error(e))
    }

    /// Whether `source` keeps an entry that makes an account, other than those in
    /// `except` (normalised DNs): whether the source yields an account outside a region.
    pub fn kept_yielding_beyond(
        &self,
        source: &str,
        except: &BTreeSet<String>,
    ) -> Result<bool, StoreError> {
        // The first `except.len() + 1` such entries settle it.
        let mut statement = self
            .connection
            .prepare(
                "SELECT dn_key FROM snapshot_entries WHERE source = ?1 AND yields = 1 LIMIT ?2",
            )
            .map_err(|e| self.error(e))?;
        let keys = statement
            .query_map(params![source, except.len() as i64 + 1], |row| {
                row.get::<String>(0)
            })
            .map_err(|e| self.error(e))?;
        Ok(keys.iter().any(|key| !except.contains(key)))
    }

    /// Calls `each` with every kept entry of `source` (normalised DN, record, identity),
    /// in DN order. `each` may stop the walk with an error, which is returned as is.
    pub fn for_each_kept_entry<E: From<StoreError>>(
        &self,
        source: &str,
        mut each: impl FnMut(&str, &[u8], Option<Vec<u8>>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT dn_key, record, identity FROM snapshot_entries WHERE source = ?1 \
                 ORDER BY dn_key",
            )
            .map_err(|e| self.error(e))?;
        // `each`'s own error stops the walk and is kept here, as the walk can only carry
        // a database error.
        let mut stopped = None;
        let walked = statement.for_each_row(params![source], |row| {
            let (key, record) = (row.get_str(0)?, row.get_bytes(1)?);
            match each(key, record, row.get(2)?) {
                Ok(()) => Ok(()),
                Err(error) => {
                    stopped = Some(error);
                    Err(SqlError::NoRow)
                }
            }
        });
        match (stopped, walked) {
            (Some(error), _) => Err(error),
            (None, walked) => walked.map_err(|e| self.error(e).into()),
        }
    }
}

/// The snapshot writes of one apply, inside its transaction (see
/// [`Store::apply_keeping`]). Each write that lands moves the store's serial.
pub struct SnapshotWriter<'t> {
    connection: &'t Database,
    location: &'t StoreLocation,
    /// The serial the apply gives the store if anything is written.
    serial: i64,
    wrote: bool,
    /// [`ENTRY_DEFERRED`] was dropped (the store kept no snapshot), to be built again
    /// whole.
    deferred: bool,
}

/// What a first import into a store that keeps no snapshot builds after its entries
/// ([`Deferred`]): the indexes of `snapshot_entries` whose keys come in no useful order
/// while a snapshot is read (`tree` reverses the DN), and on PostgreSQL the key of
/// `snapshot_names` and the reference from an entry to its snapshot, all exactly as the
/// migrations make them. At a million entries, most of the time of writing a snapshot.
/// The entries' key by DN stays: it is how a DN read twice is caught.
pub(super) const ENTRY_DEFERRED: Deferred = Deferred {
    indexes: &[
        (
            "snapshot_entries_by_tree",
            "CREATE INDEX snapshot_entries_by_tree ON snapshot_entries (source, tree)",
        ),
        (
            "snapshot_entries_by_anchor",
            "CREATE INDEX snapshot_entries_by_anchor ON snapshot_entries (anchor) WHERE anchor IS NOT NULL",
        ),
        (
            "snapshot_entries_by_identity",
            "CREATE INDEX snapshot_entries_by_identity ON snapshot_entries (source, identity)\n        WHERE identity IS NOT NULL",
        ),
    ],
    constraints: &[
        Constraint {
            table: "snapshot_entries",
            name: "snapshot_entries_source_fkey",
            definition: "FOREIGN KEY (source) REFERENCES snapshots (source) ON DELETE CASCADE",
        },
        Constraint {
            table: "snapshot_names",
            name: "snapshot_names_pkey",
            definition: "PRIMARY KEY (name_key, protocol, source, dn_key)",
        },
    ],
};

impl<'t> SnapshotWriter<'t> {
    pub(super) fn new(connection: &'t Database, location: &'t StoreLocation, serial: i64) -> Self {
        SnapshotWriter {
            connection,
            location,
            serial,
            wrote: false,
            deferred: false,
        }
    }

    /// Ends the writes: builds again what a first import dropped.
    pub(super) fn finish(self) -> Result<(), StoreError> {
        if self.deferred {
            ENTRY_DEFERRED
                .rebuild_all(self.connection)
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Whether anything was written.
    pub(super) fn wrote(&self) -> bool {
        self.wrote
    }

    fn fail(&self, error: SqlError) -> StoreError {
        store_error(self.location, error)
    }

    /// Carries out `write`; refuses an update whose base is not the kept snapshot.
    pub fn write(&mut self, write: &SnapshotWrite) -> Result<(), StoreError> {
        self.wrote = true;
        match write {
            SnapshotWrite::Forget { source } => self.forget(source),
            SnapshotWrite::Replace {
                import,
                feed,
                entries,
            } => {
                self.begin(import, feed.as_ref())?;
                insert_entries(self.connection, &import.source, entries, Existing::Replace)
                    .map_err(|e| self.fail(e))?;
                Ok(())
            }
            SnapshotWrite::Update {
                import,
                base_changes,
                put,
                remove,
            } => match update(
                self.connection,
                import,
                *base_changes,
                put,
                remove,
                self.serial,
            )
            .map_err(|e| self.fail(e))?
            {
                Updated::Landed => Ok(()),
                Updated::Stale => Err(StoreError::StaleSnapshot {
                    source_name: import.source.clone(),
                }),
            },
            SnapshotWrite::Advance {
                source,
                search,
                from,
                to,
                put,
                remove,
            } => match advance(self.connection, source, search, (from, to), put, remove)
                .map_err(|e| self.fail(e))?
            {
                Updated::Landed => Ok(()),
                Updated::Stale => Err(StoreError::StaleSnapshot {
                    source_name: source.clone(),
                }),
            },
        }
    }

    /// Keeps no snapshot of `source`.
    pub fn forget(&mut self, source: &str) -> Result<(), StoreError> {
        self.wrote = true;
        let forget = || {
            // The entries go by name too: a first import drops the reference that
            // deletes them with their snapshot (`ENTRY_DEFERRED`).
            self.connection.execute(
                "DELETE FROM snapshot_entries WHERE source = ?1",
                params![source],
            )?;
            self.connection
                .execute("DELETE FROM snapshots WHERE source = ?1", params![source])?;
            forget_source_footprints(self.connection, source)
        };
        forget().map_err(|e| self.fail(e))
    }

    /// Starts the whole snapshot `import` read (an LDAP source's with its `feed`), without
    /// entries: [`SnapshotWriter::add`] brings them.
    pub fn begin(
        &mut self,
        import: &SourceImport,
        feed: Option<&KeptFeed>,
    ) -> Result<(), StoreError> {
        let first_import = || -> SqlResult<bool> {
            let none_kept: bool = self.connection.query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM snapshots)",
                params![],
                |row| row.get(0),
            )?;
            if none_kept {
                ENTRY_DEFERRED.drop_all(self.connection)?;
            }
            Ok(none_kept)
        };
        if !self.deferred && first_import().map_err(|e| self.fail(e))? {
            self.deferred = true;
        }
        self.forget(&import.source)?;
        let begin = || {
            self.connection.execute(
                "INSERT INTO snapshots (source, content_path, content_digest, \
                 imported_serial, feed, cookie, entries_digest) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    import.source,
                    import.content.path,
                    import.content.digest,
                    self.serial,
                    feed.map(|feed| feed.feed.as_str()),
                    feed.map(|feed| feed.cookie.as_slice()),
                    feed.map(|feed| feed.entries_digest.as_str())
                ],
            )?;
            insert_change_files(self.connection, import, 0, self.serial)
        };
        begin().map_err(|e| self.fail(e))
    }

    /// Adds `entries` to the snapshot of `source` begun with [`SnapshotWriter::begin`].
    /// `false` when one of them has the DN of an entry already kept (two entries share a
    /// DN: the snapshot cannot be kept by DN, and the caller forgets it).
    pub fn add(&mut self, source: &str, entries: &[KeptEntry]) -> Result<bool, StoreError> {
        insert_entries(self.connection, source, entries, Existing::Refuse).map_err(|e| self.fail(e))
    }
}

/// Brings the kept snapshot of `import`'s source, which has seen `base_changes` of its
/// change files, to what `import` read; `serial` is the serial the apply gives the store.
/// [`Updated::Stale`], writing nothing, when the kept snapshot is not the update's base.
fn update(
    connection: &Database,
    import: &SourceImport,
    base_changes: usize,
    put: &[KeptEntry],
    remove: &[String],
    serial: i64,
) -> SqlResult<Updated> {
    let source = &import.source;
    let content: Option<(String, String)> = connection
        .query_row(
            "SELECT content_path, content_digest FROM snapshots WHERE source = ?1",
            params![source],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let mut statement = connection.prepare(
        "SELECT path, digest FROM snapshot_change_files WHERE source = ?1 ORDER BY position",
    )?;
    let seen = statement.query_map(params![source], |row| {
        Ok(ImportedFile {
            path: row.get(0)?,
            digest: row.get(1)?,
        })
    })?;
    let base = import.changes.get(..base_changes);
    if content != Some((import.content.path.clone(), import.content.digest.clone()))
        || base != Some(seen.as_slice())
    {
        return Ok(Updated::Stale);
    }
    insert_change_files(connection, import, base_changes, serial)?;
    for entry in put {
        forget_footprint(connection, source, &entry.key)?;
    }
    insert_entries(connection, source, put, Existing::Replace)?;
    let mut delete =
        connection.prepare("DELETE FROM snapshot_entries WHERE source = ?1 AND dn_key = ?2")?;
    for key in remove {
        forget_footprint(connection, source, key)?;
        delete.execute(params![source, key])?;
    }
    Ok(Updated::Landed)
}

/// Brings the kept snapshot of the LDAP source `source`, kept from `search` with the
/// cookie `from`, to the cookie `to` with the entries its feed changed.
/// [`Updated::Stale`], writing nothing, when the kept snapshot is not the one the delta
/// was read from.
fn advance(
    connection: &Database,
    source: &str,
    search: &ImportedFile,
    (from, to): (&[u8], &KeptFeed),
    put: &[KeptEntry],
    remove: &[String],
) -> SqlResult<Updated> {
    let kept: Option<(String, String, Option<Vec<u8>>)> = connection
        .query_row(
            "SELECT content_path, content_digest, cookie FROM snapshots WHERE source = ?1",
            params![source],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    if kept
        != Some((
            search.path.clone(),
            search.digest.clone(),
            Some(from.to_vec()),
        ))
    {
        return Ok(Updated::Stale);
    }
    connection.execute(
        "UPDATE snapshots SET feed = ?2, cookie = ?3, entries_digest = ?4 WHERE source = ?1",
        params![
            source,
            to.feed.as_str(),
            to.cookie.as_slice(),
            to.entries_digest.as_str()
        ],
    )?;
    let mut delete =
        connection.prepare("DELETE FROM snapshot_entries WHERE source = ?1 AND dn_key = ?2")?;
    for key in remove {
        forget_footprint(connection, source, key)?;
        delete.execute(params![source, key])?;
    }
    for entry in put {
        forget_footprint(connection, source, &entry.key)?;
    }
    insert_entries(connection, source, put, Existing::Replace)?;
    Ok(Updated::Landed)
}

/// What [`update`] found: the kept snapshot was its base and the update landed, or
/// another apply came between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Updated {
    Landed,
    Stale,
}

/// What becomes of an entry whose DN the snapshot already keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// The new row replaces it.
    Replace,
    /// Nothing more is written, and the insert answers `false`.
    Refuse,
}

/// An entry row.
struct EntryInsert<'e> {
    source: &'e str,
    entry: &'e KeptEntry,
}

impl BulkRow for EntryInsert<'_> {
    const COLUMNS: usize = 8;
    fn values<'r>(&'r self, out: &mut Vec<Param<'r>>) {
        let footprint = self.entry.footprint.as_ref();
        out.push(Param::from(self.source));
        out.push(Param::from(&self.entry.key));
        out.push(Param::from(tree_key(&self.entry.key)));
        out.push(Param::from(&self.entry.record));
        out.push(Param::from(footprint.and_then(|f| f.anchor.as_deref())));
        out.push(Param::from(footprint.is_some_and(|f| f.yields_account)));
        out.push(Param::from(self.entry.lists.as_deref()));
        out.push(Param::from(self.entry.identity.as_ref().map(|id| &id[..])));
    }
}

/// A row of a footprint index: its leading values, then the entry's source and DN (the
/// order of `snapshot_names`; `snapshot_members` puts the source first).
struct IndexRow<'e, const N: usize>([&'e str; N]);

impl<const N: usize> BulkRow for IndexRow<'_, N> {
    const COLUMNS: usize = N;
    fn values<'r>(&'r self, out: &mut Vec<Param<'r>>) {
        for value in self.0 {
            out.push(Param::from(value));
        }
    }
}

/// Writes entry rows of `source` with their footprints (the caller has forgotten those
/// of rows replaced). Rows go in bulk; a batch that meets a kept DN is written again row
/// by row, replacing it or stopping there (`false`) as `existing` says.
fn insert_entries(
    connection: &Database,
    source: &str,
    entries: &[KeptEntry],
    existing: Existing,
) -> SqlResult<bool> {
    let mut rows = Bulk::new(
        "INSERT INTO snapshot_entries \
         (source, dn_key, tree, record, anchor, yields, footprint, identity) VALUES",
    );
    let mut names = Bulk::with_tail(
        "INSERT INTO snapshot_names (protocol, name_key, source, dn_key) VALUES",
        "ON CONFLICT DO NOTHING",
    );
    let mut groups = Bulk::with_tail(
        "INSERT INTO snapshot_groups (name, source, dn_key) VALUES",
        "ON CONFLICT DO NOTHING",
    );
    let mut members = Bulk::with_tail(
        "INSERT INTO snapshot_members (source, member, dn_key) VALUES",
        "ON CONFLICT DO NOTHING",
    );
    for entry in entries {
        let key = entry.key.as_str();
        let footprint = entry.footprint.as_ref();
        if let Some(footprint) = footprint {
            for (index, name) in footprint.names.iter().enumerate() {
                // A name an entry gives twice is kept once, without leaning on the key
                // (a first import builds it after the rows: `ENTRY_DEFERRED`).
                if footprint.names[..index].contains(name) {
                    continue;
                }
                names.push(
                    connection,
                    IndexRow([&name.protocol, &name.name_key, source, key]),
                )?;
            }
            for name in &footprint.groups {
                groups.push(connection, IndexRow([name, source, key]))?;
            }
            for member in &footprint.members {
                members.push(connection, IndexRow([source, member, key]))?;
            }
        }
        let row = EntryInsert { source, entry };
        if rows.push(connection, row).is_err()
            && !insert_one_by_one(connection, rows.take(), existing)?
        {
            return Ok(false);
        }
    }
    if rows.flush(connection).is_err() && !insert_one_by_one(connection, rows.take(), existing)? {
        return Ok(false);
    }
    names.flush(connection)?;
    groups.flush(connection)?;
    members.flush(connection)?;
    Ok(true)
}

/// Entry rows of a batch the database refused, written one by one (see
/// [`insert_entries`]).
fn insert_one_by_one(
    connection: &Database,
    rows: Vec<EntryInsert<'_>>,
    existing: Existing,
) -> SqlResult<bool> {
    const INSERT: &str = "INSERT INTO snapshot_entries \
         (source, dn_key, tree, record, anchor, yields, footprint, identity) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    const REPLACE: &str = "INSERT INTO snapshot_entries \
         (source, dn_key, tree, record, anchor, yields, footprint, identity) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (source, dn_key) DO UPDATE SET tree = excluded.tree, \
         record = excluded.record, anchor = excluded.anchor, yields = excluded.yields, \
         footprint = excluded.footprint, identity = excluded.identity";
    for row in rows {
        let mut values = Vec::with_capacity(EntryInsert::COLUMNS);
        row.values(&mut values);
        // In a savepoint: the kept DN it may meet must leave the transaction going.
        match connection.savepoint(|db| db.execute(INSERT, &values)) {
            Ok(_) => {}
            Err(e) if e.is_constraint_violation() => {
                if existing == Existing::Refuse {
                    return Ok(false);
                }
                connection.execute(REPLACE, &values)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The lists of a footprint, as the entry row keeps them (JSON) to forget them by key.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FootprintLists<'a> {
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    names: Vec<[std::borrow::Cow<'a, str>; 2]>,
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    members: Vec<std::borrow::Cow<'a, str>>,
}

impl<'a> FootprintLists<'a> {
    fn of(footprint: &'a EntryFootprint) -> Self {
        FootprintLists {
            names: footprint
                .names
                .iter()
                .map(|name| [(*name.protocol).into(), (*name.name_key).into()])
                .collect(),
            groups: footprint.groups.iter().map(|g| g.as_str().into()).collect(),
            members: footprint
                .members
                .iter()
                .map(|m| m.as_str().into())
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty() && self.groups.is_empty() && self.members.is_empty()
    }
}

/// Forgets the footprint lists of the kept entry `key` of `source`, by the lists its row
/// keeps.
fn forget_footprint(connection: &Database, source: &str, key: &str) -> SqlResult<()> {
    let text: Option<String> = connection
        .prepare("SELECT footprint FROM snapshot_entries WHERE source = ?1 AND dn_key = ?2")?
        .query_row(params![source, key], |row| row.get(0))
        .optional()?
        .flatten();
    // Lists that do not read (the row edited outside registrar) are left behind: a list
    // whose entry no longer has it only brings that entry into a delta region for
    // nothing (it is the same before and after).
    let Some(lists) = text
        .as_deref()
        .and_then(|text| serde_json::from_str::<FootprintLists>(text).ok())
    else {
        return Ok(());
    };
    let mut forget_name = connection.prepare(
        "DELETE FROM snapshot_names WHERE protocol = ?1 AND name_key = ?2 AND source = ?3 AND dn_key = ?4",
    )?;
    for [protocol, name_key] in &lists.names {
        forget_name.execute(params![protocol, name_key, source, key])?;
    }
    let mut forget_group = connection
        .prepare("DELETE FROM snapshot_groups WHERE name = ?1 AND source = ?2 AND dn_key = ?3")?;
    for name in &lists.groups {
        forget_group.execute(params![name, source, key])?;
    }
    let mut forget_member = connection.prepare(
        "DELETE FROM snapshot_members WHERE source = ?1 AND member = ?2 AND dn_key = ?3",
    )?;
    for member in &lists.members {
        forget_member.execute(params![source, member, key])?;
    }
    Ok(())
}

/// Forgets every footprint list of `source`'s kept entries.
fn forget_source_footprints(connection: &Database, source: &str) -> SqlResult<()> {
    connection.execute(
        "DELETE FROM snapshot_names WHERE source = ?1",
        params![source],
    )?;
    connection.execute(
        "DELETE FROM snapshot_groups WHERE source = ?1",
        params![source],
    )?;
    connection.execute(
        "DELETE FROM snapshot_members WHERE source = ?1",
        params![source],
    )?;
    Ok(())
}

/// Keeps `standing` as the standing facts at `serial`, or forgets them.
pub(super) fn write_standing(
    connection: &Database,
    standing: Option<&Standing>,
    serial: i64,
) -> SqlResult<()> {
    connection.execute("DELETE FROM standing_facts", params![])?;
    if let Some(standing) = standing {
        let facts =
            serde_json::to_string(&standing.facts).map_err(|e| SqlError::conversion(2, e))?;
        connection.execute(
            "INSERT INTO standing_facts (id, serial, config_digest, facts) VALUES (1, ?1, ?2, ?3)",
            params![serial, standing.config_digest, facts],
        )?;
    }
    Ok(())
}

/// Records the change files of `import` from position `from` on as imported at `serial`.
fn insert_change_files(
    connection: &Database,
    import: &SourceImport,
    from: usize,
    serial: i64,
) -> SqlResult<()> {
    let mut insert = connection.prepare(
        "INSERT INTO snapshot_change_files (source, position, path, digest, imported_serial) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (position, file) in import.changes.iter().enumerate().skip(from) {
        insert.execute(params![
            import.source,
            position as i64,
            file.path,
            file.digest,
            serial
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::changes::CHANGE_DEFERRED;
    use crate::adapters::store::hashes::HASH_DEFERRED;
    use crate::adapters::store::test_support;
    use crate::adapters::store::RunRecord;
    use registrar_core::desired::{Desired, DesiredAccount};
    use registrar_core::model::Rules;
    use registrar_core::plan::Plan;
    use registrar_core::state::State;
    use std::collections::BTreeSet;

    fn file(path: &str, digest: &str) -> ImportedFile {
        ImportedFile {
            path: path.to_string(),
            digest: digest.to_string(),
        }
    }

    fn empty_plan(serial: i64) -> Plan {
        let mut plan =
            registrar_core::plan::plan(&Default::default(), Default::default(), &State::default())
                .unwrap();
        plan.state_serial = serial;
        plan
    }

    fn only(snapshots: Vec<SnapshotWrite>) -> KeptWrites {
        KeptWrites {
            snapshots,
            standing: None,
        }
    }

    fn footprint(anchor: &str, names: &[&str]) -> EntryFootprint {
        EntryFootprint {
            anchor: Some(anchor.into()),
            yields_account: true,
            names: names
                .iter()
                .map(|name| {
                    let (protocol, name_key) = name.split_once('/').unwrap();
                    RegistrationKey {
                        protocol: protocol.into(),
                        name_key: name_key.into(),
                    }
                })
                .collect(),
            ..EntryFootprint::default()
        }
    }

    fn group(names: &[&str], members: &[&str]) -> EntryFootprint {
        EntryFootprint {
            groups: names.iter().map(|n| n.to_string()).collect(),
            members: members.iter().map(|m| m.to_string()).collect(),
            ..EntryFootprint::default()
        }
    }

    fn row(key: &str, footprint: Option<EntryFootprint>) -> KeptEntry {
        KeptEntry::new(
            key.to_string(),
            format!("dn: {key}\n\n").into_bytes(),
            footprint,
        )
        .unwrap()
    }

    fn producing(store: &Store, name: &str) -> Vec<String> {
        let name = &footprint("-", &[name]).names[0];
        let rows = store.kept_producing(name).unwrap();
        rows.into_iter().map(|(_, key)| key).collect()
    }

    #[test]
    fn footprints_follow_the_entries_and_standing_facts_the_applies() {
        let (_test_store, mut store) = crate::adapters::store::test_support::fresh_store();
        let import = SourceImport {
            source: "hr".to_string(),
            content: file("hr.ldif", "sha256:c"),
            changes: Vec::new(),
        };
        let standing = Standing {
            config_digest: "sha256:cfg".to_string(),
            facts: StandingFacts {
                excluded: 3,
                ..StandingFacts::default()
            },
        };
        let serial = store
            .apply_with_snapshots(
                &empty_plan(0),
                RunRecord::new("t", "t"),
                &KeptWrites {
                    snapshots: vec![SnapshotWrite::Replace {
                        import: import.clone(),
                        feed: None,
                        entries: vec![
                            row("a", Some(footprint("u1", &["aol/al"]))),
                            row("b", Some(footprint("u2", &["aol/al", "lcs/b"]))),
                            row("c", None),
                            row("g", Some(group(&["staff"], &["a", "b"]))),
                        ],
                    }],
                    standing: Some(standing.clone()),
                },
                &mut |_| {},
            )
            .unwrap();
        let kept = store.kept_standing().unwrap().unwrap();
        assert_eq!((kept.serial, kept.facts), (serial, standing.facts.clone()));
        assert_eq!(producing(&store, "aol/al"), ["a", "b"]);
        assert_eq!(store.kept_on_anchor("u2").unwrap().len(), 1);
        assert_eq!(store.kept_listing("hr", "a").unwrap(), ["g"]);
        assert_eq!(store.kept_giving_group("staff").unwrap().len(), 1);
        let none = BTreeSet::new();
        assert!(store.kept_yielding_beyond("hr", &none).unwrap());
        let both = BTreeSet::from(["a".to_string(), "b".to_string()]);
        assert!(
            !store.kept_yielding_beyond("hr", &both).unwrap(),
            "c yields nothing"
        );

        // An update replaces the footprint of what it puts and drops what it removes.
        let mut next = import.clone();
        next.changes.push(file("c/1.ldif", "sha256:1"));
        store
            .apply_with_snapshots(
                &empty_plan(serial),
                RunRecord::new("t", "t"),
                &KeptWrites {
                    snapshots: vec![SnapshotWrite::Update {
                        import: next,
                        base_changes: 0,
                        put: vec![
                            row("b", Some(footprint("u2", &["lcs/b"]))),
                            row("g", Some(group(&["all"], &["b"]))),
                        ],
                        remove: vec!["a".to_string()],
                    }],
                    standing: None,
                },
                &mut |_| {},
            )
            .unwrap();
        assert!(producing(&store, "aol/al").is_empty());
        assert_eq!(producing(&store, "lcs/b"), ["b"]);
        assert!(store.kept_on_anchor("u1").unwrap().is_empty());
        assert!(store.kept_listing("hr", "a").unwrap().is_empty());
        assert_eq!(store.kept_listing("hr", "b").unwrap(), ["g"]);
        assert!(store.kept_giving_group("staff").unwrap().is_empty());
        assert_eq!(store.kept_giving_group("all").unwrap().len(), 1);
        assert_eq!(
            store.kept_standing().unwrap(),
            None,
            "an apply without them forgets them"
        );

        // Forgetting the snapshot forgets its footprints.
        store
            .apply_with_snapshots(
                &empty_plan(serial + 1),
                RunRecord::new("t", "t"),
                &only(vec![SnapshotWrite::Forget {
                    source: "hr".to_string(),
                }]),
                &mut |_| {},
            )
            .unwrap();
        assert!(producing(&store, "lcs/b").is_empty());
        assert!(store.kept_on_anchor("u2").unwrap().is_empty());
        assert!(store.kept_giving_group("all").unwrap().is_empty());
        assert!(store.kept_listing("hr", "b").unwrap().is_empty());
    }

    #[test]
    fn a_first_import_builds_what_it_dropped_again_as_the_migrations_made_it() {
        let (_test_store, mut store) = crate::adapters::store::test_support::fresh_store();
        let fresh = test_support::schema(&store.connection);
        for deferred in [&ENTRY_DEFERRED, &CHANGE_DEFERRED, &HASH_DEFERRED] {
            for (name, _) in deferred.indexes {
                assert!(fresh.iter().any(|(n, _)| n == name), "{name} in {fresh:?}");
            }
            if store.connection.backend() == crate::adapters::store::Backend::Postgres {
                for constraint in deferred.constraints {
                    let name = constraint.name;
                    assert!(fresh.iter().any(|(n, _)| n == name), "{name} in {fresh:?}");
                }
            }
        }
        let import = SourceImport {
            source: "hr".to_string(),
            content: file("hr.ldif", "sha256:c"),
            changes: Vec::new(),
        };
        let replace = SnapshotWrite::Replace {
            import,
            feed: None,
            entries: vec![
                row("b", Some(footprint("u2", &["aol/b", "aol/b"]))),
                row("a", Some(footprint("u1", &["aol/a"]))),
            ],
        };
        let mut desired = Desired::default();
        desired.insert_account(DesiredAccount::new("u1", "a", "hr"));
        desired.insert_account(DesiredAccount::new("u2", "b", "hr"));
        let plan =
            registrar_core::plan::plan(&Rules::default(), desired, &State::default()).unwrap();
        store
            .apply_with_snapshots(
                &plan,
                RunRecord::new("t", "t"),
                &only(vec![replace]),
                &mut |_| {},
            )
            .unwrap();
        assert_eq!(test_support::schema(&store.connection), fresh);
        assert_eq!(store.kept_on_anchor("u2").unwrap().len(), 1);
        assert!(store.kept_entry("hr", "a").unwrap().is_some());
        // The name entry b gave twice is kept once.
        assert_eq!(producing(&store, "aol/b"), ["b"]);
        assert_eq!(store.load().unwrap().accounts.len(), 2);
        assert_eq!(store.managed_hashes().unwrap().len(), 2);
    }

    #[test]
    fn an_ldap_snapshot_keeps_its_cookie_and_identities_and_advances_only_from_its_cookie() {
        let (_test_store, mut store) = crate::adapters::store::test_support::fresh_store();
        let search = file("ldap://127.0.0.1 dc=x", "sha256:s");
        let feed = |cookie: &str| KeptFeed {
            feed: "syncrepl".to_string(),
            cookie: cookie.as_bytes().to_vec(),
            entries_digest: format!("digest of {cookie}"),
        };
        let replace = SnapshotWrite::Replace {
            import: SourceImport {
                source: "people".to_string(),
                content: search.clone(),
                changes: Vec::new(),
            },
            feed: Some(feed("c1")),
            entries: vec![
                row("a", Some(footprint("u1", &["aol/a"]))).with_identity([1; 16]),
                row("b", Some(footprint("u2", &["aol/b"]))).with_identity([2; 16]),
            ],
        };
        let apply = |store: &mut Store, serial, write: SnapshotWrite| {
            store.apply_with_snapshots(
                &empty_plan(serial),
                RunRecord::new("t", "t"),
                &only(vec![write]),
                &mut |_| {},
            )
        };
        apply(&mut store, 0, replace).unwrap();
        let kept = &store.kept_snapshots().unwrap()["people"];
        assert_eq!(kept.feed, Some(feed("c1")));
        assert!(kept.content.path == search.path && kept.content.digest == search.digest);
        assert_eq!(
            store.kept_key_of("people", &[2; 16]).unwrap().as_deref(),
            Some("b")
        );
        assert_eq!(store.kept_key_of("people", &[3; 16]).unwrap(), None);
        assert_eq!(
            store.kept_identities("people").unwrap(),
            [([1; 16], "a".to_string()), ([2; 16], "b".to_string())]
        );

        let advance = |from: &str| SnapshotWrite::Advance {
            source: "people".to_string(),
            search: search.clone(),
            from: from.as_bytes().to_vec(),
            to: feed("c2"),
            put: vec![row("c", Some(footprint("u3", &["aol/c"]))).with_identity([2; 16])],
            remove: vec!["b".to_string()],
        };
        // From a cookie the store does not keep: another apply came between.
        let error = apply(&mut store, 1, advance("c0")).unwrap_err();
        assert!(matches!(error, StoreError::StaleSnapshot { .. }), "{error}");
        assert_eq!(
            store.kept_key_of("people", &[2; 16]).unwrap().as_deref(),
            Some("b")
        );

        apply(&mut store, 1, advance("c1")).unwrap();
        assert_eq!(
            store.kept_snapshots().unwrap()["people"].feed,
            Some(feed("c2"))
        );
        assert_eq!(
            store.kept_key_of("people", &[2; 16]).unwrap().as_deref(),
            Some("c")
        );
        assert_eq!(store.kept_entry("people", "b").unwrap(), None);
        assert_eq!(producing(&store, "aol/b"), Vec::<String>::new());
        assert_eq!(producing(&store, "aol/c"), ["c"]);
        let mut walked = Vec::new();
        store
            .for_each_kept_entry("people", |key, _, identity| {
                walked.push((key.to_string(), identity));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(
            walked,
            [
                ("a".to_string(), Some(vec![1; 16])),
                ("c".to_string(), Some(vec![2; 16]))
            ]
        );
    }

    #[test]
    fn an_update_lands_only_on_the_snapshot_it_was_computed_from() {
        let (_test_store, mut store) = crate::adapters::store::test_support::fresh_store();
        let import = SourceImport {
            source: "hr".to_string(),
            content: file("hr.ldif", "sha256:c"),
            changes: vec![file("c/1.ldif", "sha256:1")],
        };
        let replace = SnapshotWrite::Replace {
            import: import.clone(),
            feed: None,
            entries: vec![row("a", Some(footprint("u1", &["aol/al"])))],
        };
        let serial = store
            .apply_with_snapshots(
                &empty_plan(0),
                RunRecord::new("t", "t"),
                &only(vec![replace]),
                &mut |_| {},
            )
            .unwrap();
        assert_eq!(serial, 1, "keeping a snapshot moves the serial");

        let mut next = import.clone();
        next.changes.push(file("c/2.ldif", "sha256:2"));
        let update = |base_changes| SnapshotWrite::Update {
            import: next.clone(),
            base_changes,
            put: vec![row("x,b", Some(footprint("u1", &["aol/al", "aol/x"])))],
            remove: vec!["a".to_string()],
        };
        // Computed from a snapshot that had seen no change file: not this one.
        let error = store
            .apply_with_snapshots(
                &empty_plan(1),
                RunRecord::new("t", "t"),
                &only(vec![update(0)]),
                &mut |_| {},
            )
            .unwrap_err();
        assert!(matches!(error, StoreError::StaleSnapshot { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            "the kept snapshot of source hr changed since this apply read it; run again; \
             nothing was applied"
        );
        assert_eq!(store.serial().unwrap(), 1);
        assert_eq!(
            store.kept_entry("hr", "a").unwrap(),
            Some(b"dn: a\n\n".to_vec())
        );

        store
            .apply_with_snapshots(
                &empty_plan(1),
                RunRecord::new("t", "t"),
                &only(vec![update(1)]),
                &mut |_| {},
            )
            .unwrap();
        let kept = &store.kept_snapshots().unwrap()["hr"];
        assert!(kept.is_start_of(&next) && kept.changes.len() == 2);
        assert_eq!(
            kept.changes.iter().map(|f| f.serial).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(store.kept_entry("hr", "a").unwrap(), None);
        assert_eq!(store.kept_below("hr", "b").unwrap().len(), 1);
        assert_eq!(store.kept_below("hr", "x,b").unwrap().len(), 0);

        store
            .apply_with_snapshots(
                &empty_plan(2),
                RunRecord::new("t", "t"),
                &only(vec![SnapshotWrite::Forget {
                    source: "hr".to_string(),
                }]),
                &mut |_| {},
            )
            .unwrap();
        assert!(store.kept_snapshots().unwrap().is_empty());
        assert!(store.kept_below("hr", "b").unwrap().is_empty());
    }
}
