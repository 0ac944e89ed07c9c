//! The registration store's contents as the core sees them: accounts, registrations and
//! groups, each managed (with an owner rule) or unmanaged (manual and self registrations,
//! groups made by hand).
//!
//! The store adapter loads this value; the planner compares it with the desired state.
//! The registrations, the store's largest table, the planner can also read as a stream
//! of rows in key order ([`RegistrationRows`], [`StoredRegistrations`]), which the
//! adapter fills from the store as the planner walks them. Pure data: no I/O.

use arcstr::ArcStr;
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::Profile;

/// A registration's identity: the protocol and the normalised IM name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegistrationKey {
    pub protocol: ArcStr,
    /// The IM name normalised for the protocol (see [`crate::model::im_name_key`]).
    pub name_key: ArcStr,
}

/// Where a registration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationSource {
    /// Imported from a directory by a mapping: managed.
    Ldap,
    /// Entered by an administrator: unmanaged.
    Manual,
    /// Entered by the user on a self-registration page: unmanaged.
    #[serde(rename = "self")]
    SelfService,
}

impl RegistrationSource {
    /// The name used on the command line, in JSON and in the store.
    pub fn name(self) -> &'static str {
        match self {
            RegistrationSource::Ldap => "ldap",
            RegistrationSource::Manual => "manual",
            RegistrationSource::SelfService => "self",
        }
    }

    /// The source called `name`, if any.
    pub fn from_name(name: &str) -> Option<RegistrationSource> {
        [
            RegistrationSource::Ldap,
            RegistrationSource::Manual,
            RegistrationSource::SelfService,
        ]
        .into_iter()
        .find(|source| source.name() == name)
    }
}

/// Whether an account may use its registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Deactivated,
}

impl AccountStatus {
    /// The name used in JSON and in the store.
    pub fn name(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Deactivated => "deactivated",
        }
    }

    /// The status called `name`, if any.
    pub fn from_name(name: &str) -> Option<AccountStatus> {
        match name {
            "active" => Some(AccountStatus::Active),
            "deactivated" => Some(AccountStatus::Deactivated),
            _ => None,
        }
    }
}

/// An account row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateAccount {
    /// The anchor value: the account's identity in the store and in plans.
    pub anchor: ArcStr,
    /// The DN as last seen.
    pub dn: String,
    /// The config source that manages the account; `None` for an unmanaged account
    /// created by `state register`.
    pub source: Option<ArcStr>,
    pub status: AccountStatus,
    pub profile: Profile,
}

/// A registration row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRegistration {
    pub protocol: ArcStr,
    /// The IM name as registered (display form).
    pub im_name: ArcStr,
    /// The anchor of the account holding it.
    pub account: ArcStr,
    pub source: RegistrationSource,
    /// The mapping that produced it; `None` for unmanaged rows.
    pub owner: Option<ArcStr>,
}

impl StateRegistration {
    /// Whether a `registrar` rule owns this row.
    pub fn is_managed(&self) -> bool {
        self.owner.is_some()
    }
}

/// The whole store as the planner sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Bumped by every apply; a saved plan records it.
    pub serial: i64,
    /// By anchor.
    pub accounts: Accounts,
    pub registrations: Registrations,
    /// By group name.
    pub groups: BTreeMap<String, GroupRow>,
}

/// A map kept as one vector of `(key, value)` in increasing key order: the store reads
/// its rows in key order (its primary key), and a map would only be built from such a
/// vector, with a store of millions of rows briefly holding both. Lookups are binary
/// searches; the planner and drift mostly walk the rows in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortedMap<K, V>(Vec<(K, V)>);

/// The stored accounts by anchor.
pub type Accounts = SortedMap<ArcStr, StateAccount>;
/// The stored registrations by key.
pub type Registrations = SortedMap<RegistrationKey, StateRegistration>;

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap(Vec::new())
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    /// Rows already in strictly increasing key order, as the store reads them.
    /// Out-of-order rows are sorted (the last of equal keys wins).
    pub fn from_sorted(rows: Vec<(K, V)>) -> Self {
        if rows.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            SortedMap(rows)
        } else {
            rows.into_iter().collect()
        }
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(have, _)| have.borrow().cmp(key))
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|at| &self.0[at].1)
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|at| &mut self.0[at].1)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Adds or replaces the value of `key`, returning the one replaced. Cheap when keys
    /// come in increasing order.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if self.0.last().is_none_or(|(last, _)| *last < key) {
            self.0.push((key, value));
            return None;
        }
        match self.find(&key) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (key, value));
                None
            }
        }
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|at| self.0.remove(at).1)
    }
}

impl<K, V> SortedMap<K, V> {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + Clone {
        self.0.iter().map(|(key, value)| (key, value))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + Clone {
        self.0.iter().map(|(key, _)| key)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + Clone {
        self.0.iter().map(|(_, value)| value)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, value)| value)
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    /// Sorted by key; of entries with equal keys the last wins, as in a map.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut entries: Vec<(K, V)> = entries.into_iter().collect();
        // Stable: equal keys keep their order, so the last is the one to keep.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(K, V)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        SortedMap(kept)
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A stored registration as the planner walks it, borrowed: from a loaded [`State`], or
/// from the rows the store streams to the planner in key order (see
/// [`StoredRegistrations`]), which then never become [`StateRegistration`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationRow<'r> {
    pub protocol: &'r str,
    /// The IM name normalised for the protocol.
    pub name_key: &'r str,
    /// The IM name as registered (display form).
    pub im_name: &'r str,
    /// The anchor of the account holding it.
    pub account: &'r str,
    pub source: RegistrationSource,
    /// The mapping that produced it; `None` for unmanaged rows.
    pub owner: Option<&'r str>,
}

impl RegistrationRow<'_> {
    /// Whether a `registrar` rule owns this row.
    pub fn is_managed(&self) -> bool {
        self.owner.is_some()
    }
}

impl StateRegistration {
    /// The row as the planner walks it, stored under `key`.
    pub fn row<'r>(&'r self, key: &'r RegistrationKey) -> RegistrationRow<'r> {
        RegistrationRow {
            protocol: &key.protocol,
            name_key: &key.name_key,
            im_name: &self.im_name,
            account: &self.account,
            source: self.source,
            owner: self.owner.as_deref(),
        }
    }
}

/// Stored registration rows in increasing key order (protocol, then name key, compared
/// as bytes), one at a time: what the planner's registration walk reads, from a loaded
/// state ([`LoadedRows`]) or from a stream out of the store.
pub trait RegistrationRows {
    /// The row at the front; `None` once every row is passed.
    fn current(&self) -> Option<RegistrationRow<'_>>;
    /// Passes the row at the front.
    fn advance(&mut self);
}

/// The rows of a loaded state's registrations.
pub struct LoadedRows<'s> {
    rows: &'s [(RegistrationKey, StateRegistration)],
}

impl<'s> LoadedRows<'s> {
    pub fn new(registrations: &'s Registrations) -> Self {
        LoadedRows {
            rows: &registrations.0,
        }
    }
}

impl RegistrationRows for LoadedRows<'_> {
    fn current(&self) -> Option<RegistrationRow<'_>> {
        self.rows.first().map(|(key, row)| row.row(key))
    }

    fn advance(&mut self) {
        if let Some((_, rest)) = self.rows.split_first() {
            self.rows = rest;
        }
    }
}

/// The store's registrations as the planner reads them: the rows, walked once in key
/// order, and what the planner needs to know of them before it walks them.
/// `StoredRegistrations<()>` is that knowledge before the rows come.
#[derive(Debug, Default)]
pub struct StoredRegistrations<R> {
    pub rows: R,
    /// How many rows there are (a size to reserve for the changes).
    pub count: usize,
    /// The accounts holding unmanaged rows: a departing account that holds one is
    /// deactivated, never deleted.
    pub unmanaged_holders: BTreeSet<String>,
}

impl<R> StoredRegistrations<R> {
    /// The same registrations, their rows read from `rows`.
    pub fn with_rows<S: RegistrationRows>(self, rows: S) -> StoredRegistrations<S> {
        StoredRegistrations {
            rows,
            count: self.count,
            unmanaged_holders: self.unmanaged_holders,
        }
    }
}

impl<'s> StoredRegistrations<LoadedRows<'s>> {
    /// The registrations of a loaded state.
    pub fn loaded(registrations: &'s Registrations) -> Self {
        StoredRegistrations {
            rows: LoadedRows::new(registrations),
            count: registrations.len(),
            unmanaged_holders: registrations
                .values()
                .filter(|r| !r.is_managed())
                .map(|r| r.account.to_string())
                .collect(),
        }
    }
}

/// A group row with its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    pub name: String,
    /// `distribution_list` or `org_unit` for managed groups; whatever was written for
    /// unmanaged ones.
    pub kind: String,
    /// The config source the group was built from.
    pub source: Option<String>,
    /// The group rule that produced it; `None` for unmanaged groups, which are never
    /// changed.
    pub owner: Option<String>,
    /// Member account anchors, sorted, without duplicates.
    pub members: Vec<String>,
}

impl GroupRow {
    /// Whether a `registrar` rule owns this group.
    pub fn is_managed(&self) -> bool {
        self.owner.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(protocol: &str, name: &str) -> RegistrationKey {
        RegistrationKey {
            protocol: protocol.into(),
            name_key: name.into(),
        }
    }

    fn row(account: &str) -> StateRegistration {
        StateRegistration {
            protocol: "aol".into(),
            im_name: "x".into(),
            account: account.into(),
            source: RegistrationSource::Ldap,
            owner: Some("m".into()),
        }
    }

    fn keys(registrations: &Registrations) -> Vec<(String, String)> {
        registrations
            .iter()
            .map(|(key, row)| {
                (
                    format!("{}/{}", key.protocol, key.name_key),
                    row.account.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn registrations_stay_in_key_order_like_a_map() {
        let mut registrations = Registrations::default();
        assert!(registrations.is_empty());
        assert_eq!(registrations.insert(key("aol", "b"), row("1")), None);
        assert_eq!(registrations.insert(key("xmpp", "a"), row("2")), None);
        assert_eq!(registrations.insert(key("aol", "a"), row("3")), None);
        let replaced = registrations.insert(key("aol", "b"), row("4"));
        assert_eq!(
            replaced.map(|r| r.account.to_string()),
            Some("1".to_string())
        );
        let expected = [("aol/a", "3"), ("aol/b", "4"), ("xmpp/a", "2")]
            .map(|(k, a)| (k.to_string(), a.to_string()));
        assert_eq!(keys(&registrations), expected);
        assert_eq!(registrations.len(), 3);

        // Collected or taken as sorted, out-of-order rows end up the same, the last of
        // equal keys kept.
        let rows = vec![
            (key("xmpp", "a"), row("2")),
            (key("aol", "b"), row("1")),
            (key("aol", "a"), row("3")),
            (key("aol", "b"), row("4")),
        ];
        let collected: Registrations = rows.clone().into_iter().collect();
        assert_eq!(keys(&collected), expected);
        assert_eq!(Registrations::from_sorted(rows), collected);
        let in_order: Vec<_> = collected.clone().into_iter().collect();
        assert_eq!(Registrations::from_sorted(in_order), collected);
    }

    #[test]
    fn a_sorted_map_finds_changes_and_removes_by_borrowed_key() {
        let mut accounts: SortedMap<ArcStr, u32> = [("b", 2), ("a", 1), ("c", 3)]
            .map(|(k, v)| (ArcStr::from(k), v))
            .into_iter()
            .collect();
        assert_eq!(
            accounts.keys().map(|k| &**k).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(accounts.get("b"), Some(&2));
        assert_eq!(accounts.get("c"), Some(&3));
        assert!(accounts.contains_key("a") && !accounts.contains_key("z"));
        *accounts.get_mut("a").unwrap() = 10;
        assert_eq!(accounts.remove("b"), Some(2));
        assert_eq!(accounts.remove("b"), None);
        assert_eq!(accounts.insert("d".into(), 4), None);
        assert_eq!(accounts.insert("b".into(), 5), None);
        assert_eq!(
            accounts
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<Vec<_>>(),
            [("a", 10), ("b", 5), ("c", 3), ("d", 4)].map(|(k, v)| (k.to_string(), v))
        );
        assert_eq!(accounts.values().sum::<u32>(), 22);
        assert_eq!(accounts.len(), 4);
    }
}
