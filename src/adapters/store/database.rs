//! The one SQL connection the store works through, on either backend: [`Database`] is a
//! SQLite connection or a PostgreSQL session, and every other file of the store speaks
//! to it alone, with the same SQL for both wherever the two dialects agree (and they do
//! for every query and change the store makes; only the schema's DDL and the session
//! settings differ, see [`Backend`]).
//!
//! SQL is written as SQLite reads it, with `?1`-style parameters; on PostgreSQL each
//! statement is translated once ([`postgres_placeholders`]: `?N` becomes `$N`) and its
//! prepared statement kept for the session. Parameters are [`Param`]s, values of the four
//! kinds the store keeps (integer, text, bytes, null), and a [`Row`] reads its columns as
//! the Rust types of [`Column`], so no code outside this file names either driver.
//!
//! A write transaction ([`Database::begin_write`]) is the store's one writer at a time on
//! both: SQLite's `BEGIN IMMEDIATE`, PostgreSQL's transaction-scoped advisory lock
//! [`WRITER_LOCK`], each waiting at most [`LOCK_WAIT`](super::LOCK_WAIT) before
//! [`SqlError::is_busy`] says another writer has it.

use registrar_core::ArcStr;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{IsNull, ToSql, Type};

/// Which engine a [`Database`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The key of the transaction-scoped advisory lock every PostgreSQL write transaction
/// takes first: one writer at a time, as SQLite's `BEGIN IMMEDIATE` makes it ("rgst" and
/// "wrtr" in ASCII).
pub(super) const WRITER_LOCK: i64 = 0x7267_7374_7772_7472;

/// An open SQL connection.
pub struct Database {
    connection: Connection,
}

enum Connection {
    Sqlite(rusqlite::Connection),
    /// A session is used by one thread at a time, through `&self` as SQLite's is: the
    /// `RefCell` holds it for one call at a time (no call hands out a borrow that
    /// outlives it).
    Postgres(Box<RefCell<PostgresSession>>),
}

struct PostgresSession {
    client: postgres::Client,
    /// Prepared statements by their SQLite text.
    statements: HashMap<String, postgres::Statement>,
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("the query returned no row")]
    NoRow,
    /// A statement was started while the session was still reading another's rows
    /// (a row reader that queried the store): a bug, refused rather than deadlocked.
    #[error("the PostgreSQL session is still reading the rows of another query")]
    SessionInUse,
    /// A column held a value of another type than the reader asked for; or a row reader
    /// refused its value (`value`, e.g. an [`UnreadableValue`](super::UnreadableValue)).
    #[error("column {column}: {value}")]
    Conversion {
        column: usize,
        value: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type SqlResult<T> = Result<T, SqlError>;

impl SqlError {
    /// Another writer holds the store past the lock wait (or a deadlock was broken).
    pub fn is_busy(&self) -> bool {
        match self {
            SqlError::Sqlite(error) => matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            SqlError::Postgres(error) => matches!(
                error.code(),
                Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE
            ),
            _ => false,
        }
    }

    /// A constraint (key, uniqueness, reference, check) refused the statement.
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            SqlError::Sqlite(error) => {
                error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
            }
            // Class 23: integrity constraint violation.
            SqlError::Postgres(error) => error.code().is_some_and(|c| c.code().starts_with("23")),
            _ => false,
        }
    }

    /// A value a row reader refused, as a column conversion carries it.
    pub fn conversion(
        column: usize,
        value: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SqlError::Conversion {
            column,
            value: Box::new(value),
        }
    }
}

/// The session, for one call: refused (not a panic) while another call holds it.
fn session(cell: &RefCell<PostgresSession>) -> SqlResult<std::cell::RefMut<'_, PostgresSession>> {
    cell.try_borrow_mut().map_err(|_| SqlError::SessionInUse)
}

/// PostgreSQL's own words: the server's message (with its detail) rather than the
/// driver's bare "db error".
fn postgres_message(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => error.to_string(),
    }
}

/// `Ok(None)` for a query that found no row, as rusqlite's `optional` reads.
pub trait OptionalRow<T> {
    fn optional(self) -> SqlResult<Option<T>>;
}

impl<T> OptionalRow<T> for SqlResult<T> {
    fn optional(self) -> SqlResult<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(SqlError::NoRow) | Err(SqlError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }
}

/// One parameter of a statement: a value of a kind the store keeps, borrowed or owned.
#[derive(Debug, Clone)]
pub enum Param<'a> {
    Null,
    Integer(i64),
    Text(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
}

/// A value bound by reference, as SQL parameters are (`params![a, b]` reads `&a`, `&b`).
pub trait ToParam {
    fn to_param(&self) -> Param<'_>;
}

macro_rules! integer_params {
    ($($integer:ty),*) => {$(
        impl ToParam for $integer {
            fn to_param(&self) -> Param<'_> {
                Param::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_params!(i64, i32, u32, u8, usize, u64);

impl ToParam for bool {
    fn to_param(&self) -> Param<'_> {
        Param::Integer(i64::from(*self))
    }
}
impl ToParam for str {
    fn to_param(&self) -> Param<'_> {
        Param::Text(Cow::Borrowed(self))
    }
}
impl ToParam for String {
    fn to_param(&self) -> Param<'_> {
        Param::Text(Cow::Borrowed(self))
    }
}
impl ToParam for ArcStr {
    fn to_param(&self) -> Param<'_> {
        Param::Text(Cow::Borrowed(self))
    }
}
impl ToParam for Cow<'_, str> {
    fn to_param(&self) -> Param<'_> {
        Param::Text(Cow::Borrowed(self))
    }
}
impl ToParam for [u8] {
    fn to_param(&self) -> Param<'_> {
        Param::Bytes(Cow::Borrowed(self))
    }
}
impl ToParam for Vec<u8> {
    fn to_param(&self) -> Param<'_> {
        Param::Bytes(Cow::Borrowed(self))
    }
}
impl<const N: usize> ToParam for [u8; N] {
    fn to_param(&self) -> Param<'_> {
        Param::Bytes(Cow::Borrowed(self))
    }
}
impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Param<'_> {
        (**self).to_param()
    }
}
impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> Param<'_> {
        self.as_ref().map_or(Param::Null, ToParam::to_param)
    }
}
impl ToParam for Param<'_> {
    fn to_param(&self) -> Param<'_> {
        self.clone()
    }
}

impl From<String> for Param<'_> {
    fn from(value: String) -> Self {
        Param::Text(Cow::Owned(value))
    }
}
impl From<Vec<u8>> for Param<'_> {
    fn from(value: Vec<u8>) -> Self {
        Param::Bytes(Cow::Owned(value))
    }
}
impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Integer(value)
    }
}
impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Integer(i64::from(value))
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(Cow::Borrowed(value))
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(Cow::Borrowed(value))
    }
}
impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(value: &'a [u8]) -> Self {
        Param::Bytes(Cow::Borrowed(value))
    }
}
impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Param::Bytes(Cow::Borrowed(value))
    }
}
impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Param::Null, Into::into)
    }
}

/// The parameters of one statement, each bound by reference as a [`Param`].
macro_rules! params {
    () => { &[] as &[$crate::adapters::store::database::Param<'_>] };
    ($($value:expr),+ $(,)?) => {
        &[$($crate::adapters::store::database::ToParam::to_param(&$value)),+]
            as &[$crate::adapters::store::database::Param<'_>]
    };
}
pub(crate) use params;

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Param::Null => ValueRef::Null,
            Param::Integer(value) => ValueRef::Integer(*value),
            Param::Text(text) => ValueRef::Text(text.as_bytes()),
            Param::Bytes(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            &Param::Integer(value) => match *ty {
                Type::INT2 => i16::try_from(value)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(value)?.to_sql(ty, out),
                Type::BOOL => (value != 0).to_sql(ty, out),
                _ => value.to_sql(ty, out),
            },
            Param::Text(text) => text.as_ref().to_sql(ty, out),
            Param::Bytes(bytes) => bytes.as_ref().to_sql(ty, out),
        }
    }

    /// Any type: the value's own conversion refuses one it cannot be.
    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// The kind of value a column of the store holds, as a table copy reads and hashes it
/// without naming a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Integer,
    Text,
    Bytes,
}

/// A Rust type a column reads as.
pub trait Column: Sized {
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self, String>;
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, String>;
}

fn postgres_integer(row: &postgres::Row, index: usize) -> Result<Option<i64>, String> {
    let column = &row.columns()[index];
    let read = match *column.type_() {
        Type::INT8 => row.try_get::<_, Option<i64>>(index),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map(|v| v.map(i64::from)),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map(|v| v.map(i64::from)),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map(|v| v.map(i64::from)),
        ref other => return Err(format!("{other} is not an integer")),
    };
    read.map_err(|e| e.to_string())
}

impl Column for i64 {
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self, String> {
        value.as_i64().map_err(|e| e.to_string())
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, String> {
        postgres_integer(row, index)?.ok_or_else(|| "NULL is not an integer".to_string())
    }
}

impl Column for usize {
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self, String> {
        usize::try_from(i64::from_sqlite(value)?).map_err(|e| e.to_string())
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, String> {
        usize::try_from(i64::from_postgres(row, index)?).map_err(|e| e.to_string())
    }
}

impl Column for u64 {
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self, String> {
        u64::try_from(i64::from_sqlite(value)?).map_err(|e| e.to_string())
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, String> {
        u64::try_from(i64::from_postgres(row, index)?).map_err(|e| e.to_string())
    }
}

impl Column for bool {
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self, String> {
        Ok(i64::from_sqlite(value)? != 0)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, String> {
        Ok(i64::from_postgres(row, index)? != 0)
    }
}

impl Column for String {
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self, String> {
        value.as_str().map(str::to_owned).map_err(|e| e.to_string())
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, String> {
        row.try_get::<_, String>(index).map_err(|e| e.to_string())
    }
}

impl Column for Vec<u8> {
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self, String> {
        match value {
            rusqlite::types::ValueRef::Blob(bytes) | rusqlite::types::ValueRef::Text(bytes) => {
                Ok(bytes.to_vec())
            }
            other => Err(format!("{} is not bytes", other.data_type())),
        }
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, String> {
        match *row.columns()[index].type_() {
            Type::BYTEA => row.try_get::<_, Vec<u8>>(index),
            _ => row.try_get::<_, String>(index).map(String::into_bytes),
        }
        .map_err(|e| e.to_string())
    }
}

impl Column for ArcStr {
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self, String> {
        value.as_str().map(Into::into).map_err(|e| e.to_string())
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, String> {
        row.try_get::<_, &str>(index)
            .map(Into::into)
            .map_err(|e| e.to_string())
    }
}

impl<T: Column> Column for Option<T> {
    fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Result<Self, String> {
        match value {
            rusqlite::types::ValueRef::Null => Ok(None),
            other => T::from_sqlite(other).map(Some),
        }
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, String> {
        let is_null = row
            .try_get::<_, Option<RawValue>>(index)
            .map_err(|e| e.to_string())?
            .is_none();
        if is_null {
            Ok(None)
        } else {
            T::from_postgres(row, index).map(Some)
        }
    }
}

/// Any PostgreSQL value, unread: to tell NULL from a value of any type.
struct RawValue;

impl<'a> postgres::types::FromSql<'a> for RawValue {
    fn from_sql(_: &Type, _: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// One row of a result, read by column position.
pub struct Row<'r> {
    row: RowOf<'r>,
}

enum RowOf<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ColumnProblem(String);

impl Row<'_> {
    /// Column `index` as a `T`.
    pub fn get<T: Column>(&self, index: usize) -> SqlResult<T> {
        let read = match &self.row {
            RowOf::Sqlite(row) => T::from_sqlite(row.get_ref(index)?),
            RowOf::Postgres(row) => T::from_postgres(row, index),
        };
        read.map_err(|problem| SqlError::conversion(index, ColumnProblem(problem)))
    }

    /// Column `index` as text, borrowed from the row.
    pub fn get_str(&self, index: usize) -> SqlResult<&str> {
        self.get_optional_str(index)?.ok_or_else(|| {
            SqlError::conversion(index, ColumnProblem("NULL is not text".to_string()))
        })
    }

    /// Column `index` as bytes, borrowed from the row.
    pub fn get_bytes(&self, index: usize) -> SqlResult<&[u8]> {
        let read = match &self.row {
            RowOf::Sqlite(row) => row.get_ref(index)?.as_bytes().map_err(|e| e.to_string()),
            RowOf::Postgres(row) => row.try_get::<_, &[u8]>(index).map_err(|e| e.to_string()),
        };
        read.map_err(|problem| SqlError::conversion(index, ColumnProblem(problem)))
    }

    /// Column `index` as text or NULL, borrowed from the row.
    pub fn get_optional_str(&self, index: usize) -> SqlResult<Option<&str>> {
        match &self.row {
            RowOf::Sqlite(row) => Ok(row
                .get_ref(index)?
                .as_str_or_null()
                .map_err(|e| SqlError::conversion(index, ColumnProblem(e.to_string())))?),
            RowOf::Postgres(row) => row
                .try_get::<_, Option<&str>>(index)
                .map_err(|e| SqlError::conversion(index, ColumnProblem(e.to_string()))),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({:?})", self.backend())
    }
}

impl Database {
    pub fn sqlite(connection: rusqlite::Connection) -> Self {
        Database {
            connection: Connection::Sqlite(connection),
        }
    }

    pub fn postgres(client: postgres::Client) -> Self {
        Database {
            connection: Connection::Postgres(Box::new(RefCell::new(PostgresSession {
                client,
                statements: HashMap::new(),
            }))),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.connection {
            Connection::Sqlite(_) => Backend::Sqlite,
            Connection::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs `sql`, any number of statements without parameters.
    pub fn execute_batch(&self, sql: &str) -> SqlResult<()> {
        match &self.connection {
            Connection::Sqlite(connection) => Ok(connection.execute_batch(sql)?),
            Connection::Postgres(cell) => Ok(session(cell)?.client.batch_execute(sql)?),
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Param<'_>]) -> SqlResult<usize> {
        self.prepare(sql)?.execute(params)
    }

    /// The first row of one query, read by `read`; [`SqlError::NoRow`] if it has none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        read: impl FnOnce(&Row<'_>) -> SqlResult<T>,
    ) -> SqlResult<T> {
        self.prepare(sql)?.query_row(params, read)
    }

    /// Every row of one query, each read by `read`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        read: impl FnMut(&Row<'_>) -> SqlResult<T>,
    ) -> SqlResult<Vec<T>> {
        self.prepare(sql)?.query_map(params, read)
    }

    /// A statement, prepared once per connection and kept.
    pub fn prepare(&self, sql: &str) -> SqlResult<Statement<'_>> {
        match &self.connection {
            Connection::Sqlite(connection) => Ok(Statement {
                statement: StatementOf::Sqlite(connection.prepare_cached(sql)?),
            }),
            Connection::Postgres(cell) => {
                let mut session = session(cell)?;
                let statement = match session.statements.get(sql) {
                    Some(statement) => statement.clone(),
                    None => {
                        let statement = session.client.prepare(&postgres_placeholders(sql))?;
                        session
                            .statements
                            .insert(sql.to_string(), statement.clone());
                        statement
                    }
                };
                Ok(Statement {
                    statement: StatementOf::Postgres {
                        session: cell,
                        statement,
                    },
                })
            }
        }
    }

    /// Begins the transaction of a writer: the only one at a time, waiting for another
    /// at most the busy timeout (SQLite) or `lock_timeout` (PostgreSQL), set when the
    /// store was opened. Rolled back if dropped uncommitted.
    pub fn begin_write(&self) -> SqlResult<Transaction<'_>> {
        match self.backend() {
            Backend::Sqlite => self.execute_batch("BEGIN IMMEDIATE")?,
            Backend::Postgres => {
                self.execute_batch("BEGIN")?;
                let transaction = Transaction {
                    database: self,
                    finished: false,
                };
                self.query_row(
                    &format!("SELECT pg_advisory_xact_lock({WRITER_LOCK})"),
                    params![],
                    |_| Ok(()),
                )?;
                return Ok(transaction);
            }
        }
        Ok(Transaction {
            database: self,
            finished: false,
        })
    }

    /// Begins a transaction that only reads: one consistent view of the store across
    /// its queries, that no writer waits for.
    pub fn begin_read(&self) -> SqlResult<Transaction<'_>> {
        self.execute_batch(match self.backend() {
            Backend::Sqlite => "BEGIN DEFERRED",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        Ok(Transaction {
            database: self,
            finished: false,
        })
    }

    /// Runs `write` in a savepoint: if it fails, what it wrote is undone and the
    /// transaction goes on (on PostgreSQL a failed statement would otherwise abort the
    /// whole transaction; SQLite undoes just the statement, but the savepoint costs it
    /// nothing).
    pub fn savepoint<T>(&self, write: impl FnOnce(&Database) -> SqlResult<T>) -> SqlResult<T> {
        self.execute_batch("SAVEPOINT registrar_statement")?;
        match write(self) {
            Ok(value) => {
                self.execute_batch("RELEASE SAVEPOINT registrar_statement")?;
                Ok(value)
            }
            Err(error) => {
                self.execute_batch(
                    "ROLLBACK TO SAVEPOINT registrar_statement; RELEASE SAVEPOINT registrar_statement",
                )?;
                Err(error)
            }
        }
    }

    /// The types `table` keeps `columns` (a comma-separated list) as, on PostgreSQL.
    fn column_types(&self, table: &str, columns: &str) -> SqlResult<Vec<Type>> {
        // The statement's result columns are the table's, typed as it keeps them.
        match &self
            .prepare(&format!("SELECT {columns} FROM {table} LIMIT 0"))?
            .statement
        {
            StatementOf::Postgres { statement, .. } => Ok(statement
                .columns()
                .iter()
                .map(|c| c.type_().clone())
                .collect()),
            StatementOf::Sqlite(_) => Ok(Vec::new()),
        }
    }

    /// Inserts `rows` rows into `table`'s `columns` with one statement on PostgreSQL,
    /// each column's values sent as one array (`unnest`), then `tail` (an `ON CONFLICT`
    /// clause). With `distinct`, `(key, keep_last)`, one row per key goes in: the last
    /// of the rows with that key, or the first, as SQLite's one multi-row statement
    /// would leave it. `None` on SQLite.
    pub fn insert_arrays<'v>(
        &self,
        table: &str,
        columns: &str,
        rows: usize,
        values: &mut dyn FnMut(usize, &mut Vec<Param<'v>>),
        distinct: Option<(&str, bool)>,
        tail: &str,
    ) -> Option<SqlResult<()>> {
        if self.backend() != Backend::Postgres {
            return None;
        }
        let mut insert = || -> SqlResult<()> {
            let types = self.column_types(table, columns)?;
            let width = types.len();
            let mut all = Vec::with_capacity(rows * width);
            for index in 0..rows {
                values(index, &mut all);
            }
            let arrays: Vec<ColumnArray<'_>> = (0..width)
                .map(|column| {
                    ColumnArray::of(&types[column], all.iter().skip(column).step_by(width))
                })
                .collect::<SqlResult<_>>()?;
            let unnest: Vec<String> = arrays
                .iter()
                .enumerate()
                .map(|(index, array)| format!("${}::{}[]", index + 1, array.element_type()))
                .collect();
            let (select, order) = match distinct {
                Some((key, keep_last)) => (
                    format!("DISTINCT ON ({key}) {columns}"),
                    format!(
                        "ORDER BY {key}, registrar_position {}",
                        if keep_last { "DESC" } else { "ASC" }
                    ),
                ),
                None => (columns.to_string(), String::new()),
            };
            let sql = format!(
                "INSERT INTO {table} ({columns}) SELECT {select} FROM unnest({}) \
                 WITH ORDINALITY AS registrar_rows ({columns}, registrar_position) {order} {tail}",
                unnest.join(", ")
            );
            let Connection::Postgres(cell) = &self.connection else {
                unreachable!("checked: a PostgreSQL session");
            };
            let mut session = session(cell)?;
            let statement = match session.statements.get(&sql) {
                Some(statement) => statement.clone(),
                None => {
                    let statement = session.client.prepare(&sql)?;
                    session.statements.insert(sql, statement.clone());
                    statement
                }
            };
            let refs: Vec<&(dyn ToSql + Sync)> =
                arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
            session.client.execute(&statement, &refs)?;
            Ok(())
        };
        Some(insert())
    }

    /// Copies rows into `table`'s `columns` (a comma-separated list) with PostgreSQL's
    /// `COPY … FROM STDIN (FORMAT binary)`: `values` gives each row's values in column
    /// order, `rows` of them. The column types are the table's own. `None` on SQLite,
    /// which has no `COPY`: the caller inserts instead.
    pub fn copy_in<'v>(
        &self,
        table: &str,
        columns: &str,
        rows: usize,
        values: &mut dyn FnMut(usize, &mut Vec<Param<'v>>),
    ) -> Option<SqlResult<u64>> {
        if self.backend() != Backend::Postgres {
            return None;
        }
        let mut copy = || -> SqlResult<u64> {
            let types = self.column_types(table, columns)?;
            let Connection::Postgres(cell) = &self.connection else {
                unreachable!("checked: a PostgreSQL session");
            };
            let mut session = session(cell)?;
            let mut sink = session.client.copy_in(&format!(
                "COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
            ))?;
            // The binary format, encoded here and sent a chunk at a time: the client's
            // own writer hands the connection every 4 KiB, a wakeup of its thread each.
            let mut chunk = BytesMut::with_capacity(COPY_CHUNK_BYTES + COPY_CHUNK_BYTES / 4);
            chunk.extend_from_slice(COPY_BINARY_HEADER);
            let mut row = Vec::with_capacity(types.len());
            for index in 0..rows {
                row.clear();
                values(index, &mut row);
                encode_copy_row(&row, &types, &mut chunk)?;
                if chunk.len() >= COPY_CHUNK_BYTES {
                    send_copy_chunk(&mut sink, &mut chunk)?;
                }
            }
            chunk.extend_from_slice(&(-1i16).to_be_bytes());
            send_copy_chunk(&mut sink, &mut chunk)?;
            Ok(sink.finish()?)
        };
        Some(copy())
    }
}

/// Bytes of `COPY` data sent to the server at a time.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// The start of `COPY … (FORMAT binary)` data: the signature, no flags, no extension.
const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Appends one row of `COPY` binary data: the field count, then each value's length
/// (-1 for NULL) and bytes, encoded as its column's type.
fn encode_copy_row(row: &[Param<'_>], types: &[Type], out: &mut BytesMut) -> SqlResult<()> {
    let fields = i16::try_from(types.len()).map_err(|e| SqlError::conversion(0, e))?;
    out.extend_from_slice(&fields.to_be_bytes());
    for (index, (value, ty)) in row.iter().zip(types).enumerate() {
        let start = out.len();
        out.extend_from_slice(&0i32.to_be_bytes());
        let length = match value
            .to_sql_checked(ty, out)
            .map_err(|e| SqlError::conversion(index, ColumnProblem(e.to_string())))?
        {
            IsNull::Yes => -1,
            IsNull::No => {
                i32::try_from(out.len() - start - 4).map_err(|e| SqlError::conversion(index, e))?
            }
        };
        out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    }
    Ok(())
}

/// Sends `chunk` whole as `COPY` data, leaving it empty.
fn send_copy_chunk(sink: &mut postgres::CopyInWriter<'_>, chunk: &mut BytesMut) -> SqlResult<()> {
    use std::io::Write;
    // The writer keeps what it is given and sends it at the next flush: one message.
    let sent = sink.write_all(chunk).and_then(|()| sink.flush());
    chunk.clear();
    // The writer wraps the client's error (the server refused the copy, the connection
    // broke) in an I/O error: the client's error comes out as it is.
    sent.map_err(|error| {
        match error
            .into_inner()
            .map(|inner| inner.downcast::<postgres::Error>())
        {
            Some(Ok(error)) => SqlError::from(*error),
            Some(Err(other)) => SqlError::conversion(0, ColumnProblem(other.to_string())),
            None => SqlError::conversion(0, ColumnProblem("the copy stopped".to_string())),
        }
    })
}

/// One column's values of a batch, as the PostgreSQL array `unnest` reads.
#[derive(Debug)]
enum ColumnArray<'p> {
    Integer(Vec<Option<i64>>),
    Text(Vec<Option<&'p str>>),
    Bytes(Vec<Option<&'p [u8]>>),
}

impl<'p> ColumnArray<'p> {
    /// The values of a column of type `ty`.
    fn of(ty: &Type, values: impl Iterator<Item = &'p Param<'p>>) -> SqlResult<Self> {
        let mismatch = |value: &Param<'_>| {
            SqlError::conversion(
                0,
                ColumnProblem(format!("{value:?} is not a value of type {ty}")),
            )
        };
        Ok(match *ty {
            Type::INT2 | Type::INT4 | Type::INT8 | Type::BOOL => ColumnArray::Integer(
                values
                    .map(|value| match value {
                        Param::Null => Ok(None),
                        Param::Integer(n) => Ok(Some(*n)),
                        other => Err(mismatch(other)),
                    })
                    .collect::<SqlResult<_>>()?,
            ),
            Type::BYTEA => ColumnArray::Bytes(
                values
                    .map(|value| match value {
                        Param::Null => Ok(None),
                        Param::Bytes(bytes) => Ok(Some(&**bytes)),
                        other => Err(mismatch(other)),
                    })
                    .collect::<SqlResult<_>>()?,
            ),
            _ => ColumnArray::Text(
                values
                    .map(|value| match value {
                        Param::Null => Ok(None),
                        Param::Text(text) => Ok(Some(&**text)),
                        other => Err(mismatch(other)),
                    })
                    .collect::<SqlResult<_>>()?,
            ),
        })
    }

    /// The array's element type, as SQL names it.
    fn element_type(&self) -> &'static str {
        match self {
            ColumnArray::Integer(_) => "int8",
            ColumnArray::Text(_) => "text",
            ColumnArray::Bytes(_) => "bytea",
        }
    }
}

impl ToSql for ColumnArray<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            ColumnArray::Integer(values) => values.to_sql(ty, out),
            ColumnArray::Text(values) => values.to_sql(ty, out),
            ColumnArray::Bytes(values) => values.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A prepared statement of a [`Database`].
pub struct Statement<'d> {
    statement: StatementOf<'d>,
}

enum StatementOf<'d> {
    Sqlite(rusqlite::CachedStatement<'d>),
    Postgres {
        session: &'d RefCell<PostgresSession>,
        statement: postgres::Statement,
    },
}

fn postgres_params<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Statement<'_> {
    /// Runs it; the number of rows it changed.
    pub fn execute(&mut self, params: &[Param<'_>]) -> SqlResult<usize> {
        match &mut self.statement {
            StatementOf::Sqlite(statement) => {
                Ok(statement.execute(rusqlite::params_from_iter(params.iter()))?)
            }
            StatementOf::Postgres {
                session: cell,
                statement,
            } => {
                let changed = session(cell)?
                    .client
                    .execute(&*statement, &postgres_params(params))?;
                Ok(usize::try_from(changed).unwrap_or(usize::MAX))
            }
        }
    }

    /// The first row, read by `read`; [`SqlError::NoRow`] if there is none.
    pub fn query_row<T>(
        &mut self,
        params: &[Param<'_>],
        read: impl FnOnce(&Row<'_>) -> SqlResult<T>,
    ) -> SqlResult<T> {
        let mut read = Some(read);
        let mut first = None;
        self.for_each_row_until(params, &mut |row| {
            if let Some(read) = read.take() {
                first = Some(read(row)?);
            }
            Ok(false)
        })?;
        first.ok_or(SqlError::NoRow)
    }

    /// Every row, each read by `read`.
    pub fn query_map<T>(
        &mut self,
        params: &[Param<'_>],
        mut read: impl FnMut(&Row<'_>) -> SqlResult<T>,
    ) -> SqlResult<Vec<T>> {
        let mut rows = Vec::new();
        self.for_each_row(params, |row| {
            rows.push(read(row)?);
            Ok(())
        })?;
        Ok(rows)
    }

    /// Every row, handed to `visit` as it arrives (none kept).
    pub fn for_each_row(
        &mut self,
        params: &[Param<'_>],
        mut visit: impl FnMut(&Row<'_>) -> SqlResult<()>,
    ) -> SqlResult<()> {
        self.for_each_row_until(params, &mut |row| visit(row).map(|()| true))
    }

    /// Whether the query has a row.
    pub fn exists(&mut self, params: &[Param<'_>]) -> SqlResult<bool> {
        let mut found = false;
        self.for_each_row_until(params, &mut |_| {
            found = true;
            Ok(false)
        })?;
        Ok(found)
    }

    /// Rows to `visit` while it answers `true`.
    pub(super) fn for_each_row_until(
        &mut self,
        params: &[Param<'_>],
        visit: &mut dyn FnMut(&Row<'_>) -> SqlResult<bool>,
    ) -> SqlResult<()> {
        match &mut self.statement {
            StatementOf::Sqlite(statement) => {
                let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
                while let Some(row) = rows.next()? {
                    if !visit(&Row {
                        row: RowOf::Sqlite(row),
                    })? {
                        break;
                    }
                }
                Ok(())
            }
            StatementOf::Postgres {
                session: cell,
                statement,
            } => {
                let mut session = session(cell)?;
                let mut rows = session
                    .client
                    .query_raw(&*statement, postgres_params(params))?;
                while let Some(row) = rows.next()? {
                    if !visit(&Row {
                        row: RowOf::Postgres(&row),
                    })? {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

/// An open transaction: the [`Database`] it runs on, rolled back if dropped before
/// [`Transaction::commit`].
pub struct Transaction<'d> {
    database: &'d Database,
    finished: bool,
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.database
    }
}

impl Transaction<'_> {
    pub fn commit(mut self) -> SqlResult<()> {
        self.finished = true;
        self.database.execute_batch("COMMIT")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // A failure here leaves nothing to undo: the connection is gone, and with it
            // the transaction.
            let _ = self.database.execute_batch("ROLLBACK");
        }
    }
}

/// `sql` with SQLite's parameters as PostgreSQL's: `?N` becomes `$N`, and a bare `?` the
/// next number (as SQLite numbers it); quoted text, quoted names and comments are left
/// as they are.
pub fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut highest = 0usize;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for (_, inner) in chars.by_ref() {
                    out.push(inner);
                    if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek().is_some_and(|&(_, next)| next == '-') => {
                out.push(c);
                for (_, inner) in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        digits.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let number = if digits.is_empty() {
                    highest + 1
                } else {
                    digits.parse().unwrap_or(highest + 1)
                };
                highest = highest.max(number);
                out.push('$');
                out.push_str(&number.to_string());
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_postgres_numbers_outside_quotes() {
        assert_eq!(
            postgres_placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?2"),
            "SELECT a FROM t WHERE b = $1 AND c = $2"
        );
        assert_eq!(
            postgres_placeholders("INSERT INTO t VALUES (?, ?), (?, ?)"),
            "INSERT INTO t VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            postgres_placeholders("SELECT '?1', \"?\" -- ?\n FROM t WHERE x = ?3 OR y = ?"),
            "SELECT '?1', \"?\" -- ?\n FROM t WHERE x = $3 OR y = $4"
        );
    }

    fn fresh() -> (throwaway_postgres::TestStore, Database) {
        crate::adapters::store::test_support::fresh_database()
    }

    #[test]
    fn rows_read_as_the_column_types() {
        let (_store, database) = fresh();
        database
            .execute_batch(
                "CREATE TABLE t (n BIGINT, s TEXT, b BYTEA)"
                    .replace(
                        "BYTEA",
                        if database.backend() == Backend::Sqlite {
                            "BLOB"
                        } else {
                            "BYTEA"
                        },
                    )
                    .as_str(),
            )
            .unwrap();
        database
            .execute(
                "INSERT INTO t VALUES (?1, ?2, ?3), (NULL, NULL, NULL)",
                params![7i64, "seven", b"\x00\x07"],
            )
            .unwrap();
        let rows = database
            .query_map(
                "SELECT n, s, b FROM t ORDER BY n NULLS LAST",
                params![],
                |row| {
                    Ok((
                        row.get::<Option<i64>>(0)?,
                        row.get_optional_str(1)?.map(str::to_owned),
                        row.get::<Option<Vec<u8>>>(2)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            rows,
            [
                (Some(7), Some("seven".to_string()), Some(vec![0, 7])),
                (None, None, None)
            ]
        );
        // A count is an integer on both, whatever width the server gives it.
        let count: i64 = database
            .query_row("SELECT COUNT(*) FROM t", params![], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 2);
        let missing = database
            .query_row("SELECT n FROM t WHERE n = 8", params![], |row| {
                row.get::<i64>(0)
            })
            .optional()
            .unwrap();
        assert_eq!(missing, None);
        let error = database
            .query_row("SELECT s FROM t WHERE n = 7", params![], |row| {
                row.get::<i64>(0)
            })
            .unwrap_err();
        assert!(
            matches!(error, SqlError::Conversion { column: 0, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_dropped_transaction_is_rolled_back_and_a_committed_one_kept() {
        let (_store, database) = fresh();
        database.execute_batch("CREATE TABLE t (n BIGINT)").unwrap();
        {
            let transaction = database.begin_write().unwrap();
            transaction
                .execute("INSERT INTO t VALUES (1)", params![])
                .unwrap();
        }
        let transaction = database.begin_write().unwrap();
        transaction
            .execute("INSERT INTO t VALUES (2)", params![])
            .unwrap();
        transaction.commit().unwrap();
        let all = database
            .query_map("SELECT n FROM t", params![], |row| row.get::<i64>(0))
            .unwrap();
        assert_eq!(all, [2]);
    }

    #[test]
    fn a_failed_savepoint_undoes_only_its_own_writes() {
        let (_store, database) = fresh();
        database
            .execute_batch("CREATE TABLE t (n BIGINT PRIMARY KEY)")
            .unwrap();
        let transaction = database.begin_write().unwrap();
        transaction
            .execute("INSERT INTO t VALUES (1)", params![])
            .unwrap();
        let refused = transaction.savepoint(|db| {
            db.execute("INSERT INTO t VALUES (2)", params![])?;
            db.execute("INSERT INTO t VALUES (1)", params![])
        });
        assert!(refused.unwrap_err().is_constraint_violation());
        transaction.commit().unwrap();
        let all = database
            .query_map("SELECT n FROM t", params![], |row| row.get::<i64>(0))
            .unwrap();
        assert_eq!(all, [1]);
    }

    #[test]
    fn a_second_writer_waits_then_is_told_the_store_is_busy() {
        let (store, first) = fresh();
        first.execute_batch("CREATE TABLE t (n BIGINT)").unwrap();
        let second = match store.database() {
            Some(database) => Database::postgres(database.client().unwrap()),
            None => {
                let connection = rusqlite::Connection::open(store.file()).unwrap();
                connection
                    .busy_timeout(std::time::Duration::from_millis(200))
                    .unwrap();
                Database::sqlite(connection)
            }
        };
        if second.backend() == Backend::Postgres {
            second.execute_batch("SET lock_timeout = '200ms'").unwrap();
        }
        let holding = first.begin_write().unwrap();
        let error = second.begin_write().map(|_| ()).unwrap_err();
        assert!(error.is_busy(), "{error}");
        holding.commit().unwrap();
        second.begin_write().unwrap().commit().unwrap();
    }
}
