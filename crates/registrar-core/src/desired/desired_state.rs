//! The desired state and its parts: the accounts, claims and groups the directory calls
//! for, with the skip counts and warnings of how they were made.

use arcstr::ArcStr;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::matched::Matched;
use crate::model::{GroupKind, Profile};
use crate::state::RegistrationKey;

/// The entries one source yielded.
#[derive(Debug, Clone, Default)]
pub struct SourceEntries {
    pub source: String,
    pub entries: Vec<Entry>,
}

/// An account the directory calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAccount {
    pub anchor: ArcStr,
    pub dn: ArcStr,
    pub source: ArcStr,
    /// `false` when `disabled_when` matched: the account should be deactivated.
    pub enabled: bool,
    pub profile: Profile,
    /// A protected principal: never receives a registration.
    pub protected: bool,
    /// Mappings (bit `i` for the `i`-th of `Rules::mappings`, the first
    /// [`MAPPING_BITS`] only) that read the entry's source but whose `when` filter
    /// rejected the entry: what a removal's reason says.
    pub rejected_by: u32,
    /// Mappings (as `rejected_by`) that produced a name for the entry.
    pub produced_by: u32,
}

/// How many mappings [`DesiredAccount::rejected_by`] and `produced_by` follow; a
/// removal by a later mapping gives the general reason.
pub const MAPPING_BITS: usize = 32;

/// The bit of mapping `index` in [`DesiredAccount::rejected_by`], if it has one.
pub fn mapping_bit(index: usize) -> Option<u32> {
    (index < MAPPING_BITS).then(|| 1u32 << index)
}

impl DesiredAccount {
    /// An enabled, unprotected account with an empty profile.
    pub fn new(anchor: &str, dn: &str, source: &str) -> Self {
        DesiredAccount {
            anchor: anchor.into(),
            dn: dn.into(),
            source: source.into(),
            enabled: true,
            profile: Profile::default(),
            protected: false,
            rejected_by: 0,
            produced_by: 0,
        }
    }
}

/// One mapping's wish that an account hold an IM name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub protocol: ArcStr,
    /// The IM name normalised for the protocol ([`im_name_key`](crate::model::im_name_key)): with the protocol, the
    /// identity of the registration.
    pub name_key: ArcStr,
    /// The claiming account: an index into [`Desired::accounts`].
    pub account: usize,
    pub mapping: ArcStr,
    /// The IM name as produced (display form).
    pub im_name: ArcStr,
}

// A large directory's claims number millions: five words each.
const _: () = assert!(std::mem::size_of::<Claim>() <= 40);

impl Claim {
    /// The registration this claim is on.
    pub fn key(&self) -> RegistrationKey {
        RegistrationKey {
            protocol: self.protocol.clone(),
            name_key: self.name_key.clone(),
        }
    }
}

/// Why a mapping produced nothing for some entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts {
    /// Entries lacking an attribute the template reads.
    pub missing_attribute: u64,
    /// Values skipped because they are not a valid IM name.
    pub invalid_name: u64,
    /// Disabled users (`disabled_when`) the mapping would have read: they get no
    /// registration.
    #[serde(default)]
    pub disabled: u64,
}

/// A problem worth telling the user about that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub im_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account: Option<String>,
    /// The account already holding the name, for conflicts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub held_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mapping: Option<String>,
    /// The group concerned, for group warnings.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group: Option<String>,
    /// One human-readable sentence.
    pub message: String,
}

impl Warning {
    /// A warning with only a kind and a message; set the other fields with `..`.
    pub fn new(kind: WarningKind, message: String) -> Self {
        Warning {
            kind,
            protocol: None,
            im_name: None,
            account: None,
            held_by: None,
            mapping: None,
            group: None,
            message,
        }
    }
}

/// The kinds of warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A desired name is held by another account, or wanted by several.
    Conflict,
    /// A desired name is already held by an unmanaged row of the same account.
    AlreadyRegistered,
    /// Two entries of one source share an anchor value; the first DN wins.
    DuplicateAnchor,
    /// A user entry lacks its source's anchor attribute and was skipped.
    MissingAnchor,
    /// A protected principal would have received registrations.
    ProtectedPrincipal,
    /// A produced value is not a valid IM name and was skipped.
    InvalidName,
    /// A group entry gave no usable group name and was skipped.
    InvalidGroupName,
    /// Several group entries or rules give the same group name; only the first is used.
    GroupCollision,
    /// A template or filter reads an attribute that no entry of its source holds.
    UnheldAttribute,
}

/// A group the directory calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    pub name: String,
    pub kind: GroupKind,
    /// The source the group was built from.
    pub source: String,
    /// The group rule that produces it (the owner recorded on the row).
    pub rule: String,
    /// Member account anchors, sorted, without duplicates; each shared with its account.
    pub members: Vec<ArcStr>,
}

/// Member DNs of a group that did not become members, by why. DNs reached twice (via
/// two nested groups) count once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSkipCounts {
    /// Neither a user nor a group entry of the group's source.
    #[serde(default)]
    pub unknown_members: u64,
    /// Users that are disabled (`disabled_when`): only enabled accounts are members.
    #[serde(default)]
    pub disabled_members: u64,
    /// Users or nested groups frozen by an exclusion.
    #[serde(default)]
    pub excluded_members: u64,
}

impl GroupSkipCounts {
    pub(super) fn is_empty(&self) -> bool {
        *self == GroupSkipCounts::default()
    }
}

/// The desired state, plus what the planner needs to report about how it was made.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// Sorted by anchor, one per anchor.
    pub accounts: Vec<DesiredAccount>,
    /// Every claim on every name, sorted by (protocol, name key, account, mapping, IM
    /// name), without duplicates: the claims on one name are adjacent.
    pub claims: Vec<Claim>,
    /// Anchors of accounts frozen by a DN or filter exclusion.
    pub frozen_accounts: BTreeSet<String>,
    /// Names produced but frozen by an IM-name exclusion.
    pub frozen_registrations: BTreeSet<RegistrationKey>,
    /// Per mapping name.
    pub skipped: BTreeMap<String, SkipCounts>,
    /// Accounts (enabled or not) each source yielded, for the empty-source rule.
    pub accounts_per_source: BTreeMap<String, u64>,
    /// By group name.
    pub groups: BTreeMap<String, DesiredGroup>,
    /// Names of groups whose entry is frozen by an exclusion.
    pub frozen_groups: BTreeSet<String>,
    /// Per group name: member DNs dropped, and why (only groups that dropped some).
    pub group_skipped: BTreeMap<String, GroupSkipCounts>,
    pub warnings: Vec<Warning>,
    /// Entries read per source, entries each rule matched, attribute holders
    /// ([`crate::matched`]).
    pub matched: Matched,
}

impl Desired {
    /// The account with this anchor, if any.
    pub fn account(&self, anchor: &str) -> Option<&DesiredAccount> {
        self.accounts
            .binary_search_by(|account| (*account.anchor).cmp(anchor))
            .ok()
            .map(|index| &self.accounts[index])
    }

    /// The claims name by name: each slice holds every claim on one (protocol, name
    /// key), in name order.
    pub(crate) fn claims_by_name(&self) -> impl Iterator<Item = &[Claim]> {
        self.claims
            .chunk_by(|a, b| a.protocol == b.protocol && a.name_key == b.name_key)
    }

    /// Keeps only the claims on `names` (a delta plan looks at no other name).
    pub(crate) fn retain_claims_on(&mut self, names: &BTreeSet<RegistrationKey>) {
        self.claims.retain(|claim| names.contains(&claim.key()));
    }

    /// Keeps only the group members among `anchors` (a delta plan looks at no other
    /// membership).
    pub(crate) fn retain_members_among(&mut self, anchors: &BTreeSet<String>) {
        for group in self.groups.values_mut() {
            group.members.retain(|member| anchors.contains(&**member));
        }
    }

    /// Adds an account, keeping the accounts sorted (for tests and small states; the
    /// builder makes large ones in one go).
    pub fn insert_account(&mut self, account: DesiredAccount) {
        match self
            .accounts
            .binary_search_by(|a| a.anchor.cmp(&account.anchor))
        {
            Ok(index) => self.accounts[index] = account,
            Err(index) => {
                for claim in &mut self.claims {
                    if claim.account >= index {
                        claim.account += 1;
                    }
                }
                self.accounts.insert(index, account);
            }
        }
    }
}
