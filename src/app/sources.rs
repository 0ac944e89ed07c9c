//! Reading one source's entries, whatever it is: an LDIF file (with its change files
//! applied in name order) or an LDAP server. `plan`, `apply`, `validate`, `export` and
//! `discover` read sources through [`read_source`], which streams entries to a callback
//! and feeds the inputs digest on the way.
//!
//! This is where an LDAP source's password is fetched (environment or file), since the
//! app layer is the only one that reads the environment.

use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::AppError;
use super::progress::Progress;
use super::snapshots::{KeptReadError, StaleSnapshot};
use crate::adapters::ldap::{self, Credentials, LdapReadError, Password};
use crate::adapters::ldif::{
    self, BaseError, ChangeError, Directory, DirectoryBase, LdifError, LdifFileError, LdifReader,
    Record,
};
use crate::adapters::tree::{Tree, TreeError};
use crate::config::{
    Config, ConfigText, LdapBind, LdapSettings, PasswordFrom, SourceLocation, SourceSettings,
};
use registrar_core::entry::Entry;
use registrar_core::plan::{ImportedFile, SourceImport};
use registrar_core::quote::quote_for_message;

/// Why reading a source failed (the message that follows `source NAME: `).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file of the source cannot be found or opened (working tree or git revision).
    #[error(transparent)]
    Files(#[from] TreeError),
    /// An LDIF file that cannot be read or parsed.
    #[error(transparent)]
    Ldif(#[from] LdifFileError),
    /// The content file holds two entries with the same DN.
    #[error("{}: {error}", path.display())]
    Content {
        path: PathBuf,
        #[source]
        error: ChangeError,
    },
    /// A change record that does not apply to the entries before it.
    #[error("{}:{line}: change does not apply: {error}", path.display())]
    ChangeDoesNotApply {
        path: PathBuf,
        line: usize,
        #[source]
        error: ChangeError,
    },
    /// A content record where change records belong.
    #[error(
        "{}:{line}: content record for {} in a change file; change files hold change \
         records (changetype: …)",
        path.display(),
        quote_for_message(dn)
    )]
    ContentInChangeFile {
        path: PathBuf,
        line: usize,
        dn: String,
    },
    /// An LDAP source's connection, bind or search.
    #[error(transparent)]
    Ldap(#[from] LdapReadError),
    /// An LDAP source's bind password.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// An LDAP source's `ca_file`.
    #[error("ca_file {}: {error}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        error: TreeError,
    },
    /// A content file read in halves (`app/halves.rs`) changed while it was read: what
    /// was parsed and what was digested may differ.
    #[error("{}: changed while it was read; read it again once it is written", path.display())]
    ChangedWhileRead { path: PathBuf },
    /// A kept entry could not be had from the store.
    #[error(transparent)]
    KeptRead(#[from] KeptReadError),
    /// The kept snapshot could not give an entry a change record reads.
    #[error(transparent)]
    KeptBase(#[from] BaseError),
    /// The kept snapshot is not what its files now give (`--mode delta`).
    #[error(transparent)]
    Stale(#[from] StaleSnapshot),
}

/// Why an LDAP source's bind password cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("environment variable {variable} (password_env) is not set")]
    EnvUnset { variable: String },
    #[error("environment variable {variable} (password_env) is not valid UTF-8")]
    EnvNotUnicode { variable: String },
    #[error("password_file {}: cannot read: {error}", path.display())]
    FileUnreadable {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// `origin` names where it came from: `environment variable X` or `password_file P`.
    #[error("{origin} holds an empty password (an unauthenticated bind); refusing")]
    Empty { origin: String },
}

/// The digest of everything a plan read: config files, then each source's files (the
/// path and digest of each LDIF file) or entries (LDAP). Full and delta reads of the same
/// files give the same digest.
pub(crate) struct InputsDigest(Sha256);

impl InputsDigest {
    /// A digest started with the config files' paths and texts.
    pub(crate) fn of_config(files: &[ConfigText]) -> Self {
        let mut digest = Sha256::new();
        for file in files {
            digest.update(file.path.to_string_lossy().as_bytes());
            digest.update([0]);
            digest.update(file.text.as_bytes());
            digest.update([0]);
        }
        InputsDigest(digest)
    }

    /// The digest of the config files alone (a plan's `config_digest`): their names (the
    /// config directory is flat) and texts, so that it does not depend on how the
    /// directory is named on the command line.
    pub(crate) fn config_only(files: &[ConfigText]) -> String {
        let mut digest = Sha256::new();
        for file in files {
            let name = file.path.file_name().unwrap_or(file.path.as_os_str());
            digest.update(name.to_string_lossy().as_bytes());
            digest.update([0]);
            digest.update(file.text.as_bytes());
            digest.update([0]);
        }
        hex_digest(digest)
    }

    /// A digest of nothing, for commands that read a source without planning.
    pub(crate) fn unused() -> Self {
        InputsDigest(Sha256::new())
    }

    /// An LDAP source's entries, by their [`EntrySum`].
    pub(super) fn entries(&mut self, sum: &EntrySum) {
        self.0.update(sum.to_text().as_bytes());
        self.0.update([0]);
    }

    /// An LDIF file read, by its path and the digest of its bytes.
    pub(super) fn file(&mut self, path: &Path, file_digest: &str) {
        let digest = &mut self.0;
        digest.update(path.to_string_lossy().as_bytes());
        digest.update([0]);
        digest.update(file_digest.as_bytes());
        digest.update([0]);
    }

    /// `sha256:` and the hex digest.
    pub(crate) fn finish(self) -> String {
        hex_digest(self.0)
    }
}

/// The digest of a set of entries, the same whatever order they come in (a server sends
/// them in no set order, and a delta read streams kept entries by DN): their number, and
/// in each of four 64-bit lanes the sum of each entry's SHA-256. An entry can be taken
/// out again ([`EntrySum::remove`]), so that a kept snapshot's sum is brought forward by
/// what changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EntrySum {
    count: u64,
    lanes: [u64; 4],
}

impl EntrySum {
    pub(crate) fn add(&mut self, entry: &Entry) {
        let hash = Self::hash(entry);
        self.count = self.count.wrapping_add(1);
        for (lane, part) in self.lanes.iter_mut().zip(hash) {
            *lane = lane.wrapping_add(part);
        }
    }

    pub(crate) fn remove(&mut self, entry: &Entry) {
        let hash = Self::hash(entry);
        self.count = self.count.wrapping_sub(1);
        for (lane, part) in self.lanes.iter_mut().zip(hash) {
            *lane = lane.wrapping_sub(part);
        }
    }

    fn hash(entry: &Entry) -> [u64; 4] {
        let mut digest = Sha256::new();
        digest.update(entry.dn.as_bytes());
        digest.update([0]);
        for attribute in &entry.attributes {
            for value in &attribute.values {
                digest.update(attribute.description.as_bytes());
                digest.update([1]);
                digest.update((value.len() as u64).to_le_bytes());
                digest.update(value);
            }
        }
        let bytes = digest.finalize();
        std::array::from_fn(|lane| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[lane * 8..lane * 8 + 8]);
            u64::from_le_bytes(word)
        })
    }

    /// `COUNT:` and the four lanes in hex, as the store keeps it.
    pub(crate) fn to_text(self) -> String {
        let lanes: String = self.lanes.iter().map(|l| format!("{l:016x}")).collect();
        format!("{}:{lanes}", self.count)
    }

    /// The sum [`EntrySum::to_text`] wrote; `None` for any other text.
    pub(crate) fn parse(text: &str) -> Option<EntrySum> {
        let (count, lanes) = text.split_once(':')?;
        if lanes.len() != 64 || !lanes.is_ascii() {
            return None;
        }
        let mut sum = EntrySum {
            count: count.parse().ok()?,
            lanes: [0; 4],
        };
        for (lane, hex) in sum.lanes.iter_mut().zip(lanes.as_bytes().chunks(16)) {
            *lane = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        }
        Some(sum)
    }
}

/// The source of `config` called `name`; an unknown name is refused with the list of the
/// sources there are.
pub(crate) fn find_source<'c>(
    config: &'c Config,
    name: &str,
) -> Result<&'c SourceSettings, AppError> {
    config.source(name).ok_or_else(|| {
        let known = config.sources.iter().map(|s| s.name.clone()).collect();
        AppError::NoSuchSource {
            name: name.to_string(),
            known,
        }
    })
}

/// `sha256:` and the hex of `digest`.
pub(super) fn hex_digest(digest: Sha256) -> String {
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Streams the entries of `source` to `on_entry`, in source order, feeding `digest`.
/// Returns, for an `ldif` source, what was imported (see [`read_ldif`]). Any failure
/// (unreadable file, LDIF error, a change that does not apply, an LDAP connection, bind
/// or search failure) is an error naming the source: no partial read is ever handed on
/// as complete.
pub(crate) fn read_source(
    source: &SourceSettings,
    files: &Tree,
    config_dir: &Path,
    digest: &mut InputsDigest,
    on_entry: &mut dyn FnMut(Entry),
) -> Result<Option<SourceImport>, AppError> {
    // Long reads show their progress on a terminal's stderr.
    let mut progress = Progress::new(format!("source {}", source.name), "entries", None);
    match &source.location {
        SourceLocation::Ldif {
            path,
            changes,
            max_value_bytes,
        } => {
            let on_entry = &mut |entry| {
                progress.tick();
                on_entry(entry);
            };
            let mut read = || {
                let change_files = match changes {
                    Some(pattern) => Some(change_files(files, pattern)?),
                    None => None,
                };
                let change_files = change_files.as_deref();
                read_ldif(
                    &source.name,
                    files,
                    config_dir,
                    (path, change_files),
                    *max_value_bytes,
                    digest,
                    on_entry,
                )
            };
            read()
                .map(Some)
                .map_err(|error| source_error(source, error))
        }
        SourceLocation::Ldap(settings) => {
            let credentials = ldap_credentials(source, settings, files)?;
            let mut sum = EntrySum::default();
            read_ldap(source, settings, &credentials, &mut |entry| {
                sum.add(&entry);
                on_entry(entry);
            })?;
            digest.entries(&sum);
            Ok(None)
        }
    }
}

/// The LDAP source `source` read in full with `settings` (its own, or with the identity
/// a change feed names entries by), every entry to `on_entry` as the server sends it.
pub(super) fn read_ldap(
    source: &SourceSettings,
    settings: &LdapSettings,
    credentials: &Credentials,
    on_entry: &mut dyn FnMut(Entry),
) -> Result<(), AppError> {
    let mut progress = Progress::new(format!("source {}", source.name), "entries", None);
    if settings.insecure_skip_tls_verify {
        eprintln!(
            "warning: source {}: TLS certificate verification is off (insecure_skip_tls_verify)",
            source.name
        );
    }
    ldap::read_entries(settings, credentials, &mut |entry| {
        progress.tick();
        on_entry(entry);
    })
    .map_err(|error| source_error(source, error))?;
    Ok(())
}

/// The password and CA certificates the LDAP source `source` binds with.
pub(super) fn ldap_credentials(
    source: &SourceSettings,
    settings: &LdapSettings,
    files: &Tree,
) -> Result<Credentials, AppError> {
    credentials(settings, files).map_err(|error| source_error(source, error))
}

/// An error reading `source`: `source NAME: message`.
pub(super) fn source_error(source: &SourceSettings, error: impl Into<SourceError>) -> AppError {
    AppError::Source {
        source_name: source.name.clone(),
        error: Box::new(error.into()),
    }
}

/// An `ldif` source read in full: the content file at `path`, streamed, or with change
/// files (even none) the snapshot they produce, no value larger than `max_value_bytes`.
/// Returns the files read, with their digests.
pub(super) fn read_ldif(
    source: &str,
    files: &Tree,
    config_dir: &Path,
    (path, changes): (&Path, Option<&[PathBuf]>),
    max_value_bytes: usize,
    digest: &mut InputsDigest,
    on_entry: &mut dyn FnMut(Entry),
) -> Result<SourceImport, SourceError> {
    let located = |error: LdifError, file: &Path| LdifFileError::Parse {
        path: file.to_path_buf(),
        error,
    };
    let mut content_digest = Sha256::new();
    let reader = open_ldif(files, path, max_value_bytes, &mut content_digest)?;
    let Some(changes) = changes else {
        // Content only: stream entries straight through.
        ldif::for_each_entry(reader, on_entry).map_err(|e| located(e, path))?;
        let content = imported(config_dir, path, content_digest, digest);
        return Ok(SourceImport {
            source: source.to_string(),
            content,
            changes: Vec::new(),
        });
    };
    let mut entries = Vec::new();
    ldif::for_each_entry(reader, |entry| entries.push(entry)).map_err(|e| located(e, path))?;
    let content = imported(config_dir, path, content_digest, digest);
    let mut snapshot = Directory::from_entries(entries).map_err(|error| SourceError::Content {
        path: path.to_path_buf(),
        error,
    })?;
    let mut imported_changes = Vec::new();
    for change_file in changes {
        let file_digest =
            apply_change_file(files, change_file, max_value_bytes, &mut snapshot, None)?;
        imported_changes.push(imported(config_dir, change_file, file_digest, digest));
    }
    snapshot.into_entries().for_each(on_entry);
    Ok(SourceImport {
        source: source.to_string(),
        content,
        changes: imported_changes,
    })
}

/// The change files `pattern` matches, in the order they apply (name order).
pub(super) fn change_files(files: &Tree, pattern: &Path) -> Result<Vec<PathBuf>, SourceError> {
    Ok(files.matching(pattern)?)
}

/// The record of an LDIF file read, its digest also fed into the inputs digest.
pub(super) fn imported(
    config_dir: &Path,
    path: &Path,
    file_digest: Sha256,
    digest: &mut InputsDigest,
) -> ImportedFile {
    let file_digest = hex_digest(file_digest);
    digest.file(path, &file_digest);
    ImportedFile {
        path: import_path(config_dir, path),
        digest: file_digest,
    }
}

/// Applies the change records of `change_file` to `snapshot`, in order; an overlay
/// snapshot loads what each record reads from `base` first. Returns the digest of the
/// file's bytes. A record that does not apply, or a value larger than `max_value_bytes`,
/// is an error `file:line: …`.
pub(super) fn apply_change_file(
    files: &Tree,
    change_file: &Path,
    max_value_bytes: usize,
    snapshot: &mut Directory,
    mut base: Option<&mut dyn DirectoryBase>,
) -> Result<Sha256, SourceError> {
    let mut file_digest = Sha256::new();
    let mut reader = open_ldif(files, change_file, max_value_bytes, &mut file_digest)?;
    while let Some(record) = reader.next() {
        let line = reader.record_line();
        let located = |error| LdifFileError::Parse {
            path: change_file.to_path_buf(),
            error,
        };
        match record.map_err(located)? {
            Record::Change(change) => {
                if let Some(base) = base.as_deref_mut() {
                    snapshot.load_for(&change, base)?;
                }
                snapshot
                    .apply(&change)
                    .map_err(|error| SourceError::ChangeDoesNotApply {
                        path: change_file.to_path_buf(),
                        line,
                        error,
                    })?
            }
            Record::Content(entry) => {
                return Err(SourceError::ContentInChangeFile {
                    path: change_file.to_path_buf(),
                    line,
                    dn: entry.dn.to_string(),
                })
            }
        }
    }
    drop(reader);
    Ok(file_digest)
}

/// `sha256:…` of the bytes of the file at `path`, without parsing it.
pub(super) fn file_digest(files: &Tree, path: &Path) -> Result<String, SourceError> {
    digest_of(files.open(path)?, path)
}

/// The digest of what `reader` holds, the bytes of the file at `path`.
fn digest_of(mut reader: impl Read, path: &Path) -> Result<String, SourceError> {
    let mut digest = Sha256::new();
    std::io::copy(&mut reader, &mut digest).map_err(|source| LdifFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hex_digest(digest))
}

/// A file's [`file_digest`], worked out on a thread of its own while the caller goes on:
/// a delta plan checks its content file (hundreds of megabytes) beside its other work.
/// The file is opened at once, so that a missing one is an error at once.
pub(super) struct FileDigestInProgress(Hashing);

enum Hashing {
    OnThread(std::thread::JoinHandle<Result<String, SourceError>>),
    /// No thread could be started: the digest was worked out in place.
    Done(Result<String, SourceError>),
}

impl FileDigestInProgress {
    pub(super) fn start(files: &Tree, path: &Path) -> Result<Self, SourceError> {
        let file = files.open(path)?;
        let owned = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("file digest".to_string())
            .spawn(move || digest_of(file, &owned));
        Ok(FileDigestInProgress(match thread {
            Ok(thread) => Hashing::OnThread(thread),
            Err(_) => Hashing::Done(file_digest(files, path)),
        }))
    }

    /// The digest, once worked out.
    pub(super) fn finish(self) -> Result<String, SourceError> {
        match self.0 {
            Hashing::OnThread(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Hashing::Done(digest) => digest,
        }
    }
}

/// How an import names `path`: relative to the config directory (as the YAML wrote it,
/// `.` and `x/..` folded), or absolute when it is outside it.
pub(super) fn import_path(config_dir: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(config_dir).unwrap_or(path);
    let mut parts: Vec<Component> = Vec::new();
    for component in relative.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts
        .iter()
        .collect::<PathBuf>()
        .to_string_lossy()
        .into_owned()
}

/// A reader that feeds every byte it passes on into a digest.
pub(super) struct DigestingReader<'d, R> {
    pub(super) inner: R,
    pub(super) digest: &'d mut Sha256,
}

impl<R: Read> Read for DigestingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.digest.update(&buf[..read]);
        Ok(read)
    }
}

/// An LDIF reader over a file of a [`Tree`] whose bytes feed a digest.
type DigestingLdifReader<'d> = LdifReader<BufReader<DigestingReader<'d, Box<dyn Read + Send>>>>;

/// Opens an LDIF file of `files` for streaming, feeding its bytes into `file_digest`,
/// with `attr:< URL` values read from the same files, refusing values larger than
/// `max_value_bytes`.
fn open_ldif<'d>(
    files: &Tree,
    path: &Path,
    max_value_bytes: usize,
    file_digest: &'d mut Sha256,
) -> Result<DigestingLdifReader<'d>, SourceError> {
    let file = files.open(path)?;
    let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let urls = files.url_resolver(base_dir)?;
    let input = BufReader::with_capacity(
        1 << 16,
        DigestingReader {
            inner: file,
            digest: file_digest,
        },
    );
    Ok(LdifReader::new(input)
        .with_max_value_bytes(max_value_bytes)
        .with_boxed_resolver(urls))
}

/// The password and CA certificates an LDAP source needs. The password comes from the
/// environment or a file on disk (never from git, never from YAML); the CA file from
/// the same files as the config, so that `--rev` reads the committed one.
pub(super) fn credentials(
    settings: &LdapSettings,
    files: &Tree,
) -> Result<Credentials, SourceError> {
    let password = match &settings.bind {
        LdapBind::Anonymous => None,
        LdapBind::Simple { password, .. } => Some(fetch_password(password)?),
    };
    let ca_pem = match (&settings.ca_pem, &settings.ca_file) {
        (Some(trusted), _) => Some(trusted.clone()),
        (None, None) => None,
        (None, Some(path)) => Some(files.read(path).map_err(|error| SourceError::CaFile {
            path: path.to_path_buf(),
            error,
        })?),
    };
    Ok(Credentials { password, ca_pem })
}

/// Reads a bind password. An empty one is refused: RFC 4513 makes a simple bind with an
/// empty password an unauthenticated bind that servers accept, which would read the
/// directory with anonymous rights while looking authenticated.
fn fetch_password(from: &PasswordFrom) -> Result<Password, PasswordError> {
    let (secret, origin) = match from {
        PasswordFrom::Env(variable) => match std::env::var(variable) {
            Ok(value) => (value, format!("environment variable {variable}")),
            Err(std::env::VarError::NotPresent) => {
                return Err(PasswordError::EnvUnset {
                    variable: variable.clone(),
                })
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(PasswordError::EnvNotUnicode {
                    variable: variable.clone(),
                })
            }
        },
        PasswordFrom::File(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|error| PasswordError::FileUnreadable {
                    path: path.clone(),
                    error,
                })?;
            let text = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_string();
            (text, format!("password_file {}", path.display()))
        }
    };
    if secret.is_empty() {
        return Err(PasswordError::Empty { origin });
    }
    Ok(Password::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_that_is_empty_or_missing_is_refused_with_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let error = fetch_password(&PasswordFrom::File(empty.clone())).err();
        assert_eq!(
            error.map(|e| e.to_string()),
            Some(format!(
                "password_file {} holds an empty password (an unauthenticated bind); refusing",
                empty.display()
            ))
        );
        let missing = dir.path().join("missing");
        let Some(error) = fetch_password(&PasswordFrom::File(missing.clone())).err() else {
            panic!("a missing password file was read");
        };
        let prefix = format!("password_file {}: cannot read: ", missing.display());
        assert!(error.to_string().starts_with(&prefix), "{error}");
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn an_entry_sum_is_the_same_in_any_order_and_takes_an_entry_out_again() {
        let entry = |dn: &str, cn: &str| {
            let mut entry = Entry::new(dn.to_string());
            entry.push_value("cn", cn.as_bytes().to_vec());
            entry
        };
        let (a, b, c) = (
            entry("cn=a,dc=x", "a"),
            entry("cn=b,dc=x", "b"),
            entry("cn=c,dc=x", "c"),
        );
        let sum_of = |entries: &[&Entry]| {
            let mut sum = EntrySum::default();
            entries.iter().for_each(|e| sum.add(e));
            sum
        };
        assert_eq!(sum_of(&[&a, &b, &c]), sum_of(&[&c, &a, &b]));
        assert_ne!(sum_of(&[&a, &b]), sum_of(&[&a, &c]));
        assert_ne!(sum_of(&[&a]), sum_of(&[&a, &a]));
        let mut brought = sum_of(&[&a, &b]);
        brought.remove(&b);
        brought.add(&c);
        assert_eq!(brought, sum_of(&[&c, &a]));
        // A value that moves to another attribute is another entry.
        let mut moved = Entry::new("cn=a,dc=x".to_string());
        moved.push_value("sn", b"a".to_vec());
        assert_ne!(sum_of(&[&moved]), sum_of(&[&a]));
        let text = brought.to_text();
        assert_eq!(EntrySum::parse(&text), Some(brought));
        assert_eq!(EntrySum::parse("2:00"), None);
        assert_eq!(EntrySum::parse(&text.replace(':', ";")), None);
        assert_eq!(EntrySum::parse(&format!("x{text}")), None);
    }

    #[test]
    fn a_source_error_names_the_source_and_keeps_its_cause() {
        let error = AppError::Source {
            source_name: "hr".to_string(),
            error: Box::new(SourceError::ContentInChangeFile {
                path: PathBuf::from("changes/1.ldif"),
                line: 4,
                dn: "cn=a,dc=x".to_string(),
            }),
        };
        assert_eq!(
            error.to_string(),
            "source hr: changes/1.ldif:4: content record for \"cn=a,dc=x\" in a change file; \
             change files hold change records (changetype: …)"
        );
        assert!(std::error::Error::source(&error).is_some());
    }
}
