//! The store's PostgreSQL connection, with libpq's conventions: the URL (`url`), where the
//! password comes from (`password`), TLS through rustls for each `sslmode` (`tls`), and
//! opening the connection with one-line errors (`connect`).
//!
//! It must not: print (warnings are returned), show a password in any message, or hand the
//! raw URL to the driver's parser.

pub mod connect;
pub mod password;
pub mod tls;
pub mod url;

pub use connect::{PostgresConnectError, DEFAULT_CONNECT_TIMEOUT};
pub use password::{
    find_password, passfile_lookup, FoundPassword, PasswordOrigin, PasswordSources, PostgresWarning,
};
pub use tls::{PostgresTlsError, TlsPlan, Verification};
pub use url::{is_postgres_url, PostgresHost, PostgresUrl, PostgresUrlError, SslMode};
