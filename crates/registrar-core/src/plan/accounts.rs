//! The account walk: adds, updates, (re)activation and departures, walking the desired
//! accounts and the stored ones side by side (both sorted by anchor).

use arcstr::ArcStr;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::desired::DesiredAccount;
use crate::interner::Interner;
use crate::model::{Departure, ProfileField, Rules};
use crate::state::{AccountStatus, State, StateAccount};

use super::change::{Action, Change, ChangeList, Detail};
use super::context::{merge_order, Frozen};

/// Why a managed row loses its place.
pub(super) fn departure_reason(in_config: bool, disabled: bool) -> &'static str {
    if disabled {
        "account disabled"
    } else if in_config {
        "account left scope"
    } else {
        "source removed"
    }
}

/// The account walk's view of the rules and the store, and what it writes.
struct AccountWalk<'a, 'o> {
    frozen: &'a Frozen<'a>,
    source_names: BTreeSet<&'a str>,
    on_departure: Departure,
    /// Accounts holding unmanaged registrations.
    unmanaged_holders: &'a BTreeSet<String>,
    shared: &'o mut Interner,
    changes: &'o mut ChangeList,
    /// Managed accounts that give up their managed registrations, with the reason.
    departing: BTreeMap<&'a str, &'static str>,
    excluded: &'o mut BTreeSet<&'a str>,
}

/// Plans the account changes of `accounts` (sorted by anchor; their profiles move into
/// the adds) against the accounts of `state`, of which `unmanaged_holders` hold
/// unmanaged registrations. Adds frozen stored accounts to `excluded`; returns the
/// managed accounts that give up their managed registrations, with the reason.
pub(super) fn plan_accounts<'a>(
    rules: &'a Rules,
    accounts: &mut [DesiredAccount],
    (state, unmanaged_holders): (&'a State, &'a BTreeSet<String>),
    frozen: &'a Frozen<'a>,
    excluded: &mut BTreeSet<&'a str>,
    shared: &mut Interner,
    changes: &mut ChangeList,
) -> BTreeMap<&'a str, &'static str> {
    let mut walk = AccountWalk {
        frozen,
        source_names: rules.sources.iter().map(|s| s.name.as_str()).collect(),
        on_departure: rules.accounts.on_departure,
        unmanaged_holders,
        shared,
        changes,
        departing: BTreeMap::new(),
        excluded,
    };
    let mut wanted_accounts = accounts.iter_mut().peekable();
    let mut stored_accounts = state.accounts.iter().peekable();
    while let Some(order) = merge_order(
        wanted_accounts.peek(),
        stored_accounts.peek(),
        |wanted, (anchor, _)| (*wanted.anchor).cmp(&***anchor),
    ) {
        if order == Ordering::Greater {
            // Only in the store.
            let Some((anchor, actual)) = stored_accounts.next() else {
                break;
            };
            walk.stored_only(anchor, actual);
            continue;
        }
        let Some(wanted) = wanted_accounts.next() else {
            break;
        };
        let actual = if order == Ordering::Equal {
            stored_accounts.next()
        } else {
            None
        };
        match actual {
            Some((stored_anchor, actual)) => walk.both(wanted, stored_anchor, actual),
            None => walk.wanted_only(wanted),
        }
    }
    walk.departing
}

impl<'a> AccountWalk<'a, '_> {
    /// A stored account the directory no longer gives: it departs, unless unmanaged or
    /// frozen.
    fn stored_only(&mut self, anchor: &'a ArcStr, actual: &'a StateAccount) {
        let Some(source) = &actual.source else {
            return; // unmanaged: never changed
        };
        if self.frozen.account(anchor) {
            self.excluded.insert(anchor);
            return;
        }
        let in_config = self.source_names.contains(&**source);
        let reason = departure_reason(in_config, false);
        self.departing.insert(anchor, reason);
        let short = if in_config {
            "left scope"
        } else {
            "source removed"
        };
        push_departure(
            self.changes,
            self.on_departure,
            Change::account(
                Action::Remove,
                anchor.clone(),
                Some(actual.dn.as_str().into()),
            ),
            actual.status,
            self.shared.get(short),
            self.unmanaged_holders.contains(&**anchor),
        );
    }

    /// A desired account the store does not hold: added when enabled.
    fn wanted_only(&mut self, wanted: &mut DesiredAccount) {
        if wanted.enabled {
            let account =
                Change::account(Action::Add, wanted.anchor.clone(), Some(wanted.dn.clone()));
            self.changes.push(account.with_detail(Detail {
                source: Some(wanted.source.clone()),
                profile: Some(std::mem::take(&mut wanted.profile)),
                ..Detail::default()
            }));
        }
    }

    /// An account both hold: its field updates, and its reactivation or departure.
    fn both(&mut self, wanted: &DesiredAccount, stored_anchor: &'a str, actual: &StateAccount) {
        let mut fields = BTreeMap::new();
        for field in ProfileField::ALL {
            let old = actual.profile.get(field);
            let new = wanted.profile.get(field);
            if old != new {
                fields.insert(
                    field.name().to_string(),
                    (old.map(str::to_string), new.map(str::to_string)),
                );
            }
        }
        if *actual.dn != *wanted.dn {
            fields.insert(
                "dn".to_string(),
                (Some(actual.dn.clone()), Some(wanted.dn.to_string())),
            );
        }
        if actual.source.as_deref() != Some(&*wanted.source) {
            fields.insert(
                "source".to_string(),
                (
                    actual.source.as_deref().map(str::to_string),
                    Some(wanted.source.to_string()),
                ),
            );
        }
        let account = || {
            Change::account(
                Action::Update,
                wanted.anchor.clone(),
                Some(wanted.dn.clone()),
            )
        };
        if !fields.is_empty() {
            self.changes.push(account().with_detail(Detail {
                fields: Some(fields),
                ..Detail::default()
            }));
        }
        match (wanted.enabled, actual.status) {
            (true, AccountStatus::Deactivated) => self.changes.push(Change {
                action: Action::Reactivate,
                reason: Some(self.shared.get("enabled in the directory")),
                ..account()
            }),
            (false, _) => {
                self.departing
                    .insert(stored_anchor, departure_reason(true, true));
                push_departure(
                    self.changes,
                    self.on_departure,
                    account(),
                    actual.status,
                    self.shared.get("disabled"),
                    self.unmanaged_holders.contains(stored_anchor),
                );
            }
            (true, AccountStatus::Active) => {}
        }
    }
}

/// Adds the change `on_departure` calls for to an account that left or was disabled:
/// `change` names the account. An account that still holds unmanaged registrations is
/// deactivated, not deleted: unmanaged rows are never changed, and they need their
/// account.
fn push_departure(
    changes: &mut ChangeList,
    departure: Departure,
    change: Change,
    status: AccountStatus,
    reason: ArcStr,
    holds_unmanaged: bool,
) {
    let departure = if departure == Departure::Delete && holds_unmanaged {
        Departure::Deactivate
    } else {
        departure
    };
    match departure {
        Departure::Deactivate if status == AccountStatus::Active => changes.push(Change {
            action: Action::Deactivate,
            reason: Some(reason),
            ..change
        }),
        Departure::Delete => changes.push(Change {
            action: Action::Remove,
            reason: Some(reason),
            ..change
        }),
        Departure::Deactivate | Departure::Keep => {}
    }
}
