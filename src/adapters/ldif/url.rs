//! What the reader does with `attr:< URL` values: the [`UrlResolver`] policy.
//!
//! Entries hold bytes, so a URL value must be turned into bytes while reading. The default
//! policy, [`FileUrls`], reads local files only: `file:///abs/path`, and paths, a relative
//! one against the directory of the LDIF file that names it. It must not fetch anything
//! over the network: any other scheme is an error.

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Why a URL value could not be had. Its text is a reason: the reader adds the line, the
/// attribute and the URL.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// A `file://host/...` URL naming a host other than `localhost`.
    #[error("file URLs naming a host (\"{host}\") are not supported; use file:///absolute/path")]
    HostNamed { host: String },
    /// A scheme other than `file:`.
    #[error("unsupported URL scheme \"{scheme}\": only file: URLs and paths can be read")]
    UnsupportedScheme { scheme: String },
    /// A URL with an empty path.
    #[error("the URL names no file")]
    NoFile,
    /// A relative path where there is no base directory to resolve it against.
    #[error(
        "relative path \"{}\" needs a base directory; use file:///absolute/path",
        path.display()
    )]
    NeedsBase { path: PathBuf },
    /// A `%` not followed by two hex digits.
    #[error("bad %-escape in \"{text}\"")]
    BadEscape { text: String },
    /// `%XX` escapes that decode to bytes that are not UTF-8.
    #[error("\"{text}\" decodes to a path that is not UTF-8")]
    NotUtf8 { text: String },
    /// The file cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The value is larger than the limit.
    #[error(
        "it holds {size} bytes, more than the limit of {max_bytes} bytes (max_value_bytes of \
         the source)"
    )]
    TooLarge { size: u64, max_bytes: usize },
    /// A resolver's own reason: a closure's, or the confinement of the files a config
    /// may read.
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
}

/// Turns the URL of an `attr:< URL` value into the value's bytes.
///
/// Closures `FnMut(&str, usize) -> Result<Vec<u8>, String>` are resolvers too; their
/// reason becomes [`UrlError::Refused`].
pub trait UrlResolver {
    /// The bytes `url` (as written, spaces around it removed) stands for; more than
    /// `max_bytes` of them is an error ([`UrlError::TooLarge`]), found before they are
    /// read where the resolver can.
    fn resolve(&mut self, url: &str, max_bytes: usize) -> Result<Vec<u8>, UrlError>;
}

impl<F> UrlResolver for F
where
    F: FnMut(&str, usize) -> Result<Vec<u8>, String>,
{
    fn resolve(&mut self, url: &str, max_bytes: usize) -> Result<Vec<u8>, UrlError> {
        self(url, max_bytes).map_err(|reason| UrlError::Refused(reason.into()))
    }
}

/// The default policy: read `file:` URLs and paths from the local file system.
///
/// * `file:///abs/path` (or `file://localhost/abs/path`): that file; `%XX` escapes are
///   decoded.
/// * `/abs/path`: that file.
/// * `rel/path` or `file:rel/path`: relative to the base directory, if there is one.
/// * anything else (`http:`, `ldap:`, `file://host/...`): an error.
#[derive(Debug, Clone, Default)]
pub struct FileUrls {
    base_dir: Option<PathBuf>,
}

impl FileUrls {
    /// Reads absolute `file:` URLs and paths only; relative ones are errors.
    pub fn absolute_only() -> Self {
        FileUrls { base_dir: None }
    }

    /// Reads relative paths relative to `base_dir` (the directory of the LDIF file).
    pub fn relative_to(base_dir: impl Into<PathBuf>) -> Self {
        FileUrls {
            base_dir: Some(base_dir.into()),
        }
    }

    /// The file a URL names, without reading it.
    pub fn path_of(&self, url: &str) -> Result<PathBuf, UrlError> {
        let path = if let Some(rest) = strip_prefix_ignore_case(url, "file:") {
            let path = if let Some(authority_and_path) = rest.strip_prefix("//") {
                let slash = authority_and_path
                    .find('/')
                    .unwrap_or(authority_and_path.len());
                let host = &authority_and_path[..slash];
                if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                    return Err(UrlError::HostNamed {
                        host: host.to_string(),
                    });
                }
                &authority_and_path[slash..]
            } else {
                rest
            };
            PathBuf::from(percent_decode(path)?)
        } else if let Some(scheme) = scheme_of(url) {
            return Err(UrlError::UnsupportedScheme {
                scheme: scheme.to_string(),
            });
        } else {
            PathBuf::from(url)
        };
        if path.as_os_str().is_empty() {
            return Err(UrlError::NoFile);
        }
        if path.is_absolute() {
            return Ok(path);
        }
        match &self.base_dir {
            Some(base) => Ok(base.join(path)),
            None => Err(UrlError::NeedsBase { path }),
        }
    }
}

impl UrlResolver for FileUrls {
    fn resolve(&mut self, url: &str, max_bytes: usize) -> Result<Vec<u8>, UrlError> {
        read_bounded(&self.path_of(url)?, max_bytes)
    }
}

/// The bytes of the file at `path`, refused ([`UrlError::TooLarge`]) when they are more
/// than `max_bytes`, without reading more than one byte past the limit.
pub fn read_bounded(path: &Path, max_bytes: usize) -> Result<Vec<u8>, UrlError> {
    let cannot_read = |source| UrlError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let size = file.metadata().map_err(cannot_read)?.len();
    if size > max_bytes as u64 {
        return Err(UrlError::TooLarge { size, max_bytes });
    }
    // The size a file claims (0 for many special files) bounds nothing: read one byte
    // past the limit at most.
    let mut value = Vec::with_capacity(size as usize);
    file.take(max_bytes as u64 + 1)
        .read_to_end(&mut value)
        .map_err(cannot_read)?;
    if value.len() > max_bytes {
        return Err(UrlError::TooLarge {
            size: value.len() as u64,
            max_bytes,
        });
    }
    Ok(value)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The scheme of an absolute URL (`http` in `http://x`), per RFC 3986's
/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`.
fn scheme_of(url: &str) -> Option<&str> {
    let colon = url.find(':')?;
    let scheme = &url[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

fn percent_decode(text: &str) -> Result<String, UrlError> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UrlError::BadEscape {
                    text: text.to_string(),
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::NotUtf8 {
        text: text.to_string(),
    })
}

/// The directory relative URLs in `file` are resolved against.
pub(crate) fn base_dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_and_paths() {
        let urls = FileUrls::relative_to("/data/ldif");
        assert_eq!(
            urls.path_of("file:///a/b.jpg").unwrap(),
            PathBuf::from("/a/b.jpg")
        );
        assert_eq!(
            urls.path_of("FILE://localhost/a%20b.jpg").unwrap(),
            PathBuf::from("/a b.jpg")
        );
        assert_eq!(urls.path_of("/a/b.jpg").unwrap(), PathBuf::from("/a/b.jpg"));
        assert_eq!(
            urls.path_of("photos/b.jpg").unwrap(),
            PathBuf::from("/data/ldif/photos/b.jpg")
        );
        assert_eq!(
            urls.path_of("file:photos/b.jpg").unwrap(),
            PathBuf::from("/data/ldif/photos/b.jpg")
        );
    }

    #[test]
    fn refuses_other_schemes_hosts_and_unbased_relative_paths() {
        let urls = FileUrls::relative_to("/data");
        let err = urls
            .path_of("http://example.com/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported URL scheme \"http\""), "{err}");
        let err = urls
            .path_of("file://server/share/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("naming a host"), "{err}");
        let err = urls.path_of("file:///a%2").unwrap_err().to_string();
        assert!(err.contains("bad %-escape"), "{err}");
        let err = FileUrls::absolute_only()
            .path_of("rel.jpg")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a base directory"), "{err}");
    }

    #[test]
    fn reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("photo.jpg"), b"\xff\xd8bytes").unwrap();
        let mut urls = FileUrls::relative_to(dir.path());
        assert_eq!(urls.resolve("photo.jpg", 7).unwrap(), b"\xff\xd8bytes");
        let err = urls.resolve("missing.jpg", 7).unwrap_err();
        // The I/O error is kept as the cause, not only as text.
        assert!(
            std::error::Error::source(&err)
                .is_some_and(|cause| cause.downcast_ref::<std::io::Error>().is_some()),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(err.starts_with("cannot read "), "{err}");
        let err = urls.resolve("photo.jpg", 6).unwrap_err();
        assert!(
            matches!(
                err,
                UrlError::TooLarge {
                    size: 7,
                    max_bytes: 6
                }
            ),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(
            err.starts_with("it holds 7 bytes, more than the limit of 6 bytes"),
            "{err}"
        );
    }
}
