//! Numbered schema migrations of the store, the same numbers on SQLite and PostgreSQL.
//!
//! Each migration runs in its own write transaction and records itself in
//! `schema_migrations`; on SQLite foreign keys are checked before it commits rather than
//! row by row (so that a table can be rebuilt). A migration is one text where the two
//! dialects agree and two where their DDL differs ([`Migration`]): PostgreSQL's keeps
//! every text column in the `"C"` collation, so keys sort byte for byte as on SQLite.
//! Once shipped, a migration is never edited: a change is a new migration at the end.
//! [`Store::migrate`] runs the ones a store lacks when it is opened.

use super::database::{params, Backend, Database, OptionalRow, SqlResult};
use super::error::{store_error, StoreError};
use super::open::holds_a_store;
use super::open::Store;
use super::read::load_state;
use registrar_core::drift::{self, RowHashes};

/// One numbered migration: its SQLite text, and PostgreSQL's where the DDL differs.
pub(super) struct Migration {
    pub(super) sqlite: &'static str,
    pub(super) postgres: &'static str,
}

impl Migration {
    pub(super) fn text(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// The migrations in order; the index plus one is the migration number.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        sqlite: SQLITE_MIGRATIONS[0],
        postgres: POSTGRES_1,
    },
    Migration {
        sqlite: SQLITE_MIGRATIONS[1],
        postgres: "ALTER TABLE runs ADD COLUMN duration_ms BIGINT;",
    },
    Migration {
        sqlite: SQLITE_MIGRATIONS[2],
        postgres: POSTGRES_3,
    },
    Migration {
        sqlite: SQLITE_MIGRATIONS[3],
        postgres: POSTGRES_4,
    },
    Migration {
        sqlite: SQLITE_MIGRATIONS[4],
        postgres: POSTGRES_5,
    },
    Migration {
        sqlite: SQLITE_MIGRATIONS[5],
        postgres: POSTGRES_6,
    },
    Migration {
        sqlite: VIEWS_V1,
        postgres: VIEWS_V1,
    },
    Migration {
        sqlite: "",
        postgres: POSTGRES_8,
    },
    Migration {
        sqlite: SQLITE_9,
        postgres: POSTGRES_9,
    },
];

/// Migration 9, the kept snapshots of LDAP sources read through a change feed: the feed
/// (`syncrepl`, `dirsync`), the cookie to ask it with next and the digest of the entries
/// kept (an `EntrySum`), and each kept entry's 16-byte identity (`entryUUID`,
/// `objectGUID`), by which the feed names deletions. All are NULL for an `ldif` source.
const SQLITE_9: &str = r#"
    ALTER TABLE snapshots ADD COLUMN feed TEXT;
    ALTER TABLE snapshots ADD COLUMN cookie BLOB;
    ALTER TABLE snapshots ADD COLUMN entries_digest TEXT;
    ALTER TABLE snapshot_entries ADD COLUMN identity BLOB;
    CREATE INDEX snapshot_entries_by_identity ON snapshot_entries (source, identity)
        WHERE identity IS NOT NULL;
"#;

/// Migration 9 on PostgreSQL.
const POSTGRES_9: &str = r#"
    ALTER TABLE snapshots ADD COLUMN feed TEXT COLLATE "C";
    ALTER TABLE snapshots ADD COLUMN cookie BYTEA;
    ALTER TABLE snapshots ADD COLUMN entries_digest TEXT COLLATE "C";
    ALTER TABLE snapshot_entries ADD COLUMN identity BYTEA;
    CREATE INDEX snapshot_entries_by_identity ON snapshot_entries (source, identity)
        WHERE identity IS NOT NULL;
"#;

/// Migration 8, PostgreSQL's keys of `snapshot_names` and `managed_hashes` with their
/// most varied column first (a name, a row's key) instead of one of three protocols or
/// kinds: PostgreSQL sorts them in well under half the time when a first import builds
/// them (`Deferred`), and every lookup names all of their columns. SQLite's keys stay
/// as they are (its tables are not rebuilt), so its text is empty.
const POSTGRES_8: &str = r#"
    ALTER TABLE snapshot_names DROP CONSTRAINT snapshot_names_pkey;
    ALTER TABLE snapshot_names ADD CONSTRAINT snapshot_names_pkey
        PRIMARY KEY (name_key, protocol, source, dn_key);
    ALTER TABLE managed_hashes DROP CONSTRAINT managed_hashes_compact_pkey;
    ALTER TABLE managed_hashes ADD CONSTRAINT managed_hashes_pkey PRIMARY KEY (key, kind);
"#;

/// SQLite's texts of migrations 1 to 6, as they shipped.
const SQLITE_MIGRATIONS: [&str; 6] = [
    // 1: accounts, registrations, groups, serial and run history.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('serial', '0');

    CREATE TABLE accounts (
        anchor       TEXT PRIMARY KEY,
        dn           TEXT NOT NULL,
        dn_key       TEXT NOT NULL,
        source       TEXT,
        status       TEXT NOT NULL CHECK (status IN ('active', 'deactivated')),
        display_name TEXT,
        department   TEXT,
        title        TEXT,
        telephone    TEXT,
        location     TEXT,
        mail         TEXT
    );

    CREATE INDEX accounts_by_dn ON accounts (dn_key);

    CREATE TABLE registrations (
        protocol    TEXT NOT NULL,
        im_name_key TEXT NOT NULL,
        im_name     TEXT NOT NULL,
        account     TEXT NOT NULL REFERENCES accounts (anchor),
        source      TEXT NOT NULL CHECK (source IN ('ldap', 'manual', 'self')),
        owner       TEXT,
        PRIMARY KEY (protocol, im_name_key),
        CHECK ((source = 'ldap') = (owner IS NOT NULL))
    );
    CREATE INDEX registrations_by_account ON registrations (account);

    CREATE TABLE groups (
        name   TEXT PRIMARY KEY,
        kind   TEXT NOT NULL,
        source TEXT,
        owner  TEXT
    );
    CREATE TABLE group_members (
        group_name TEXT NOT NULL REFERENCES groups (name),
        member     TEXT NOT NULL,
        PRIMARY KEY (group_name, member)
    );

    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY,
        started_at    TEXT NOT NULL,
        finished_at   TEXT NOT NULL,
        command       TEXT NOT NULL,
        revision      TEXT,
        serial_before INTEGER NOT NULL,
        serial_after  INTEGER NOT NULL,
        added         INTEGER NOT NULL,
        updated       INTEGER NOT NULL,
        removed       INTEGER NOT NULL,
        deactivated   INTEGER NOT NULL,
        reactivated   INTEGER NOT NULL,
        outcome       TEXT NOT NULL,
        message       TEXT
    );
    "#,
    // 2: how long each run took, in milliseconds (null for runs recorded before).
    r#"
    ALTER TABLE runs ADD COLUMN duration_ms INTEGER;
    "#,
    // 3: the content hash of every managed row as the last apply left it, for drift.
    // Filled for existing rows right after this migration (`Store::migrate`).
    r#"
    CREATE TABLE managed_hashes (
        kind TEXT NOT NULL CHECK (kind IN ('account', 'registration', 'group')),
        key  TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    );
    "#,
    // 4: the snapshot each ldif source was last imported as (delta import): its files, and
    // its entries by normalised DN, each one LDIF content record. `tree` is the DN's bytes
    // reversed (`ldif::tree_key`), so that a subtree is one range of its index.
    r#"
    CREATE TABLE snapshots (
        source          TEXT PRIMARY KEY,
        content_path    TEXT NOT NULL,
        content_digest  TEXT NOT NULL,
        imported_serial INTEGER NOT NULL
    );
    CREATE TABLE snapshot_change_files (
        source          TEXT NOT NULL REFERENCES snapshots (source) ON DELETE CASCADE,
        position        INTEGER NOT NULL,
        path            TEXT NOT NULL,
        digest          TEXT NOT NULL,
        imported_serial INTEGER NOT NULL,
        PRIMARY KEY (source, position)
    );
    CREATE TABLE snapshot_entries (
        source TEXT NOT NULL REFERENCES snapshots (source) ON DELETE CASCADE,
        dn_key TEXT NOT NULL,
        tree   BLOB NOT NULL,
        record BLOB NOT NULL
    );
    CREATE UNIQUE INDEX snapshot_entries_by_dn ON snapshot_entries (source, dn_key);
    CREATE INDEX snapshot_entries_by_tree ON snapshot_entries (source, tree);
    "#,
    // 5: what a delta plan by region (`core::region`) looks things up by: each kept
    // entry's footprint (the anchor it arrives with; `yields`: it makes an account; the
    // IM names it produces; for a group entry, the group names it gives and its member
    // DNs), as the config of `standing_facts` worked it out, and the totals of the plan
    // last applied. `footprint` keeps the lists on the entry to forget them by key.
    // Accounts, registrations and hashes become tables clustered on their primary key
    // (`WITHOUT ROWID`: one B-tree less each to write), their rows copied as they are.
    r#"
    ALTER TABLE snapshot_entries ADD COLUMN anchor TEXT;
    ALTER TABLE snapshot_entries ADD COLUMN yields INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE snapshot_entries ADD COLUMN footprint TEXT;
    CREATE INDEX snapshot_entries_by_anchor ON snapshot_entries (anchor) WHERE anchor IS NOT NULL;
    CREATE TABLE snapshot_names (
        protocol TEXT NOT NULL,
        name_key TEXT NOT NULL,
        source   TEXT NOT NULL,
        dn_key   TEXT NOT NULL,
        PRIMARY KEY (protocol, name_key, source, dn_key)
    ) WITHOUT ROWID;
    CREATE TABLE snapshot_groups (
        name   TEXT NOT NULL,
        source TEXT NOT NULL,
        dn_key TEXT NOT NULL,
        PRIMARY KEY (name, source, dn_key)
    ) WITHOUT ROWID;
    CREATE TABLE snapshot_members (
        source TEXT NOT NULL,
        member TEXT NOT NULL,
        dn_key TEXT NOT NULL,
        PRIMARY KEY (source, member, dn_key)
    ) WITHOUT ROWID;
    CREATE TABLE standing_facts (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        serial        INTEGER NOT NULL,
        config_digest TEXT NOT NULL,
        facts         TEXT NOT NULL
    );

    CREATE TABLE accounts_by_anchor (
        anchor       TEXT NOT NULL PRIMARY KEY,
        dn           TEXT NOT NULL,
        dn_key       TEXT NOT NULL,
        source       TEXT,
        status       TEXT NOT NULL CHECK (status IN ('active', 'deactivated')),
        display_name TEXT,
        department   TEXT,
        title        TEXT,
        telephone    TEXT,
        location     TEXT,
        mail         TEXT
    ) WITHOUT ROWID;
    INSERT INTO accounts_by_anchor SELECT anchor, dn, dn_key, source, status, display_name,
        department, title, telephone, location, mail FROM accounts;
    DROP TABLE accounts;
    ALTER TABLE accounts_by_anchor RENAME TO accounts;
    CREATE INDEX accounts_by_dn ON accounts (dn_key);

    CREATE TABLE registrations_by_name (
        protocol    TEXT NOT NULL,
        im_name_key TEXT NOT NULL,
        im_name     TEXT NOT NULL,
        account     TEXT NOT NULL REFERENCES accounts (anchor),
        source      TEXT NOT NULL CHECK (source IN ('ldap', 'manual', 'self')),
        owner       TEXT,
        PRIMARY KEY (protocol, im_name_key),
        CHECK ((source = 'ldap') = (owner IS NOT NULL))
    ) WITHOUT ROWID;
    INSERT INTO registrations_by_name SELECT protocol, im_name_key, im_name, account, source,
        owner FROM registrations;
    DROP TABLE registrations;
    ALTER TABLE registrations_by_name RENAME TO registrations;
    CREATE INDEX registrations_by_account ON registrations (account);

    CREATE TABLE managed_hashes_by_key (
        kind TEXT NOT NULL CHECK (kind IN ('account', 'registration', 'group')),
        key  TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    INSERT INTO managed_hashes_by_key SELECT kind, key, hash FROM managed_hashes;
    DROP TABLE managed_hashes;
    ALTER TABLE managed_hashes_by_key RENAME TO managed_hashes;
    "#,
    // 6: managed_hashes keeps the kind as a number (1 account, 2 registration, 3 group)
    // and the hash as its 16 bytes instead of 32 hex digits: a first import of a million
    // users writes four million of these rows, and they take a third less room.
    r#"
    CREATE TABLE managed_hashes_compact (
        kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
        key  TEXT NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    INSERT INTO managed_hashes_compact
        SELECT CASE kind WHEN 'account' THEN 1 WHEN 'registration' THEN 2 ELSE 3 END, key,
            coalesce(unhex(hash), CAST(hash AS BLOB))
        FROM managed_hashes;
    DROP TABLE managed_hashes;
    ALTER TABLE managed_hashes_compact RENAME TO managed_hashes;
    "#,
];

/// Migration 1 on PostgreSQL: the same tables, with PostgreSQL's types.
const POSTGRES_1: &str = r#"
    CREATE TABLE meta (
        key   TEXT COLLATE "C" PRIMARY KEY,
        value TEXT COLLATE "C" NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('serial', '0');

    CREATE TABLE accounts (
        anchor       TEXT COLLATE "C" PRIMARY KEY,
        dn           TEXT COLLATE "C" NOT NULL,
        dn_key       TEXT COLLATE "C" NOT NULL,
        source       TEXT COLLATE "C",
        status       TEXT COLLATE "C" NOT NULL CHECK (status IN ('active', 'deactivated')),
        display_name TEXT COLLATE "C",
        department   TEXT COLLATE "C",
        title        TEXT COLLATE "C",
        telephone    TEXT COLLATE "C",
        location     TEXT COLLATE "C",
        mail         TEXT COLLATE "C"
    );
    CREATE INDEX accounts_by_dn ON accounts (dn_key);

    CREATE TABLE registrations (
        protocol    TEXT COLLATE "C" NOT NULL,
        im_name_key TEXT COLLATE "C" NOT NULL,
        im_name     TEXT COLLATE "C" NOT NULL,
        account     TEXT COLLATE "C" NOT NULL REFERENCES accounts (anchor),
        source      TEXT COLLATE "C" NOT NULL CHECK (source IN ('ldap', 'manual', 'self')),
        owner       TEXT COLLATE "C",
        PRIMARY KEY (protocol, im_name_key),
        CHECK ((source = 'ldap') = (owner IS NOT NULL))
    );
    CREATE INDEX registrations_by_account ON registrations (account);

    CREATE TABLE groups (
        name   TEXT COLLATE "C" PRIMARY KEY,
        kind   TEXT COLLATE "C" NOT NULL,
        source TEXT COLLATE "C",
        owner  TEXT COLLATE "C"
    );
    CREATE TABLE group_members (
        group_name TEXT COLLATE "C" NOT NULL REFERENCES groups (name),
        member     TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (group_name, member)
    );

    CREATE TABLE runs (
        id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        started_at    TEXT COLLATE "C" NOT NULL,
        finished_at   TEXT COLLATE "C" NOT NULL,
        command       TEXT COLLATE "C" NOT NULL,
        revision      TEXT COLLATE "C",
        serial_before BIGINT NOT NULL,
        serial_after  BIGINT NOT NULL,
        added         BIGINT NOT NULL,
        updated       BIGINT NOT NULL,
        removed       BIGINT NOT NULL,
        deactivated   BIGINT NOT NULL,
        reactivated   BIGINT NOT NULL,
        outcome       TEXT COLLATE "C" NOT NULL,
        message       TEXT COLLATE "C"
    );
"#;

/// Migration 3 on PostgreSQL.
const POSTGRES_3: &str = r#"
    CREATE TABLE managed_hashes (
        kind TEXT COLLATE "C" NOT NULL CHECK (kind IN ('account', 'registration', 'group')),
        key  TEXT COLLATE "C" NOT NULL,
        hash TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (kind, key)
    );
"#;

/// Migration 4 on PostgreSQL.
const POSTGRES_4: &str = r#"
    CREATE TABLE snapshots (
        source          TEXT COLLATE "C" PRIMARY KEY,
        content_path    TEXT COLLATE "C" NOT NULL,
        content_digest  TEXT COLLATE "C" NOT NULL,
        imported_serial BIGINT NOT NULL
    );
    CREATE TABLE snapshot_change_files (
        source          TEXT COLLATE "C" NOT NULL REFERENCES snapshots (source) ON DELETE CASCADE,
        position        BIGINT NOT NULL,
        path            TEXT COLLATE "C" NOT NULL,
        digest          TEXT COLLATE "C" NOT NULL,
        imported_serial BIGINT NOT NULL,
        PRIMARY KEY (source, position)
    );
    CREATE TABLE snapshot_entries (
        source TEXT COLLATE "C" NOT NULL REFERENCES snapshots (source) ON DELETE CASCADE,
        dn_key TEXT COLLATE "C" NOT NULL,
        tree   BYTEA NOT NULL,
        record BYTEA NOT NULL
    );
    CREATE UNIQUE INDEX snapshot_entries_by_dn ON snapshot_entries (source, dn_key);
    CREATE INDEX snapshot_entries_by_tree ON snapshot_entries (source, tree);
"#;

/// Migration 5 on PostgreSQL: the footprint columns and tables. (SQLite's rebuild of
/// three tables clustered on their keys is a storage change PostgreSQL has no need of.)
const POSTGRES_5: &str = r#"
    ALTER TABLE snapshot_entries ADD COLUMN anchor TEXT COLLATE "C";
    ALTER TABLE snapshot_entries ADD COLUMN yields BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE snapshot_entries ADD COLUMN footprint TEXT COLLATE "C";
    CREATE INDEX snapshot_entries_by_anchor ON snapshot_entries (anchor) WHERE anchor IS NOT NULL;
    CREATE TABLE snapshot_names (
        protocol TEXT COLLATE "C" NOT NULL,
        name_key TEXT COLLATE "C" NOT NULL,
        source   TEXT COLLATE "C" NOT NULL,
        dn_key   TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (protocol, name_key, source, dn_key)
    );
    CREATE TABLE snapshot_groups (
        name   TEXT COLLATE "C" NOT NULL,
        source TEXT COLLATE "C" NOT NULL,
        dn_key TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (name, source, dn_key)
    );
    CREATE TABLE snapshot_members (
        source TEXT COLLATE "C" NOT NULL,
        member TEXT COLLATE "C" NOT NULL,
        dn_key TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (source, member, dn_key)
    );
    CREATE TABLE standing_facts (
        id            BIGINT PRIMARY KEY CHECK (id = 1),
        serial        BIGINT NOT NULL,
        config_digest TEXT COLLATE "C" NOT NULL,
        facts         TEXT COLLATE "C" NOT NULL
    );
"#;

/// Migration 6 on PostgreSQL: kinds as numbers, hashes as their 16 bytes.
const POSTGRES_6: &str = r#"
    CREATE TABLE managed_hashes_compact (
        kind BIGINT NOT NULL CHECK (kind IN (1, 2, 3)),
        key  TEXT COLLATE "C" NOT NULL,
        hash BYTEA NOT NULL,
        PRIMARY KEY (kind, key)
    );
    INSERT INTO managed_hashes_compact
        SELECT CASE kind WHEN 'account' THEN 1 WHEN 'registration' THEN 2 ELSE 3 END, key,
            decode(hash, 'hex')
        FROM managed_hashes;
    DROP TABLE managed_hashes;
    ALTER TABLE managed_hashes_compact RENAME TO managed_hashes;
"#;

/// Migration 7, the same on both: the read contract for IM systems and compliance
/// reports. Once shipped a view's columns never change; a new shape is a `_v2` beside it.
pub(super) const VIEWS_V1: &str = r#"
    CREATE VIEW registrar_registrations_v1 AS
        SELECT r.protocol, r.im_name, r.im_name_key, r.source, r.owner AS mapping,
            r.account AS account_anchor, a.dn AS account_dn, a.status AS account_status,
            a.display_name, a.mail
        FROM registrations r JOIN accounts a ON a.anchor = r.account;
    CREATE VIEW registrar_accounts_v1 AS
        SELECT anchor, dn, source, status, display_name, department, title, telephone,
            location, mail,
            (SELECT COUNT(*) FROM registrations r WHERE r.account = accounts.anchor)
                AS registrations
        FROM accounts;
    CREATE VIEW registrar_groups_v1 AS
        SELECT g.name AS group_name, g.kind, g.source, g.owner AS rule,
            m.member AS member_anchor, a.dn AS member_dn
        FROM groups g
            LEFT JOIN group_members m ON m.group_name = g.name
            LEFT JOIN accounts a ON a.anchor = m.member;
"#;

/// The migration after which the managed rows' hashes are computed (in Rust: SQLite has
/// no SHA-256) for stores that already hold rows. Unlike the SQL above, this runs today's
/// code, [`drift::managed_hashes`], on an old store: the hashes it writes are pinned by
/// the version 1 upgrade test, as the hashes every apply writes must stay the same.
pub(super) const HASHES_MIGRATION: usize = 3;

impl Store {
    /// Brings the schema up to date: runs, each in its own transaction, the migrations the
    /// store has not had; refuses a store a newer registrar wrote.
    pub(super) fn migrate(&mut self) -> Result<(), StoreError> {
        let location = self.location.clone();
        let fail = |e| store_error(&location, e);
        let backend = self.connection.backend();
        let applied: usize = self.migrations_applied().map_err(fail)?;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                store: self.location.clone(),
                found: applied,
                known: MIGRATIONS.len(),
            });
        }
        if applied == MIGRATIONS.len() {
            return Ok(());
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let transaction = self.connection.begin_write().map_err(fail)?;
            if backend == Backend::Postgres {
                transaction
                    .execute_batch(
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY);",
                    )
                    .map_err(fail)?;
            }
            // Another process may have run it while this one waited for the lock.
            let done = transaction
                .query_row(
                    "SELECT 1 FROM schema_migrations WHERE version = ?1",
                    params![index as i64 + 1],
                    |_| Ok(()),
                )
                .optional()
                .map_err(fail)?
                .is_some();
            if done {
                continue;
            }
            transaction
                .execute_batch(migration.text(backend))
                .map_err(fail)?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version) VALUES (?1)",
                    params![index as i64 + 1],
                )
                .map_err(fail)?;
            if index + 1 == HASHES_MIGRATION {
                let state = load_state(&transaction).map_err(fail)?;
                write_hashes_at_migration_3(&transaction, &drift::managed_hashes(&state))
                    .map_err(fail)?;
            }
            if backend == Backend::Sqlite {
                // Foreign keys are off while migrating (they cannot be turned off inside a
                // transaction, and a rebuilt table is briefly missing): checked here whole.
                // PostgreSQL checks them statement by statement.
                let broken: Option<String> = transaction
                    .query_row("PRAGMA foreign_key_check", params![], |row| row.get(0))
                    .optional()
                    .map_err(fail)?;
                if let Some(table) = broken {
                    return Err(StoreError::Migration {
                        store: self.location.clone(),
                        version: index + 1,
                        problem: format!("table {table} has rows whose reference is missing"),
                    });
                }
            }
            transaction.commit().map_err(fail)?;
        }
        Ok(())
    }

    /// How many migrations the store has had (none for a new one).
    fn migrations_applied(&self) -> SqlResult<usize> {
        if self.connection.backend() == Backend::Sqlite {
            self.connection.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY);",
            )?;
        } else if !holds_a_store(&self.connection)? {
            return Ok(0);
        }
        self.connection
            .query_row("SELECT COUNT(*) FROM schema_migrations", params![], |row| {
                row.get(0)
            })
    }
}

/// Records `hashes` in the table as migration 3 made it (kind names, hex hashes), right
/// after that migration (migration 6 converts them).
fn write_hashes_at_migration_3(database: &Database, hashes: &RowHashes) -> SqlResult<()> {
    let mut insert = database.prepare(
        "INSERT INTO managed_hashes (kind, key, hash) VALUES (?1, ?2, ?3) \
         ON CONFLICT (kind, key) DO UPDATE SET hash = excluded.hash",
    )?;
    for (id, hash) in hashes {
        let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
        insert.execute(params![id.kind.name(), &id.key, &hex])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::history::RunRecord;
    use registrar_core::desired::{Claim, Desired, DesiredAccount, DesiredGroup};
    use registrar_core::drift::{RowHash, RowId, RowKind};
    use registrar_core::model::{GroupKind, Profile, Rules};
    use registrar_core::plan::plan;
    use registrar_core::state::RegistrationSource;

    /// The schema exactly as version 1 created it (commit 8362c75, `src/store/migrations.rs`,
    /// migration 1, which was then the only one): a store that release made, rebuilt here
    /// without today's code.
    const VERSION_1_SCHEMA: &str = r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('serial', '0');

    CREATE TABLE accounts (
        anchor       TEXT PRIMARY KEY,
        dn           TEXT NOT NULL,
        dn_key       TEXT NOT NULL,
        source       TEXT,
        status       TEXT NOT NULL CHECK (status IN ('active', 'deactivated')),
        display_name TEXT,
        department   TEXT,
        title        TEXT,
        telephone    TEXT,
        location     TEXT,
        mail         TEXT
    );

    CREATE INDEX accounts_by_dn ON accounts (dn_key);

    CREATE TABLE registrations (
        protocol    TEXT NOT NULL,
        im_name_key TEXT NOT NULL,
        im_name     TEXT NOT NULL,
        account     TEXT NOT NULL REFERENCES accounts (anchor),
        source      TEXT NOT NULL CHECK (source IN ('ldap', 'manual', 'self')),
        owner       TEXT,
        PRIMARY KEY (protocol, im_name_key),
        CHECK ((source = 'ldap') = (owner IS NOT NULL))
    );
    CREATE INDEX registrations_by_account ON registrations (account);

    CREATE TABLE groups (
        name   TEXT PRIMARY KEY,
        kind   TEXT NOT NULL,
        source TEXT,
        owner  TEXT
    );
    CREATE TABLE group_members (
        group_name TEXT NOT NULL REFERENCES groups (name),
        member     TEXT NOT NULL,
        PRIMARY KEY (group_name, member)
    );

    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY,
        started_at    TEXT NOT NULL,
        finished_at   TEXT NOT NULL,
        command       TEXT NOT NULL,
        revision      TEXT,
        serial_before INTEGER NOT NULL,
        serial_after  INTEGER NOT NULL,
        added         INTEGER NOT NULL,
        updated       INTEGER NOT NULL,
        removed       INTEGER NOT NULL,
        deactivated   INTEGER NOT NULL,
        reactivated   INTEGER NOT NULL,
        outcome       TEXT NOT NULL,
        message       TEXT
    );
    "#;

    /// A store as version 1 left it: its schema, `schema_migrations` at 1, the page size of
    /// the time, and one row of every kind it held: managed accounts (one deactivated, one
    /// with a profile), an unmanaged account, a managed, a manual and a self registration,
    /// a managed group with members, an unmanaged group, and a run.
    fn version_1_store(path: &std::path::Path) {
        let connection = rusqlite::Connection::open(path).unwrap();
        connection
            .execute_batch(
                "PRAGMA page_size = 4096; PRAGMA foreign_keys = ON; \
                 CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY);",
            )
            .unwrap();
        connection.execute_batch(VERSION_1_SCHEMA).unwrap();
        connection
            .execute_batch(
                "INSERT INTO schema_migrations (version) VALUES (1); \
                 INSERT INTO accounts VALUES ('a', 'cn=Ann,dc=x', 'cn=ann,dc=x', 'hr', 'active', \
                   'Ann', 'Sales', NULL, '+1 555', NULL, 'ann@x'); \
                 INSERT INTO accounts VALUES ('b', 'cn=Bob,dc=x', 'cn=bob,dc=x', 'hr', \
                   'deactivated', NULL, NULL, NULL, NULL, NULL, NULL); \
                 INSERT INTO accounts VALUES ('cn=m,dc=x', 'cn=M,dc=x', 'cn=m,dc=x', NULL, \
                   'active', NULL, NULL, NULL, NULL, NULL, NULL); \
                 INSERT INTO registrations VALUES ('aol', 'ann', 'Ann', 'a', 'ldap', 'aol-names'); \
                 INSERT INTO registrations VALUES ('aol', 'mm', 'M M', 'cn=m,dc=x', 'manual', NULL); \
                 INSERT INTO registrations VALUES ('icq', '1234', '1234', 'a', 'self', NULL); \
                 INSERT INTO groups VALUES ('staff', 'org_unit', 'hr', 'staff'); \
                 INSERT INTO groups VALUES ('team', 'team', NULL, NULL); \
                 INSERT INTO group_members VALUES ('staff', 'a'); \
                 INSERT INTO group_members VALUES ('staff', 'b'); \
                 INSERT INTO group_members VALUES ('team', 'cn=m,dc=x'); \
                 INSERT INTO runs (started_at, finished_at, command, revision, serial_before, \
                   serial_after, added, updated, removed, deactivated, reactivated, outcome, \
                   message) VALUES ('2024-01-02T03:04:05Z', '2024-01-02T03:04:06Z', 'apply', \
                   'abc123', 2, 3, 5, 0, 0, 1, 0, 'applied', NULL); \
                 UPDATE meta SET value = '3' WHERE key = 'serial';",
            )
            .unwrap();
    }

    /// The desired state a config equal to the version 1 store asks for: `a` with its
    /// profile and its name, `b` deactivated, `staff` with both.
    fn desired_equal_to_version_1() -> Desired {
        let mut desired = Desired::default();
        let mut ann = DesiredAccount::new("a", "cn=Ann,dc=x", "hr");
        ann.profile = Profile::from_values([
            Some("Ann"),
            Some("Sales"),
            None,
            Some("+1 555"),
            None,
            Some("ann@x"),
        ]);
        desired.insert_account(ann);
        let mut bob = DesiredAccount::new("b", "cn=Bob,dc=x", "hr");
        bob.enabled = false;
        desired.insert_account(bob);
        desired.claims.push(Claim {
            protocol: "aol".into(),
            name_key: "ann".into(),
            account: 0,
            mapping: "aol-names".into(),
            im_name: "Ann".into(),
        });
        desired.accounts_per_source.insert("hr".to_string(), 2);
        desired.groups.insert(
            "staff".to_string(),
            DesiredGroup {
                name: "staff".to_string(),
                kind: GroupKind::OrgUnit,
                source: "hr".to_string(),
                rule: "staff".to_string(),
                members: vec!["a".into(), "b".into()],
            },
        );
        desired
    }

    /// Migration 1 is never edited once shipped: today's is the one version 1 ran.
    #[test]
    fn migration_1_is_the_schema_version_1_created() {
        assert_eq!(MIGRATIONS[0].sqlite, VERSION_1_SCHEMA);
    }

    #[test]
    fn a_version_1_store_upgrades_with_its_rows_hashes_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        version_1_store(&path);
        let before = load_state(&Database::sqlite(
            rusqlite::Connection::open(&path).unwrap(),
        ))
        .unwrap();
        let store = Store::open(&path).unwrap();

        let versions: Vec<i64> = store
            .connection
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map(params![], |row| row.get(0))
            .unwrap();
        assert_eq!(versions, (1..=MIGRATIONS.len() as i64).collect::<Vec<_>>());

        // Every row as version 1 held it, manual and self registrations included.
        let state = store.load().unwrap();
        assert_eq!(state, before);
        assert_eq!(state.serial, 3);
        assert_eq!(state.accounts.len(), 3);
        let sources: Vec<(&str, RegistrationSource, Option<&str>)> = state
            .registrations
            .iter()
            .map(|(key, row)| (&*key.name_key, row.source, row.owner.as_deref()))
            .collect();
        assert_eq!(
            sources,
            [
                ("ann", RegistrationSource::Ldap, Some("aol-names")),
                ("mm", RegistrationSource::Manual, None),
                ("1234", RegistrationSource::SelfService, None),
            ]
        );
        assert_eq!(state.groups["staff"].members, ["a", "b"]);
        assert_eq!(state.groups["team"].owner, None);

        // Migration 3 hashed the managed rows with today's `drift` code, and migration 6
        // kept them as bytes. Pinned: if the hashing changes, every store upgraded (or
        // applied) before would read as edited outside registrar, and this fails.
        let hashes: Vec<(RowId, String)> = store
            .managed_hashes()
            .unwrap()
            .into_iter()
            .map(|(id, hash)| (id, hash.iter().map(|b| format!("{b:02x}")).collect()))
            .collect();
        let pinned = [
            (RowId::account("a"), "1e830c0755853fcae2877de88969364d"),
            (RowId::account("b"), "ecb2f5cb3b4edb43a85739bc5f310793"),
            (
                RowId {
                    kind: RowKind::Registration,
                    key: "aol:ann".into(),
                },
                "917c3d87defa42a9f6bde01a0b7b3489",
            ),
            (
                RowId {
                    kind: RowKind::Group,
                    key: "staff".into(),
                },
                "cc29a63c995d9e2eba4daa7b00bdccab",
            ),
        ]
        .map(|(id, hex)| (id, hex.to_string()));
        assert_eq!(hashes, pinned);
        assert_eq!(
            store.managed_hashes().unwrap(),
            drift::managed_hashes(&state)
        );

        // The history keeps its run; version 1 kept no duration.
        let runs = store.runs(10).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (
                runs[0].serial_before,
                runs[0].serial_after,
                runs[0].duration_ms
            ),
            (2, 3, None)
        );
        assert_eq!(store.applied_revision().unwrap().as_deref(), Some("abc123"));
    }

    #[test]
    fn a_plan_equal_to_an_upgraded_version_1_store_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        version_1_store(&path);
        let mut store = Store::open(&path).unwrap();
        let state = store.load().unwrap();
        let plan = plan(&Rules::default(), desired_equal_to_version_1(), &state).unwrap();
        assert_eq!(plan.changes, []);
        assert_eq!(plan.state_serial, 3);
        // Applying it moves nothing: the serial stays, the manual and self rows too.
        let serial = store.apply(&plan, RunRecord::new("apply", "t")).unwrap();
        assert_eq!(serial, 3);
        assert_eq!(store.load().unwrap(), state);
    }

    #[test]
    fn a_store_made_before_migration_5_keeps_its_rows_in_the_rebuilt_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // A store as the release before migration 5 left it, holding one row of each
            // kind (and a manual registration on an unmanaged account).
            let connection = rusqlite::Connection::open(&path).unwrap();
            connection
                .execute_batch(
                    "PRAGMA page_size = 4096; \
                     CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY);",
                )
                .unwrap();
            for (index, sql) in MIGRATIONS[..4].iter().enumerate() {
                connection.execute_batch(sql.sqlite).unwrap();
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
        let reference = Database::sqlite(rusqlite::Connection::open(&path).unwrap());
        let before = load_state(&reference).unwrap();
        drop(reference);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), before);
        assert_eq!(store.serial().unwrap(), 7);
        // Migration 6 keeps each hash as its bytes, even one that was never a hash of 16
        // bytes (a hand edit: no registrar writes one); reading it back refuses it, naming
        // the row, rather than reading its row as one no apply wrote.
        let error = store.managed_hashes().unwrap_err();
        assert!(
            error.to_string().ends_with(
                "table managed_hashes, kind 2, key \"aol:al\": hash x'6832' is 2 bytes long, not 16"
            ),
            "{error}"
        );
        let kept: (i64, usize) = store
            .connection
            .query_row(
                "SELECT kind, length(hash) FROM managed_hashes WHERE key = 'aol:al'",
                params![],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, (2, 2));
        store
            .connection
            .execute("DELETE FROM managed_hashes WHERE key = 'aol:al'", params![])
            .unwrap();
        let hashes: Vec<(RowId, RowHash)> = store.managed_hashes().unwrap().into_iter().collect();
        assert_eq!(
            hashes,
            [(RowId::account("a"), std::array::from_fn(|i| i as u8))]
        );
        for table in ["accounts", "registrations", "managed_hashes"] {
            let sql: String = store
                .connection
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = ?1",
                    params![table],
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
                params![],
            )
            .unwrap_err();
        assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
    }
}
