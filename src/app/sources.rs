//! Reading one source's entries, whatever it is: an LDIF file (with its change files
//! applied in name order) or an LDAP server. `plan`, `apply`, `export` and `discover` all
//! read sources through [`read_source`], which streams entries to a callback and feeds
//! the inputs digest on the way.
//!
//! This is where an LDAP source's password is fetched (environment or file), since the
//! app layer is the only one that reads the environment.

use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::progress::Progress;
use super::AppError;
use crate::adapters::ldap::{self, Credentials, Password};
use crate::adapters::ldif::{
    self, Directory, DirectoryBase, LdifError, LdifFileError, LdifReader, Record,
};
use crate::adapters::tree::Tree;
use crate::config::{
    Config, ConfigText, LdapBind, LdapSettings, PasswordFrom, SourceLocation, SourceSettings,
};
use registrar_core::entry::Entry;
use registrar_core::plan::{ImportedFile, SourceImport};
use registrar_core::quote::quote_for_message;

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

    fn entry(&mut self, entry: &Entry) {
        let digest = &mut self.0;
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
        digest.update([2]);
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

/// The source of `config` called `name`; an unknown name is refused with the list of the
/// sources there are.
pub(crate) fn find_source<'c>(
    config: &'c Config,
    name: &str,
) -> Result<&'c SourceSettings, AppError> {
    config.source(name).ok_or_else(|| {
        let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        AppError::Refused(format!(
            "no source named {name:?} (sources: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
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
                .map_err(|message| source_error(source, message))
        }
        SourceLocation::Ldap(settings) => {
            let credentials =
                credentials(settings, files).map_err(|message| source_error(source, message))?;
            if settings.insecure_skip_tls_verify {
                eprintln!(
                    "warning: source {}: TLS certificate verification is off (insecure_skip_tls_verify)",
                    source.name
                );
            }
            ldap::read_entries(settings, &credentials, &mut |entry| {
                digest.entry(&entry);
                progress.tick();
                on_entry(entry);
            })
            .map_err(|e| source_error(source, e.to_string()))?;
            Ok(None)
        }
    }
}

/// An error reading `source`: `source NAME: message`.
pub(super) fn source_error(source: &SourceSettings, message: String) -> AppError {
    AppError::Source {
        source_name: source.name.clone(),
        message,
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
) -> Result<SourceImport, String> {
    let located = |error: LdifError, file: &Path| {
        LdifFileError::Parse {
            path: file.to_path_buf(),
            error,
        }
        .to_string()
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
    let mut snapshot =
        Directory::from_entries(entries).map_err(|e| format!("{}: {e}", path.display()))?;
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
pub(super) fn change_files(files: &Tree, pattern: &Path) -> Result<Vec<PathBuf>, String> {
    files.matching(pattern).map_err(|e| e.to_string())
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
) -> Result<Sha256, String> {
    let mut file_digest = Sha256::new();
    let mut reader = open_ldif(files, change_file, max_value_bytes, &mut file_digest)?;
    while let Some(record) = reader.next() {
        let line = reader.record_line();
        let located = |error| {
            LdifFileError::Parse {
                path: change_file.to_path_buf(),
                error,
            }
            .to_string()
        };
        match record.map_err(located)? {
            Record::Change(change) => {
                if let Some(base) = base.as_deref_mut() {
                    snapshot
                        .load_for(&change, base)
                        .map_err(|e| e.to_string())?;
                }
                snapshot.apply(&change).map_err(|e| {
                    format!(
                        "{}:{line}: change does not apply: {e}",
                        change_file.display()
                    )
                })?
            }
            Record::Content(entry) => {
                return Err(format!(
                    "{}:{line}: content record for {} in a change file; \
                     change files hold change records (changetype: …)",
                    change_file.display(),
                    quote_for_message(&entry.dn)
                ))
            }
        }
    }
    drop(reader);
    Ok(file_digest)
}

/// `sha256:…` of the bytes of the file at `path`, without parsing it.
pub(super) fn file_digest(files: &Tree, path: &Path) -> Result<String, String> {
    let mut file = files.open(path).map_err(|e| e.to_string())?;
    let mut digest = Sha256::new();
    std::io::copy(&mut file, &mut digest)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    Ok(hex_digest(digest))
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
struct DigestingReader<'d, R> {
    inner: R,
    digest: &'d mut Sha256,
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
) -> Result<DigestingLdifReader<'d>, String> {
    let file = files.open(path).map_err(|e| e.to_string())?;
    let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let urls = files.url_resolver(base_dir).map_err(|e| e.to_string())?;
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
fn credentials(settings: &LdapSettings, files: &Tree) -> Result<Credentials, String> {
    let password = match &settings.bind {
        LdapBind::Anonymous => None,
        LdapBind::Simple { password, .. } => Some(fetch_password(password)?),
    };
    let ca_pem = match (&settings.ca_pem, &settings.ca_file) {
        (Some(trusted), _) => Some(trusted.clone()),
        (None, None) => None,
        (None, Some(path)) => Some(
            files
                .read(path)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?,
        ),
    };
    Ok(Credentials { password, ca_pem })
}

/// Reads a bind password. An empty one is refused: RFC 4513 makes a simple bind with an
/// empty password an unauthenticated bind that servers accept, which would read the
/// directory with anonymous rights while looking authenticated.
fn fetch_password(from: &PasswordFrom) -> Result<Password, String> {
    let (secret, origin) = match from {
        PasswordFrom::Env(variable) => match std::env::var(variable) {
            Ok(value) => (value, format!("environment variable {variable}")),
            Err(std::env::VarError::NotPresent) => {
                return Err(format!(
                    "environment variable {variable} (password_env) is not set"
                ))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!(
                    "environment variable {variable} (password_env) is not valid UTF-8"
                ))
            }
        },
        PasswordFrom::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("password_file {}: cannot read: {e}", path.display()))?;
            let text = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_string();
            (text, format!("password_file {}", path.display()))
        }
    };
    if secret.is_empty() {
        return Err(format!(
            "{origin} holds an empty password (an unauthenticated bind); refusing"
        ));
    }
    Ok(Password::new(secret))
}
