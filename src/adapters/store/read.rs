//! Reads of the state: the whole of it ([`Store::load`], and `load_state` inside a
//! transaction), the rows a delta plan asks for by key, and the managed rows' counts. The
//! row readers here are the only code that turns a table row into a core state row; a
//! value no registrar writes (an unknown status or source, a member of no group) they
//! refuse as [`StoreError::Unreadable`], never read as a default.

use registrar_core::ArcStr;
use std::collections::BTreeSet;

use super::database::{params, Database, OptionalRow, Row, SqlResult};
use serde::Serialize;

use super::error::{quoted, StoreError, UnreadableValue, ValueProblem};
use super::open::Store;
use super::serial::read_serial;
use registrar_core::interner::Interner;
use registrar_core::model::Profile;
use registrar_core::state::{
    AccountStatus, GroupRow, RegistrationKey, RegistrationSource, SortedMap, State, StateAccount,
    StateRegistration,
};

/// What looking one member up in a group costs, in members read in order: where reading
/// a group whole is the cheaper way to find some of its members.
const LOOKUP_COST_IN_ROWS: usize = 16;

/// The rows `registrar` manages, by kind (the kinds of the plan JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ManagedCounts {
    pub accounts: u64,
    pub registrations: u64,
    pub groups: u64,
    pub group_members: u64,
}

impl ManagedCounts {
    /// The managed rows in all: what `policy.max_delete_percent` is a share of. The store's
    /// count of what a full plan counts (the managed registrations its walk passes, and
    /// the other managed rows of the state; a delta by region has no loaded state): the
    /// two must agree for delta to equal full.
    pub fn total(&self) -> u64 {
        self.accounts + self.registrations + self.groups + self.group_members
    }
}

impl Store {
    /// The whole state.
    pub fn load(&self) -> Result<State, StoreError> {
        // One consistent view across the tables' queries, even while a writer commits.
        let read = || {
            let transaction = self.connection.begin_read()?;
            let state = load_state(&transaction)?;
            transaction.commit()?;
            Ok(state)
        };
        read().map_err(|e| self.error(e))
    }

    /// The accounts with these anchors (those the store has).
    pub fn accounts_with(
        &self,
        anchors: &BTreeSet<String>,
    ) -> Result<Vec<StateAccount>, StoreError> {
        let read = || -> SqlResult<Vec<StateAccount>> {
            let mut statement = self
                .connection
                .prepare(&format!("{SELECT_ACCOUNTS} WHERE anchor = ?1"))?;
            let mut accounts = Vec::with_capacity(anchors.len());
            let mut names = Interner::default();
            for anchor in anchors {
                let account = statement
                    .query_row(params![anchor], |row| {
                        account_from_row(row, &mut names, Anchors::Own)
                    })
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
        let read = || -> SqlResult<Vec<(RegistrationKey, StateRegistration)>> {
            let mut statement = self.connection.prepare(&format!(
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
        let read = || -> SqlResult<Vec<GroupRow>> {
            let mut group = self
                .connection
                .prepare(&format!("{SELECT_GROUPS} WHERE name = ?1"))?;
            let mut member = self
                .connection
                .prepare("SELECT 1 FROM group_members WHERE group_name = ?1 AND member = ?2")?;
            let mut all_members = self.connection.prepare(
                "SELECT member FROM group_members WHERE group_name = ?1 ORDER BY member",
            )?;
            let mut count = self
                .connection
                .prepare("SELECT COUNT(*) FROM group_members WHERE group_name = ?1")?;
            let mut rows = Vec::new();
            for name in names {
                let Some(mut row) = group.query_row(params![name], group_from_row).optional()?
                else {
                    continue;
                };
                // Members are looked up one by one unless they are a fair share of the
                // group's: a lookup costs a walk down the index, some dozen rows read in
                // order. A delta's hundred members of an "All Staff" group of a million
                // are a hundred lookups, not a million rows read.
                let one_by_one = members.len() <= 64 || {
                    let held: i64 = count.query_row(params![name], |r| r.get(0))?;
                    members.len().saturating_mul(LOOKUP_COST_IN_ROWS) <= held as usize
                };
                if one_by_one {
                    for anchor in members {
                        if member.exists(params![name, anchor])? {
                            row.members.push(anchor.clone());
                        }
                    }
                } else {
                    for anchor in all_members.query_map(params![name], |r| r.get::<String>(0))? {
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
        let read = || -> SqlResult<Vec<RegistrationKey>> {
            let mut statement = self
                .connection
                .prepare("SELECT protocol, im_name_key FROM registrations WHERE account = ?1")?;
            let rows = statement.query_map(params![anchor], |row| {
                Ok(RegistrationKey {
                    protocol: row.get(0)?,
                    name_key: row.get(1)?,
                })
            })?;
            Ok(rows)
        };
        read().map_err(|e| self.error(e))
    }

    /// The current state serial.
    pub fn serial(&self) -> Result<i64, StoreError> {
        read_serial(&self.connection).map_err(|e| self.error(e))
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
                params![],
                |row| {
                    Ok(ManagedCounts {
                        accounts: row.get::<i64>(0)? as u64,
                        registrations: row.get::<i64>(1)? as u64,
                        groups: row.get::<i64>(2)? as u64,
                        group_members: row.get::<i64>(3)? as u64,
                    })
                },
            )
            .map_err(|e| self.error(e))
    }
}

pub(super) const SELECT_ACCOUNTS: &str =
    "SELECT anchor, dn, source, status, display_name, department, \
     title, telephone, location, mail FROM accounts";
pub(super) const SELECT_REGISTRATIONS: &str =
    "SELECT protocol, im_name_key, im_name, account, source, owner FROM registrations";
pub(super) const SELECT_GROUPS: &str = "SELECT name, kind, source, owner FROM groups";

/// Whether accounts' anchors go through the interner, for registrations read next to
/// share (a million accounts' anchors cost a hash and a lookup each), or are their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Anchors {
    Shared,
    Own,
}

pub(super) fn account_from_row(
    row: &Row<'_>,
    names: &mut Interner,
    anchors: Anchors,
) -> SqlResult<StateAccount> {
    // Borrowed from the row: the profile's one allocation is its only one.
    let mut values: [Option<&str>; 6] = Default::default();
    for (offset, value) in values.iter_mut().enumerate() {
        *value = row.get_optional_str(4 + offset)?;
    }
    let profile = Profile::from_values(values);
    let anchor = row.get_str(0)?;
    let status = row.get_str(3)?;
    let status = AccountStatus::from_name(status).ok_or_else(|| {
        UnreadableValue {
            table: "accounts",
            row: format!("anchor {}", quoted(anchor)),
            column: "status",
            found: quoted(status),
            problem: none_of([AccountStatus::Active, AccountStatus::Deactivated].map(|s| s.name())),
        }
        .into_sql(3)
    })?;
    Ok(StateAccount {
        anchor: match anchors {
            Anchors::Shared => names.get(anchor),
            Anchors::Own => anchor.into(),
        },
        dn: row.get(1)?,
        status,
        source: names.get_optional(row.get_optional_str(2)?),
        profile,
    })
}

/// A registration row, its protocol, owner and account shared through `names` (an
/// account's anchor is the one its row gave) and its name key shared with its name
/// when they are equal, as they mostly are.
pub(super) fn registration_from_row(
    row: &Row<'_>,
    names: &mut Interner,
) -> SqlResult<(RegistrationKey, StateRegistration)> {
    let protocol = row.get_str(0)?;
    let name_key = row.get_str(1)?;
    let source = registration_source(row, protocol, name_key)?;
    let protocol = names.get(protocol);
    let im_name: ArcStr = row.get_str(2)?.into();
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
            account: names.get(row.get_str(3)?),
            source,
            owner: names.get_optional(row.get_optional_str(5)?),
        },
    ))
}

/// A registration row as an [`UnreadableValue`] names it: by its key.
pub(super) fn registration_named(protocol: &str, name_key: &str) -> String {
    format!(
        "protocol {}, im_name_key {}",
        quoted(protocol),
        quoted(name_key)
    )
}

/// The source column of a registration row (of `SELECT_REGISTRATIONS`) keyed
/// `protocol`, `name_key`: one registrar writes, or refused.
pub(super) fn registration_source(
    row: &Row<'_>,
    protocol: &str,
    name_key: &str,
) -> SqlResult<RegistrationSource> {
    let source = row.get_str(4)?;
    RegistrationSource::from_name(source).ok_or_else(|| {
        UnreadableValue {
            table: "registrations",
            row: registration_named(protocol, name_key),
            column: "source",
            found: quoted(source),
            problem: none_of(
                [
                    RegistrationSource::Ldap,
                    RegistrationSource::Manual,
                    RegistrationSource::SelfService,
                ]
                .map(|s| s.name()),
            ),
        }
        .into_sql(4)
    })
}

/// A column's values: what an [`UnreadableValue`] says the column may hold.
fn none_of<const N: usize>(names: [&str; N]) -> ValueProblem {
    ValueProblem::NoneOf(names.map(str::to_string).to_vec())
}

pub(super) fn group_from_row(row: &Row<'_>) -> SqlResult<GroupRow> {
    Ok(GroupRow {
        name: row.get(0)?,
        kind: row.get(1)?,
        source: row.get(2)?,
        owner: row.get(3)?,
        members: Vec::new(),
    })
}

/// The rows `table` holds (it can change before they are read: only a size to reserve).
pub(super) fn count_rows(connection: &Database, table: &str) -> SqlResult<usize> {
    connection
        .query_row(&format!("SELECT count(*) FROM {table}"), params![], |row| {
            row.get::<i64>(0)
        })
        .map(|count| usize::try_from(count).unwrap_or(0))
}

/// Every row `select` returns, made by `from_row`, into a vector with room for
/// `expected` rows: a vector of millions grown by doubling would write (and make the
/// kernel zero) twice the memory its rows take.
fn collect_rows<T>(
    connection: &Database,
    select: &str,
    expected: usize,
    mut from_row: impl FnMut(&Row<'_>) -> SqlResult<T>,
) -> SqlResult<Vec<T>> {
    let mut items = Vec::with_capacity(expected);
    connection.prepare(select)?.for_each_row(params![], |row| {
        items.push(from_row(row)?);
        Ok(())
    })?;
    Ok(items)
}

/// The whole state, read through `connection` (a transaction or not).
pub(super) fn load_state(connection: &Database) -> SqlResult<State> {
    let mut names = Interner::default();
    let mut state = read_state(connection, &mut names, Anchors::Shared)?;
    // The anchor of an account's every registration is the account's own.
    let registrations = collect_rows(
        connection,
        &format!("{SELECT_REGISTRATIONS} ORDER BY protocol, im_name_key"),
        count_rows(connection, "registrations")?,
        |row| registration_from_row(row, &mut names),
    )?;
    state.registrations = SortedMap::from_sorted(registrations);
    Ok(state)
}

/// The state but for its registrations (left empty), read through `connection`: what a
/// streamed state loads whole ([`super::stream`]).
pub(super) fn load_state_but_registrations(connection: &Database) -> SqlResult<State> {
    read_state(connection, &mut Interner::default(), Anchors::Own)
}

/// The state but for its registrations, its repeated names (sources, and with
/// [`Anchors::Shared`] the accounts' anchors) read into one shared string each through
/// `names`.
fn read_state(connection: &Database, names: &mut Interner, anchors: Anchors) -> SqlResult<State> {
    let mut state = State {
        serial: read_serial(connection)?,
        ..State::default()
    };
    let account_count = count_rows(connection, "accounts")?;
    if anchors == Anchors::Shared {
        names.reserve(account_count + 64);
    }
    // Read in key order (on SQLite, where the tables are clustered on their keys, at no
    // cost): the vectors read are the state's sorted maps as they are (`from_sorted`
    // sorts any that are not).
    let accounts = collect_rows(
        connection,
        &format!("{SELECT_ACCOUNTS} ORDER BY anchor"),
        account_count,
        |row| account_from_row(row, names, anchors).map(|a| (a.anchor.clone(), a)),
    )?;
    state.accounts = SortedMap::from_sorted(accounts);
    for group in connection
        .prepare(SELECT_GROUPS)?
        .query_map(params![], group_from_row)?
    {
        state.groups.insert(group.name.clone(), group);
    }
    // Ordered by the primary key, so each group's members arrive sorted. (SQLite's
    // default BINARY collation, and the "C" collation of PostgreSQL's text columns,
    // order like Rust's `str`.)
    // A group's members come together: its row is looked up once per group, not per
    // member, and the group's name is borrowed from the row, not copied.
    let groups = &mut state.groups;
    let mut current: Option<(String, Vec<String>)> = None;
    connection
        .prepare("SELECT group_name, member FROM group_members ORDER BY group_name, member")?
        .for_each_row(params![], |row| {
            let group = row.get_str(0)?;
            let member = row.get_str(1)?;
            if current.as_ref().is_none_or(|(name, _)| name != group) {
                // The reference holds in a store registrar wrote: a member of no group
                // is a hand edit, refused rather than left out.
                if !groups.contains_key(group) {
                    return Err(UnreadableValue {
                        table: "group_members",
                        row: format!("group_name {}, member {}", quoted(group), quoted(member)),
                        column: "group_name",
                        found: quoted(group),
                        problem: ValueProblem::NamesNoRowOf("groups"),
                    }
                    .into_sql(0));
                }
                if let Some((name, members)) = current.replace((group.to_string(), Vec::new())) {
                    if let Some(row) = groups.get_mut(&name) {
                        row.members = members;
                    }
                }
            }
            if let Some((_, members)) = current.as_mut() {
                members.push(member.to_string());
            }
            Ok(())
        })?;
    if let Some((name, members)) = current {
        if let Some(row) = state.groups.get_mut(&name) {
            row.members = members;
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::error::{StoreError, ValueProblem};
    use super::super::test_support::{corrupt, store_with_one_registration};
    use registrar_core::state::RegistrationKey;

    #[test]
    fn a_groups_members_among_a_set_are_the_same_looked_up_one_by_one_or_read_whole() {
        let (_dir, store) = store_with_one_registration();
        // "big" holds m0000..m1999, "small" m0000..m0299; the set asked for is every
        // fortieth of m0000..m2999: some in both groups, some in "big" alone, some in
        // neither. 75 lookups cost less than reading "big" whole, but not "small".
        let members = |count: usize| (0..count).map(|i| format!("m{i:04}"));
        let values = |group: &str, count: usize| {
            members(count)
                .map(|member| format!("('{group}', '{member}')"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        corrupt(
            &store,
            &format!(
                "INSERT INTO groups VALUES ('big', 'distribution_list', 'hr', 'lists'), \
                   ('small', 'distribution_list', 'hr', 'lists'); \
                 INSERT INTO group_members VALUES {}, {};",
                values("big", 2000),
                values("small", 300)
            ),
        );
        let asked: BTreeSet<String> = members(3000).step_by(40).collect();
        assert!(asked.len() * super::LOOKUP_COST_IN_ROWS <= 2000);
        assert!(asked.len() * super::LOOKUP_COST_IN_ROWS > 300);
        let names = BTreeSet::from(["big".to_string(), "small".to_string(), "none".to_string()]);
        let groups = store.groups_among(&names, &asked).unwrap();
        let found: Vec<(&str, Vec<String>)> = groups
            .iter()
            .map(|group| (group.name.as_str(), group.members.clone()))
            .collect();
        let expected = |count: usize| members(count).step_by(40).collect::<Vec<_>>();
        assert_eq!(found, [("big", expected(2000)), ("small", expected(300))]);
    }

    #[test]
    fn an_account_status_no_registrar_writes_is_refused_naming_the_row() {
        let (_dir, store) = store_with_one_registration();
        corrupt(&store, "UPDATE accounts SET status = 'frozen'");
        let error = store.load().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: table accounts, anchor \"cn=bob,dc=x\": status \"frozen\" is \
                 none of active, deactivated",
                store.location()
            )
        );
        let StoreError::Unreadable { value, .. } = error else {
            panic!("not an unreadable value: {error}");
        };
        assert_eq!((value.table, value.column), ("accounts", "status"));
        // A delta plan's read by key refuses it too.
        let anchors = BTreeSet::from(["cn=bob,dc=x".to_string()]);
        let error = store.accounts_with(&anchors).unwrap_err();
        assert!(matches!(error, StoreError::Unreadable { .. }), "{error}");
    }

    #[test]
    fn a_registration_source_no_registrar_writes_is_refused_naming_the_row() {
        let (_dir, store) = store_with_one_registration();
        corrupt(&store, "UPDATE registrations SET source = 'imported'");
        let error = store.load().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: table registrations, protocol \"xmpp\", im_name_key \"bob\": \
                 source \"imported\" is none of ldap, manual, self",
                store.location()
            )
        );
        let StoreError::Unreadable { value, .. } = error else {
            panic!("not an unreadable value: {error}");
        };
        assert_eq!(
            value.problem,
            ValueProblem::NoneOf(vec!["ldap".into(), "manual".into(), "self".into()])
        );
        let names = BTreeSet::from([RegistrationKey {
            protocol: "xmpp".into(),
            name_key: "bob".into(),
        }]);
        let error = store.registrations_on(&names).unwrap_err();
        assert!(matches!(error, StoreError::Unreadable { .. }), "{error}");
    }

    #[test]
    fn a_member_of_no_group_is_refused_not_left_out() {
        let (_dir, store) = store_with_one_registration();
        corrupt(
            &store,
            "PRAGMA foreign_keys = OFF; \
             INSERT INTO group_members (group_name, member) VALUES ('gone', 'cn=bob,dc=x'); \
             PRAGMA foreign_keys = ON;",
        );
        let error = store.load().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: table group_members, group_name \"gone\", member \"cn=bob,dc=x\": \
                 group_name \"gone\" names no row of table groups",
                store.location()
            )
        );
    }

    #[test]
    fn the_rows_as_registrar_wrote_them_load() {
        let (_dir, store) = store_with_one_registration();
        let state = store.load().unwrap();
        assert_eq!(state.accounts.len(), 1);
        assert_eq!(state.registrations.len(), 1);
        assert_eq!(state.serial, 1);
    }
}
