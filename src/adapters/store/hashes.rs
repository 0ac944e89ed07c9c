//! The content hash of every managed row as the last apply left it (for drift): read
//! back whole, and refreshed for the rows an apply wrote.

use super::database::{params, Database, OptionalRow, Param, SqlResult};
use registrar_core::ArcStr;

use super::bulk::{Bulk, BulkRow, Constraint, Deferred};
use super::error::{blob_literal, quoted, StoreError, UnreadableValue, ValueProblem};
use super::open::Store;
use super::read::{
    account_from_row, group_from_row, registration_from_row, Anchors, SELECT_ACCOUNTS,
    SELECT_GROUPS, SELECT_REGISTRATIONS,
};
use registrar_core::drift::{self, RowAfter, RowHash, RowHashes, RowId, RowKind, WrittenRow};
use registrar_core::interner::Interner;

impl Store {
    /// The content hashes of the managed rows as the applies left them.
    pub fn managed_hashes(&self) -> Result<RowHashes, StoreError> {
        let read = || -> SqlResult<RowHashes> {
            let mut statement = self
                .connection
                .prepare("SELECT kind, key, hash FROM managed_hashes")?;
            let rows = statement.query_map(params![], |row| {
                Ok((
                    row.get::<i64>(0)?,
                    row.get::<String>(1)?,
                    row.get::<Vec<u8>>(2)?,
                ))
            })?;
            let mut hashes = RowHashes::new();
            for (kind, key, hash) in rows {
                let (kind, hash) = hash_row(kind, &key, hash)?;
                hashes.insert(RowId { kind, key }, hash);
            }
            Ok(hashes)
        };
        read().map_err(|e| self.error(e))
    }
}

/// A `managed_hashes` row's kind and hash; a kind or a hash length no apply writes is
/// refused ([`UnreadableValue`]): left out, its row would read as one no apply wrote.
fn hash_row(kind: i64, key: &str, hash: Vec<u8>) -> SqlResult<(RowKind, RowHash)> {
    let unreadable = |row: String, column, found, problem| UnreadableValue {
        table: "managed_hashes",
        row,
        column,
        found,
        problem,
    };
    let Some(row_kind) = RowKind::from_number(kind) else {
        let kinds = [RowKind::Account, RowKind::Registration, RowKind::Group];
        let problem = ValueProblem::NoneOf(kinds.map(|k| k.number().to_string()).to_vec());
        let row = format!("key {}", quoted(key));
        return Err(unreadable(row, "kind", kind.to_string(), problem).into_sql(0));
    };
    let expected = std::mem::size_of::<RowHash>();
    let found = hash.len();
    hash.try_into()
        .map(|hash| (row_kind, hash))
        .map_err(|hash: Vec<u8>| {
            let row = format!("kind {kind}, key {}", quoted(key));
            let problem = ValueProblem::Length { found, expected };
            unreadable(row, "hash", blob_literal(&hash), problem).into_sql(2)
        })
}

/// A `managed_hashes` row written in bulk.
struct HashRow {
    kind: RowKind,
    key: ArcStr,
    hash: RowHash,
}

impl BulkRow for HashRow {
    const COLUMNS: usize = 3;
    fn values<'r>(&'r self, out: &mut Vec<Param<'r>>) {
        out.push(Param::from(self.kind.number()));
        out.push(Param::from(self.key.as_str()));
        out.push(Param::from(&self.hash[..]));
    }
}

/// What the first hashes a store keeps build after their rows ([`Deferred`]): on
/// PostgreSQL the key, exactly as migration 8 makes it.
pub(super) const HASH_DEFERRED: Deferred = Deferred {
    indexes: &[],
    constraints: &[Constraint {
        table: "managed_hashes",
        name: "managed_hashes_pkey",
        definition: "PRIMARY KEY (key, kind)",
    }],
};

/// Records the hashes of the managed rows a plan's changes wrote (`rows`, from
/// [`drift::written_rows`]): adds from the change, other rows read back as they now are;
/// a row that is gone or no longer managed loses its hash.
pub(super) fn refresh_hashes(connection: &Database, rows: Vec<WrittenRow>) -> SqlResult<()> {
    // Into a store that keeps no hash, `rows` (each row once) only adds: the key is built
    // after them.
    let first_hashes = !rows.iter().any(|row| matches!(row.after, RowAfter::Gone))
        && connection.query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM managed_hashes)",
            params![],
            |row| row.get::<bool>(0),
        )?;
    if first_hashes {
        HASH_DEFERRED.drop_all(connection)?;
    }
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
    let mut upsert = Bulk::with_tail(
        "INSERT INTO managed_hashes (kind, key, hash) VALUES",
        "ON CONFLICT (kind, key) DO UPDATE SET hash = excluded.hash",
    );
    let mut delete =
        connection.prepare("DELETE FROM managed_hashes WHERE kind = ?1 AND key = ?2")?;
    for WrittenRow { kind, key, after } in rows {
        let hash = match after {
            RowAfter::Hash(hash) => Some(hash),
            RowAfter::Gone => None,
            RowAfter::Reread => match kind {
                RowKind::Account => account
                    .query_row(params![key.as_str()], |row| {
                        account_from_row(row, &mut Interner::default(), Anchors::Own)
                    })
                    .optional()?
                    .map(|row| drift::account_hash(&row)),
                RowKind::Registration => {
                    let (protocol, name_key) = key.split_once(':').unwrap_or((&key, ""));
                    registration
                        .query_row(params![protocol, name_key], |row| {
                            registration_from_row(row, &mut Interner::default())
                        })
                        .optional()?
                        .map(|(_, row)| drift::registration_hash(&row))
                }
                RowKind::Group => {
                    match group
                        .query_row(params![key.as_str()], group_from_row)
                        .optional()?
                    {
                        None => None,
                        Some(mut row) => {
                            row.members = members.query_map(params![key.as_str()], |r| r.get(0))?;
                            Some(drift::group_hash(&row))
                        }
                    }
                }
            },
        };
        match hash {
            Some(hash) => upsert.push(connection, HashRow { kind, key, hash })?,
            None => {
                delete.execute(params![kind.number(), key.as_str()])?;
            }
        }
    }
    upsert.flush(connection)?;
    if first_hashes {
        HASH_DEFERRED.rebuild_all(connection)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::error::{StoreError, ValueProblem};
    use super::super::history::RunRecord;
    use super::super::test_support::{corrupt, store_with_one_registration};
    use registrar_core::desired::{Desired, DesiredAccount};
    use registrar_core::drift::RowId;
    use registrar_core::model::Rules;
    use registrar_core::plan::plan;

    /// The store with one registration, and one managed account `a` applied (so its hash
    /// is kept).
    fn store_with_a_kept_hash() -> (throwaway_postgres::TestStore, super::Store) {
        let (dir, mut store) = store_with_one_registration();
        let mut desired = Desired::default();
        desired.insert_account(DesiredAccount::new("a", "cn=a,dc=x", "hr"));
        let state = store.load().unwrap();
        let plan = plan(&Rules::default(), desired, &state).unwrap();
        store.apply(&plan, RunRecord::new("apply", "t")).unwrap();
        assert!(store
            .managed_hashes()
            .unwrap()
            .contains_key(&RowId::account("a")));
        (dir, store)
    }

    #[test]
    fn a_hash_of_another_length_is_refused_not_left_out() {
        let (_dir, store) = store_with_a_kept_hash();
        corrupt(
            &store,
            "UPDATE managed_hashes SET hash = x'0102' WHERE key = 'a'",
        );
        let error = store.managed_hashes().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: table managed_hashes, kind 1, key \"a\": hash x'0102' is 2 bytes \
                 long, not 16",
                store.location()
            )
        );
        let StoreError::Unreadable { value, .. } = error else {
            panic!("not an unreadable value: {error}");
        };
        assert_eq!(
            value.problem,
            ValueProblem::Length {
                found: 2,
                expected: 16
            }
        );
    }

    #[test]
    fn a_row_kind_no_registrar_writes_is_refused_not_left_out() {
        let (_dir, store) = store_with_a_kept_hash();
        corrupt(&store, "UPDATE managed_hashes SET kind = 7 WHERE key = 'a'");
        let error = store.managed_hashes().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: table managed_hashes, key \"a\": kind 7 is none of 1, 2, 3",
                store.location()
            )
        );
    }
}
