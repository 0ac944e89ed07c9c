//! Numbered schema migrations of the SQLite store.
//!
//! Each migration runs in its own transaction, with foreign keys checked before it
//! commits rather than row by row (so that a table can be rebuilt), and records itself
//! in `schema_migrations`.
//! Once shipped, a migration is never edited: a change is a new migration at the end.

/// The migrations in order; the index plus one is the migration number.
pub const MIGRATIONS: &[&str] = &[
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

/// The migration after which the managed rows' hashes are computed (in Rust: SQLite has
/// no SHA-256) for stores that already hold rows.
pub const HASHES_MIGRATION: usize = 3;
