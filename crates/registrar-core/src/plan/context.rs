//! What the planner's walks share: what exclusions freeze, how an account is named in a change or a warning, and the step of
//! a merge walk over two sorted sequences.

use arcstr::ArcStr;
use std::cmp::Ordering;
use std::collections::BTreeSet;

use crate::desired::DesiredAccount;
use crate::dn::normalize_dn;
use crate::model::Rules;
use crate::quote::shown_for_message;
use crate::state::{RegistrationKey, RegistrationRow, State};

/// Which side of a merge walk over two sorted sequences comes next, from their heads:
/// `Less` the left's alone, `Greater` the right's alone, `Equal` both together (`cmp`
/// says which); `None` once both are done.
#[inline]
pub(super) fn merge_order<L, R>(
    left: Option<L>,
    right: Option<R>,
    cmp: impl FnOnce(L, R) -> Ordering,
) -> Option<Ordering> {
    match (left, right) {
        (None, None) => None,
        (Some(_), None) => Some(Ordering::Less),
        (None, Some(_)) => Some(Ordering::Greater),
        (Some(left), Some(right)) => Some(cmp(left, right)),
    }
}

pub(super) fn registration_key(protocol: &str, name_key: &str) -> RegistrationKey {
    RegistrationKey {
        protocol: protocol.into(),
        name_key: name_key.into(),
    }
}

/// What exclusions freeze: accounts (by anchor, DN subtree) and names (by IM-name rules).
pub(super) struct Frozen<'a> {
    rules: &'a Rules,
    state: &'a State,
    /// Anchors of accounts the desired state froze.
    accounts: &'a BTreeSet<String>,
    /// Names produced but frozen by an IM-name exclusion.
    registrations: &'a BTreeSet<RegistrationKey>,
    has_dn_rules: bool,
    has_name_rules: bool,
}

impl<'a> Frozen<'a> {
    pub(super) fn new(
        rules: &'a Rules,
        state: &'a State,
        accounts: &'a BTreeSet<String>,
        registrations: &'a BTreeSet<RegistrationKey>,
    ) -> Self {
        Frozen {
            rules,
            state,
            accounts,
            registrations,
            has_dn_rules: rules.exclusions.iter().any(|e| e.freezes_by_dn()),
            has_name_rules: rules.exclusions.iter().any(|e| e.freezes_by_name()),
        }
    }

    /// Whether the account `anchor` is frozen: by the desired state, or by its stored DN.
    #[inline]
    pub(super) fn account(&self, anchor: &str) -> bool {
        self.accounts.contains(anchor)
            || (self.has_dn_rules
                && self.state.accounts.get(anchor).is_some_and(|account| {
                    let dn = normalize_dn(&account.dn);
                    self.rules.exclusions.iter().any(|e| e.freezes_dn(&dn))
                }))
    }

    /// Whether the name is frozen: by an IM-name exclusion, or by its row's account.
    pub(super) fn registration(
        &self,
        protocol: &str,
        name_key: &str,
        row: Option<RegistrationRow<'_>>,
    ) -> bool {
        (!self.registrations.is_empty()
            && self
                .registrations
                .contains(&registration_key(protocol, name_key)))
            || (self.has_name_rules
                && self
                    .rules
                    .exclusions
                    .iter()
                    .any(|e| e.freezes_registration(protocol, name_key)))
            || row.is_some_and(|r| self.account(r.account))
    }
}

/// The accounts as changes and warnings name them: the desired ones (sorted by anchor)
/// and the stored ones.
pub(super) struct People<'a> {
    pub(super) accounts: &'a [DesiredAccount],
    pub(super) state: &'a State,
}

impl<'a> People<'a> {
    /// The desired account `anchor`.
    #[inline]
    pub(super) fn wanted(&self, anchor: &str) -> Option<&'a DesiredAccount> {
        self.accounts
            .binary_search_by(|account| (*account.anchor).cmp(anchor))
            .ok()
            .map(|index| &self.accounts[index])
    }

    /// The anchor of the desired account at `index`.
    #[inline]
    pub(super) fn anchor_of(&self, index: usize) -> &'a str {
        &self.accounts[index].anchor
    }

    /// Every change names the account's DN too, so that people can read plans made with
    /// opaque anchors such as entryUUID: the directory's, else the store's.
    pub(super) fn dn_of(&self, anchor: &str) -> Option<ArcStr> {
        self.wanted(anchor)
            .map(|a| a.dn.clone())
            .or_else(|| self.stored_dn(anchor))
    }

    /// The DN the store holds for the account `anchor`.
    fn stored_dn(&self, anchor: &str) -> Option<ArcStr> {
        self.state
            .accounts
            .get(anchor)
            .map(|account| account.dn.as_str().into())
    }

    /// [`People::dn_of`] for anchors that mostly come in increasing order, as a group's
    /// members do: the search starts at `from` (where the last anchor was found) and
    /// gallops forward, so that a run of members costs a few comparisons each, on
    /// accounts next to each other, not a search of them all. `from` moves to `anchor`.
    pub(super) fn dn_of_from(&self, anchor: &str, from: &mut usize) -> Option<ArcStr> {
        let accounts = self.accounts;
        let below = |index: usize| *accounts[index].anchor <= *anchor;
        let found = if *from < accounts.len() && below(*from) {
            // accounts[low] <= anchor; the answer is in low..high.
            let (mut low, mut step) = (*from, 1);
            let mut high = low + 1;
            while high < accounts.len() && below(high) {
                low = high;
                step *= 2;
                high = low + step;
            }
            let high = high.min(accounts.len());
            accounts[low..high]
                .binary_search_by(|account| (*account.anchor).cmp(anchor))
                .map(|index| low + index)
                .map_err(|index| low + index)
        } else {
            accounts.binary_search_by(|account| (*account.anchor).cmp(anchor))
        };
        match found {
            Ok(index) => {
                *from = index;
                Some(accounts[index].dn.clone())
            }
            Err(index) => {
                *from = index;
                self.stored_dn(anchor)
            }
        }
    }

    /// The account `anchor` as a change made from a stored row names it, in one lookup:
    /// its shared anchor (the desired account's or the stored one's, so the change costs
    /// no copy of it) and its DN ([`People::dn_of`]).
    pub(super) fn named(&self, anchor: &str) -> (ArcStr, Option<ArcStr>) {
        if let Some(account) = self.wanted(anchor) {
            return (account.anchor.clone(), Some(account.dn.clone()));
        }
        match self.state.accounts.get(anchor) {
            Some(account) => (account.anchor.clone(), Some(account.dn.as_str().into())),
            None => (anchor.into(), None),
        }
    }

    /// An account as a warning names it: its DN, with the anchor where the anchor is not
    /// the DN itself (entryUUID, objectGUID); the anchor alone if no DN is known.
    pub(super) fn person(&self, anchor: &str) -> String {
        match self.dn_of(anchor) {
            Some(dn) if normalize_dn(&dn) == anchor => shown_for_message(&*dn),
            Some(dn) => format!(
                "{} (anchor {})",
                shown_for_message(&*dn),
                shown_for_message(anchor)
            ),
            None => shown_for_message(anchor),
        }
    }

    /// Whether a row's account and a desired account are one person: one anchor, or
    /// the same DN.
    pub(super) fn same_person(&self, row_account: &str, desired_anchor: &str) -> bool {
        row_account == desired_anchor
            || match (
                self.state.accounts.get(row_account),
                self.wanted(desired_anchor),
            ) {
                (Some(row), Some(wanted)) => normalize_dn(&row.dn) == normalize_dn(&wanted.dn),
                _ => false,
            }
    }
}
