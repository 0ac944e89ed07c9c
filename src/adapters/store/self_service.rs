//! What the self-service page and the lookup API read and write (`registrar serve`): the
//! registrations of one account (by DN, over every anchor of it), who holds one name, and
//! the removal of a self registration by the account that made it. Adding one goes
//! through [`Store::register`], like `state register`.

use serde::Serialize;

use super::database::{params, OptionalRow, Row, SqlResult};
use super::error::{store_error, StoreError};
use super::history::{record_one_change, RunRecord};
use super::open::Store;
use registrar_core::dn::normalize_dn;

/// One registration of an account, as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldName {
    pub protocol: String,
    pub im_name: String,
    /// `ldap`, `manual` or `self`.
    pub source: String,
    /// The mapping that produced it; `None` for unmanaged rows.
    pub owner: Option<String>,
}

/// Who holds a name: the lookup API's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub protocol: String,
    pub im_name: String,
    pub account_dn: String,
    pub display_name: Option<String>,
    /// `ldap`, `manual` or `self`.
    pub source: String,
    /// The mapping that produced it; `None` for unmanaged rows.
    pub owner: Option<String>,
    /// The account's status: `active` or `deactivated`.
    pub status: String,
}

impl Store {
    /// Every registration of the account at `dn` (any anchor whose DN normalises the
    /// same), by protocol and name.
    pub fn names_of_account(&self, dn: &str) -> Result<Vec<HeldName>, StoreError> {
        let read = || -> SqlResult<Vec<HeldName>> {
            let mut statement = self.connection.prepare(
                "SELECT r.protocol, r.im_name, r.source, r.owner FROM registrations r \
                 JOIN accounts a ON a.anchor = r.account WHERE a.dn_key = ?1 \
                 ORDER BY r.protocol, r.im_name_key",
            )?;
            statement.query_map(params![normalize_dn(dn)], |row| {
                Ok(HeldName {
                    protocol: row.get(0)?,
                    im_name: row.get(1)?,
                    source: row.get(2)?,
                    owner: row.get(3)?,
                })
            })
        };
        read().map_err(|e| self.error(e))
    }

    /// The display name the store keeps for the account at `dn`, if it keeps one.
    pub fn display_name_of(&self, dn: &str) -> Result<Option<String>, StoreError> {
        let read = || -> SqlResult<Option<String>> {
            let mut statement = self.connection.prepare(
                "SELECT display_name FROM accounts WHERE dn_key = ?1 \
                 AND display_name IS NOT NULL ORDER BY source IS NULL, anchor LIMIT 1",
            )?;
            statement
                .query_row(params![normalize_dn(dn)], |row| row.get(0))
                .optional()
        };
        read().map_err(|e| self.error(e))
    }

    /// Who holds `name_key` on `protocol`, if anyone.
    pub fn holder_of(&self, protocol: &str, name_key: &str) -> Result<Option<Holder>, StoreError> {
        let read = || -> SqlResult<Option<Holder>> {
            let mut statement = self.connection.prepare(
                "SELECT r.protocol, r.im_name, COALESCE(a.dn, r.account), a.display_name, \
                 r.source, r.owner, COALESCE(a.status, 'active') FROM registrations r \
                 LEFT JOIN accounts a ON a.anchor = r.account \
                 WHERE r.protocol = ?1 AND r.im_name_key = ?2",
            )?;
            statement
                .query_row(params![protocol, name_key], holder_from_row)
                .optional()
        };
        read().map_err(|e| self.error(e))
    }

    /// Removes the self registration of `name_key` on `protocol` that the account at
    /// `account_dn` holds, as one transaction that bumps the serial and records `run`.
    /// Refused, with nothing written, when there is no such row: another account's, a
    /// managed or manual one, or one already gone.
    pub fn unregister_own(
        &mut self,
        (protocol, name_key): (&str, &str),
        account_dn: &str,
        run: RunRecord,
    ) -> Result<(), StoreError> {
        let location = self.location.clone();
        let fail = |e| store_error(&location, e);
        let transaction = self.connection.begin_write().map_err(fail)?;
        let removed = transaction
            .execute(
                "DELETE FROM registrations WHERE protocol = ?1 AND im_name_key = ?2 \
                 AND source = 'self' AND account IN \
                 (SELECT anchor FROM accounts WHERE dn_key = ?3)",
                params![protocol, name_key, normalize_dn(account_dn)],
            )
            .map_err(fail)?;
        if removed != 1 {
            return Err(StoreError::NotOwnRegistration {
                protocol: protocol.to_string(),
                im_name: name_key.to_string(),
                account: account_dn.to_string(),
            });
        }
        record_one_change(&transaction, run).map_err(fail)?;
        transaction.commit().map_err(fail)
    }
}

fn holder_from_row(row: &Row<'_>) -> SqlResult<Holder> {
    Ok(Holder {
        protocol: row.get(0)?,
        im_name: row.get(1)?,
        account_dn: row.get(2)?,
        display_name: row.get(3)?,
        source: row.get(4)?,
        owner: row.get(5)?,
        status: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::test_support::fresh_store;
    use registrar_core::state::RegistrationSource;

    fn run() -> RunRecord {
        RunRecord::new("serve register", "2026-12-07T00:00:00Z")
    }

    fn register(
        store: &mut Store,
        name: &str,
        dn: &str,
        limit: Option<u32>,
    ) -> Result<String, StoreError> {
        store.register(
            ("xmpp", &name.to_lowercase()),
            name,
            dn,
            (RegistrationSource::SelfService, limit),
            run(),
        )
    }

    #[test]
    fn an_account_lists_its_names_and_removes_only_its_own_self_ones() {
        let (_kept, mut store) = fresh_store();
        register(&mut store, "Alice.Chat", "uid=alice,dc=x", None).unwrap();
        store
            .register(
                ("xmpp", "alice"),
                "alice",
                "UID=Alice, DC=x",
                (RegistrationSource::Manual, None),
                run(),
            )
            .unwrap();
        register(&mut store, "bob", "uid=bob,dc=x", None).unwrap();
        let names = store.names_of_account("uid=ALICE,dc=x").unwrap();
        let listed: Vec<(&str, &str)> = names
            .iter()
            .map(|n| (n.im_name.as_str(), n.source.as_str()))
            .collect();
        assert_eq!(listed, [("alice", "manual"), ("Alice.Chat", "self")]);

        let serial = store.serial().unwrap();
        // Bob's name, and Alice's manual one, are not hers to remove.
        for (key, dn) in [("bob", "uid=alice,dc=x"), ("alice", "uid=alice,dc=x")] {
            let refused = store.unregister_own(("xmpp", key), dn, run()).unwrap_err();
            assert!(
                matches!(refused, StoreError::NotOwnRegistration { .. }),
                "{refused}"
            );
        }
        assert_eq!(store.serial().unwrap(), serial);
        store
            .unregister_own(("xmpp", "alice.chat"), "uid=alice,dc=x", run())
            .unwrap();
        assert_eq!(store.serial().unwrap(), serial + 1);
        assert_eq!(store.names_of_account("uid=alice,dc=x").unwrap().len(), 1);
        assert_eq!(store.runs(10).unwrap()[0].serial_after, serial + 1);
    }

    #[test]
    fn the_holder_of_a_name_and_the_per_account_limit() {
        let (_kept, mut store) = fresh_store();
        register(&mut store, "one", "uid=carol,dc=x", Some(2)).unwrap();
        register(&mut store, "two", "uid=carol,dc=x", Some(2)).unwrap();
        let refused = register(&mut store, "three", "uid=carol,dc=x", Some(2)).unwrap_err();
        assert!(
            matches!(refused, StoreError::RegistrationLimit { limit: 2, .. }),
            "{refused}"
        );
        assert!(store.holder_of("xmpp", "three").unwrap().is_none());
        let holder = store.holder_of("xmpp", "two").unwrap().unwrap();
        assert_eq!(
            holder,
            Holder {
                protocol: "xmpp".to_string(),
                im_name: "two".to_string(),
                account_dn: "uid=carol,dc=x".to_string(),
                display_name: None,
                source: "self".to_string(),
                owner: None,
                status: "active".to_string(),
            }
        );
        assert_eq!(store.display_name_of("uid=carol,dc=x").unwrap(), None);
    }
}
