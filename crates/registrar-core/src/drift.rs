//! Drift: where the store departs from what `registrar` last applied and from the
//! configuration it applied. Pure: the app hands in the state, the content hashes the
//! store kept at apply time, the rules of the last applied revision and the plan that
//! revision gives today.
//!
//! Kinds of drift, each reported separately:
//! - **outside edits**: a managed row whose content no longer hashes to what the last
//!   apply left (edited), a managed row that is gone (deleted), or a row with an owner
//!   that no apply wrote (added);
//! - **protected holdings**: registrations held by a protected principal (what a
//!   self-registration page that fell back to its service account leaves behind);
//! - **orphans**: managed rows whose owner rule (mapping, group rule, source) is not in the
//!   configuration;
//! - **pending changes**: what a plan at that revision would change now (directory changes
//!   since the last apply, and the repair of outside edits).
//!
//! Unmanaged (manual and self) registrations are listed too, as information: they are
//! legitimate, so they are not drift.

use arcstr::ArcStr;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::dn::normalize_dn;
use crate::model::{ProfileField, Rules};
use crate::plan::{Action, Change, Kind, Summary};
use crate::state::{
    AccountStatus, GroupRow, RegistrationSource, State, StateAccount, StateRegistration,
};

/// Which table a managed row lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Account,
    Registration,
    Group,
}

impl RowKind {
    pub fn name(self) -> &'static str {
        match self {
            RowKind::Account => "account",
            RowKind::Registration => "registration",
            RowKind::Group => "group",
        }
    }

    /// The number the store keeps for this kind (`managed_hashes.kind`).
    pub fn number(self) -> i64 {
        match self {
            RowKind::Account => 1,
            RowKind::Registration => 2,
            RowKind::Group => 3,
        }
    }

    /// The kind the store keeps as `number`, if any.
    pub fn from_number(number: i64) -> Option<RowKind> {
        [RowKind::Account, RowKind::Registration, RowKind::Group]
            .into_iter()
            .find(|kind| kind.number() == number)
    }
}

/// One managed row: its table and its key there (an account's anchor, a registration's
/// `protocol:normalised name`, a group's name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RowId {
    pub kind: RowKind,
    pub key: String,
}

impl RowId {
    pub fn account(anchor: &str) -> Self {
        RowId {
            kind: RowKind::Account,
            key: anchor.to_string(),
        }
    }

    pub fn registration(protocol: &str, name_key: &str) -> Self {
        RowId {
            kind: RowKind::Registration,
            key: format!("{protocol}:{name_key}"),
        }
    }

    pub fn group(name: &str) -> Self {
        RowId {
            kind: RowKind::Group,
            key: name.to_string(),
        }
    }
}

/// The content hash of a row: the first 16 bytes of the SHA-256 of its fields.
pub type RowHash = [u8; 16];

/// Content hashes of managed rows, as the store keeps them.
pub type RowHashes = BTreeMap<RowId, RowHash>;

/// A hasher over a row's fields: each field is length-prefixed, so no two rows share an
/// input.
struct RowHasher(Sha256);

impl RowHasher {
    fn new(kind: RowKind) -> Self {
        let mut hasher = RowHasher(Sha256::new());
        hasher.field(Some(kind.name()));
        hasher
    }

    fn field(&mut self, value: Option<&str>) {
        match value {
            None => self.0.update([0]),
            Some(value) => {
                self.0.update([1]);
                self.0.update((value.len() as u64).to_le_bytes());
                self.0.update(value.as_bytes());
            }
        }
    }

    fn finish(self) -> RowHash {
        let mut hash = RowHash::default();
        hash.copy_from_slice(&self.0.finalize()[..16]);
        hash
    }
}

/// The content hash of an account row.
pub fn account_hash(account: &StateAccount) -> RowHash {
    let mut hasher = RowHasher::new(RowKind::Account);
    hasher.field(Some(&account.anchor));
    hasher.field(Some(&account.dn));
    hasher.field(account.source.as_deref());
    hasher.field(Some(account.status.name()));
    for field in ProfileField::ALL {
        hasher.field(account.profile.get(field));
    }
    hasher.finish()
}

/// The content hash of a registration row.
pub fn registration_hash(registration: &StateRegistration) -> RowHash {
    let mut hasher = RowHasher::new(RowKind::Registration);
    hasher.field(Some(&registration.protocol));
    hasher.field(Some(&registration.im_name));
    hasher.field(Some(&registration.account));
    hasher.field(Some(registration.source.name()));
    hasher.field(registration.owner.as_deref());
    hasher.finish()
}

/// The content hash of a group row with its members (sorted, as the store loads them).
pub fn group_hash(group: &GroupRow) -> RowHash {
    let mut hasher = RowHasher::new(RowKind::Group);
    hasher.field(Some(&group.name));
    hasher.field(Some(&group.kind));
    hasher.field(group.source.as_deref());
    hasher.field(group.owner.as_deref());
    let mut members: Vec<&str> = group.members.iter().map(String::as_str).collect();
    members.sort_unstable();
    for member in members {
        hasher.field(Some(member));
    }
    hasher.finish()
}

/// What a change leaves of the managed row it writes, for its hash.
#[derive(Debug, PartialEq, Eq)]
pub enum RowAfter {
    /// The row as the change wrote it, whole (adds): hashed without reading it back.
    Hash(RowHash),
    /// The row is gone (removals).
    Gone,
    /// Partly written (updates, memberships): read back and hashed.
    Reread,
}

/// The managed row a change writes: its kind and key (shared with the change where the
/// key is a plain value).
fn row_written(change: &Change) -> Option<(RowKind, ArcStr)> {
    match change.kind {
        Kind::Account => Some((RowKind::Account, change.account.clone()?)),
        Kind::Registration => {
            change.im_name.as_deref()?;
            let id = RowId::registration(change.protocol.as_deref()?, &change.name_key());
            Some((RowKind::Registration, id.key.into()))
        }
        Kind::Group | Kind::GroupMember => Some((RowKind::Group, change.group.clone()?)),
    }
}

/// What `change`, the last change of its row, leaves of that row.
fn row_after(change: &Change) -> RowAfter {
    let after = |row_hash: Option<RowHash>| match (change.action, row_hash) {
        (Action::Remove, _) => RowAfter::Gone,
        (Action::Add, Some(hash)) => RowAfter::Hash(hash),
        _ => RowAfter::Reread,
    };
    match change.kind {
        Kind::Account => {
            let added = (change.action == Action::Add).then(|| {
                account_hash(&StateAccount {
                    anchor: change.account.clone().unwrap_or_default(),
                    dn: change.dn.as_deref().unwrap_or_default().to_string(),
                    source: change.source().cloned(),
                    status: AccountStatus::Active,
                    profile: change.profile().cloned().unwrap_or_default(),
                })
            });
            after(added)
        }
        Kind::Registration => {
            let added = match (change.action, &change.account) {
                (Action::Add, Some(account)) => Some(registration_hash(&StateRegistration {
                    protocol: change.protocol.clone().unwrap_or_default(),
                    im_name: change.im_name.clone().unwrap_or_default(),
                    account: account.clone(),
                    source: RegistrationSource::Ldap,
                    owner: change.mapping.clone(),
                })),
                _ => None,
            };
            after(added)
        }
        // A group's hash covers its members: always read back.
        Kind::Group => after(None),
        Kind::GroupMember => RowAfter::Reread,
    }
}

/// A managed row a plan writes, and what its last change leaves of it.
#[derive(Debug)]
pub struct WrittenRow {
    pub kind: RowKind,
    /// Its key (see [`RowId`]).
    pub key: ArcStr,
    pub after: RowAfter,
}

/// The managed rows `changes` write, each once and in row order, with what the last
/// change of each leaves of it: what an apply records the hashes of.
pub fn written_rows(changes: &[Change]) -> Vec<WrittenRow> {
    let mut rows = WrittenRows::default();
    rows.add(changes);
    rows.finish()
}

/// [`written_rows`] of a plan whose changes come a batch at a time (a saved plan as it
/// is read): each batch is looked at once, and need not be kept.
#[derive(Debug, Default)]
pub struct WrittenRows {
    /// Every row written so far, in plan order, with what its change left of it.
    touched: Vec<WrittenRow>,
}

impl WrittenRows {
    /// Takes in the next changes of the plan.
    pub fn add(&mut self, changes: &[Change]) {
        self.touched.extend(changes.iter().filter_map(|change| {
            let (kind, key) = row_written(change)?;
            Some(WrittenRow {
                kind,
                key,
                after: row_after(change),
            })
        }));
    }

    /// The rows, each once (its last change deciding) and in row order.
    pub fn finish(self) -> Vec<WrittenRow> {
        let mut touched = self.touched;
        // Sorted by row, stable: the last change of each row is the last of its run.
        touched.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        let mut rows: Vec<WrittenRow> = Vec::with_capacity(touched.len());
        for row in touched {
            match rows.last_mut() {
                Some(last) if (last.kind, &last.key) == (row.kind, &row.key) => *last = row,
                _ => rows.push(row),
            }
        }
        rows
    }
}

/// The hashes of every managed row of `state`: accounts from a source, registrations
/// and groups with an owner.
pub fn managed_hashes(state: &State) -> RowHashes {
    let accounts = state
        .accounts
        .values()
        .filter(|account| account.source.is_some())
        .map(|account| (RowId::account(&account.anchor), account_hash(account)));
    let registrations = state
        .registrations
        .iter()
        .filter(|(_, registration)| registration.is_managed())
        .map(|(key, registration)| {
            (
                RowId::registration(&key.protocol, &key.name_key),
                registration_hash(registration),
            )
        });
    let groups = state
        .groups
        .values()
        .filter(|group| group.is_managed())
        .map(|group| (RowId::group(&group.name), group_hash(group)));
    accounts.chain(registrations).chain(groups).collect()
}

/// How a managed row departs from what the last apply left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutsideChange {
    /// The row is there with other content.
    Edited,
    /// The row is gone.
    Deleted,
    /// A row with an owner that no apply wrote.
    Added,
}

/// A managed row changed behind `registrar`'s back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutsideEdit {
    pub kind: RowKind,
    pub key: String,
    pub change: OutsideChange,
}

/// A registration held by a protected principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedHolding {
    pub protocol: String,
    pub im_name: String,
    pub account: String,
    pub dn: String,
    pub source: String,
    pub owner: Option<String>,
}

/// A managed row whose owner is not in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    pub kind: RowKind,
    pub key: String,
    /// The mapping, group rule or source named on the row.
    pub owner: String,
}

/// An unmanaged registration (manual or self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmanagedRegistration {
    pub protocol: String,
    pub im_name: String,
    pub account: String,
    pub dn: Option<String>,
    pub source: String,
}

/// Everything `registrar drift` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// The configuration revision compared against (the last applied one, or `--rev`).
    pub revision: Option<String>,
    pub state_serial: i64,
    /// Whether the store holds content hashes to compare (stores written before hashes
    /// existed get them at their next apply).
    pub hashes_recorded: bool,
    pub outside_edits: Vec<OutsideEdit>,
    pub protected_holdings: Vec<ProtectedHolding>,
    pub orphans: Vec<Orphan>,
    pub pending: PendingChanges,
    pub unmanaged: Vec<UnmanagedRegistration>,
}

/// What a plan at the compared revision would change now.
#[derive(Debug, Clone, Serialize)]
pub struct PendingChanges {
    pub summary: Summary,
    pub changes: Vec<Change>,
}

impl DriftReport {
    /// Whether anything departs (unmanaged registrations are not drift).
    pub fn has_drift(&self) -> bool {
        !self.outside_edits.is_empty()
            || !self.protected_holdings.is_empty()
            || !self.orphans.is_empty()
            || !self.pending.changes.is_empty()
    }
}

/// The drift of `state` from `applied` (the hashes the last applies kept; `None` when
/// the store has none yet), under `rules`, with `pending` the plan at that revision.
pub fn drift(
    rules: &Rules,
    state: &State,
    applied: Option<&RowHashes>,
    pending: PendingChanges,
) -> DriftReport {
    let outside_edits = match applied {
        None => Vec::new(),
        Some(applied) => outside_edits(applied, &managed_hashes(state)),
    };
    let dn_of = |anchor: &str| state.accounts.get(anchor).map(|a| a.dn.clone());
    let protected_holdings = if rules.policy.protected_principals.is_empty() {
        Vec::new()
    } else {
        state
            .registrations
            .values()
            .filter_map(|registration| {
                let dn = dn_of(&registration.account)?;
                rules
                    .policy
                    .protected_principals
                    .contains(&normalize_dn(&dn))
                    .then(|| ProtectedHolding {
                        protocol: registration.protocol.to_string(),
                        im_name: registration.im_name.to_string(),
                        account: registration.account.to_string(),
                        dn,
                        source: registration.source.name().to_string(),
                        owner: registration.owner.as_deref().map(str::to_string),
                    })
            })
            .collect()
    };
    let mappings: BTreeSet<&str> = rules.mappings.iter().map(|m| m.name.as_str()).collect();
    let group_rules: BTreeSet<&str> = rules.groups.iter().map(|g| g.owner.as_str()).collect();
    let sources: BTreeSet<&str> = rules.sources.iter().map(|s| s.name.as_str()).collect();
    let mut orphans = Vec::new();
    for account in state.accounts.values() {
        if let Some(source) = account.source.as_deref().filter(|s| !sources.contains(s)) {
            orphans.push(Orphan {
                kind: RowKind::Account,
                key: account.anchor.to_string(),
                owner: source.to_string(),
            });
        }
    }
    for (key, registration) in state.registrations.iter() {
        if let Some(owner) = registration
            .owner
            .as_deref()
            .filter(|o| !mappings.contains(o))
        {
            orphans.push(Orphan {
                kind: RowKind::Registration,
                key: RowId::registration(&key.protocol, &key.name_key).key,
                owner: owner.to_string(),
            });
        }
    }
    for group in state.groups.values() {
        if let Some(owner) = group.owner.as_deref().filter(|o| !group_rules.contains(o)) {
            orphans.push(Orphan {
                kind: RowKind::Group,
                key: group.name.clone(),
                owner: owner.to_string(),
            });
        }
    }
    let unmanaged = state
        .registrations
        .values()
        .filter(|registration| !registration.is_managed())
        .map(|registration| UnmanagedRegistration {
            protocol: registration.protocol.to_string(),
            im_name: registration.im_name.to_string(),
            account: registration.account.to_string(),
            dn: dn_of(&registration.account),
            source: registration.source.name().to_string(),
        })
        .collect();
    DriftReport {
        revision: None,
        state_serial: state.serial,
        hashes_recorded: applied.is_some(),
        outside_edits,
        protected_holdings,
        orphans,
        pending,
        unmanaged,
    }
}

/// The rows whose hashes differ between what applies left and what is there now.
fn outside_edits(applied: &RowHashes, now: &RowHashes) -> Vec<OutsideEdit> {
    let edit = |id: &RowId, change| OutsideEdit {
        kind: id.kind,
        key: id.key.clone(),
        change,
    };
    let mut edits: Vec<OutsideEdit> = applied
        .iter()
        .filter_map(|(id, hash)| match now.get(id) {
            None => Some(edit(id, OutsideChange::Deleted)),
            Some(current) if current != hash => Some(edit(id, OutsideChange::Edited)),
            Some(_) => None,
        })
        .collect();
    edits.extend(
        now.keys()
            .filter(|id| !applied.contains_key(id))
            .map(|id| edit(id, OutsideChange::Added)),
    );
    edits.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    edits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AccountStatus, RegistrationKey, RegistrationSource};

    /// The rows `rows` name, with what each leaves, comparable.
    fn row_list(rows: Vec<WrittenRow>) -> Vec<(RowKind, String, RowAfter)> {
        rows.into_iter()
            .map(|row| (row.kind, row.key.to_string(), row.after))
            .collect()
    }

    #[test]
    fn written_rows_taken_a_batch_at_a_time_are_the_rows_of_the_whole_plan() {
        let change = |action, kind, fill: &dyn Fn(&mut Change)| {
            let mut change = Change::new(action, kind);
            fill(&mut change);
            change
        };
        let changes = vec![
            change(Action::Add, Kind::Account, &|c| {
                c.account = Some("a".into());
                c.dn = Some("uid=a,dc=x".into());
                c.detail_mut().source = Some("corp".into());
            }),
            change(Action::Add, Kind::Registration, &|c| {
                c.protocol = Some("aol".into());
                c.im_name = Some("X".into());
                c.account = Some("a".into());
                c.mapping = Some("m".into());
            }),
            change(Action::Add, Kind::Group, &|c| c.group = Some("g".into())),
            // The second batch touches the same rows again: its changes decide.
            change(Action::Update, Kind::Account, &|c| {
                c.account = Some("a".into())
            }),
            change(Action::Remove, Kind::Registration, &|c| {
                c.protocol = Some("aol".into());
                c.im_name = Some("X".into());
                c.account = Some("a".into());
            }),
            change(Action::Add, Kind::GroupMember, &|c| {
                c.group = Some("g".into());
                c.member = Some("a".into());
            }),
        ];
        let mut batched = WrittenRows::default();
        batched.add(&changes[..3]);
        batched.add(&changes[3..]);
        let batched = row_list(batched.finish());
        assert_eq!(batched, row_list(written_rows(&changes)));
        assert_eq!(
            batched,
            [
                (RowKind::Account, "a".to_string(), RowAfter::Reread),
                (RowKind::Registration, "aol:x".to_string(), RowAfter::Gone),
                (RowKind::Group, "g".to_string(), RowAfter::Reread),
            ]
        );
        // The first batch alone: the account and registration adds are hashed from the
        // change; a group is read back (its members may come later).
        let first = row_list(written_rows(&changes[..3]));
        let afters: Vec<bool> = first
            .iter()
            .map(|(_, _, after)| matches!(after, RowAfter::Hash(_)))
            .collect();
        assert_eq!(afters, [true, true, false]);
    }

    fn state() -> State {
        let mut state = State::default();
        for (anchor, source) in [("a", Some("corp")), ("svc", Some("corp")), ("m", None)] {
            state.accounts.insert(
                anchor.into(),
                StateAccount {
                    anchor: anchor.into(),
                    dn: format!("uid={anchor},dc=example"),
                    source: source.map(Into::into),
                    status: AccountStatus::Active,
                    profile: Default::default(),
                },
            );
        }
        for (name, account, owner) in [
            ("alice", "a", Some("aol-mail")),
            ("svcname", "svc", None),
            ("manual1", "m", None),
        ] {
            state.registrations.insert(
                RegistrationKey {
                    protocol: "aol".into(),
                    name_key: name.into(),
                },
                StateRegistration {
                    protocol: "aol".into(),
                    im_name: name.into(),
                    account: account.into(),
                    source: if owner.is_some() {
                        RegistrationSource::Ldap
                    } else {
                        RegistrationSource::SelfService
                    },
                    owner: owner.map(Into::into),
                },
            );
        }
        state
    }

    fn rules() -> Rules {
        let mut rules = Rules::default();
        rules.sources.push(crate::model::SourceRule {
            name: "corp".to_string(),
            anchor: crate::model::Anchor::Dn,
            allow_empty: false,
        });
        rules
            .policy
            .protected_principals
            .insert(normalize_dn("UID=svc,DC=example"));
        rules
    }

    fn nothing_pending() -> PendingChanges {
        PendingChanges {
            summary: Summary::default(),
            changes: Vec::new(),
        }
    }

    #[test]
    fn an_untouched_store_has_no_outside_edits() {
        let state = state();
        let hashes = managed_hashes(&state);
        assert_eq!(
            hashes.len(),
            3,
            "two source accounts and one managed registration"
        );
        let report = drift(&rules(), &state, Some(&hashes), nothing_pending());
        assert!(report.outside_edits.is_empty());
    }

    #[test]
    fn edits_deletions_and_forged_rows_are_told_apart() {
        let before = state();
        let applied = managed_hashes(&before);
        let mut after = before.clone();
        after
            .accounts
            .get_mut("a")
            .unwrap()
            .profile
            .set(ProfileField::Title, Some("CEO".into()));
        after.accounts.remove("svc");
        let forged = after
            .registrations
            .values_mut()
            .find(|r| &*r.im_name == "manual1")
            .unwrap();
        forged.owner = Some("aol-mail".into());
        let report = drift(&rules(), &after, Some(&applied), nothing_pending());
        let seen: Vec<(RowKind, &str, OutsideChange)> = report
            .outside_edits
            .iter()
            .map(|e| (e.kind, e.key.as_str(), e.change))
            .collect();
        assert_eq!(
            seen,
            [
                (RowKind::Account, "a", OutsideChange::Edited),
                (RowKind::Account, "svc", OutsideChange::Deleted),
                (RowKind::Registration, "aol:manual1", OutsideChange::Added),
            ]
        );
        assert!(report.has_drift());
    }

    #[test]
    fn protected_holdings_orphans_and_unmanaged_rows() {
        let report = drift(&rules(), &state(), None, nothing_pending());
        assert!(!report.hashes_recorded);
        assert_eq!(report.protected_holdings.len(), 1);
        assert_eq!(report.protected_holdings[0].im_name, "svcname");
        // The mapping aol-mail is not in the rules: its registration is an orphan.
        assert_eq!(report.orphans.len(), 1);
        assert_eq!(report.orphans[0].owner, "aol-mail");
        let unmanaged: Vec<&str> = report
            .unmanaged
            .iter()
            .map(|u| u.im_name.as_str())
            .collect();
        assert_eq!(unmanaged, ["manual1", "svcname"]);
    }

    #[test]
    fn hashes_change_with_every_field() {
        let state = state();
        let account = state.accounts.get("a").unwrap();
        let mut other = account.clone();
        other.status = AccountStatus::Deactivated;
        assert_ne!(account_hash(account), account_hash(&other));
        let mut other = account.clone();
        other.dn.push('x');
        assert_ne!(account_hash(account), account_hash(&other));
        let group = GroupRow {
            name: "g".into(),
            kind: "distribution_list".into(),
            source: Some("corp".into()),
            owner: Some("{cn}".into()),
            members: vec!["a".into()],
        };
        let mut other = group.clone();
        other.members.push("b".into());
        assert_ne!(group_hash(&group), group_hash(&other));
    }
}
