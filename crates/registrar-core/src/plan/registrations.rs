//! The registration walk: the claims and the stored rows, side by side, name by name
//! (both sorted by protocol and name key). A name goes to the one account that holds
//! it, or to its only claimant; a managed row nothing wants any more goes.

use arcstr::ArcStr;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::desired::{mapping_bit, Claim, DesiredAccount, Warning, WarningKind};
use crate::interner::Interner;
use crate::model::Rules;
use crate::quote::quote_for_message;
use crate::state::{RegistrationKey, RegistrationRow, RegistrationRows};

use super::change::{Action, Change, ChangeList};
use super::context::{merge_order, registration_key, Frozen, People};

/// What the registration walk reads, beside the claims and rows it walks.
pub(super) struct RegistrationWalk<'a> {
    pub(super) rules: &'a Rules,
    pub(super) people: &'a People<'a>,
    pub(super) frozen: &'a Frozen<'a>,
    /// Managed accounts giving up their managed rows, with the reason.
    pub(super) departing: &'a BTreeMap<&'a str, &'static str>,
    /// `on_departure: keep`: departed accounts keep their rows.
    pub(super) keeps_registrations: bool,
}

/// What the registration walk writes.
pub(super) struct Written<'o> {
    /// The changes' repeated texts (reasons, the protocols of changes made from stored
    /// rows), one allocation each.
    pub(super) shared: &'o mut Interner,
    pub(super) changes: &'o mut ChangeList,
    pub(super) warnings: &'o mut Vec<Warning>,
    /// Names left untouched because of exclusions.
    pub(super) excluded: &'o mut BTreeSet<RegistrationKey>,
}

impl RegistrationWalk<'_> {
    /// Plans the registration changes of `claims` (sorted by protocol, name key, account,
    /// mapping and IM name) against the stored `rows` (in the same order), each read
    /// once, as it comes. Returns how many of the rows are managed.
    pub(super) fn plan(
        &self,
        claims: Vec<Claim>,
        rows: &mut impl RegistrationRows,
        out: &mut Written<'_>,
    ) -> u64 {
        let mut managed_rows = 0;
        let mapping_names: BTreeSet<&str> = self
            .rules
            .mappings
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        let mut claims = claims.into_iter().peekable();
        // The claims on the current name, in (account, mapping, IM name) order, and their
        // claimants (buffers reused from name to name: millions of names, no allocation
        // each).
        let mut on_name: Vec<Claim> = Vec::new();
        let mut claimants: Vec<&str> = Vec::new();
        while let Some(order) = merge_order(rows.current(), claims.peek(), |row, claim| {
            (row.protocol, row.name_key).cmp(&(&*claim.protocol, &*claim.name_key))
        }) {
            let row = if order == Ordering::Greater {
                None
            } else {
                rows.current()
            };
            on_name.clear();
            if order != Ordering::Less {
                if let Some(first) = claims.next() {
                    while let Some(claim) = claims
                        .next_if(|c| c.protocol == first.protocol && c.name_key == first.name_key)
                    {
                        on_name.push(claim);
                    }
                    on_name.insert(0, first);
                }
            }
            if let Some(row) = row {
                managed_rows += u64::from(row.is_managed());
                self.unwanted_row(row, &on_name, &mapping_names, out);
            }
            if !on_name.is_empty() {
                // Claimants in anchor order, each once (claims come in account order).
                claimants.clear();
                for claim in &on_name {
                    let anchor = self.people.anchor_of(claim.account);
                    if claimants.last() != Some(&anchor) {
                        claimants.push(anchor);
                    }
                }
                self.claimed(&mut on_name, &claimants, row, out);
            }
            if row.is_some() {
                rows.advance();
            }
        }
        managed_rows
    }

    /// Which mapping took over the rows of the mapping once called `old`.
    fn renamed_to(&self, old: &str) -> Option<&str> {
        self.rules
            .mappings
            .iter()
            .find(|m| m.renamed_from.iter().any(|o| o == old))
            .map(|m| m.name.as_str())
    }

    /// A managed row nothing in `on_name` (the claims on its name) wants any more goes,
    /// unless frozen or kept by its departed account.
    fn unwanted_row(
        &self,
        row: RegistrationRow<'_>,
        on_name: &[Claim],
        mapping_names: &BTreeSet<&str>,
        out: &mut Written<'_>,
    ) {
        let Some(owner) = row.owner else {
            return;
        };
        let still_wanted = on_name
            .iter()
            .any(|c| self.people.anchor_of(c.account) == row.account);
        if still_wanted {
            return;
        }
        let departure = self.departing.get(row.account).copied();
        if self
            .frozen
            .registration(row.protocol, row.name_key, Some(row))
        {
            out.excluded
                .insert(registration_key(row.protocol, row.name_key));
            return;
        }
        if departure.is_some() && self.keeps_registrations {
            return;
        }
        let owner_known = mapping_names.contains(owner) || self.renamed_to(owner).is_some();
        let wanted = || self.people.wanted(row.account);
        let reason = match departure {
            Some(reason) => out.shared.get(reason),
            None if !owner_known => out.shared.get("mapping removed"),
            None if wanted().is_some_and(|a| a.protected) => out.shared.get("protected principal"),
            None => out
                .shared
                .get(&lost_claim_reason(self.rules, owner, wanted())),
        };
        let (account, dn) = self.people.named(row.account);
        out.changes.push(Change {
            mapping: Some(owner.into()),
            reason: Some(reason),
            dn,
            ..Change::registration(
                Action::Remove,
                (out.shared.get(row.protocol), row.name_key),
                row.im_name.into(),
                account,
            )
        });
    }

    /// The claims on one name (`on_name`, not empty, by the distinct `claimants`), against
    /// the stored `row` on it, if any.
    fn claimed(
        &self,
        on_name: &mut Vec<Claim>,
        claimants: &[&str],
        row: Option<RegistrationRow<'_>>,
        out: &mut Written<'_>,
    ) {
        let first = &on_name[0];
        let (protocol, name_key) = (first.protocol.clone(), first.name_key.clone());
        if self.frozen.registration(&protocol, &name_key, row) {
            if let Some(row) = row {
                for claimant in claimants.iter().filter(|c| **c != row.account) {
                    out.warnings.push(self.denied(
                        (&protocol, &name_key, row.im_name),
                        claimant,
                        row.account,
                        format!(
                            "held by excluded account {}",
                            self.people.person(row.account)
                        ),
                    ));
                }
            }
            out.excluded.insert(registration_key(&protocol, &name_key));
            return;
        }
        match row {
            None => give_name(on_name, claimants, self.people.accounts, out),
            Some(row) if !row.is_managed() => {
                self.held_unmanaged(on_name, (&protocol, &name_key), row, out)
            }
            Some(row) if claimants.contains(&row.account) => {
                self.held_by_claimant(on_name, claimants, (protocol, &name_key), row, out)
            }
            Some(row) => {
                // Held by a managed row of an account that no longer wants it.
                let kept = self.keeps_registrations && self.departing.contains_key(row.account);
                if kept {
                    for claimant in claimants {
                        out.warnings.push(self.denied(
                            (&protocol, &name_key, row.im_name),
                            claimant,
                            row.account,
                            format!(
                                "kept by departed account {}",
                                self.people.person(row.account)
                            ),
                        ));
                    }
                } else {
                    // The removal is planned with the row.
                    give_name(on_name, claimants, self.people.accounts, out);
                }
            }
        }
    }

    /// The claims on a name an unmanaged row holds: the row stays; its own account is
    /// told so, the others are denied.
    fn held_unmanaged(
        &self,
        on_name: &[Claim],
        (protocol, name_key): (&str, &str),
        row: RegistrationRow<'_>,
        out: &mut Written<'_>,
    ) {
        for claim in on_name {
            let claimant = self.people.anchor_of(claim.account);
            if self.people.same_person(row.account, claimant) {
                out.warnings.push(Warning {
                    kind: WarningKind::AlreadyRegistered,
                    protocol: Some(protocol.to_string()),
                    im_name: Some(row.im_name.to_string()),
                    account: Some(claimant.to_string()),
                    held_by: Some(row.account.to_string()),
                    mapping: Some(claim.mapping.to_string()),
                    group: None,
                    message: format!(
                        "{protocol} name {} is already registered to {} by a {} registration; left as it is",
                        quote_for_message(row.im_name), self.people.person(claimant), row.source.name()
                    ),
                });
            } else {
                out.warnings.push(self.denied(
                    (protocol, name_key, &claim.im_name),
                    claimant,
                    row.account,
                    format!(
                        "held by a {} registration of {}",
                        row.source.name(),
                        self.people.person(row.account)
                    ),
                ));
            }
        }
    }

    /// The claims on a name a managed row of one of the claimants holds: it keeps it (its
    /// row updated to the claim that keeps it), the others are denied.
    fn held_by_claimant(
        &self,
        on_name: &[Claim],
        claimants: &[&str],
        (protocol, name_key): (ArcStr, &str),
        row: RegistrationRow<'_>,
        out: &mut Written<'_>,
    ) {
        let owner = row.owner.unwrap_or_default();
        for claimant in claimants.iter().filter(|c| **c != row.account) {
            out.warnings.push(self.denied(
                (&protocol, name_key, row.im_name),
                claimant,
                row.account,
                format!("already held by {}", self.people.person(row.account)),
            ));
        }
        // The row's account's own claims on the name (walked, not collected).
        let own = || {
            on_name
                .iter()
                .filter(|c| self.people.anchor_of(c.account) == row.account)
        };
        let Some(keeper) = own()
            .find(|c| *c.mapping == *owner)
            .or_else(|| own().find(|c| self.renamed_to(owner) == Some(&*c.mapping)))
            .or_else(|| own().next())
        else {
            return; // unreachable: the row's account is among the claimants
        };
        let mut fields = BTreeMap::new();
        if *keeper.im_name != *row.im_name {
            fields.insert(
                "im_name".to_string(),
                (
                    Some(row.im_name.to_string()),
                    Some(keeper.im_name.to_string()),
                ),
            );
        }
        if *keeper.mapping != *owner {
            fields.insert(
                "mapping".to_string(),
                (Some(owner.to_string()), Some(keeper.mapping.to_string())),
            );
        }
        if fields.is_empty() {
            return;
        }
        let reason =
            if *keeper.mapping != *owner && self.renamed_to(owner) == Some(&*keeper.mapping) {
                "mapping renamed"
            } else if *keeper.mapping != *owner {
                "now produced by another mapping"
            } else {
                "name changed case"
            };
        let (account, dn) = self.people.named(row.account);
        let mut change = Change {
            mapping: Some(keeper.mapping.clone()),
            reason: Some(out.shared.get(reason)),
            dn,
            ..Change::registration(
                Action::Update,
                (protocol, name_key),
                row.im_name.into(),
                account,
            )
        };
        change.detail_mut().fields = Some(fields);
        out.changes.push(change);
    }

    /// A claimant denied a name another account holds: `held` says how it is held.
    fn denied(
        &self,
        (protocol, name_key, im_name): (&str, &str, &str),
        claimant: &str,
        holder: &str,
        held: String,
    ) -> Warning {
        conflict(
            protocol,
            name_key,
            claimant,
            Some(holder),
            format!(
                "{protocol} name {} wanted for {} is {held}; skipped",
                quote_for_message(im_name),
                self.people.person(claimant)
            ),
        )
    }
}

/// Why a mapping (`owner`) no longer claims a name for an account still in the directory
/// (`account`): the entry no longer passes the mapping's `when` filter, its source is not
/// among the mapping's sources, or the template gives another value or none.
fn lost_claim_reason(rules: &Rules, owner: &str, account: Option<&DesiredAccount>) -> String {
    let general = format!("no longer produced by mapping {owner}");
    let Some(account) = account else {
        return general;
    };
    let Some(index) = rules.mappings.iter().position(|m| m.name == owner) else {
        return general; // a renamed mapping: the rename is what happened
    };
    if !rules.mappings[index].reads(&account.source) {
        return format!(
            "entry's source {} is not among mapping {owner}'s sources",
            account.source
        );
    }
    let Some(bit) = mapping_bit(index) else {
        return general;
    };
    if account.rejected_by & bit != 0 {
        format!("entry no longer matches mapping {owner}'s filter")
    } else if account.produced_by & bit != 0 {
        format!("mapping {owner} now produces another value for the entry")
    } else {
        format!("mapping {owner} produces no value for the entry")
    }
}

/// A conflict warning about a name, wanted for `claimant`.
fn conflict(
    protocol: &str,
    name_key: &str,
    claimant: &str,
    held_by: Option<&str>,
    message: String,
) -> Warning {
    Warning {
        kind: WarningKind::Conflict,
        protocol: Some(protocol.to_string()),
        im_name: Some(name_key.to_string()),
        account: (!claimant.is_empty()).then(|| claimant.to_string()),
        held_by: held_by.map(str::to_string),
        mapping: None,
        group: None,
        message,
    }
}

/// Gives a free name to the one account that wants it, or, when several do, to none of
/// them with a warning: the result never depends on input order. `claimants` are the
/// distinct accounts of `on_name`, the claims on the name.
fn give_name(
    on_name: &mut Vec<Claim>,
    claimants: &[&str],
    accounts: &[DesiredAccount],
    out: &mut Written<'_>,
) {
    if claimants.len() > 1 {
        let first = &on_name[0];
        out.warnings.push(conflict(
            &first.protocol,
            &first.name_key,
            "",
            None,
            format!(
                "{} name {} is wanted by {} accounts ({}); none gets it",
                first.protocol,
                quote_for_message(&*first.im_name),
                claimants.len(),
                claimants.join(", ")
            ),
        ));
        return;
    }
    on_name.truncate(1);
    let Some(claim) = on_name.pop() else {
        return;
    };
    let account = &accounts[claim.account];
    out.changes.push(Change {
        mapping: Some(claim.mapping),
        dn: Some(account.dn.clone()),
        ..Change::registration(
            Action::Add,
            (claim.protocol, &claim.name_key),
            claim.im_name,
            account.anchor.clone(),
        )
    });
}
