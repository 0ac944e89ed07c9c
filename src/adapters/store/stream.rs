//! The state streamed to the planner: everything but the registrations loaded whole
//! ([`Store::stream_state`]), then the registrations, the store's largest table, sent
//! in batches of packed rows as the planner walks them ([`RegistrationBatch`],
//! [`StreamedRows`]). A plan against a store of millions of names so never holds them
//! all, nor allocates anything per row it does not change.
//!
//! All of it is read in one read transaction: the rows streamed are those of the state
//! loaded, even while a writer commits.

use std::collections::BTreeSet;

use registrar_core::state::{
    RegistrationRow, RegistrationRows, RegistrationSource, State, StoredRegistrations,
};

use super::database::{params, Database, SqlError, SqlResult};
use super::error::{quoted, StoreError, UnreadableValue, ValueProblem};
use super::open::Store;
use super::read::{
    count_rows, load_state_but_registrations, registration_named, registration_source,
    SELECT_REGISTRATIONS,
};

/// Rows a batch holds at most: enough that passing batches between threads costs
/// nothing next to reading them, few enough that the batches in flight stay small.
const BATCH_ROWS: usize = 4096;

/// The head of a streamed state: the state without its registrations, and what the
/// planner must know of them before their rows follow. An empty store's is the default.
#[derive(Debug, Default)]
pub struct StateHead {
    /// `registrations` empty: they follow as batches.
    pub state: State,
    pub registrations: StoredRegistrations<()>,
}

/// Registration rows packed into one text buffer, in key order: a batch of the stream.
#[derive(Debug, Default)]
pub struct RegistrationBatch {
    text: String,
    rows: Vec<PackedRow>,
}

/// Where a packed row's texts end in the batch's buffer: protocol, name key, IM name,
/// account, then the owner (as long as the account's end when there is none).
#[derive(Debug)]
struct PackedRow {
    ends: [usize; 5],
    has_owner: bool,
    source: RegistrationSource,
}

impl RegistrationBatch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds `row` at the end.
    pub fn push(&mut self, row: RegistrationRow<'_>) {
        let mut ends = [0; 5];
        let texts = [
            row.protocol,
            row.name_key,
            row.im_name,
            row.account,
            row.owner.unwrap_or_default(),
        ];
        for (end, text) in ends.iter_mut().zip(texts) {
            self.text.push_str(text);
            *end = self.text.len();
        }
        self.rows.push(PackedRow {
            ends,
            has_owner: row.owner.is_some(),
            source: row.source,
        });
    }

    /// The row at `index`, if the batch has one there.
    pub fn get(&self, index: usize) -> Option<RegistrationRow<'_>> {
        let packed = self.rows.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.rows[index - 1].ends[4],
        };
        let [protocol, name_key, im_name, account, owner] = packed.ends;
        Some(RegistrationRow {
            protocol: &self.text[start..protocol],
            name_key: &self.text[protocol..name_key],
            im_name: &self.text[name_key..im_name],
            account: &self.text[im_name..account],
            source: packed.source,
            owner: packed.has_owner.then(|| &self.text[account..owner]),
        })
    }

    /// The last row's key (protocol, name key), if any.
    fn last_key(&self) -> Option<(&str, &str)> {
        let row = self.get(self.rows.len().checked_sub(1)?)?;
        Some((row.protocol, row.name_key))
    }
}

/// The rows of a stream of batches, one at a time, as the planner walks them.
pub struct StreamedRows<I: Iterator<Item = RegistrationBatch>> {
    batches: I,
    batch: RegistrationBatch,
    index: usize,
}

impl<I: Iterator<Item = RegistrationBatch>> StreamedRows<I> {
    pub fn new(mut batches: I) -> Self {
        let batch = batches.next().unwrap_or_default();
        StreamedRows {
            batches,
            batch,
            index: 0,
        }
    }
}

impl<I: Iterator<Item = RegistrationBatch>> RegistrationRows for StreamedRows<I> {
    fn current(&self) -> Option<RegistrationRow<'_>> {
        self.batch.get(self.index)
    }

    fn advance(&mut self) {
        self.index += 1;
        if self.index >= self.batch.len() {
            // The stream's batches are never empty; an empty one ends it.
            self.batch = self.batches.next().unwrap_or_default();
            self.index = 0;
        }
    }
}

impl Store {
    /// Streams the state: `head` takes the state without its registrations, then
    /// `batch` takes the registrations in key order, in batches, while each answers
    /// `true` (`false`: no one listens any more, and the reading stops). One read
    /// transaction holds for all of it.
    ///
    /// A store whose registrations do not come in key order as bytes (a hand-edited
    /// collation) is refused: the planner's walk needs that order.
    pub fn stream_state(
        &self,
        head: impl FnOnce(StateHead) -> bool,
        mut batch: impl FnMut(RegistrationBatch) -> bool,
    ) -> Result<(), StoreError> {
        let read = || -> SqlResult<()> {
            let transaction = self.connection.begin_read()?;
            let loaded = StateHead {
                state: load_state_but_registrations(&transaction)?,
                registrations: StoredRegistrations {
                    rows: (),
                    count: count_rows(&transaction, "registrations")?,
                    unmanaged_holders: unmanaged_holders(&transaction)?,
                },
            };
            if head(loaded) {
                stream_registrations(&transaction, &mut batch)?;
            }
            transaction.commit()
        };
        read().map_err(|e| self.error(e))
    }
}

/// The accounts holding unmanaged rows. (Not `DISTINCT`: SQLite would walk the account
/// index and look every row up, five times slower than the plain scan.)
fn unmanaged_holders(connection: &Database) -> SqlResult<BTreeSet<String>> {
    connection
        .prepare("SELECT account FROM registrations WHERE owner IS NULL")?
        .query_map(params![], |row| row.get::<String>(0))
        .map(|holders| holders.into_iter().collect())
}

/// The registrations in key order, to `send` in batches while it answers `true`.
fn stream_registrations(
    connection: &Database,
    send: &mut dyn FnMut(RegistrationBatch) -> bool,
) -> SqlResult<()> {
    let mut batch = RegistrationBatch::default();
    // The key of the last row sent, to check the next batch's first against.
    let mut sent_last: Option<(String, String)> = None;
    let mut listening = true;
    connection
        .prepare(&format!(
            "{SELECT_REGISTRATIONS} ORDER BY protocol, im_name_key"
        ))?
        .for_each_row_until(params![], &mut |row| {
            let protocol = row.get_str(0)?;
            let name_key = row.get_str(1)?;
            let previous = batch
                .last_key()
                .or(sent_last.as_ref().map(|(p, k)| (p.as_str(), k.as_str())));
            if previous.is_some_and(|previous| previous >= (protocol, name_key)) {
                return Err(out_of_key_order(protocol, name_key));
            }
            batch.push(RegistrationRow {
                protocol,
                name_key,
                im_name: row.get_str(2)?,
                account: row.get_str(3)?,
                source: registration_source(row, protocol, name_key)?,
                owner: row.get_optional_str(5)?,
            });
            if batch.len() >= BATCH_ROWS {
                sent_last = batch
                    .last_key()
                    .map(|(p, k)| (p.to_string(), k.to_string()));
                listening = send(std::mem::take(&mut batch));
            }
            Ok(listening)
        })?;
    if listening && !batch.is_empty() {
        send(batch);
    }
    Ok(())
}

/// The refusal of a row whose key does not come after the one read before it.
fn out_of_key_order(protocol: &str, name_key: &str) -> SqlError {
    UnreadableValue {
        table: "registrations",
        row: registration_named(protocol, name_key),
        column: "im_name_key",
        found: quoted(name_key),
        problem: ValueProblem::OutOfKeyOrder,
    }
    .into_sql(1)
}

#[cfg(test)]
mod tests {
    use registrar_core::state::{LoadedRows, RegistrationRows, StoredRegistrations};

    use super::super::location::StoreLocation;
    use super::super::open::Store;
    use super::super::test_support::{corrupt, register_bob, store_with_one_registration};
    use super::*;

    /// Every row `rows` gives, in order, owned.
    fn walk(mut rows: impl RegistrationRows) -> Vec<[String; 6]> {
        let mut walked = Vec::new();
        while let Some(row) = rows.current() {
            walked.push(
                [
                    row.protocol,
                    row.name_key,
                    row.im_name,
                    row.account,
                    row.source.name(),
                    row.owner.unwrap_or("-"),
                ]
                .map(str::to_string),
            );
            rows.advance();
        }
        walked
    }

    /// Streams `store` whole: its head, and its batches.
    fn stream(store: &Store) -> (StateHead, Vec<RegistrationBatch>) {
        let mut head = None;
        let mut batches = Vec::new();
        store
            .stream_state(
                |streamed| head.replace(streamed).is_none(),
                |batch| {
                    batches.push(batch);
                    true
                },
            )
            .unwrap();
        (head.unwrap(), batches)
    }

    #[test]
    fn the_streamed_state_is_the_loaded_state() {
        let (_dir, store) = store_with_one_registration();
        // Over three batches' worth of rows: three protocols, managed and manual rows,
        // 300 accounts, names whose key is not their display form.
        store
            .connection
            .execute_batch(
                "INSERT INTO accounts (anchor, dn, dn_key, source, status) \
                   WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) \
                   SELECT 'a' || i, 'uid=a' || i, 'uid=a' || i, 'hr', 'active' FROM n; \
                 INSERT INTO registrations (protocol, im_name_key, im_name, account, source, owner) \
                   WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) \
                   SELECT CASE WHEN i % 3 = 0 THEN 'aim' WHEN i % 3 = 1 THEN 'sip' ELSE 'xmpp' END, \
                     'n' || i, CASE WHEN i % 5 = 0 THEN 'N' || i ELSE 'n' || i END, \
                     'a' || (i % 300 + 1), CASE WHEN i % 7 = 0 THEN 'manual' ELSE 'ldap' END, \
                     CASE WHEN i % 7 = 0 THEN NULL ELSE 'm' || (i % 4) END FROM n;",
            )
            .unwrap();
        let loaded = store.load().unwrap();
        let (head, batches) = stream(&store);

        assert!(batches.len() >= 3, "{} batches", batches.len());
        assert!(batches.iter().all(|batch| batch.len() <= BATCH_ROWS));
        let streamed = walk(StreamedRows::new(batches.into_iter()));
        assert_eq!(streamed.len(), 10_001);
        assert_eq!(streamed, walk(LoadedRows::new(&loaded.registrations)));

        let expected = StoredRegistrations::loaded(&loaded.registrations);
        let registrations = head.registrations;
        assert_eq!(registrations.count, expected.count);
        assert_eq!(registrations.unmanaged_holders, expected.unmanaged_holders);
        assert!(!registrations.unmanaged_holders.is_empty());
        let mut without_registrations = loaded;
        without_registrations.registrations = Default::default();
        assert_eq!(head.state, without_registrations);
    }

    #[test]
    fn the_stream_stops_when_no_one_listens() {
        let (_dir, store) = store_with_one_registration();
        let mut batches = 0;
        store
            .stream_state(
                |_| false,
                |_| {
                    batches += 1;
                    true
                },
            )
            .unwrap();
        assert_eq!(batches, 0);
    }

    #[test]
    fn registrations_out_of_byte_order_are_refused() {
        // A SQLite store whatever the run's backend: the collation is SQLite's NOCASE.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let location = StoreLocation::parse(path.to_str().unwrap()).unwrap();
        let mut store = Store::open(location).unwrap();
        register_bob(&mut store);
        corrupt(
            &store,
            "PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON; \
             CREATE TABLE nocase (protocol TEXT NOT NULL, im_name_key TEXT COLLATE NOCASE NOT NULL, \
               im_name TEXT NOT NULL, account TEXT NOT NULL, source TEXT NOT NULL, owner TEXT, \
               PRIMARY KEY (protocol, im_name_key)) WITHOUT ROWID; \
             INSERT INTO nocase SELECT * FROM registrations; \
             DROP TABLE registrations; \
             ALTER TABLE nocase RENAME TO registrations; \
             INSERT INTO registrations VALUES ('xmpp', 'Zed', 'Zed', 'cn=bob,dc=x', 'manual', NULL);",
        );
        // NOCASE puts "bob" before "Zed"; as bytes, "Zed" comes first.
        let error = store.stream_state(|_| true, |_| true).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: table registrations, protocol \"xmpp\", im_name_key \"Zed\": im_name_key \
                 \"Zed\" comes out of key order: keys must sort as bytes (collation \"C\")",
                store.location()
            )
        );
    }
}
