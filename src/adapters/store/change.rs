//! One change of a plan written to its row, or refused with the reason (the row is not
//! as the plan expects): the store's half of "carry out a plan exactly, or refuse it".

use super::database::{params, Database, OptionalRow, SqlError};
use registrar_core::ArcStr;

use registrar_core::dn::normalize_dn;
use registrar_core::model::ProfileField;
use registrar_core::plan::{Action, Change, Kind};
use registrar_core::state::AccountStatus;

pub(super) enum ChangeFailure {
    Database(SqlError),
    Refused(ChangeConflict),
}

/// Why the store refuses one change of a plan: the plan does not say enough, or the row
/// it writes is not as the plan expects (someone wrote the store since it was made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeConflict {
    /// A field the change needs is missing from the plan.
    #[error("the plan gives no {0}")]
    Missing(&'static str),
    /// The row is not as the plan expects, e.g. "the account already exists".
    #[error("{0}")]
    UnexpectedRow(&'static str),
    /// An update names a field the kind of row does not have.
    #[error("unknown {kind} field {field:?}")]
    UnknownField { kind: &'static str, field: String },
    /// An update would clear a field that must have a value.
    #[error("the plan clears {0}")]
    Clears(String),
    /// A group to remove still has members.
    #[error("the group still has {0} member(s)")]
    GroupHasMembers(i64),
    /// Only accounts are deactivated and reactivated.
    #[error("{0} cannot be deactivated")]
    CannotDeactivate(&'static str),
    /// Group memberships are added or removed, never updated.
    #[error("memberships can only be added or removed")]
    MembershipUpdate,
}

impl From<SqlError> for ChangeFailure {
    fn from(error: SqlError) -> Self {
        ChangeFailure::Database(error)
    }
}

/// A short description of a change for error messages.
pub(super) fn describe(change: &Change) -> String {
    let action = format!("{:?}", change.action).to_lowercase();
    match change.kind {
        Kind::Registration => format!(
            "{action} of {} name {:?} for {}",
            change.protocol.as_deref().unwrap_or("?"),
            change.im_name.as_deref().unwrap_or("?"),
            change.account.as_deref().unwrap_or("?")
        ),
        Kind::Group => format!(
            "{action} of group {:?}",
            change.group.as_deref().unwrap_or("?")
        ),
        Kind::GroupMember => format!(
            "{action} of member {} of group {:?}",
            change.member.as_deref().unwrap_or("?"),
            change.group.as_deref().unwrap_or("?")
        ),
        _ => format!(
            "{action} of {:?} {}",
            change.kind,
            change.account.as_deref().unwrap_or("?")
        )
        .to_lowercase(),
    }
}

fn required<'a>(value: Option<&'a ArcStr>, what: &'static str) -> Result<&'a str, ChangeFailure> {
    value
        .map(|value| &**value)
        .ok_or(ChangeFailure::Refused(ChangeConflict::Missing(what)))
}

fn expect_one(rows: usize, problem: &'static str) -> Result<(), ChangeFailure> {
    if rows == 1 {
        Ok(())
    } else {
        Err(ChangeFailure::Refused(ChangeConflict::UnexpectedRow(
            problem,
        )))
    }
}

pub(super) fn apply_change(connection: &Database, change: &Change) -> Result<(), ChangeFailure> {
    match change.kind {
        Kind::Group => apply_group_change(connection, change),
        Kind::GroupMember => apply_member_change(connection, change),
        Kind::Account => apply_account_change(connection, change),
        Kind::Registration => apply_registration_change(connection, change),
    }
}

/// Adds, updates, deactivates, reactivates or removes a managed account row.
fn apply_account_change(connection: &Database, change: &Change) -> Result<(), ChangeFailure> {
    let account = required(change.account.as_ref(), "account")?;
    match change.action {
        Action::Add => {
            let dn = required(change.dn.as_ref(), "dn")?;
            let value = |field| change.profile().and_then(|profile| profile.get(field));
            let inserted = connection.execute("INSERT INTO accounts (anchor, dn, dn_key, source, status, display_name, department, title, telephone, location, mail) \
                 VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                params![
                    account,
                    dn,
                    normalize_dn(dn),
                    change.source(),
                    value(ProfileField::DisplayName),
                    value(ProfileField::Department),
                    value(ProfileField::Title),
                    value(ProfileField::Telephone),
                    value(ProfileField::Location),
                    value(ProfileField::Mail),
                ],
            )?;
            expect_one(inserted, "the account already exists")
        }
        Action::Update => {
            for (field, (_, new)) in change.fields().into_iter().flatten() {
                let column = match field.as_str() {
                    "dn" => "dn",
                    "source" => "source",
                    other => ProfileField::from_name(other)
                        .map(ProfileField::name)
                        .ok_or_else(|| {
                            ChangeFailure::Refused(ChangeConflict::UnknownField {
                                kind: "account",
                                field: other.to_string(),
                            })
                        })?,
                };
                let sql = format!("UPDATE accounts SET {column} = ?1 WHERE anchor = ?2");
                expect_one(
                    connection.execute(&sql, params![new, account])?,
                    "the account does not exist",
                )?;
                if column == "dn" {
                    connection.execute(
                        "UPDATE accounts SET dn_key = ?1 WHERE anchor = ?2",
                        params![new.as_deref().map(normalize_dn), account],
                    )?;
                }
            }
            Ok(())
        }
        Action::Deactivate | Action::Reactivate => {
            let status = if change.action == Action::Deactivate {
                AccountStatus::Deactivated
            } else {
                AccountStatus::Active
            };
            let rows = connection.execute(
                "UPDATE accounts SET status = ?1 WHERE anchor = ?2 AND source IS NOT NULL",
                params![status.name(), account],
            )?;
            expect_one(rows, "the managed account does not exist")
        }
        Action::Remove => {
            let rows = connection.execute(
                "DELETE FROM accounts WHERE anchor = ?1 AND source IS NOT NULL",
                params![account],
            )?;
            expect_one(rows, "the managed account does not exist")
        }
    }
}

/// Adds, updates or removes a managed registration row (a registration is never
/// deactivated).
fn apply_registration_change(connection: &Database, change: &Change) -> Result<(), ChangeFailure> {
    let account = required(change.account.as_ref(), "account")?;
    let protocol = required(change.protocol.as_ref(), "protocol")?;
    let im_name = required(change.im_name.as_ref(), "IM name")?;
    let key = change.name_key();
    let key = key.as_ref();
    match change.action {
        Action::Add => {
            let mapping = required(change.mapping.as_ref(), "mapping")?;
            let rows = connection.execute("INSERT INTO registrations (protocol, im_name_key, im_name, account, source, owner) \
                 VALUES (?1, ?2, ?3, ?4, 'ldap', ?5) ON CONFLICT DO NOTHING",
                params![protocol, key, im_name, account, mapping],
            )?;
            expect_one(rows, "the name is already registered")
        }
        Action::Remove => {
            let rows = connection.execute("DELETE FROM registrations WHERE protocol = ?1 AND im_name_key = ?2 AND account = ?3 AND owner IS NOT NULL",
                params![protocol, key, account],
            )?;
            expect_one(
                rows,
                "no managed registration of that name for that account",
            )
        }
        Action::Update => {
            for (field, (_, new)) in change.fields().into_iter().flatten() {
                let column = match field.as_str() {
                    "im_name" => "im_name",
                    "mapping" => "owner",
                    other => {
                        return Err(ChangeFailure::Refused(ChangeConflict::UnknownField {
                            kind: "registration",
                            field: other.to_string(),
                        }))
                    }
                };
                let sql = format!(
                    "UPDATE registrations SET {column} = ?1 WHERE protocol = ?2 AND im_name_key = ?3 AND account = ?4 AND owner IS NOT NULL"
                );
                expect_one(
                    connection.execute(&sql, params![new, protocol, key, account])?,
                    "no managed registration of that name for that account",
                )?;
            }
            Ok(())
        }
        Action::Deactivate | Action::Reactivate => Err(ChangeFailure::Refused(
            ChangeConflict::CannotDeactivate("registrations"),
        )),
    }
}

/// Adds, updates or removes a managed group row. Unmanaged groups are never written.
fn apply_group_change(connection: &Database, change: &Change) -> Result<(), ChangeFailure> {
    let group = required(change.group.as_ref(), "group")?;
    match change.action {
        Action::Add => {
            let rule = required(change.group_rule(), "group rule")?;
            let kind = change
                .group_kind()
                .ok_or_else(|| ChangeFailure::Refused(ChangeConflict::Missing("group kind")))?;
            let rows = connection.execute(
                "INSERT INTO groups (name, kind, source, owner) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO NOTHING",
                params![group, kind.name(), change.source(), rule],
            )?;
            expect_one(rows, "the group already exists")
        }
        Action::Update => {
            for (field, (_, new)) in change.fields().into_iter().flatten() {
                let column = match field.as_str() {
                    "group_rule" => "owner",
                    "kind" => "kind",
                    "source" => "source",
                    other => {
                        return Err(ChangeFailure::Refused(ChangeConflict::UnknownField {
                            kind: "group",
                            field: other.to_string(),
                        }))
                    }
                };
                if new.is_none() && column != "source" {
                    return Err(ChangeFailure::Refused(ChangeConflict::Clears(
                        field.to_string(),
                    )));
                }
                let sql = format!(
                    "UPDATE groups SET {column} = ?1 WHERE name = ?2 AND owner IS NOT NULL"
                );
                expect_one(
                    connection.execute(&sql, params![new, group])?,
                    "the managed group does not exist",
                )?;
            }
            Ok(())
        }
        Action::Remove => {
            let members: i64 = connection.query_row(
                "SELECT COUNT(*) FROM group_members WHERE group_name = ?1",
                params![group],
                |row| row.get(0),
            )?;
            if members > 0 {
                return Err(ChangeFailure::Refused(ChangeConflict::GroupHasMembers(
                    members,
                )));
            }
            let rows = connection.execute(
                "DELETE FROM groups WHERE name = ?1 AND owner IS NOT NULL",
                params![group],
            )?;
            expect_one(rows, "the managed group does not exist")
        }
        Action::Deactivate | Action::Reactivate => Err(ChangeFailure::Refused(
            ChangeConflict::CannotDeactivate("groups"),
        )),
    }
}

/// Adds or removes a member of a managed group.
fn apply_member_change(connection: &Database, change: &Change) -> Result<(), ChangeFailure> {
    let group = required(change.group.as_ref(), "group")?;
    let member = required(change.member.as_ref(), "member")?;
    let managed: Option<bool> = connection
        .query_row(
            "SELECT owner IS NOT NULL FROM groups WHERE name = ?1",
            params![group],
            |row| row.get(0),
        )
        .optional()?;
    if managed != Some(true) {
        return Err(ChangeFailure::Refused(ChangeConflict::UnexpectedRow(
            "the managed group does not exist",
        )));
    }
    match change.action {
        Action::Add => {
            let rows = connection.execute("INSERT INTO group_members (group_name, member) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![group, member],
            )?;
            expect_one(rows, "the account is already a member")
        }
        Action::Remove => {
            let rows = connection.execute(
                "DELETE FROM group_members WHERE group_name = ?1 AND member = ?2",
                params![group, member],
            )?;
            expect_one(rows, "the account is not a member")
        }
        Action::Update | Action::Deactivate | Action::Reactivate => {
            Err(ChangeFailure::Refused(ChangeConflict::MembershipUpdate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each refusal prints the words the store's conflict line has always carried.
    #[test]
    fn each_conflict_says_what_is_not_as_the_plan_expects() {
        let cases = [
            (
                ChangeConflict::Missing("IM name"),
                "the plan gives no IM name",
            ),
            (
                ChangeConflict::UnexpectedRow("the account already exists"),
                "the account already exists",
            ),
            (
                ChangeConflict::UnknownField {
                    kind: "account",
                    field: "shoe".to_string(),
                },
                "unknown account field \"shoe\"",
            ),
            (
                ChangeConflict::Clears("kind".to_string()),
                "the plan clears kind",
            ),
            (
                ChangeConflict::GroupHasMembers(3),
                "the group still has 3 member(s)",
            ),
            (
                ChangeConflict::CannotDeactivate("groups"),
                "groups cannot be deactivated",
            ),
            (
                ChangeConflict::MembershipUpdate,
                "memberships can only be added or removed",
            ),
        ];
        for (conflict, message) in cases {
            assert_eq!(conflict.to_string(), message);
        }
    }
}
