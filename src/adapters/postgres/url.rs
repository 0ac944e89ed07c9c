//! `postgres://` and `postgresql://` URLs, read with libpq's conventions: user, host (a
//! name, IPv4 or `[IPv6]`), port (5432), database (the user's name), percent-decoding,
//! and the query parameters `sslmode` (`prefer` by default), `sslrootcert`,
//! `connect_timeout` and `application_name`.
//!
//! A password in the URL is accepted but flagged ([`PostgresUrl::password_in_url`]) so the
//! caller can warn: `ps` shows a command line. The URL's `Display` is redacted and never
//! shows the password; neither do the errors. This module reads text only: no I/O.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// libpq's `sslmode`: how much TLS a connection asks for and what it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, unverified; plain otherwise (libpq's default).
    Prefer,
    /// TLS always; verified like `VerifyCa` only when a root certificate file exists.
    Require,
    /// TLS, the server's chain checked against the root certificates, not its name.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// The mode's name as `sslmode=` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the server is: a host name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresHost {
    Name(String),
    Ip(std::net::IpAddr),
}

impl fmt::Display for PostgresHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostgresHost::Name(name) => f.write_str(name),
            PostgresHost::Ip(std::net::IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            PostgresHost::Ip(std::net::IpAddr::V4(ip)) => write!(f, "{ip}"),
        }
    }
}

/// A parsed `postgres://` URL. Its `Display` is the redacted form
/// `postgres://user@host:port/database`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    user: String,
    password: Option<String>,
    host: PostgresHost,
    port: u16,
    database: String,
    ssl_mode: SslMode,
    ssl_root_cert: Option<PathBuf>,
    connect_timeout: Option<Duration>,
    application_name: Option<String>,
}

/// Why a `postgres://` URL was refused. Never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostgresUrlError {
    #[error("not a PostgreSQL URL: it must start with postgres:// or postgresql://")]
    Scheme,
    #[error("PostgreSQL URL: no user name (postgres://USER@host/database)")]
    NoUser,
    #[error("PostgreSQL URL: no host (postgres://user@HOST/database)")]
    NoHost,
    #[error("PostgreSQL URL: several hosts are not supported ({0:?})")]
    SeveralHosts(String),
    #[error("PostgreSQL URL: bad IPv6 address {0:?}")]
    BadIpv6(String),
    #[error("PostgreSQL URL: bad port {0:?} (a number from 1 to 65535)")]
    BadPort(String),
    #[error("PostgreSQL URL: bad percent-encoding in the {0}")]
    BadPercentEncoding(&'static str),
    #[error("PostgreSQL URL: unknown parameter {0:?} (known: sslmode, sslrootcert, connect_timeout, application_name)")]
    UnknownParameter(String),
    #[error("PostgreSQL URL: parameter {0:?} is given twice")]
    RepeatedParameter(String),
    #[error(
        "PostgreSQL URL: bad sslmode {0:?} (disable, prefer, require, verify-ca or verify-full)"
    )]
    BadSslMode(String),
    #[error("PostgreSQL URL: bad connect_timeout {0:?} (whole seconds)")]
    BadConnectTimeout(String),
    #[error("PostgreSQL URL: a query parameter without '=': {0:?}")]
    ParameterWithoutValue(String),
}

/// Whether `text` is meant as a PostgreSQL URL (by its scheme), not a file path.
pub fn is_postgres_url(text: &str) -> bool {
    strip_scheme(text).is_some()
}

fn strip_scheme(text: &str) -> Option<&str> {
    ["postgres://", "postgresql://"].iter().find_map(|scheme| {
        text.get(..scheme.len())
            .filter(|head| head.eq_ignore_ascii_case(scheme))
            .map(|_| &text[scheme.len()..])
    })
}

impl PostgresUrl {
    /// Parses a `postgres://` or `postgresql://` URL.
    pub fn parse(text: &str) -> Result<PostgresUrl, PostgresUrlError> {
        let rest = strip_scheme(text).ok_or(PostgresUrlError::Scheme)?;
        let (before_query, query) = match rest.split_once('?') {
            Some((before, query)) => (before, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (before_query, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(userinfo) => match userinfo.split_once(':') {
                Some((user, password)) => (
                    decode(user, "user name")?,
                    Some(decode(password, "password")?),
                ),
                None => (decode(userinfo, "user name")?, None),
            },
            None => (String::new(), None),
        };
        if user.is_empty() {
            return Err(PostgresUrlError::NoUser);
        }
        if hostport.contains(',') {
            return Err(PostgresUrlError::SeveralHosts(hostport.to_string()));
        }
        let (host, port) = parse_host_port(hostport)?;
        let database = match decode(path, "database name")? {
            name if name.is_empty() => user.clone(),
            name => name,
        };
        let mut url = PostgresUrl {
            user,
            password,
            host,
            port,
            database,
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
            connect_timeout: None,
            application_name: None,
        };
        if let Some(query) = query {
            url.read_query(query)?;
        }
        Ok(url)
    }

    fn read_query(&mut self, query: &str) -> Result<(), PostgresUrlError> {
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| PostgresUrlError::ParameterWithoutValue(pair.to_string()))?;
            let key = decode(key, "query")?;
            let value = decode(value, "query")?;
            if seen.contains(&key) {
                return Err(PostgresUrlError::RepeatedParameter(key));
            }
            match key.as_str() {
                "sslmode" => {
                    self.ssl_mode = match value.as_str() {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        _ => return Err(PostgresUrlError::BadSslMode(value)),
                    }
                }
                "sslrootcert" => self.ssl_root_cert = Some(PathBuf::from(value)),
                "connect_timeout" => {
                    let seconds: u64 = value
                        .trim()
                        .parse()
                        .map_err(|_| PostgresUrlError::BadConnectTimeout(value.clone()))?;
                    // libpq: zero (or less) waits forever; we keep the default instead.
                    self.connect_timeout = (seconds > 0).then(|| Duration::from_secs(seconds));
                }
                "application_name" => self.application_name = Some(value),
                _ => return Err(PostgresUrlError::UnknownParameter(key)),
            }
            seen.push(key);
        }
        Ok(())
    }

    /// The role to log in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The server's host.
    pub fn host(&self) -> &PostgresHost {
        &self.host
    }

    /// The server's port (5432 unless given).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database (the user's name unless given).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The `sslmode` (`prefer` unless given).
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The `sslrootcert` file, when given.
    pub fn ssl_root_cert(&self) -> Option<&std::path::Path> {
        self.ssl_root_cert.as_deref()
    }

    /// The `connect_timeout`, when given (and not zero).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The `application_name`, when given.
    pub fn application_name(&self) -> Option<&str> {
        self.application_name.as_deref()
    }

    /// Whether the URL holds a password: the caller warns, as `ps` shows command lines.
    pub fn password_in_url(&self) -> bool {
        self.password.is_some()
    }

    /// The URL's password, when it has one.
    pub(crate) fn url_password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `host:port` as an error names the server (`127.0.0.1:5432`, `[::1]:5432`).
    pub fn host_and_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for PostgresUrl {
    /// `postgres://user@host:port/database`: never the password nor the parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            encode(&self.user),
            self.host,
            self.port,
            encode(&self.database)
        )
    }
}

impl fmt::Debug for PostgresUrl {
    /// The redacted URL with its parameters; a password shows as `password: <redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresUrl")
            .field("url", &self.to_string())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .finish()
    }
}

fn parse_host_port(text: &str) -> Result<(PostgresHost, u16), PostgresUrlError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| PostgresUrlError::BadIpv6(text.to_string()))?;
        let ip: std::net::Ipv6Addr = inside
            .parse()
            .map_err(|_| PostgresUrlError::BadIpv6(inside.to_string()))?;
        let port = match after {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| PostgresUrlError::BadPort(after.to_string()))?,
            ),
        };
        (PostgresHost::Ip(std::net::IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let host = decode(host, "host")?;
        if host.is_empty() {
            return Err(PostgresUrlError::NoHost);
        }
        let host = match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => PostgresHost::Ip(std::net::IpAddr::V4(ip)),
            Err(_) => PostgresHost::Name(host),
        };
        (host, port)
    };
    let port = match port {
        None | Some("") => 5432,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| PostgresUrlError::BadPort(port.to_string()))?,
    };
    Ok((host, port))
}

/// Percent-encodes every byte of `text` but the unreserved ones (RFC 3986), so the
/// redacted URL reads back as the same user and database.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-decodes `text` (UTF-8), naming `part` of the URL on error.
fn decode(text: &str, part: &'static str) -> Result<String, PostgresUrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or(PostgresUrlError::BadPercentEncoding(part))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PostgresUrlError::BadPercentEncoding(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PostgresUrl {
        PostgresUrl::parse(text).unwrap()
    }

    #[test]
    fn the_defaults_are_libpqs() {
        let url = parse("postgres://registrar@db.example.org");
        assert_eq!(url.user(), "registrar");
        assert_eq!(url.host(), &PostgresHost::Name("db.example.org".into()));
        assert_eq!(url.port(), 5432);
        assert_eq!(url.database(), "registrar");
        assert_eq!(url.ssl_mode(), SslMode::Prefer);
        assert_eq!(url.ssl_root_cert(), None);
        assert_eq!(url.connect_timeout(), None);
        assert!(!url.password_in_url());
        assert_eq!(
            url.to_string(),
            "postgres://registrar@db.example.org:5432/registrar"
        );
    }

    #[test]
    fn both_schemes_and_every_part() {
        let url = parse(
            "postgresql://reg%40corp@10.0.0.7:6543/im%20store?sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3&application_name=registrar%20run",
        );
        assert_eq!(url.user(), "reg@corp");
        assert_eq!(url.host(), &PostgresHost::Ip("10.0.0.7".parse().unwrap()));
        assert_eq!(url.port(), 6543);
        assert_eq!(url.database(), "im store");
        assert_eq!(url.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(
            url.ssl_root_cert(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(url.connect_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(url.application_name(), Some("registrar run"));
        assert_eq!(
            url.to_string(),
            "postgres://reg%40corp@10.0.0.7:6543/im%20store"
        );
    }

    #[test]
    fn ipv6_in_brackets() {
        let url = parse("postgres://u@[::1]:5433/d");
        assert_eq!(url.host(), &PostgresHost::Ip("::1".parse().unwrap()));
        assert_eq!(url.port(), 5433);
        assert_eq!(url.host_and_port(), "[::1]:5433");
        assert_eq!(parse("postgres://u@[fe80::2]/d").port(), 5432);
        assert!(matches!(
            PostgresUrl::parse("postgres://u@[::zz]/d"),
            Err(PostgresUrlError::BadIpv6(_))
        ));
        assert!(matches!(
            PostgresUrl::parse("postgres://u@[::1/d"),
            Err(PostgresUrlError::BadIpv6(_))
        ));
    }

    #[test]
    fn every_sslmode() {
        for (name, mode) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            let url = parse(&format!("postgres://u@h/d?sslmode={name}"));
            assert_eq!(url.ssl_mode(), mode);
            assert_eq!(mode.as_str(), name);
        }
        assert_eq!(
            PostgresUrl::parse("postgres://u@h/d?sslmode=allow-ish"),
            Err(PostgresUrlError::BadSslMode("allow-ish".into()))
        );
    }

    #[test]
    fn a_password_is_flagged_and_never_shown() {
        let url = parse("postgres://u:s3cr%3At@h/d");
        assert!(url.password_in_url());
        assert_eq!(url.url_password(), Some("s3cr:t"));
        assert_eq!(url.to_string(), "postgres://u@h:5432/d");
        assert!(!format!("{url:?}").contains("s3cr"), "{url:?}");
        let error = PostgresUrl::parse("postgres://u:s3cret@h/d?sslmode=nope").unwrap_err();
        assert!(!error.to_string().contains("s3cret"));
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases = [
            ("mysql://u@h/d", PostgresUrlError::Scheme),
            ("postgres://h/d", PostgresUrlError::NoUser),
            ("postgres://u@/d", PostgresUrlError::NoHost),
            ("postgres://u@h:0/d", PostgresUrlError::BadPort("0".into())),
            (
                "postgres://u@h:99999/d",
                PostgresUrlError::BadPort("99999".into()),
            ),
            ("postgres://u@h:x/d", PostgresUrlError::BadPort("x".into())),
            (
                "postgres://u@a,b/d",
                PostgresUrlError::SeveralHosts("a,b".into()),
            ),
            (
                "postgres://u@h/d?sslcert=x",
                PostgresUrlError::UnknownParameter("sslcert".into()),
            ),
            (
                "postgres://u@h/d?sslmode=require&sslmode=disable",
                PostgresUrlError::RepeatedParameter("sslmode".into()),
            ),
            (
                "postgres://u@h/d?connect_timeout=soon",
                PostgresUrlError::BadConnectTimeout("soon".into()),
            ),
            (
                "postgres://u@h/d?sslmode",
                PostgresUrlError::ParameterWithoutValue("sslmode".into()),
            ),
            (
                "postgres://u%zz@h/d",
                PostgresUrlError::BadPercentEncoding("user name"),
            ),
            (
                "postgres://u@h/%ff",
                PostgresUrlError::BadPercentEncoding("database name"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(PostgresUrl::parse(text), Err(expected), "{text}");
        }
        for (text, _) in [("x", ()), ("", ())] {
            assert!(PostgresUrl::parse(text).is_err());
        }
    }

    #[test]
    fn is_postgres_url_looks_at_the_scheme() {
        assert!(is_postgres_url("postgres://u@h/d"));
        assert!(is_postgres_url("PostgreSQL://u@h/d"));
        assert!(!is_postgres_url("/var/lib/registrar/state.db"));
        assert!(!is_postgres_url("postgres:/x"));
        assert!(!is_postgres_url("é"));
    }

    #[test]
    fn the_redacted_url_reads_back_as_the_same_server() {
        for text in [
            "postgres://r%C3%A9g%3Aa@db/%2Fodd%3Fname?sslmode=require",
            "postgres://u:pw@[::1]:6000/d",
            "postgresql://u@h",
        ] {
            let url = parse(text);
            let again = parse(&url.to_string());
            assert_eq!(again.user(), url.user());
            assert_eq!(again.host(), url.host());
            assert_eq!(again.port(), url.port());
            assert_eq!(again.database(), url.database());
            assert!(!again.password_in_url());
        }
    }

    #[test]
    fn a_zero_connect_timeout_keeps_the_default() {
        assert_eq!(
            parse("postgres://u@h/d?connect_timeout=0").connect_timeout(),
            None
        );
    }
}
