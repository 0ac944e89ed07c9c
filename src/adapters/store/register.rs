//! Recording a manual or self registration, refused when the name is held: the one write
//! to the store that no plan makes.

use super::database::{params, OptionalRow};

use super::error::{store_error, StoreError};
use super::history::{record_one_change, RunRecord};
use super::open::Store;
use registrar_core::dn::normalize_dn;
use registrar_core::state::RegistrationSource;

impl Store {
    /// Records a manual or self registration of `im_name` on `protocol`, under its
    /// `name_key` (see [`registrar_core::model::ProtocolRule::name_key`]). An account DN the
    /// store does not know becomes an unmanaged account. With `per_account`, refused
    /// when the account (every anchor of its DN) already holds that many registrations of
    /// `source`: counted in the same transaction, so two at once cannot both pass. Returns
    /// the account's anchor.
    pub fn register(
        &mut self,
        (protocol, name_key): (&str, &str),
        im_name: &str,
        account_dn: &str,
        (source, per_account): (RegistrationSource, Option<u32>),
        run: RunRecord,
    ) -> Result<String, StoreError> {
        let location = self.location.clone();
        let fail = |e| store_error(&location, e);
        let transaction = self.connection.begin_write().map_err(fail)?;
        let dn_key = normalize_dn(account_dn);
        if let Some((account, dn, held_source)) = transaction
            .query_row(
                "SELECT r.account, a.dn, r.source FROM registrations r \
                 LEFT JOIN accounts a ON a.anchor = r.account \
                 WHERE r.protocol = ?1 AND r.im_name_key = ?2",
                params![protocol, name_key],
                |row| {
                    Ok((
                        row.get::<String>(0)?,
                        row.get::<Option<String>>(1)?,
                        row.get::<String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(fail)?
        {
            // A person knows the account by its DN; the anchor helps when it differs.
            let account = match dn {
                Some(dn) if normalize_dn(&dn) == account => dn,
                Some(dn) => format!("{dn} (anchor {account})"),
                None => account,
            };
            return Err(StoreError::AlreadyRegistered {
                protocol: protocol.to_string(),
                im_name: im_name.to_string(),
                account,
                held_by: held_source,
            });
        }
        if let Some(limit) = per_account {
            let held: i64 = transaction
                .query_row(
                    "SELECT COUNT(*) FROM registrations r JOIN accounts a ON a.anchor = r.account \
                     WHERE a.dn_key = ?1 AND r.source = ?2",
                    params![dn_key, source.name()],
                    |row| row.get(0),
                )
                .map_err(fail)?;
            if held >= i64::from(limit) {
                return Err(StoreError::RegistrationLimit {
                    account: account_dn.to_string(),
                    kind: source.name(),
                    limit,
                });
            }
        }
        let existing: Option<String> = transaction
            .query_row(
                "SELECT anchor FROM accounts WHERE dn_key = ?1 ORDER BY source IS NULL, anchor LIMIT 1",
                params![dn_key],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail)?;
        let anchor = match existing {
            Some(anchor) => anchor,
            None => {
                transaction
                    .execute(
                        "INSERT INTO accounts (anchor, dn, dn_key, source, status) VALUES (?1, ?2, ?1, NULL, 'active')",
                        params![dn_key, account_dn],
                    )
                    .map_err(fail)?;
                dn_key.clone()
            }
        };
        transaction
            .execute(
                "INSERT INTO registrations (protocol, im_name_key, im_name, account, source, owner) \
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                params![protocol, name_key, im_name, anchor, source.name()],
            )
            .map_err(fail)?;
        record_one_change(&transaction, run).map_err(fail)?;
        transaction.commit().map_err(fail)?;
        Ok(anchor)
    }
}
