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
    pub registrations: BTreeMap<RegistrationKey, StateRegistration>,
    /// By group name.
    pub groups: BTreeMap<String, GroupRow>,
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
