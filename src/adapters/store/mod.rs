//! The registration store on SQLite: load the state, apply a plan in one transaction,
//! record manual and self registrations, keep the run history, the content hash of
//! every managed row as the last apply left it (for drift) and, per `ldif` source, the
//! snapshot it was last imported as (`snapshots.rs`).
//!
//! This adapter is the only code that touches the database file. It never decides what
//! to change: it carries out a plan exactly, or refuses it whole.

mod bulk;
mod migrations;
mod snapshots;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use bulk::{Bulk, BulkRow};
use serde::Serialize;

use registrar_core::dn::normalize_dn;
use registrar_core::drift::{self, RowAfter, RowHash, RowHashes, RowId, RowKind, WrittenRow};
use registrar_core::interner::Interner;
use registrar_core::model::{Profile, ProfileField};
use registrar_core::plan::{Action, Change, Kind, Plan};
use registrar_core::state::{
    AccountStatus, GroupRow, RegistrationKey, RegistrationSource, SortedMap, State, StateAccount,
    StateRegistration,
};

pub use snapshots::{
    EntryRow, KeptEntry, KeptFile, KeptSnapshot, KeptStanding, KeptWrites, SnapshotWrite,
    SnapshotWriter, Standing,
};

/// How long a writer waits for another one to finish before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state file {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "state file {} is locked by another apply or registration; waited {}s, try again when it has finished",
        path.display(), LOCK_WAIT.as_secs()
    )]
    Locked { path: PathBuf },
    #[error(
        "saved plan is stale: it was made at state serial {planned}, the store is at serial {actual}; run plan again"
    )]
    StalePlan { planned: i64, actual: i64 },
    #[error("state file {}: cannot apply {change}: {problem}; nothing was applied", path.display())]
    Conflict {
        path: PathBuf,
        change: String,
        problem: String,
    },
    #[error("{protocol} name {im_name:?} is already registered to {account} ({held_by}); nothing was recorded")]
    AlreadyRegistered {
        protocol: String,
        im_name: String,
        account: String,
        held_by: String,
    },
    #[error("{0}; nothing was applied")]
    StaleSnapshot(String),
    #[error("state file {}: cannot migrate to schema {version}: {problem}; that migration was not applied", path.display())]
    Migration {
        path: PathBuf,
        version: usize,
        problem: String,
    },
    #[error("state file {} was written by a newer registrar (schema {found}, this build knows {known})", path.display())]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
}

/// One run of an apply or a registration, for the history.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub started_at: String,
    pub finished_at: String,
    pub command: String,
    pub revision: Option<String>,
    pub serial_before: i64,
    pub serial_after: i64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    pub outcome: String,
    pub message: Option<String>,
    /// How long the run took; `None` for runs recorded before this was kept.
    pub duration_ms: Option<u64>,
}

impl RunRecord {
    /// A run of `command` started at `started_at`; counts zero, outcome `applied`. The
    /// store fills in the serials when it records the run.
    pub fn new(command: impl Into<String>, started_at: impl Into<String>) -> Self {
        let started_at = started_at.into();
        RunRecord {
            finished_at: started_at.clone(),
            started_at,
            command: command.into(),
            revision: None,
            serial_before: 0,
            serial_after: 0,
            added: 0,
            updated: 0,
            removed: 0,
            deactivated: 0,
            reactivated: 0,
            outcome: "applied".to_string(),
            message: None,
            duration_ms: None,
        }
    }
}

/// The rows `registrar` manages, by kind (the kinds of the plan JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ManagedCounts {
    pub accounts: u64,
    pub registrations: u64,
    pub groups: u64,
    pub group_members: u64,
}

/// An open store.
pub struct Store {
    connection: Connection,
    path: PathBuf,
}

impl Store {
    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let connection = Connection::open(path).map_err(|source| sqlite(path, source))?;
        let mut store = Store {
            connection,
            path: path.to_path_buf(),
        };
        store
            .connection
            .busy_timeout(LOCK_WAIT)
            .map_err(|e| store.error(e))?;
        // Pages of 16 KiB for a new store (an existing one keeps its own): fewer, fuller
        // pages for the millions of rows of a large directory.
        store
            .connection
            .execute_batch("PRAGMA page_size = 16384; PRAGMA foreign_keys = OFF;")
            .map_err(|e| store.error(e))?;
        // Room for the bulk inserts' statements (`bulk.rs`) beside the others.
        store.connection.set_prepared_statement_cache_capacity(64);
        store.migrate()?;
        store
            .connection
            .execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| store.error(e))?;
        Ok(store)
    }

    /// Opens the store only if the file exists: planning never creates a state file.
    pub fn open_if_exists(path: &Path) -> Result<Option<Store>, StoreError> {
        if path.exists() {
            Store::open(path).map(Some)
        } else {
            Ok(None)
        }
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        store_error(&self.path, source)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let fail = |e| store_error(&path, e);
        self.connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY);",
            )
            .map_err(fail)?;
        let applied: usize = self
            .connection
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |row| {
                row.get(0)
            })
            .map_err(fail)?;
        if applied > migrations::MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: applied,
                known: migrations::MIGRATIONS.len(),
            });
        }
        for (index, sql) in migrations::MIGRATIONS.iter().enumerate().skip(applied) {
            let transaction = self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(fail)?;
            // Another process may have run it while this one waited for the lock.
            let done: bool = transaction
                .query_row(
                    "SELECT COUNT(*) > 0 FROM schema_migrations WHERE version = ?1",
                    [index as i64 + 1],
                    |row| row.get(0),
                )
                .map_err(fail)?;
            if done {
                continue;
            }
            transaction.execute_batch(sql).map_err(fail)?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version) VALUES (?1)",
                    [index as i64 + 1],
                )
                .map_err(fail)?;
            if index + 1 == migrations::HASHES_MIGRATION {
                let state = load_state(&transaction).map_err(fail)?;
                write_hashes_at_migration_3(&transaction, &drift::managed_hashes(&state))
                    .map_err(fail)?;
            }
            // Foreign keys are off while migrating (they cannot be turned off inside a
            // transaction, and a rebuilt table is briefly missing): checked here whole.
            let broken: Option<String> = transaction
                .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
                .optional()
                .map_err(fail)?;
            if let Some(table) = broken {
                return Err(StoreError::Migration {
                    path: self.path.clone(),
                    version: index + 1,
                    problem: format!("table {table} has rows whose reference is missing"),
                });
            }
            transaction.commit().map_err(fail)?;
        }
        Ok(())
    }

    /// The whole state.
    pub fn load(&self) -> Result<State, StoreError> {
        load_state(&self.connection).map_err(|e| self.error(e))
    }

    /// The accounts with these anchors (those the store has).
    pub fn accounts_with(
        &self,
        anchors: &BTreeSet<String>,
    ) -> Result<Vec<StateAccount>, StoreError> {
        let read = || -> rusqlite::Result<Vec<StateAccount>> {
            let mut statement = self
                .connection
                .prepare_cached(&format!("{SELECT_ACCOUNTS} WHERE anchor = ?1"))?;
            let mut accounts = Vec::with_capacity(anchors.len());
            let mut names = Interner::default();
            for anchor in anchors {
                let account = statement
                    .query_row([anchor], |row| account_from_row(row, &mut names))
                    .optional()?;
                if let Some(account) = account {
                    accounts.push(account);
                }
            }
            Ok(accounts)
        };
        read().map_err(|e| self.error(e))
    }

    /// The registrations on these names (those the store has).
    pub fn registrations_on(
        &self,
        names: &BTreeSet<RegistrationKey>,
    ) -> Result<Vec<(RegistrationKey, StateRegistration)>, StoreError> {
        let read = || -> rusqlite::Result<Vec<(RegistrationKey, StateRegistration)>> {
            let mut statement = self.connection.prepare_cached(&format!(
                "{SELECT_REGISTRATIONS} WHERE protocol = ?1 AND im_name_key = ?2"
            ))?;
            let mut rows = Vec::with_capacity(names.len());
            let mut shared = Interner::default();
            for name in names {
                if let Some(row) = statement
                    .query_row(params![name.protocol, name.name_key], |row| {
                        registration_from_row(row, &mut shared)
                    })
                    .optional()?
                {
                    rows.push(row);
                }
            }
            Ok(rows)
        };
        read().map_err(|e| self.error(e))
    }

    /// The groups with these names (those the store has), with only their members among
    /// `members`.
    pub fn groups_among(
        &self,
        names: &BTreeSet<String>,
        members: &BTreeSet<String>,
    ) -> Result<Vec<GroupRow>, StoreError> {
        let read = || -> rusqlite::Result<Vec<GroupRow>> {
            let mut group = self
                .connection
                .prepare_cached(&format!("{SELECT_GROUPS} WHERE name = ?1"))?;
            let mut member = self.connection.prepare_cached(
                "SELECT 1 FROM group_members WHERE group_name = ?1 AND member = ?2",
            )?;
            let mut all_members = self.connection.prepare_cached(
                "SELECT member FROM group_members WHERE group_name = ?1 ORDER BY member",
            )?;
            let mut rows = Vec::new();
            for name in names {
                let Some(mut row) = group.query_row([name], group_from_row).optional()? else {
                    continue;
                };
                // A few members are looked up one by one; many, read with the group.
                if members.len() <= 64 {
                    for anchor in members {
                        if member.exists(params![name, anchor])? {
                            row.members.push(anchor.clone());
                        }
                    }
                } else {
                    for anchor in all_members.query_map([name], |r| r.get::<_, String>(0))? {
                        let anchor = anchor?;
                        if members.contains(&anchor) {
                            row.members.push(anchor);
                        }
                    }
                }
                rows.push(row);
            }
            Ok(rows)
        };
        read().map_err(|e| self.error(e))
    }

    /// The names the account `anchor` holds, managed or not.
    pub fn names_held_by(&self, anchor: &str) -> Result<Vec<RegistrationKey>, StoreError> {
        let read = || -> rusqlite::Result<Vec<RegistrationKey>> {
            let mut statement = self.connection.prepare_cached(
                "SELECT protocol, im_name_key FROM registrations WHERE account = ?1",
            )?;
            let rows = statement.query_map([anchor], |row| {
                Ok(RegistrationKey {
                    protocol: row.get(0)?,
                    name_key: row.get(1)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.error(e))
    }

    /// The content hashes of the managed rows as the applies left them.
    pub fn managed_hashes(&self) -> Result<RowHashes, StoreError> {
        let read = || -> rusqlite::Result<RowHashes> {
            let mut statement = self
                .connection
                .prepare("SELECT kind, key, hash FROM managed_hashes")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            let mut hashes = RowHashes::new();
            for row in rows {
                let (kind, key, hash) = row?;
                // A hash of another length (none an apply wrote) matches no row: left
                // out, its row reads as one no apply wrote.
                if let (Some(kind), Ok(hash)) = (RowKind::from_number(kind), hash.try_into()) {
                    hashes.insert(RowId { kind, key }, hash);
                }
            }
            Ok(hashes)
        };
        read().map_err(|e| self.error(e))
    }

    /// The current state serial.
    pub fn serial(&self) -> Result<i64, StoreError> {
        read_serial(&self.connection).map_err(|e| self.error(e))
    }

    /// The run history, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT started_at, finished_at, command, revision, serial_before, serial_after, \
                 added, updated, removed, deactivated, reactivated, outcome, message, duration_ms \
                 FROM runs ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.error(e))?;
        let runs = statement
            .query_map([limit as i64], |row| {
                Ok(RunRecord {
                    started_at: row.get(0)?,
                    finished_at: row.get(1)?,
                    command: row.get(2)?,
                    revision: row.get(3)?,
                    serial_before: row.get(4)?,
                    serial_after: row.get(5)?,
                    added: row.get::<_, i64>(6)? as u64,
                    updated: row.get::<_, i64>(7)? as u64,
                    removed: row.get::<_, i64>(8)? as u64,
                    deactivated: row.get::<_, i64>(9)? as u64,
                    reactivated: row.get::<_, i64>(10)? as u64,
                    outcome: row.get(11)?,
                    message: row.get(12)?,
                    duration_ms: row.get::<_, Option<i64>>(13)?.map(|ms| ms.max(0) as u64),
                })
            })
            .map_err(|e| self.error(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(e))?;
        Ok(runs)
    }

    /// The revision of the newest run that applied a plan (`apply`, or the controller's
    /// apply), if any: what the store was last reconciled to.
    pub fn applied_revision(&self) -> Result<Option<String>, StoreError> {
        self.connection
            .query_row(
                "SELECT revision FROM runs WHERE outcome = 'applied' AND revision IS NOT NULL \
                 AND (command LIKE 'apply%' OR command LIKE 'run %') ORDER BY id DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Records a run that wrote nothing else (a plan, a refused or failed apply), at the
    /// current serial.
    pub fn record_run(&mut self, mut run: RunRecord) -> Result<(), StoreError> {
        let path = self.path.clone();
        let fail = |e| store_error(&path, e);
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let serial = read_serial(&transaction).map_err(fail)?;
        run.serial_before = serial;
        run.serial_after = serial;
        insert_run(&transaction, &run).map_err(fail)?;
        transaction.commit().map_err(fail)
    }

    /// Forgets the runs that changed nothing (serial unchanged) once `keep` newer runs
    /// exist; runs that changed the store stay for good. Returns how many went.
    pub fn prune_runs(&mut self, keep: usize) -> Result<usize, StoreError> {
        self.connection
            .execute(
                "DELETE FROM runs WHERE serial_before = serial_after \
                 AND id <= (SELECT MAX(id) FROM runs) - ?1",
                [keep as i64],
            )
            .map_err(|e| self.error(e))
    }

    /// How many rows `registrar` manages (they have an owner or a source), by kind.
    pub fn managed_counts(&self) -> Result<ManagedCounts, StoreError> {
        self.connection
            .query_row(
                "SELECT (SELECT COUNT(*) FROM accounts WHERE source IS NOT NULL), \
                 (SELECT COUNT(*) FROM registrations WHERE owner IS NOT NULL), \
                 (SELECT COUNT(*) FROM groups WHERE owner IS NOT NULL), \
                 (SELECT COUNT(*) FROM group_members JOIN groups ON groups.name = group_members.group_name \
                  WHERE groups.owner IS NOT NULL)",
                [],
                |row| {
                    Ok(ManagedCounts {
                        accounts: row.get::<_, i64>(0)? as u64,
                        registrations: row.get::<_, i64>(1)? as u64,
                        groups: row.get::<_, i64>(2)? as u64,
                        group_members: row.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .map_err(|e| self.error(e))
    }

    /// Applies `plan` in one transaction: all of it lands, or none of it. Refuses a plan
    /// made at another serial. Returns the new serial. `run` is recorded in the history
    /// in the same transaction, with the serials filled in. Kept snapshots are left as
    /// they are; see [`Store::apply_with_snapshots`].
    pub fn apply(&mut self, plan: &Plan, run: RunRecord) -> Result<i64, StoreError> {
        self.apply_with_snapshots(plan, run, &KeptWrites::default(), &mut |_| {})
    }

    /// [`Store::apply`], writing `kept` (the snapshots the plan imported, the standing
    /// facts it leaves) in the same transaction: [`Store::apply_keeping`] with everything
    /// known beforehand.
    pub fn apply_with_snapshots(
        &mut self,
        plan: &Plan,
        run: RunRecord,
        kept: &KeptWrites,
        progress: &mut dyn FnMut(u64),
    ) -> Result<i64, StoreError> {
        let keep = |writer: &mut SnapshotWriter<'_>| {
            for write in &kept.snapshots {
                writer.write(write)?;
            }
            Ok::<_, StoreError>(kept.standing.clone())
        };
        self.apply_keeping(
            plan.state_serial,
            run,
            |writer| writer.write(&plan.changes, progress),
            keep,
            || Ok(drift::written_rows(&plan.changes)),
        )
    }

    /// Applies a plan made at store serial `planned` in one transaction: all of it lands,
    /// or none of it, and a store at another serial refuses it (stale). In order:
    /// `changes` writes the plan's changes through a [`ChangeWriter`] (as many at a time
    /// as the caller has: a saved plan is written as it is read); `keep` writes the
    /// snapshots the plan imported through a [`SnapshotWriter`] (their entries can stream
    /// in as they are read again) and returns the standing facts the apply leaves, so that
    /// the store never keeps a snapshot whose plan did not land; `written` answers
    /// [`drift::written_rows`] of the plan's changes (worked out meanwhile elsewhere, if the
    /// caller likes), whose hashes are recorded. An error from any of them leaves the
    /// store as it was. `run` is recorded in the history with the serials filled in.
    /// The serial moves when the plan has changes or a snapshot is written: a saved plan
    /// made from the old snapshot is stale. Returns the new serial.
    pub fn apply_keeping<E: From<StoreError>>(
        &mut self,
        planned: i64,
        mut run: RunRecord,
        changes: impl FnOnce(&mut ChangeWriter<'_>) -> Result<(), E>,
        keep: impl FnOnce(&mut SnapshotWriter<'_>) -> Result<Option<Standing>, E>,
        written: impl FnOnce() -> Result<Vec<WrittenRow>, E>,
    ) -> Result<i64, E> {
        let path = self.path.clone();
        let fail = |e| store_error(&path, e);
        // A large plan writes rows all over the indexes: a page cache of up to 64 MiB
        // (SQLite's default is 2 MiB) keeps their hot pages in memory for the
        // transaction. (More is slower: a first import of a million users, into a store
        // of 2.5 GB, takes longer with 256 MiB or 1 GiB, page faults and all.) Multi-row
        // statements keep a statement journal, in memory rather than in a temporary file.
        self.connection
            .execute_batch("PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;")
            .map_err(fail)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let serial = read_serial(&transaction).map_err(fail)?;
        if serial != planned {
            return Err(StoreError::StalePlan {
                planned,
                actual: serial,
            }
            .into());
        }
        let mut change_writer = ChangeWriter::new(&transaction, &path)?;
        changes(&mut change_writer)?;
        let wrote_changes = change_writer.finish()?;
        let mut writer = SnapshotWriter::new(&transaction, &path, serial + 1);
        let standing = keep(&mut writer)?;
        let wrote_snapshots = writer.wrote();
        writer.finish()?;
        let new_serial = if wrote_changes || wrote_snapshots {
            serial + 1
        } else {
            serial
        };
        refresh_hashes(&transaction, written()?).map_err(fail)?;
        snapshots::write_standing(&transaction, standing.as_ref(), new_serial).map_err(fail)?;
        write_serial(&transaction, new_serial).map_err(fail)?;
        run.serial_before = serial;
        run.serial_after = new_serial;
        insert_run(&transaction, &run).map_err(fail)?;
        transaction.commit().map_err(fail)?;
        Ok(new_serial)
    }

    /// Records a manual or self registration of `im_name` on `protocol`, under its
    /// `name_key` (see [`registrar_core::model::ProtocolRule::name_key`]). An account DN the
    /// store does not know becomes an unmanaged account. Returns the account's anchor.
    pub fn register(
        &mut self,
        (protocol, name_key): (&str, &str),
        im_name: &str,
        account_dn: &str,
        source: RegistrationSource,
        mut run: RunRecord,
    ) -> Result<String, StoreError> {
        let path = self.path.clone();
        let fail = |e| store_error(&path, e);
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let dn_key = normalize_dn(account_dn);
        if let Some((account, dn, held_source)) = transaction
            .query_row(
                "SELECT r.account, a.dn, r.source FROM registrations r \
                 LEFT JOIN accounts a ON a.anchor = r.account \
                 WHERE r.protocol = ?1 AND r.im_name_key = ?2",
                params![protocol, name_key],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(fail)?
        {
            // A person knows the account by its DN; the anchor helps when it differs.
            let account = match dn {
                Some(dn) if normalize_dn(&dn) == account => dn,
                Some(dn) => format!("{dn} (anchor {account})"),
                None => account,
            };
            return Err(StoreError::AlreadyRegistered {
                protocol: protocol.to_string(),
                im_name: im_name.to_string(),
                account,
                held_by: held_source,
            });
        }
        let existing: Option<String> = transaction
            .query_row(
                "SELECT anchor FROM accounts WHERE dn_key = ?1 ORDER BY source IS NULL, anchor LIMIT 1",
                [&dn_key],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail)?;
        let anchor = match existing {
            Some(anchor) => anchor,
            None => {
                transaction
                    .execute(
                        "INSERT INTO accounts (anchor, dn, dn_key, source, status) VALUES (?1, ?2, ?1, NULL, 'active')",
                        params![dn_key, account_dn],
                    )
                    .map_err(fail)?;
                dn_key.clone()
            }
        };
        transaction
            .execute(
                "INSERT INTO registrations (protocol, im_name_key, im_name, account, source, owner) \
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                params![protocol, name_key, im_name, anchor, source.name()],
            )
            .map_err(fail)?;
        let serial = read_serial(&transaction).map_err(fail)?;
        write_serial(&transaction, serial + 1).map_err(fail)?;
        run.serial_before = serial;
        run.serial_after = serial + 1;
        insert_run(&transaction, &run).map_err(fail)?;
        transaction.commit().map_err(fail)?;
        Ok(anchor)
    }
}

const SELECT_ACCOUNTS: &str = "SELECT anchor, dn, source, status, display_name, department, \
     title, telephone, location, mail FROM accounts";
const SELECT_REGISTRATIONS: &str =
    "SELECT protocol, im_name_key, im_name, account, source, owner FROM registrations";
const SELECT_GROUPS: &str = "SELECT name, kind, source, owner FROM groups";

fn account_from_row(
    row: &rusqlite::Row<'_>,
    names: &mut Interner,
) -> rusqlite::Result<StateAccount> {
    let mut values: [Option<String>; 6] = Default::default();
    for (offset, value) in values.iter_mut().enumerate() {
        *value = row.get(4 + offset)?;
    }
    let profile = Profile::from_values(values);
    let status = row.get_ref(3)?.as_str()?;
    Ok(StateAccount {
        anchor: names.get(row.get_ref(0)?.as_str()?),
        dn: row.get(1)?,
        status: AccountStatus::from_name(status).unwrap_or(AccountStatus::Active),
        source: names.get_optional(row.get_ref(2)?.as_str_or_null()?),
        profile,
    })
}

/// A registration row, its protocol, owner and account shared through `names` (an
/// account's anchor is the one its row gave) and its name key shared with its name
/// when they are equal, as they mostly are.
fn registration_from_row(
    row: &rusqlite::Row<'_>,
    names: &mut Interner,
) -> rusqlite::Result<(RegistrationKey, StateRegistration)> {
    let source = row.get_ref(4)?.as_str()?;
    let protocol = names.get(row.get_ref(0)?.as_str()?);
    let im_name: Arc<str> = row.get_ref(2)?.as_str()?.into();
    let name_key = row.get_ref(1)?.as_str()?;
    let name_key = if name_key == &*im_name {
        im_name.clone()
    } else {
        name_key.into()
    };
    Ok((
        RegistrationKey {
            protocol: protocol.clone(),
            name_key,
        },
        StateRegistration {
            protocol,
            im_name,
            account: names.get(row.get_ref(3)?.as_str()?),
            source: RegistrationSource::from_name(source).unwrap_or(RegistrationSource::Manual),
            owner: names.get_optional(row.get_ref(5)?.as_str_or_null()?),
        },
    ))
}

fn group_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        name: row.get(0)?,
        kind: row.get(1)?,
        source: row.get(2)?,
        owner: row.get(3)?,
        members: Vec::new(),
    })
}

/// The rows `table` holds (it can change before they are read: only a size to reserve).
fn count_rows(connection: &Connection, table: &str) -> rusqlite::Result<usize> {
    connection
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|count| usize::try_from(count).unwrap_or(0))
}

/// Every row `select` returns, made by `from_row`, into a vector with room for
/// `expected` rows: a vector of millions grown by doubling would write (and make the
/// kernel zero) twice the memory its rows take.
fn collect_rows<T>(
    connection: &Connection,
    select: &str,
    expected: usize,
    mut from_row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = connection.prepare(select)?;
    let mut rows = statement.query([])?;
    let mut items = Vec::with_capacity(expected);
    while let Some(row) = rows.next()? {
        items.push(from_row(row)?);
    }
    Ok(items)
}

/// The whole state, read through `connection` (a transaction or not).
fn load_state(connection: &Connection) -> rusqlite::Result<State> {
    let mut state = State {
        serial: read_serial(connection)?,
        ..State::default()
    };
    // Repeated names (protocols, mappings, sources, the anchor of an account's every
    // registration) are read into one shared string each.
    let account_count = count_rows(connection, "accounts")?;
    let mut names = Interner::with_capacity(account_count + 64);
    // A table clustered on its key is read in key order: the vectors read are the
    // state's sorted maps as they are (`from_sorted` sorts any that are not).
    let accounts = collect_rows(connection, SELECT_ACCOUNTS, account_count, |row| {
        account_from_row(row, &mut names).map(|a| (a.anchor.clone(), a))
    })?;
    state.accounts = SortedMap::from_sorted(accounts);
    let registrations = collect_rows(
        connection,
        SELECT_REGISTRATIONS,
        count_rows(connection, "registrations")?,
        |row| registration_from_row(row, &mut names),
    )?;
    drop(names);
    state.registrations = SortedMap::from_sorted(registrations);
    for group in connection
        .prepare(SELECT_GROUPS)?
        .query_map([], group_from_row)?
    {
        let group = group?;
        state.groups.insert(group.name.clone(), group);
    }
    // Ordered by the primary key, so each group's members arrive sorted. (SQLite's
    // default BINARY collation orders like Rust's `str`.)
    let mut statement = connection
        .prepare("SELECT group_name, member FROM group_members ORDER BY group_name, member")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    for member in rows {
        let (group, member) = member?;
        if let Some(group) = state.groups.get_mut(&group) {
            group.members.push(member);
        }
    }
    Ok(state)
}

/// Records `hashes` in the table as migration 3 made it (kind names, hex hashes), right
/// after that migration (migration 6 converts them).
fn write_hashes_at_migration_3(
    connection: &Connection,
    hashes: &RowHashes,
) -> rusqlite::Result<()> {
    let mut insert = connection
        .prepare("INSERT OR REPLACE INTO managed_hashes (kind, key, hash) VALUES (?1, ?2, ?3)")?;
    for (id, hash) in hashes {
        let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
        insert.execute(params![id.kind.name(), id.key, hex])?;
    }
    Ok(())
}

/// A `managed_hashes` row written in bulk.
struct HashRow {
    kind: RowKind,
    key: Arc<str>,
    hash: RowHash,
}

impl BulkRow for HashRow {
    const COLUMNS: usize = 3;
    fn bind(&self, statement: &mut rusqlite::Statement<'_>, first: usize) -> rusqlite::Result<()> {
        bulk::bind(statement, first, self.kind.number())?;
        bulk::bind(statement, first + 1, self.key.as_ref())?;
        bulk::bind(statement, first + 2, &self.hash[..])
    }
}

/// Records the hashes of the managed rows a plan's changes wrote (`rows`, from
/// [`drift::written_rows`]): adds from the change, other rows read back as they now are;
/// a row that is gone or no longer managed loses its hash.
fn refresh_hashes(connection: &Connection, rows: Vec<WrittenRow>) -> rusqlite::Result<()> {
    let mut account = connection.prepare(&format!(
        "{SELECT_ACCOUNTS} WHERE anchor = ?1 AND source IS NOT NULL"
    ))?;
    let mut registration = connection.prepare(&format!(
        "{SELECT_REGISTRATIONS} WHERE protocol = ?1 AND im_name_key = ?2 AND owner IS NOT NULL"
    ))?;
    let mut group = connection.prepare(&format!(
        "{SELECT_GROUPS} WHERE name = ?1 AND owner IS NOT NULL"
    ))?;
    let mut members = connection
        .prepare("SELECT member FROM group_members WHERE group_name = ?1 ORDER BY member")?;
    let mut upsert = Bulk::new("INSERT OR REPLACE INTO managed_hashes (kind, key, hash) VALUES");
    let mut delete =
        connection.prepare("DELETE FROM managed_hashes WHERE kind = ?1 AND key = ?2")?;
    for WrittenRow { kind, key, after } in rows {
        let hash = match after {
            RowAfter::Hash(hash) => Some(hash),
            RowAfter::Gone => None,
            RowAfter::Reread => match kind {
                RowKind::Account => account
                    .query_row([key.as_ref()], |row| {
                        account_from_row(row, &mut Interner::default())
                    })
                    .optional()?
                    .map(|row| drift::account_hash(&row)),
                RowKind::Registration => {
                    let (protocol, name_key) = key.split_once(':').unwrap_or((&key, ""));
                    registration
                        .query_row([protocol, name_key], |row| {
                            registration_from_row(row, &mut Interner::default())
                        })
                        .optional()?
                        .map(|(_, row)| drift::registration_hash(&row))
                }
                RowKind::Group => {
                    match group.query_row([key.as_ref()], group_from_row).optional()? {
                        None => None,
                        Some(mut row) => {
                            row.members = members
                                .query_map([key.as_ref()], |r| r.get(0))?
                                .collect::<Result<_, _>>()?;
                            Some(drift::group_hash(&row))
                        }
                    }
                }
            },
        };
        match hash {
            Some(hash) => upsert.push(connection, HashRow { kind, key, hash })?,
            None => {
                delete.execute(params![kind.number(), key.as_ref()])?;
            }
        }
    }
    upsert.flush(connection)
}

/// Settings SQLite takes once per process, before anything uses it: its memory comes
/// from mimalloc, like the rest of the program's (the system allocator costs a large
/// apply several percent), and it keeps no memory statistics (they put a global mutex
/// around every allocation, and nothing reads them). Once SQLite has started, it
/// refuses both and keeps its defaults.
///
/// # Safety
///
/// SQLite's settings are not safe to change while another thread may be using or
/// starting SQLite: call this before any other thread exists (the binary does, first
/// thing).
pub unsafe fn configure_sqlite() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        use rusqlite::ffi;
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(sqlite_memory::malloc),
            xFree: Some(sqlite_memory::free),
            xRealloc: Some(sqlite_memory::realloc),
            xSize: Some(sqlite_memory::size),
            xRoundup: Some(sqlite_memory::roundup),
            xInit: Some(sqlite_memory::init),
            xShutdown: Some(sqlite_memory::shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to a `sqlite3_mem_methods`, which
        // SQLite copies; SQLITE_CONFIG_MEMSTATUS takes one int. Before SQLite is
        // initialised they take effect; afterwards they return SQLITE_MISUSE and change
        // nothing. No other thread uses SQLite meanwhile (the caller's promise).
        unsafe {
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods as *const _);
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
}

/// SQLite's memory routines over mimalloc (`sqlite3_mem_methods`). SQLite asks for less
/// than 2 GiB at a time and never for a negative size; mimalloc's blocks are aligned to
/// 8 bytes at least, as SQLite needs.
mod sqlite_memory {
    use std::os::raw::{c_int, c_void};

    use libmimalloc_sys::{mi_free, mi_good_size, mi_malloc, mi_realloc, mi_usable_size};

    fn bytes(n: c_int) -> usize {
        usize::try_from(n).unwrap_or(0)
    }

    pub(super) unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        // SAFETY: any size may be asked of mimalloc.
        unsafe { mi_malloc(bytes(n)) }
    }

    pub(super) unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: SQLite frees only what `malloc` or `realloc` gave it (or null).
        unsafe { mi_free(p) }
    }

    pub(super) unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as `free`.
        unsafe { mi_realloc(p, bytes(n)) }
    }

    pub(super) unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        // SAFETY: as `free`; the size of null is 0.
        let size = unsafe { mi_usable_size(p) };
        c_int::try_from(size).unwrap_or(c_int::MAX)
    }

    pub(super) unsafe extern "C" fn roundup(n: c_int) -> c_int {
        // SAFETY: a pure size computation.
        let size = unsafe { mi_good_size(bytes(n)) };
        c_int::try_from(size).unwrap_or(n)
    }

    pub(super) unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        rusqlite::ffi::SQLITE_OK
    }

    pub(super) unsafe extern "C" fn shutdown(_: *mut c_void) {}
}

fn sqlite(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// A SQLite error as the user should read it: "locked" when another writer holds the
/// store past [`LOCK_WAIT`], the SQLite message with the path otherwise.
fn store_error(path: &Path, source: rusqlite::Error) -> StoreError {
    if is_busy(&source) {
        StoreError::Locked {
            path: path.to_path_buf(),
        }
    } else {
        sqlite(path, source)
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn read_serial(connection: &Connection) -> rusqlite::Result<i64> {
    let text: String =
        connection.query_row("SELECT value FROM meta WHERE key = 'serial'", [], |row| {
            row.get(0)
        })?;
    Ok(text.parse().unwrap_or(0))
}

fn write_serial(connection: &Connection, serial: i64) -> rusqlite::Result<()> {
    connection.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'serial'",
        [serial.to_string()],
    )?;
    Ok(())
}

fn insert_run(connection: &Connection, run: &RunRecord) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO runs (started_at, finished_at, command, revision, serial_before, serial_after, \
         added, updated, removed, deactivated, reactivated, outcome, message, duration_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            run.started_at,
            run.finished_at,
            run.command,
            run.revision,
            run.serial_before,
            run.serial_after,
            run.added as i64,
            run.updated as i64,
            run.removed as i64,
            run.deactivated as i64,
            run.reactivated as i64,
            run.outcome,
            run.message,
            run.duration_ms.map(|ms| ms.min(i64::MAX as u64) as i64),
        ],
    )?;
    Ok(())
}

enum ChangeFailure {
    Sqlite(rusqlite::Error),
    Refused(String),
}

impl From<rusqlite::Error> for ChangeFailure {
    fn from(error: rusqlite::Error) -> Self {
        ChangeFailure::Sqlite(error)
    }
}

/// A short description of a change for error messages.
fn describe(change: &Change) -> String {
    let action = format!("{:?}", change.action).to_lowercase();
    match change.kind {
        Kind::Registration => format!(
            "{action} of {} name {:?} for {}",
            change.protocol.as_deref().unwrap_or("?"),
            change.im_name.as_deref().unwrap_or("?"),
            change.account.as_deref().unwrap_or("?")
        ),
        Kind::Group => format!(
            "{action} of group {:?}",
            change.group.as_deref().unwrap_or("?")
        ),
        Kind::GroupMember => format!(
            "{action} of member {} of group {:?}",
            change.member.as_deref().unwrap_or("?"),
            change.group.as_deref().unwrap_or("?")
        ),
        _ => format!(
            "{action} of {:?} {}",
            change.kind,
            change.account.as_deref().unwrap_or("?")
        )
        .to_lowercase(),
    }
}

fn required<'a>(
    value: &'a Option<std::sync::Arc<str>>,
    what: &str,
) -> Result<&'a str, ChangeFailure> {
    value
        .as_deref()
        .ok_or_else(|| ChangeFailure::Refused(format!("the plan gives no {what}")))
}

fn expect_one(rows: usize, problem: &str) -> Result<(), ChangeFailure> {
    if rows == 1 {
        Ok(())
    } else {
        Err(ChangeFailure::Refused(problem.to_string()))
    }
}

/// Runs `sql` through the connection's statement cache: an apply runs the same few
/// statements millions of times, and parsing each again would cost a third of it.
fn execute(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    connection.prepare_cached(sql)?.execute(params)
}

/// [`execute`] for a query of one row.
fn query_row<T>(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    connection.prepare_cached(sql)?.query_row(params, row)
}

/// An account add written in bulk: the row `apply_change` inserts for it.
struct AccountAdd<'p> {
    change: &'p Change,
    anchor: &'p str,
    dn: &'p str,
}

impl BulkRow for AccountAdd<'_> {
    const COLUMNS: usize = 11;
    fn bind(&self, statement: &mut rusqlite::Statement<'_>, first: usize) -> rusqlite::Result<()> {
        bulk::bind(statement, first, self.anchor)?;
        bulk::bind(statement, first + 1, self.dn)?;
        bulk::bind(statement, first + 2, normalize_dn(self.dn))?;
        bulk::bind(statement, first + 3, self.change.source.as_deref())?;
        bulk::bind(statement, first + 4, AccountStatus::Active.name())?;
        let profile = self.change.profile.as_deref();
        for (offset, field) in ProfileField::ALL.into_iter().enumerate() {
            bulk::bind(
                statement,
                first + 5 + offset,
                profile.and_then(|p| p.get(field)),
            )?;
        }
        Ok(())
    }
}

/// A registration add written in bulk: the row `apply_change` inserts for it.
struct RegistrationAdd<'p> {
    change: &'p Change,
    protocol: &'p str,
    im_name: &'p str,
    account: &'p str,
    mapping: &'p str,
}

impl BulkRow for RegistrationAdd<'_> {
    const COLUMNS: usize = 6;
    fn bind(&self, statement: &mut rusqlite::Statement<'_>, first: usize) -> rusqlite::Result<()> {
        bulk::bind(statement, first, self.protocol)?;
        bulk::bind(statement, first + 1, self.change.name_key().as_ref())?;
        bulk::bind(statement, first + 2, self.im_name)?;
        bulk::bind(statement, first + 3, self.account)?;
        bulk::bind(statement, first + 4, RegistrationSource::Ldap.name())?;
        bulk::bind(statement, first + 5, self.mapping)
    }
}

/// The indexes of `accounts` and `registrations` besides their primary keys, exactly as
/// migration 5 makes them. Their keys come in no useful order in a plan (accounts are
/// in anchor order, registrations in name order): a first import builds them after its
/// rows (one sort each) instead of inserting into them row by row.
const CHANGE_INDEXES: [(&str, &str); 2] = [
    (
        "accounts_by_dn",
        "CREATE INDEX accounts_by_dn ON accounts (dn_key)",
    ),
    (
        "registrations_by_account",
        "CREATE INDEX registrations_by_account ON registrations (account)",
    ),
];

/// Writes a plan's changes in an apply's transaction, in plan order, as many at a time
/// as the caller has (see [`Store::apply_keeping`]).
pub struct ChangeWriter<'t> {
    connection: &'t Connection,
    path: &'t Path,
    /// How many changes are written.
    done: u64,
    /// The secondary indexes were dropped (the store held no account), to be built
    /// again whole.
    indexes_dropped: bool,
}

impl<'t> ChangeWriter<'t> {
    fn new(connection: &'t Connection, path: &'t Path) -> Result<Self, StoreError> {
        let fail = |e| store_error(path, e);
        let first_import = !connection
            .query_row("SELECT EXISTS (SELECT 1 FROM accounts)", [], |row| {
                row.get::<_, bool>(0)
            })
            .map_err(fail)?;
        if first_import {
            bulk::drop_indexes(connection, &CHANGE_INDEXES).map_err(fail)?;
        }
        Ok(ChangeWriter {
            connection,
            path,
            done: 0,
            indexes_dropped: first_import,
        })
    }

    /// Writes `changes`, the next ones of the plan, in order; `progress` hears how many
    /// of the plan's changes are done as it goes. A change the store refuses fails with
    /// a conflict naming it.
    pub fn write(
        &mut self,
        changes: &[Change],
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), StoreError> {
        let connection = self.connection;
        let refused = |(problem, change): (ChangeFailure, &Change)| match problem {
            ChangeFailure::Sqlite(e) => store_error(self.path, e),
            ChangeFailure::Refused(problem) => StoreError::Conflict {
                path: self.path.to_path_buf(),
                change: describe(change),
                problem,
            },
        };
        let mut adds = Adds::new();
        for change in changes {
            progress(self.done);
            self.done += 1;
            if adds.queue(connection, change).map_err(refused)? {
                continue;
            }
            adds.flush(connection).map_err(refused)?;
            apply_change(connection, change).map_err(|problem| refused((problem, change)))?;
        }
        adds.flush(connection).map_err(refused)
    }

    /// Ends the changes: builds again the indexes a first import dropped. Returns whether
    /// any change was written.
    fn finish(self) -> Result<bool, StoreError> {
        if self.indexes_dropped {
            bulk::create_indexes(self.connection, &CHANGE_INDEXES)
                .map_err(|e| store_error(self.path, e))?;
        }
        Ok(self.done > 0)
    }
}

/// The account and registration adds of a plan, written in bulk in plan order. A batch
/// the database refuses is written again change by change through [`apply_change`], so
/// that the change at fault fails as it would alone.
struct Adds<'p> {
    accounts: Bulk<AccountAdd<'p>>,
    registrations: Bulk<RegistrationAdd<'p>>,
}

type Failed<'p> = (ChangeFailure, &'p Change);

impl<'p> Adds<'p> {
    fn new() -> Self {
        Adds {
            accounts: Bulk::new(
                "INSERT INTO accounts (anchor, dn, dn_key, source, status, display_name, \
                 department, title, telephone, location, mail) VALUES",
            ),
            registrations: Bulk::new(
                "INSERT INTO registrations (protocol, im_name_key, im_name, account, source, \
                 owner) VALUES",
            ),
        }
    }

    /// Queues `change` when it is an add written in bulk (with every value it needs);
    /// `false` leaves it to the caller, after [`Adds::flush`].
    fn queue(&mut self, connection: &Connection, change: &'p Change) -> Result<bool, Failed<'p>> {
        if change.action != Action::Add {
            return Ok(false);
        }
        match (change.kind, change.account.as_deref()) {
            (Kind::Account, Some(anchor)) => {
                let Some(dn) = change.dn.as_deref() else {
                    return Ok(false);
                };
                self.flush_registrations(connection)?;
                let row = AccountAdd { change, anchor, dn };
                if self.accounts.push(connection, row).is_err() {
                    return rewrite(connection, self.accounts.take()).map(|()| true);
                }
                Ok(true)
            }
            (Kind::Registration, Some(account)) => {
                let (Some(protocol), Some(im_name), Some(mapping)) = (
                    change.protocol.as_deref(),
                    change.im_name.as_deref(),
                    change.mapping.as_deref(),
                ) else {
                    return Ok(false);
                };
                self.flush_accounts(connection)?;
                let row = RegistrationAdd {
                    change,
                    protocol,
                    im_name,
                    account,
                    mapping,
                };
                if self.registrations.push(connection, row).is_err() {
                    return rewrite(connection, self.registrations.take()).map(|()| true);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Writes every queued add.
    fn flush(&mut self, connection: &Connection) -> Result<(), Failed<'p>> {
        self.flush_accounts(connection)?;
        self.flush_registrations(connection)
    }

    fn flush_accounts(&mut self, connection: &Connection) -> Result<(), Failed<'p>> {
        if self.accounts.flush(connection).is_err() {
            rewrite(connection, self.accounts.take())?;
        }
        Ok(())
    }

    fn flush_registrations(&mut self, connection: &Connection) -> Result<(), Failed<'p>> {
        if self.registrations.flush(connection).is_err() {
            rewrite(connection, self.registrations.take())?;
        }
        Ok(())
    }
}

/// The changes of a refused batch, written one by one.
fn rewrite<'p, R: Queued<'p>>(connection: &Connection, rows: Vec<R>) -> Result<(), Failed<'p>> {
    for row in rows {
        let change = row.change();
        apply_change(connection, change).map_err(|problem| (problem, change))?;
    }
    Ok(())
}

/// A queued add and the change it comes from.
trait Queued<'p> {
    fn change(&self) -> &'p Change;
}

impl<'p> Queued<'p> for AccountAdd<'p> {
    fn change(&self) -> &'p Change {
        self.change
    }
}

impl<'p> Queued<'p> for RegistrationAdd<'p> {
    fn change(&self) -> &'p Change {
        self.change
    }
}

fn apply_change(connection: &Connection, change: &Change) -> Result<(), ChangeFailure> {
    match change.kind {
        Kind::Group => return apply_group_change(connection, change),
        Kind::GroupMember => return apply_member_change(connection, change),
        Kind::Account | Kind::Registration => {}
    }
    let account = required(&change.account, "account")?;
    match (change.kind, change.action) {
        (Kind::Account, Action::Add) => {
            let dn = required(&change.dn, "dn")?;
            let profile = change.profile.clone().unwrap_or_default();
            let value = |field| profile.get(field);
            let inserted = execute(
                connection,
                "INSERT OR IGNORE INTO accounts (anchor, dn, dn_key, source, status, display_name, department, title, telephone, location, mail) \
                 VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    account,
                    dn,
                    normalize_dn(dn),
                    change.source,
                    value(ProfileField::DisplayName),
                    value(ProfileField::Department),
                    value(ProfileField::Title),
                    value(ProfileField::Telephone),
                    value(ProfileField::Location),
                    value(ProfileField::Mail),
                ],
            )?;
            expect_one(inserted, "the account already exists")
        }
        (Kind::Account, Action::Update) => {
            for (field, (_, new)) in change.fields.iter().flat_map(|f| f.iter()) {
                let column = match field.as_str() {
                    "dn" => "dn",
                    "source" => "source",
                    other => ProfileField::from_name(other)
                        .map(ProfileField::name)
                        .ok_or_else(|| {
                            ChangeFailure::Refused(format!("unknown account field {other:?}"))
                        })?,
                };
                let sql = format!("UPDATE accounts SET {column} = ?1 WHERE anchor = ?2");
                expect_one(
                    execute(connection, &sql, params![new, account])?,
                    "the account does not exist",
                )?;
                if column == "dn" {
                    execute(
                        connection,
                        "UPDATE accounts SET dn_key = ?1 WHERE anchor = ?2",
                        params![new.as_deref().map(normalize_dn), account],
                    )?;
                }
            }
            Ok(())
        }
        (Kind::Account, Action::Deactivate | Action::Reactivate) => {
            let status = if change.action == Action::Deactivate {
                AccountStatus::Deactivated
            } else {
                AccountStatus::Active
            };
            let rows = execute(
                connection,
                "UPDATE accounts SET status = ?1 WHERE anchor = ?2 AND source IS NOT NULL",
                params![status.name(), account],
            )?;
            expect_one(rows, "the managed account does not exist")
        }
        (Kind::Account, Action::Remove) => {
            let rows = execute(
                connection,
                "DELETE FROM accounts WHERE anchor = ?1 AND source IS NOT NULL",
                params![account],
            )?;
            expect_one(rows, "the managed account does not exist")
        }
        (Kind::Registration, action) => {
            let protocol = required(&change.protocol, "protocol")?;
            let im_name = required(&change.im_name, "IM name")?;
            let key = change.name_key();
            let key = key.as_ref();
            match action {
                Action::Add => {
                    let mapping = required(&change.mapping, "mapping")?;
                    let rows = execute(
                connection,
                        "INSERT OR IGNORE INTO registrations (protocol, im_name_key, im_name, account, source, owner) \
                         VALUES (?1, ?2, ?3, ?4, 'ldap', ?5)",
                        params![protocol, key, im_name, account, mapping],
                    )?;
                    expect_one(rows, "the name is already registered")
                }
                Action::Remove => {
                    let rows = execute(
                connection,
                        "DELETE FROM registrations WHERE protocol = ?1 AND im_name_key = ?2 AND account = ?3 AND owner IS NOT NULL",
                        params![protocol, key, account],
                    )?;
                    expect_one(
                        rows,
                        "no managed registration of that name for that account",
                    )
                }
                Action::Update => {
                    for (field, (_, new)) in change.fields.iter().flat_map(|f| f.iter()) {
                        let column = match field.as_str() {
                            "im_name" => "im_name",
                            "mapping" => "owner",
                            other => {
                                return Err(ChangeFailure::Refused(format!(
                                    "unknown registration field {other:?}"
                                )))
                            }
                        };
                        let sql = format!(
                            "UPDATE registrations SET {column} = ?1 WHERE protocol = ?2 AND im_name_key = ?3 AND account = ?4 AND owner IS NOT NULL"
                        );
                        expect_one(
                            execute(connection, &sql, params![new, protocol, key, account])?,
                            "no managed registration of that name for that account",
                        )?;
                    }
                    Ok(())
                }
                Action::Deactivate | Action::Reactivate => Err(ChangeFailure::Refused(
                    "registrations cannot be deactivated".to_string(),
                )),
            }
        }
        (Kind::Group | Kind::GroupMember, _) => unreachable!("handled above"),
    }
}

/// Adds, updates or removes a managed group row. Unmanaged groups are never written.
fn apply_group_change(connection: &Connection, change: &Change) -> Result<(), ChangeFailure> {
    let group = required(&change.group, "group")?;
    match change.action {
        Action::Add => {
            let rule = required(&change.group_rule, "group rule")?;
            let kind = change.group_kind.ok_or_else(|| {
                ChangeFailure::Refused("the plan gives no group kind".to_string())
            })?;
            let rows = execute(
                connection,
                "INSERT OR IGNORE INTO groups (name, kind, source, owner) VALUES (?1, ?2, ?3, ?4)",
                params![group, kind.name(), change.source, rule],
            )?;
            expect_one(rows, "the group already exists")
        }
        Action::Update => {
            for (field, (_, new)) in change.fields.iter().flat_map(|f| f.iter()) {
                let column = match field.as_str() {
                    "group_rule" => "owner",
                    "kind" => "kind",
                    "source" => "source",
                    other => {
                        return Err(ChangeFailure::Refused(format!(
                            "unknown group field {other:?}"
                        )))
                    }
                };
                if new.is_none() && column != "source" {
                    return Err(ChangeFailure::Refused(format!("the plan clears {field}")));
                }
                let sql = format!(
                    "UPDATE groups SET {column} = ?1 WHERE name = ?2 AND owner IS NOT NULL"
                );
                expect_one(
                    execute(connection, &sql, params![new, group])?,
                    "the managed group does not exist",
                )?;
            }
            Ok(())
        }
        Action::Remove => {
            let members: i64 = query_row(
                connection,
                "SELECT COUNT(*) FROM group_members WHERE group_name = ?1",
                [group],
                |row| row.get(0),
            )?;
            if members > 0 {
                return Err(ChangeFailure::Refused(format!(
                    "the group still has {members} member(s)"
                )));
            }
            let rows = execute(
                connection,
                "DELETE FROM groups WHERE name = ?1 AND owner IS NOT NULL",
                [group],
            )?;
            expect_one(rows, "the managed group does not exist")
        }
        Action::Deactivate | Action::Reactivate => Err(ChangeFailure::Refused(
            "groups cannot be deactivated".to_string(),
        )),
    }
}

/// Adds or removes a member of a managed group.
fn apply_member_change(connection: &Connection, change: &Change) -> Result<(), ChangeFailure> {
    let group = required(&change.group, "group")?;
    let member = required(&change.member, "member")?;
    let managed: Option<bool> = connection
        .query_row(
            "SELECT owner IS NOT NULL FROM groups WHERE name = ?1",
            [group],
            |row| row.get(0),
        )
        .optional()?;
    if managed != Some(true) {
        return Err(ChangeFailure::Refused(
            "the managed group does not exist".to_string(),
        ));
    }
    match change.action {
        Action::Add => {
            let rows = execute(
                connection,
                "INSERT OR IGNORE INTO group_members (group_name, member) VALUES (?1, ?2)",
                params![group, member],
            )?;
            expect_one(rows, "the account is already a member")
        }
        Action::Remove => {
            let rows = execute(
                connection,
                "DELETE FROM group_members WHERE group_name = ?1 AND member = ?2",
                params![group, member],
            )?;
            expect_one(rows, "the account is not a member")
        }
        Action::Update | Action::Deactivate | Action::Reactivate => Err(ChangeFailure::Refused(
            "memberships can only be added or removed".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registrar_core::desired::{Desired, DesiredAccount, DesiredGroup};
    use registrar_core::model::{GroupKind, Rules};

    fn desired_with_group(group: &str) -> Desired {
        let mut desired = Desired::default();
        desired.insert_account(DesiredAccount::new("a", "cn=a,dc=x", "hr"));
        desired.groups.insert(
            group.to_string(),
            DesiredGroup {
                name: group.to_string(),
                kind: GroupKind::OrgUnit,
                source: "hr".to_string(),
                rule: group.to_string(),
                members: vec!["a".to_string()],
            },
        );
        desired
    }

    #[test]
    fn a_store_made_before_migration_5_keeps_its_rows_in_the_rebuilt_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // A store as the release before migration 5 left it, holding one row of each
            // kind (and a manual registration on an unmanaged account).
            let connection = Connection::open(&path).unwrap();
            connection
                .execute_batch(
                    "PRAGMA page_size = 4096; \
                     CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY);",
                )
                .unwrap();
            for (index, sql) in migrations::MIGRATIONS[..4].iter().enumerate() {
                connection.execute_batch(sql).unwrap();
                connection
                    .execute("INSERT INTO schema_migrations VALUES (?1)", [index + 1])
                    .unwrap();
            }
            connection
                .execute_batch(
                    "INSERT INTO accounts VALUES ('a', 'cn=A,dc=x', 'cn=a,dc=x', 'hr', 'active', \
                       'A', NULL, 'T', NULL, NULL, 'a@x'); \
                     INSERT INTO accounts VALUES ('cn=m,dc=x', 'cn=m,dc=x', 'cn=m,dc=x', NULL, \
                       'deactivated', NULL, NULL, NULL, NULL, NULL, NULL); \
                     INSERT INTO registrations VALUES ('aol', 'al', 'Al', 'a', 'ldap', 'aol-m'); \
                     INSERT INTO registrations VALUES ('aol', 'm', 'M', 'cn=m,dc=x', 'manual', NULL); \
                     INSERT INTO groups VALUES ('staff', 'org_unit', 'hr', 'staff'); \
                     INSERT INTO group_members VALUES ('staff', 'a'); \
                     INSERT INTO managed_hashes VALUES ('account', 'a', \
                       '000102030405060708090a0b0c0d0e0f'); \
                     INSERT INTO managed_hashes VALUES ('registration', 'aol:al', 'h2'); \
                     UPDATE meta SET value = '7' WHERE key = 'serial';",
                )
                .unwrap();
        }
        let reference = Connection::open(&path).unwrap();
        let before = load_state(&reference).unwrap();
        drop(reference);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), before);
        assert_eq!(store.serial().unwrap(), 7);
        // Migration 6 keeps each hash as its bytes; one that was never a hash of 16 bytes
        // matches nothing, so it is left out.
        let hashes: Vec<(RowId, RowHash)> = store.managed_hashes().unwrap().into_iter().collect();
        assert_eq!(
            hashes,
            [(RowId::account("a"), std::array::from_fn(|i| i as u8))]
        );
        let kept: (i64, usize) = store
            .connection
            .query_row(
                "SELECT kind, length(hash) FROM managed_hashes WHERE key = 'aol:al'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, (2, 2));
        for table in ["accounts", "registrations", "managed_hashes"] {
            let sql: String = store
                .connection
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = ?1",
                    [table],
                    |row| row.get(0),
                )
                .unwrap();
            assert!(sql.ends_with("WITHOUT ROWID"), "{table}: {sql}");
        }
        // The references still hold: a registration of an unknown account is refused.
        let error = store
            .connection
            .execute(
                "INSERT INTO registrations VALUES ('aol', 'x', 'X', 'nobody', 'manual', NULL)",
                [],
            )
            .unwrap_err();
        assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
    }

    /// The plan of an empty store towards one org unit, `staff`, with one member.
    fn staff_plan() -> Plan {
        registrar_core::plan::plan(
            &Rules::default(),
            desired_with_group("staff"),
            &State::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_saved_plan_with_groups_applies_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let plan = staff_plan();
        let saved: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        store.apply(&saved, RunRecord::new("test", "t")).unwrap();
        let state = store.load().unwrap();
        let row = &state.groups["staff"];
        assert_eq!(row.owner.as_deref(), Some("staff"));
        assert_eq!(row.kind, "org_unit");
        assert_eq!(row.members, vec!["a".to_string()]);
    }

    #[test]
    fn member_changes_to_an_unmanaged_group_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let plan = staff_plan();
        store
            .connection
            .execute(
                "INSERT INTO groups (name, kind, source, owner) VALUES ('staff', 'team', NULL, NULL)",
                [],
            )
            .unwrap();
        let error = store.apply(&plan, RunRecord::new("test", "t")).unwrap_err();
        assert!(error.to_string().contains("group"), "{error}");
        let state = store.load().unwrap();
        assert!(
            state.accounts.is_empty(),
            "nothing lands when one change fails"
        );
        assert_eq!(state.groups["staff"].owner, None);
        assert_eq!(state.serial, 0);
    }

    #[test]
    fn the_history_keeps_changing_runs_and_prunes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let plan = staff_plan();
        let applied = RunRecord {
            revision: Some("abc".to_string()),
            duration_ms: Some(1234),
            ..RunRecord::new("run every: apply", "t0")
        };
        store.apply(&plan, applied).unwrap();
        for n in 0..5 {
            let planned = RunRecord {
                outcome: "planned".to_string(),
                revision: Some(format!("rev{n}")),
                ..RunRecord::new("run hourly: plan", format!("t{}", n + 1))
            };
            store.record_run(planned).unwrap();
        }
        assert_eq!(store.applied_revision().unwrap().as_deref(), Some("abc"));
        let runs = store.runs(10).unwrap();
        assert_eq!(runs.len(), 6);
        assert_eq!((runs[0].serial_before, runs[0].serial_after), (1, 1));
        assert_eq!(runs[5].duration_ms, Some(1234));

        // Keep 2: the three oldest plans go, the apply (it changed the store) stays.
        assert_eq!(store.prune_runs(2).unwrap(), 3);
        let left: Vec<String> = store
            .runs(10)
            .unwrap()
            .into_iter()
            .map(|run| run.started_at)
            .collect();
        assert_eq!(left, ["t5", "t4", "t0"]);
        assert_eq!(
            store.managed_counts().unwrap(),
            ManagedCounts {
                accounts: 1,
                registrations: 0,
                groups: 1,
                group_members: 1,
            }
        );
    }
}
