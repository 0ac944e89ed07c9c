//! Writing a plan's changes in an apply's transaction, in plan order: [`ChangeWriter`],
//! with account and registration adds written in bulk (`bulk.rs`) and every other change
//! one at a time (`change.rs`). On a first import the secondary indexes (and on
//! PostgreSQL the keys) are built after the rows.

use super::database::{params, Database, Param};

use super::bulk::{Bulk, BulkRow, Constraint, Deferred};
use super::change::{apply_change, describe, ChangeFailure};
use super::error::{store_error, StoreError};
use super::location::StoreLocation;
use registrar_core::dn::normalize_dn;
use registrar_core::model::ProfileField;
use registrar_core::plan::{Action, Change, Kind};
use registrar_core::state::{AccountStatus, RegistrationSource};

/// An account add written in bulk: the row `apply_change` inserts for it.
struct AccountAdd<'p> {
    change: &'p Change,
    anchor: &'p str,
    dn: &'p str,
}

impl BulkRow for AccountAdd<'_> {
    const COLUMNS: usize = 11;
    fn values<'r>(&'r self, out: &mut Vec<Param<'r>>) {
        out.push(Param::from(self.anchor));
        out.push(Param::from(self.dn));
        out.push(Param::from(normalize_dn(self.dn)));
        out.push(Param::from(self.change.source().map(|source| &**source)));
        out.push(Param::from(AccountStatus::Active.name()));
        let profile = self.change.profile();
        for field in ProfileField::ALL {
            out.push(Param::from(profile.and_then(|p| p.get(field))));
        }
    }
}

/// A registration add written in bulk: the row `apply_change` inserts for it.
struct RegistrationAdd<'p> {
    change: &'p Change,
    protocol: &'p str,
    im_name: &'p str,
    account: &'p str,
    mapping: &'p str,
}

impl BulkRow for RegistrationAdd<'_> {
    const COLUMNS: usize = 6;
    fn values<'r>(&'r self, out: &mut Vec<Param<'r>>) {
        out.push(Param::from(self.protocol));
        out.push(Param::from(self.change.name_key().into_owned()));
        out.push(Param::from(self.im_name));
        out.push(Param::from(self.account));
        out.push(Param::from(RegistrationSource::Ldap.name()));
        out.push(Param::from(self.mapping));
    }
}

/// What a first import into an empty store builds after its accounts and registrations
/// ([`Deferred`]): the secondary indexes, whose keys come in no useful order in a plan
/// (accounts are in anchor order, registrations in name order), and on PostgreSQL the
/// keys and the reference from a registration to its account, all exactly as the
/// migrations make them. A plan against an empty store adds each row once.
pub(super) const CHANGE_DEFERRED: Deferred = Deferred {
    indexes: &[
        (
            "accounts_by_dn",
            "CREATE INDEX accounts_by_dn ON accounts (dn_key)",
        ),
        (
            "registrations_by_account",
            "CREATE INDEX registrations_by_account ON registrations (account)",
        ),
    ],
    constraints: &[
        Constraint {
            table: "registrations",
            name: "registrations_account_fkey",
            definition: "FOREIGN KEY (account) REFERENCES accounts (anchor)",
        },
        Constraint {
            table: "registrations",
            name: "registrations_pkey",
            definition: "PRIMARY KEY (protocol, im_name_key)",
        },
        Constraint {
            table: "accounts",
            name: "accounts_pkey",
            definition: "PRIMARY KEY (anchor)",
        },
    ],
};

/// Writes a plan's changes in an apply's transaction, in plan order, as many at a time
/// as the caller has (see [`Store::apply_keeping`](super::open::Store::apply_keeping)).
pub struct ChangeWriter<'t> {
    connection: &'t Database,
    location: &'t StoreLocation,
    /// How many changes are written.
    done: u64,
    /// [`CHANGE_DEFERRED`] was dropped (the store held no account), to be built again
    /// whole.
    deferred: bool,
}

impl<'t> ChangeWriter<'t> {
    pub(super) fn new(
        connection: &'t Database,
        location: &'t StoreLocation,
    ) -> Result<Self, StoreError> {
        let fail = |e| store_error(location, e);
        let first_import = !connection
            .query_row("SELECT EXISTS (SELECT 1 FROM accounts)", params![], |row| {
                row.get::<bool>(0)
            })
            .map_err(fail)?;
        if first_import {
            CHANGE_DEFERRED.drop_all(connection).map_err(fail)?;
        }
        Ok(ChangeWriter {
            connection,
            location,
            done: 0,
            deferred: first_import,
        })
    }

    /// Writes `changes`, the next ones of the plan, in order; `progress` hears how many
    /// of the plan's changes are done as it goes. A change the store refuses fails with
    /// a conflict naming it.
    pub fn write(
        &mut self,
        changes: &[Change],
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), StoreError> {
        let connection = self.connection;
        let refused = |(problem, change): (ChangeFailure, &Change)| match problem {
            ChangeFailure::Database(e) => store_error(self.location, e),
            ChangeFailure::Refused(problem) => StoreError::Conflict {
                store: self.location.clone(),
                change: describe(change),
                problem,
            },
        };
        let mut adds = Adds::new();
        for change in changes {
            progress(self.done);
            self.done += 1;
            if adds.queue(connection, change).map_err(refused)? {
                continue;
            }
            adds.flush(connection).map_err(refused)?;
            apply_change(connection, change).map_err(|problem| refused((problem, change)))?;
        }
        adds.flush(connection).map_err(refused)
    }

    /// Ends the changes: builds again what a first import dropped. Returns whether any
    /// change was written.
    pub(super) fn finish(self) -> Result<bool, StoreError> {
        if self.deferred {
            CHANGE_DEFERRED
                .rebuild_all(self.connection)
                .map_err(|e| store_error(self.location, e))?;
        }
        Ok(self.done > 0)
    }
}

/// The account and registration adds of a plan, written in bulk in plan order. A batch
/// the database refuses is written again change by change through [`apply_change`], so
/// that the change at fault fails as it would alone.
struct Adds<'p> {
    accounts: Bulk<AccountAdd<'p>>,
    registrations: Bulk<RegistrationAdd<'p>>,
}

type Failed<'p> = (ChangeFailure, &'p Change);

impl<'p> Adds<'p> {
    fn new() -> Self {
        Adds {
            accounts: Bulk::new(
                "INSERT INTO accounts (anchor, dn, dn_key, source, status, display_name, \
                 department, title, telephone, location, mail) VALUES",
            ),
            registrations: Bulk::new(
                "INSERT INTO registrations (protocol, im_name_key, im_name, account, source, \
                 owner) VALUES",
            ),
        }
    }

    /// Queues `change` when it is an add written in bulk (with every value it needs);
    /// `false` leaves it to the caller, after [`Adds::flush`].
    fn queue(&mut self, connection: &Database, change: &'p Change) -> Result<bool, Failed<'p>> {
        if change.action != Action::Add {
            return Ok(false);
        }
        match (change.kind, change.account.as_deref()) {
            (Kind::Account, Some(anchor)) => {
                let Some(dn) = change.dn.as_deref() else {
                    return Ok(false);
                };
                self.flush_registrations(connection)?;
                let row = AccountAdd { change, anchor, dn };
                if self.accounts.push(connection, row).is_err() {
                    return rewrite(connection, self.accounts.take()).map(|()| true);
                }
                Ok(true)
            }
            (Kind::Registration, Some(account)) => {
                let (Some(protocol), Some(im_name), Some(mapping)) = (
                    change.protocol.as_deref(),
                    change.im_name.as_deref(),
                    change.mapping.as_deref(),
                ) else {
                    return Ok(false);
                };
                self.flush_accounts(connection)?;
                let row = RegistrationAdd {
                    change,
                    protocol,
                    im_name,
                    account,
                    mapping,
                };
                if self.registrations.push(connection, row).is_err() {
                    return rewrite(connection, self.registrations.take()).map(|()| true);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Writes every queued add.
    fn flush(&mut self, connection: &Database) -> Result<(), Failed<'p>> {
        self.flush_accounts(connection)?;
        self.flush_registrations(connection)
    }

    fn flush_accounts(&mut self, connection: &Database) -> Result<(), Failed<'p>> {
        if self.accounts.flush(connection).is_err() {
            rewrite(connection, self.accounts.take())?;
        }
        Ok(())
    }

    fn flush_registrations(&mut self, connection: &Database) -> Result<(), Failed<'p>> {
        if self.registrations.flush(connection).is_err() {
            rewrite(connection, self.registrations.take())?;
        }
        Ok(())
    }
}

/// The changes of a refused batch, written one by one.
fn rewrite<'p, R: Queued<'p>>(connection: &Database, rows: Vec<R>) -> Result<(), Failed<'p>> {
    for row in rows {
        let change = row.change();
        apply_change(connection, change).map_err(|problem| (problem, change))?;
    }
    Ok(())
}

/// A queued add and the change it comes from.
trait Queued<'p> {
    fn change(&self) -> &'p Change;
}

impl<'p> Queued<'p> for AccountAdd<'p> {
    fn change(&self) -> &'p Change {
        self.change
    }
}

impl<'p> Queued<'p> for RegistrationAdd<'p> {
    fn change(&self) -> &'p Change {
        self.change
    }
}
