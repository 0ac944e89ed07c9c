//! The lookup API: `GET /api/v1/registrations/{protocol}/{im_name}` answers who holds a
//! name, as JSON (`schemas/lookup-api.openapi.json` is its contract), or 404 when nobody
//! does. Callers present a bearer token; `api_tokens_file` lists the SHA-256 of each
//! token allowed (never the token itself), so the file reveals nothing if read.
//!
//! The name is normalised by the protocol's rule, as the store keys it, so `Alice` and
//! ` alice ` find the same row on a protocol that folds case.

use std::collections::HashSet;
use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

use super::site::Site;
use crate::adapters::store::Holder;

/// The largest tokens file read.
pub const MAX_TOKENS_FILE_BYTES: u64 = 1 << 20;

/// Why the tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    #[error("api_tokens_file {}: {error}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("api_tokens_file {}: larger than {} bytes", path.display(), MAX_TOKENS_FILE_BYTES)]
    TooLarge { path: std::path::PathBuf },
    /// The line is not quoted: the file may not be what the config meant it to be.
    #[error(
        "api_tokens_file {}:{line}: not a token's SHA-256 (64 hex digits, then an optional \
         label; `#` starts a comment)",
        path.display()
    )]
    NotADigest {
        path: std::path::PathBuf,
        line: usize,
    },
    #[error("api_tokens_file {}: lists no token", path.display())]
    Empty { path: std::path::PathBuf },
}

/// The SHA-256 digests of the tokens allowed.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    digests: HashSet<[u8; 32]>,
}

impl Tokens {
    /// Reads the tokens file at `path`.
    pub fn read(path: &Path) -> Result<Tokens, TokensFileError> {
        let unreadable = |error| TokensFileError::Unreadable {
            path: path.to_path_buf(),
            error,
        };
        let size = std::fs::metadata(path).map_err(unreadable)?.len();
        if size > MAX_TOKENS_FILE_BYTES {
            return Err(TokensFileError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read(path).map_err(unreadable)?;
        Tokens::parse(&text).map_err(|line| match line {
            Some(line) => TokensFileError::NotADigest {
                path: path.to_path_buf(),
                line,
            },
            None => TokensFileError::Empty {
                path: path.to_path_buf(),
            },
        })
    }

    /// The digests a tokens file's bytes list, or the first bad line's number (`None`:
    /// no digest at all).
    pub fn parse(text: &[u8]) -> Result<Tokens, Option<usize>> {
        let mut digests = HashSet::new();
        for (index, line) in text.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let content = line.split(|&b| b == b'#').next().unwrap_or_default();
            let Some(first) = content
                .split(|b| b.is_ascii_whitespace())
                .find(|word| !word.is_empty())
            else {
                continue;
            };
            let digest = decode_hex(first).ok_or(Some(index + 1))?;
            digests.insert(digest);
        }
        if digests.is_empty() {
            return Err(None);
        }
        Ok(Tokens { digests })
    }

    /// Whether `headers` carry `Authorization: Bearer <token>` with a listed token.
    pub fn admit(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
        else {
            return false;
        };
        !token.is_empty()
            && self
                .digests
                .contains(&<[u8; 32]>::from(Sha256::digest(token)))
    }
}

fn decode_hex(word: &[u8]) -> Option<[u8; 32]> {
    if word.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(word.chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(digest)
}

/// `GET /api/v1/registrations/{protocol}/{im_name}`.
pub async fn lookup(
    State(site): State<Site>,
    UrlPath((protocol, im_name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(tokens) = &site.tokens else {
        return problem(
            StatusCode::NOT_FOUND,
            "the lookup API is off (no api_tokens_file)",
        );
    };
    if !tokens.admit(&headers) {
        site.counters.count(&site.counters.api_refused);
        let mut response = problem(
            StatusCode::UNAUTHORIZED,
            "a listed bearer token is required",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"registrar\""),
        );
        return response;
    }
    let protocol = protocol.to_ascii_lowercase();
    let name_key = site.config.rules.protocol(&protocol).name_key(&im_name);
    let found = site
        .with_store(move |store| store.holder_of(&protocol, &name_key))
        .await;
    match found {
        Some(Ok(Some(holder))) => {
            site.counters.count(&site.counters.lookups_found);
            Json::<Holder>(holder).into_response()
        }
        Some(Ok(None)) => {
            site.counters.count(&site.counters.lookups_missing);
            problem(StatusCode::NOT_FOUND, "nobody holds that name")
        }
        Some(Err(error)) => {
            eprintln!("registrar serve: lookup failed: {error}");
            problem(StatusCode::SERVICE_UNAVAILABLE, "the store cannot be read")
        }
        None => problem(StatusCode::INTERNAL_SERVER_ERROR, "the lookup failed"),
    }
}

/// A JSON error body: `{"error": "..."}`.
fn problem(code: StatusCode, message: &'static str) -> Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(token: &str) -> String {
        Sha256::digest(token)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn listed_digests_admit_their_tokens_only() {
        let file = format!(
            "# IM gateway\n{}  gateway\n\n{} # reports\r\n",
            hex("s3cret"),
            hex("other").to_uppercase()
        );
        let tokens = Tokens::parse(file.as_bytes()).unwrap();
        assert!(tokens.admit(&bearer("s3cret")));
        assert!(tokens.admit(&bearer("other")));
        assert!(!tokens.admit(&bearer("s3cret2")));
        assert!(!tokens.admit(&bearer("")));
        assert!(!tokens.admit(&HeaderMap::new()));
        // The digest itself is not a token.
        assert!(!tokens.admit(&bearer(&hex("s3cret"))));
    }

    #[test]
    fn a_bad_line_is_named_by_number_and_an_empty_file_refused() {
        let file = format!("{}\nnot-a-digest\n", hex("a"));
        assert_eq!(Tokens::parse(file.as_bytes()).unwrap_err(), Some(2));
        assert_eq!(Tokens::parse(b"# nothing\n\n").unwrap_err(), None);
        assert_eq!(Tokens::parse(&[0xff; 64]).unwrap_err(), Some(1));
    }
}
