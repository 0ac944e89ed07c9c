//! Where a PostgreSQL password comes from, as libpq looks for it: the URL's own (accepted,
//! with a warning), else `PGPASSWORD`, else the password file (`PGPASSFILE`, or
//! `~/.pgpass`) in libpq's format: `host:port:database:user:password` lines, `*` matching
//! anything, `\:` and `\\` escaped, `#` comments. A password file that its group or others
//! can read is ignored with a warning, as libpq does.
//!
//! The environment comes in as a value ([`PasswordSources`]) so tests never set process
//! variables. Warnings are returned, never printed here; no password is ever in one, nor
//! in a `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};

use super::url::{PostgresHost, PostgresUrl};

/// The places a password may come from besides the URL: `PGPASSWORD` and the password
/// file's path.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PasswordSources {
    /// `PGPASSWORD`'s value (an empty one counts as unset, as in libpq).
    pub pgpassword: Option<String>,
    /// `PGPASSFILE`, else `$HOME/.pgpass`; `None` when neither is known.
    pub passfile: Option<PathBuf>,
}

impl PasswordSources {
    /// The process environment's `PGPASSWORD` and `PGPASSFILE` (or `$HOME/.pgpass`).
    pub fn from_environment() -> PasswordSources {
        let passfile = std::env::var_os("PGPASSFILE")
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|home| !home.is_empty())
                    .map(|home| PathBuf::from(home).join(".pgpass"))
            });
        PasswordSources {
            pgpassword: std::env::var("PGPASSWORD").ok(),
            passfile,
        }
    }
}

impl fmt::Debug for PasswordSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordSources")
            .field(
                "pgpassword",
                &self.pgpassword.as_ref().map(|_| "<redacted>"),
            )
            .field("passfile", &self.passfile)
            .finish()
    }
}

/// Where the password in use was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOrigin {
    Url,
    Pgpassword,
    Passfile(PathBuf),
}

/// A password and where it came from. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct FoundPassword {
    secret: String,
    origin: PasswordOrigin,
}

impl FoundPassword {
    /// The password itself (for the connection only).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Where it was found.
    pub fn origin(&self) -> &PasswordOrigin {
        &self.origin
    }
}

impl fmt::Debug for FoundPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoundPassword")
            .field("secret", &"<redacted>")
            .field("origin", &self.origin)
            .finish()
    }
}

/// Something the user should hear about on stderr; the connection goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresWarning {
    /// The URL holds a password, which `ps` shows.
    PasswordInUrl { url: String },
    /// The password file can be read by its group or others: ignored.
    PassfileAccess { path: PathBuf, mode: u32 },
    /// The password file is there but cannot be read, or is not a file: ignored.
    PassfileUnreadable { path: PathBuf, reason: String },
}

impl fmt::Display for PostgresWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostgresWarning::PasswordInUrl { url } => write!(
                f,
                "the PostgreSQL URL for {url} holds a password, which any user can see in \
                 `ps`: use PGPASSWORD or ~/.pgpass instead"
            ),
            PostgresWarning::PassfileAccess { path, mode } => write!(
                f,
                "password file {} has group or world access (mode {mode:o}); it is ignored: \
                 permissions should be u=rw (0600) or less",
                path.display()
            ),
            PostgresWarning::PassfileUnreadable { path, reason } => {
                write!(f, "password file {} is ignored: {reason}", path.display())
            }
        }
    }
}

/// The password for `url`, looked for in libpq's order, and the warnings met on the way.
pub fn find_password(
    url: &PostgresUrl,
    sources: &PasswordSources,
) -> (Option<FoundPassword>, Vec<PostgresWarning>) {
    let mut warnings = Vec::new();
    if let Some(secret) = url.url_password() {
        warnings.push(PostgresWarning::PasswordInUrl {
            url: url.to_string(),
        });
        return (
            Some(FoundPassword {
                secret: secret.to_string(),
                origin: PasswordOrigin::Url,
            }),
            warnings,
        );
    }
    if let Some(secret) = sources.pgpassword.as_ref().filter(|s| !s.is_empty()) {
        return (
            Some(FoundPassword {
                secret: secret.clone(),
                origin: PasswordOrigin::Pgpassword,
            }),
            warnings,
        );
    }
    let Some(path) = &sources.passfile else {
        return (None, warnings);
    };
    let found = read_passfile(path, &mut warnings).and_then(|text| {
        let host = match url.host() {
            PostgresHost::Name(name) => name.clone(),
            PostgresHost::Ip(ip) => ip.to_string(),
        };
        passfile_lookup(&text, &host, url.port(), url.database(), url.user())
    });
    let found = found.map(|secret| FoundPassword {
        secret,
        origin: PasswordOrigin::Passfile(path.clone()),
    });
    (found, warnings)
}

/// The password file's text, or `None` (with a warning unless it is simply absent).
fn read_passfile(path: &Path, warnings: &mut Vec<PostgresWarning>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            warnings.push(PostgresWarning::PassfileUnreadable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            });
            return None;
        }
    };
    if !metadata.is_file() {
        warnings.push(PostgresWarning::PassfileUnreadable {
            path: path.to_path_buf(),
            reason: "not a plain file".to_string(),
        });
        return None;
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        warnings.push(PostgresWarning::PassfileAccess {
            path: path.to_path_buf(),
            mode,
        });
        return None;
    }
    match std::fs::read(path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(error) => {
            warnings.push(PostgresWarning::PassfileUnreadable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            });
            None
        }
    }
}

/// The first line of a password file matching host, port, database and user (each field
/// literal or `*`), its password unescaped; an empty password counts as none (libpq).
pub fn passfile_lookup(
    text: &str,
    host: &str,
    port: u16,
    database: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(split_passfile_line)
        .find(|fields| {
            fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, wanted)| field == "*" || field == wanted)
        })
        .map(|mut fields| fields.swap_remove(4))
        .filter(|password| !password.is_empty())
}

/// A line's five fields, unescaped; `None` for a line with fewer than five. After the
/// fourth `:` the rest of the line is the password (an unescaped `:` in it stays).
fn split_passfile_line(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut()?.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const PASSFILE: &str = "\
# a comment: this:would:match:every:thing
db.example.org:5432:registrar:reg:first
*:5433:*:reg:any-host
10.0.0.7:*:im\\:store:reg:escaped\\:colon\\\\back
*:*:*:empty:
*:*:*:*:wildcard
";

    #[test]
    fn the_first_matching_line_wins() {
        let lookup = |host, port, db, user| passfile_lookup(PASSFILE, host, port, db, user);
        assert_eq!(
            lookup("db.example.org", 5432, "registrar", "reg").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup("elsewhere", 5433, "x", "reg").as_deref(),
            Some("any-host")
        );
        assert_eq!(
            lookup("10.0.0.7", 1, "im:store", "reg").as_deref(),
            Some("escaped:colon\\back")
        );
        assert_eq!(lookup("h", 1, "d", "u").as_deref(), Some("wildcard"));
        assert_eq!(
            lookup("db.example.org", 5432, "other", "reg").as_deref(),
            Some("wildcard")
        );
    }

    #[test]
    fn an_empty_password_or_a_short_line_gives_nothing() {
        assert_eq!(passfile_lookup(PASSFILE, "h", 1, "d", "empty"), None);
        assert_eq!(passfile_lookup("h:1:d:u\n", "h", 1, "d", "u"), None);
        assert_eq!(passfile_lookup("", "h", 1, "d", "u"), None);
        assert_eq!(
            passfile_lookup("h:1:d:u:a:b\r\n", "h", 1, "d", "u").as_deref(),
            Some("a:b")
        );
    }

    fn url(text: &str) -> PostgresUrl {
        PostgresUrl::parse(text).unwrap()
    }

    fn passfile(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn the_order_is_url_then_pgpassword_then_passfile() {
        let (_dir, path) = passfile("*:*:*:*:from-file\n", 0o600);
        let all = PasswordSources {
            pgpassword: Some("from-env".into()),
            passfile: Some(path.clone()),
        };
        let (found, warnings) = find_password(&url("postgres://u:from-url@h/d"), &all);
        let found = found.unwrap();
        assert_eq!(
            (found.secret(), found.origin()),
            ("from-url", &PasswordOrigin::Url)
        );
        assert_eq!(
            warnings,
            vec![PostgresWarning::PasswordInUrl {
                url: "postgres://u@h:5432/d".into()
            }]
        );
        assert!(!warnings[0].to_string().contains("from-url"));

        let (found, warnings) = find_password(&url("postgres://u@h/d"), &all);
        assert_eq!(found.unwrap().origin(), &PasswordOrigin::Pgpassword);
        assert!(warnings.is_empty());

        let empty_env = PasswordSources {
            pgpassword: Some(String::new()),
            passfile: Some(path.clone()),
        };
        let (found, _) = find_password(&url("postgres://u@h/d"), &empty_env);
        let found = found.unwrap();
        assert_eq!(found.secret(), "from-file");
        assert_eq!(found.origin(), &PasswordOrigin::Passfile(path));
        assert!(!format!("{found:?}").contains("from-file"));
        assert!(!format!("{all:?}").contains("from-env"));
    }

    #[test]
    fn a_passfile_others_can_read_is_ignored_with_a_warning() {
        let (_dir, path) = passfile("*:*:*:*:secret\n", 0o640);
        let sources = PasswordSources {
            pgpassword: None,
            passfile: Some(path.clone()),
        };
        let (found, warnings) = find_password(&url("postgres://u@h/d"), &sources);
        assert_eq!(found, None);
        assert_eq!(
            warnings,
            vec![PostgresWarning::PassfileAccess { path, mode: 0o640 }]
        );
        assert!(warnings[0].to_string().contains("0600"));
    }

    #[test]
    fn a_missing_passfile_is_silent_and_a_directory_is_warned() {
        let dir = tempfile::tempdir().unwrap();
        let missing = PasswordSources {
            pgpassword: None,
            passfile: Some(dir.path().join("absent")),
        };
        assert_eq!(
            find_password(&url("postgres://u@h/d"), &missing),
            (None, vec![])
        );
        let directory = PasswordSources {
            pgpassword: None,
            passfile: Some(dir.path().to_path_buf()),
        };
        let (found, warnings) = find_password(&url("postgres://u@h/d"), &directory);
        assert_eq!(found, None);
        assert!(matches!(
            warnings.as_slice(),
            [PostgresWarning::PassfileUnreadable { .. }]
        ));
    }

    #[test]
    fn an_ipv6_host_matches_without_brackets() {
        let (_dir, path) = passfile("::1:5432:d:u:six\n", 0o600);
        // libpq's format cannot name an IPv6 host with unescaped colons: escape them.
        let (_dir2, escaped) = passfile("\\:\\:1:5432:d:u:six\n", 0o600);
        let sources = |path: &Path| PasswordSources {
            pgpassword: None,
            passfile: Some(path.to_path_buf()),
        };
        let target = url("postgres://u@[::1]/d");
        assert_eq!(find_password(&target, &sources(&path)).0, None);
        assert_eq!(
            find_password(&target, &sources(&escaped))
                .0
                .unwrap()
                .secret(),
            "six"
        );
    }
}
