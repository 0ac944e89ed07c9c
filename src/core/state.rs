//! The registration store's contents as the core sees them: accounts, registrations and
//! groups, each managed (with an owner rule) or unmanaged (manual and self registrations,
//! groups made by hand).
//!
//! The SQLite adapter loads this value; the planner compares it with the desired state.
//! Pure data: no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::core::model::Profile;

/// A registration's identity: the protocol and the normalised IM name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegistrationKey {
    pub protocol: Arc<str>,
    /// The IM name normalised for the protocol (see [`crate::core::model::im_name_key`]).
    pub name_key: Arc<str>,
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
    pub anchor: Arc<str>,
    /// The DN as last seen.
    pub dn: String,
    /// The config source that manages the account; `None` for an unmanaged account
    /// created by `state register`.
    pub source: Option<Arc<str>>,
    pub status: AccountStatus,
    pub profile: Profile,
}

/// A registration row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRegistration {
    pub protocol: Arc<str>,
    /// The IM name as registered (display form).
    pub im_name: Arc<str>,
    /// The anchor of the account holding it.
    pub account: Arc<str>,
    pub source: RegistrationSource,
    /// The mapping that produced it; `None` for unmanaged rows.
    pub owner: Option<Arc<str>>,
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
    pub accounts: BTreeMap<Arc<str>, StateAccount>,
    pub registrations: Registrations,
    /// By group name.
    pub groups: BTreeMap<String, GroupRow>,
}

/// The registration rows by key, in key order: a sorted vector, which the store fills
/// in that order. (A map would be built from such a vector anyway, and a store of
/// millions of rows would briefly hold both.) Nothing looks a row up by key: the planner
/// and drift walk them in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registrations(Vec<(RegistrationKey, StateRegistration)>);

impl Registrations {
    /// Rows already in strictly increasing key order, as the store reads them (its
    /// primary key). Out-of-order rows are sorted (the last of equal keys wins).
    pub fn from_sorted(rows: Vec<(RegistrationKey, StateRegistration)>) -> Self {
        if rows.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            Registrations(rows)
        } else {
            rows.into_iter().collect()
        }
    }

    /// Adds or replaces the row with `key`, returning the one replaced. Cheap when keys
    /// come in increasing order.
    pub fn insert(
        &mut self,
        key: RegistrationKey,
        row: StateRegistration,
    ) -> Option<StateRegistration> {
        if self.0.last().is_none_or(|(last, _)| *last < key) {
            self.0.push((key, row));
            return None;
        }
        match self.0.binary_search_by(|(have, _)| have.cmp(&key)) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, row)),
            Err(at) => {
                self.0.insert(at, (key, row));
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rows in key order.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&RegistrationKey, &StateRegistration)> + Clone {
        self.0.iter().map(|(key, row)| (key, row))
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &StateRegistration> + Clone {
        self.0.iter().map(|(_, row)| row)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut StateRegistration> {
        self.0.iter_mut().map(|(_, row)| row)
    }
}

impl FromIterator<(RegistrationKey, StateRegistration)> for Registrations {
    /// Sorted by key; of rows with equal keys the last wins, as in a map.
    fn from_iter<I: IntoIterator<Item = (RegistrationKey, StateRegistration)>>(rows: I) -> Self {
        let mut rows: Vec<_> = rows.into_iter().collect();
        // Stable: equal keys keep their order, so the last is the one to keep.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(RegistrationKey, StateRegistration)> = Vec::with_capacity(rows.len());
        for row in rows {
            match kept.last_mut() {
                Some(last) if last.0 == row.0 => *last = row,
                _ => kept.push(row),
            }
        }
        Registrations(kept)
    }
}

impl IntoIterator for Registrations {
    type Item = (RegistrationKey, StateRegistration);
    type IntoIter = std::vec::IntoIter<(RegistrationKey, StateRegistration)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
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
}
