//! Opening a connection to the store's PostgreSQL from a parsed [`PostgresUrl`]: the
//! password found as libpq finds it, TLS as `sslmode` asks, a connect timeout (10 s unless
//! the URL says) and TCP keepalives so that a dead peer is noticed.
//!
//! The `postgres::Config` is built field by field: the raw URL never reaches the driver's
//! own parser, which knows no `verify-ca` or `verify-full`. Every failure is one line that
//! names the server and the redacted URL and says what went wrong (refused, no answer,
//! authentication, TLS, no such database); none holds a password. Warnings are collected
//! for the caller to print; this module prints nothing.

use std::path::PathBuf;
use std::time::Duration;

use super::password::{find_password, PasswordOrigin, PasswordSources, PostgresWarning};
use super::tls::{tls_plan, PostgresTlsError, TlsPlan};
use super::url::{PostgresHost, PostgresUrl};

/// How long a connection attempt waits for the server unless the URL's `connect_timeout`
/// says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle time before the first TCP keepalive probe, the time between probes, and how many
/// unanswered probes end the connection: a dead peer is noticed within about a minute.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

/// Why no connection was made. One line each, naming the server (`host:port`) and the
/// redacted URL; never a password.
#[derive(Debug, thiserror::Error)]
pub enum PostgresConnectError {
    #[error("cannot connect to PostgreSQL at {server}: connection refused ({url})")]
    Refused { server: String, url: String },
    #[error("cannot connect to PostgreSQL at {server}: no answer within {seconds} s ({url})")]
    Timeout {
        server: String,
        seconds: u64,
        url: String,
    },
    #[error("cannot connect to PostgreSQL at {server}: {reason} ({url})")]
    Unreachable {
        server: String,
        reason: String,
        url: String,
    },
    #[error("PostgreSQL at {server} refused role \"{user}\": {reason}; {origin} ({url})")]
    AuthenticationFailed {
        server: String,
        user: String,
        reason: String,
        origin: String,
        url: String,
    },
    #[error(
        "PostgreSQL at {server} asks a password for role \"{user}\": none in PGPASSWORD or \
         {passfile} ({url})"
    )]
    NoPassword {
        server: String,
        user: String,
        passfile: String,
        url: String,
    },
    #[error("PostgreSQL at {server} has no database \"{database}\" ({url})")]
    UnknownDatabase {
        server: String,
        database: String,
        url: String,
    },
    #[error("TLS with PostgreSQL at {server} failed: {reason} ({url})")]
    Tls {
        server: String,
        reason: String,
        url: String,
    },
    #[error("cannot set up TLS for PostgreSQL at {server}: {source} ({url})")]
    TlsSetup {
        server: String,
        url: String,
        source: PostgresTlsError,
    },
    #[error("PostgreSQL at {server} refused the connection: {reason} ({url})")]
    Refusal {
        server: String,
        reason: String,
        url: String,
    },
}

impl PostgresUrl {
    /// A connection to this URL's database, with the password from `sources` (or the URL).
    /// Warnings (a password in the URL, a password file ignored) are dropped: a caller
    /// that prints them uses [`PostgresUrl::connect_collecting_warnings`].
    pub fn connect(
        &self,
        sources: &PasswordSources,
    ) -> Result<postgres::Client, PostgresConnectError> {
        self.connect_collecting_warnings(sources, &mut Vec::new())
    }

    /// [`PostgresUrl::connect`], pushing onto `warnings` what the user should hear about,
    /// whether or not the connection succeeds.
    pub fn connect_collecting_warnings(
        &self,
        sources: &PasswordSources,
        warnings: &mut Vec<PostgresWarning>,
    ) -> Result<postgres::Client, PostgresConnectError> {
        let home = std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(PathBuf::from);
        self.connect_with_home(sources, home.as_deref(), warnings)
    }

    /// The connection, with `home` for the default root certificate file.
    pub fn connect_with_home(
        &self,
        sources: &PasswordSources,
        home: Option<&std::path::Path>,
        warnings: &mut Vec<PostgresWarning>,
    ) -> Result<postgres::Client, PostgresConnectError> {
        let (password, found_warnings) = find_password(self, sources);
        warnings.extend(found_warnings);
        let timeout = self.connect_timeout().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let mut config = postgres::Config::new();
        match self.host() {
            PostgresHost::Name(name) => config.host(name),
            PostgresHost::Ip(ip) => config.host(&ip.to_string()),
        };
        config
            .port(self.port())
            .user(self.user())
            .dbname(self.database())
            .application_name(self.application_name().unwrap_or("registrar"))
            .connect_timeout(timeout)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        if let Some(password) = &password {
            config.password(password.secret());
        }
        let plan = tls_plan(self, home).map_err(|source| PostgresConnectError::TlsSetup {
            server: self.host_and_port(),
            url: self.to_string(),
            source,
        })?;
        let result = match plan {
            TlsPlan::Plain => {
                config.ssl_mode(postgres::config::SslMode::Disable);
                connect_within(config, postgres::NoTls, timeout)
            }
            TlsPlan::Tls {
                config: tls_config,
                required,
                ..
            } => {
                config.ssl_mode(if required {
                    postgres::config::SslMode::Require
                } else {
                    postgres::config::SslMode::Prefer
                });
                connect_within(
                    config,
                    tokio_postgres_rustls::MakeRustlsConnect::new(*tls_config),
                    timeout,
                )
            }
        };
        let origin = match password.as_ref().map(|p| p.origin()) {
            None => "no password given".to_string(),
            Some(PasswordOrigin::Url) => "password from the URL".to_string(),
            Some(PasswordOrigin::Pgpassword) => "password from PGPASSWORD".to_string(),
            Some(PasswordOrigin::Passfile(path)) => {
                format!("password from the password file {}", path.display())
            }
        };
        match result {
            Attempt::Done(result) => {
                (*result).map_err(|error| self.classify(&error, timeout, &origin, sources))
            }
            Attempt::TimedOut => Err(PostgresConnectError::Timeout {
                server: self.host_and_port(),
                seconds: timeout.as_secs(),
                url: self.to_string(),
            }),
            Attempt::Failed(reason) => Err(PostgresConnectError::Unreachable {
                server: self.host_and_port(),
                reason,
                url: self.to_string(),
            }),
        }
    }

    /// The one-line error for a failed connection attempt.
    fn classify(
        &self,
        error: &postgres::Error,
        timeout: Duration,
        password_origin: &str,
        sources: &PasswordSources,
    ) -> PostgresConnectError {
        let server = self.host_and_port();
        let url = self.to_string();
        if let Some(db) = error.as_db_error() {
            let reason = one_line(db.message());
            let code = db.code();
            return if *code == postgres::error::SqlState::INVALID_PASSWORD
                || *code == postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                PostgresConnectError::AuthenticationFailed {
                    server,
                    user: self.user().to_string(),
                    reason,
                    origin: password_origin.to_string(),
                    url,
                }
            } else if *code == postgres::error::SqlState::INVALID_CATALOG_NAME {
                PostgresConnectError::UnknownDatabase {
                    server,
                    database: self.database().to_string(),
                    url,
                }
            } else {
                PostgresConnectError::Refusal {
                    server,
                    reason: format!("{} ({})", reason, code.code()),
                    url,
                }
            };
        }
        let text = error.to_string();
        let cause = std::error::Error::source(error)
            .map(|source| one_line(&source.to_string()))
            .unwrap_or_else(|| one_line(&text));
        if text.starts_with("invalid configuration") && cause.contains("password missing") {
            return PostgresConnectError::NoPassword {
                server,
                user: self.user().to_string(),
                passfile: sources
                    .passfile
                    .as_ref()
                    .map(|path| format!("the password file {}", path.display()))
                    .unwrap_or_else(|| {
                        "a password file (neither PGPASSFILE nor HOME is set)".to_string()
                    }),
                url,
            };
        }
        if text.starts_with("error performing TLS handshake") {
            return PostgresConnectError::Tls {
                server,
                reason: cause,
                url,
            };
        }
        if text.starts_with("timeout waiting for server") {
            return PostgresConnectError::Timeout {
                server,
                seconds: timeout.as_secs(),
                url,
            };
        }
        if text.starts_with("authentication error") {
            return PostgresConnectError::AuthenticationFailed {
                server,
                user: self.user().to_string(),
                reason: cause,
                origin: password_origin.to_string(),
                url,
            };
        }
        match io_kind(error) {
            Some(std::io::ErrorKind::ConnectionRefused) => {
                PostgresConnectError::Refused { server, url }
            }
            Some(std::io::ErrorKind::TimedOut) => PostgresConnectError::Timeout {
                server,
                seconds: timeout.as_secs(),
                url,
            },
            _ => PostgresConnectError::Unreachable {
                server,
                reason: cause,
                url,
            },
        }
    }
}

/// How a connection attempt with a deadline ended.
enum Attempt {
    Done(Box<Result<postgres::Client, postgres::Error>>),
    /// No connection within the deadline (libpq's `connect_timeout` covers the whole
    /// start-up, not only the TCP connect as the driver's does).
    TimedOut,
    /// The attempt could not run (no thread) or ended without a result.
    Failed(String),
}

/// `config.connect(tls)` on a thread of its own, waited for until `deadline`: a server
/// that accepts the TCP connection but never answers the start-up cannot hang the caller.
/// A thread left behind ends when the driver's socket fails (the keepalives notice a dead
/// peer) or the server answers.
fn connect_within<T>(config: postgres::Config, tls: T, deadline: Duration) -> Attempt
where
    T: postgres::tls::MakeTlsConnect<postgres::Socket> + 'static + Send,
    T::TlsConnect: Send,
    T::Stream: Send,
    <T::TlsConnect as postgres::tls::TlsConnect<postgres::Socket>>::Future: Send,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("postgres-connect".to_string())
        .spawn(move || {
            // The receiver is gone only after the deadline: the late result is dropped.
            let _ = sender.send(config.connect(tls));
        });
    if let Err(error) = spawned {
        return Attempt::Failed(format!("cannot start the connecting thread: {error}"));
    }
    match receiver.recv_timeout(deadline) {
        Ok(result) => Attempt::Done(Box::new(result)),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Attempt::TimedOut,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Attempt::Failed("the connection attempt ended without a result".to_string())
        }
    }
}

/// The kind of the first `io::Error` in the error's chain of sources.
fn io_kind(error: &postgres::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = current.source();
    }
    None
}

/// What the server or the TLS library said, made inert for a one-line message (as the
/// directory's values are): whitespace runs as one space, invisible characters escaped,
/// cut after `QUOTE_CHARS` characters.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let printable = registrar_core::quote::printable(&joined);
    match printable
        .char_indices()
        .nth(registrar_core::quote::QUOTE_CHARS)
    {
        Some((cut, _)) => format!("{}…", &printable[..cut]),
        None => printable,
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn what_the_server_says_is_one_inert_line() {
        assert_eq!(one_line("FATAL:\n  no\tway\n"), "FATAL: no way");
        assert_eq!(one_line("bell\u{7}\u{202e}"), "bell\\u{7}\\u{202e}");
        let long = one_line(&"x".repeat(1000));
        assert_eq!(long.chars().count(), registrar_core::quote::QUOTE_CHARS + 1);
        assert!(long.ends_with('…'));
    }
}
