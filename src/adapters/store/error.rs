//! Why the store refused or failed: [`StoreError`], and the one mapping of a database
//! error to it ("locked" when another writer holds the store past [`LOCK_WAIT`]; a value
//! no registrar writes, [`UnreadableValue`], when a row reader found one).

use std::time::Duration;

use super::change::ChangeConflict;
use super::database::SqlError;
use super::location::StoreLocation;

/// How long a writer waits for another one to finish before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{store}: {source}")]
    Database {
        store: StoreLocation,
        source: SqlError,
    },
    /// The store cannot be reached at all (a PostgreSQL server down, refusing, or
    /// refusing this login): the message names the server and the URL.
    #[error(transparent)]
    Unreachable(#[from] crate::adapters::postgres::PostgresConnectError),
    #[error(
        "{store} is locked by another apply or registration; waited {}s, try again when it has finished",
        LOCK_WAIT.as_secs()
    )]
    Locked { store: StoreLocation },
    /// A leading controller's session no longer holds the leader lock (`leadership.rs`).
    #[error(
        "{store}: this controller no longer holds the lead (its session lost the leader lock); nothing was applied"
    )]
    LeadLost { store: StoreLocation },
    #[error(
        "saved plan is stale: it was made at state serial {planned}, the store is at serial {actual}; run plan again"
    )]
    StalePlan { planned: i64, actual: i64 },
    #[error("{store}: cannot apply {change}: {problem}; nothing was applied")]
    Conflict {
        store: StoreLocation,
        change: String,
        #[source]
        problem: ChangeConflict,
    },
    #[error("{protocol} name {im_name:?} is already registered to {account} ({held_by}); nothing was recorded")]
    AlreadyRegistered {
        protocol: String,
        im_name: String,
        account: String,
        held_by: String,
    },
    /// The account holds as many registrations of this source as it may
    /// (`self_service.max_per_account`).
    #[error("{account} already holds {limit} {kind} registrations, the most it may; nothing was recorded")]
    RegistrationLimit {
        account: String,
        kind: &'static str,
        limit: u32,
    },
    /// The registration to remove is not one the account registered itself (or is gone).
    #[error(
        "{protocol} name {im_name:?} is not a self registration of {account}; nothing was removed"
    )]
    NotOwnRegistration {
        protocol: String,
        im_name: String,
        account: String,
    },
    /// A snapshot write does not land: the kept snapshot of `source` is not the one it was
    /// computed from (another apply came between).
    #[error(
        "the kept snapshot of source {source_name} changed since this apply read it; run \
         again; nothing was applied"
    )]
    StaleSnapshot { source_name: String },
    #[error(
        "{store}: cannot migrate to schema {version}: {problem}; that migration was not applied"
    )]
    Migration {
        store: StoreLocation,
        version: usize,
        problem: String,
    },
    /// A row holds a value no registrar writes (a hand-edited store, or one whose CHECK
    /// constraints were dropped): refused rather than read as some default.
    #[error("{store}: {value}")]
    Unreadable {
        store: StoreLocation,
        /// Boxed: a value names its row, and `StoreError` stays small.
        #[source]
        value: Box<UnreadableValue>,
    },
    #[error("{store} was written by a newer registrar (schema {found}, this build knows {known})")]
    TooNew {
        store: StoreLocation,
        found: usize,
        known: usize,
    },
}

/// A value in a store row that no registrar writes, and where it is: e.g. `table accounts,
/// anchor "u1": status "frozen" is none of active, deactivated`.
#[derive(Debug, thiserror::Error)]
#[error("table {table}, {row}: {column} {found} {problem}")]
pub struct UnreadableValue {
    pub table: &'static str,
    /// The row's key as the user would look it up, e.g. `anchor "u1"`.
    pub row: String,
    pub column: &'static str,
    /// The value as the row holds it: a quoted text, a number, or a blob as `x'…'`.
    pub found: String,
    pub problem: ValueProblem,
}

/// What is wrong with an [`UnreadableValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueProblem {
    /// Not one of the names (or numbers) the column may hold.
    NoneOf(Vec<String>),
    NotAnInteger,
    Negative,
    /// A reference to a row the named table does not hold.
    NamesNoRowOf(&'static str),
    /// A blob of another length than the column's values have.
    Length {
        found: usize,
        expected: usize,
    },
    /// A key read in key order that does not come after the one read before it: the
    /// table does not order its keys as bytes (a hand-changed collation).
    OutOfKeyOrder,
}

impl std::fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueProblem::NoneOf(allowed) => write!(f, "is none of {}", allowed.join(", ")),
            ValueProblem::NotAnInteger => f.write_str("is not an integer"),
            ValueProblem::Negative => f.write_str("is negative"),
            ValueProblem::NamesNoRowOf(table) => write!(f, "names no row of table {table}"),
            ValueProblem::Length { found, expected } => {
                write!(f, "is {found} bytes long, not {expected}")
            }
            ValueProblem::OutOfKeyOrder => {
                f.write_str("comes out of key order: keys must sort as bytes (collation \"C\")")
            }
        }
    }
}

impl UnreadableValue {
    /// The value as a database error, so a row reader (which returns a `SqlResult`) can
    /// refuse it: it travels as a column conversion failure, and [`store_error`] turns it
    /// back into [`StoreError::Unreadable`].
    pub(super) fn into_sql(self, column: usize) -> SqlError {
        SqlError::conversion(column, self)
    }
}

/// A text as an [`UnreadableValue`] shows it: quoted, as Rust quotes a string.
pub(super) fn quoted(text: &str) -> String {
    format!("{text:?}")
}

/// A blob as an [`UnreadableValue`] shows it: a SQL blob literal, `x'00ff'`.
pub(super) fn blob_literal(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("x'{hex}'")
}

/// A database error as the user should read it: "locked" when another writer holds the
/// store past [`LOCK_WAIT`], the value a row reader refused
/// ([`UnreadableValue::into_sql`]), the database's message with the store otherwise.
pub(super) fn store_error(store: &StoreLocation, source: SqlError) -> StoreError {
    let source = match source {
        SqlError::Conversion { column, value } => match value.downcast::<UnreadableValue>() {
            Ok(value) => {
                return StoreError::Unreadable {
                    store: store.clone(),
                    value,
                }
            }
            Err(value) => SqlError::Conversion { column, value },
        },
        other => other,
    };
    if source.is_busy() {
        StoreError::Locked {
            store: store.clone(),
        }
    } else {
        StoreError::Database {
            store: store.clone(),
            source,
        }
    }
}
