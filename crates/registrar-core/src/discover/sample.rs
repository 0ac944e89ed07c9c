//! Samples: the first value seen of an attribute, as it may be shown (text escaped and
//! cut, binary as its length), and which attributes are secret and never shown.

use std::fmt;

use serde::Serialize;

use crate::attribute_name::is_secret_attribute;
use crate::entry::base_name;
use crate::quote::printable;

/// The longest sample shown, in characters; a longer value is cut and ends with `…`.
pub(crate) const SAMPLE_CHARS: usize = 40;

/// Substrings of attribute names (lowercased, options removed) whose values are not
/// shown as samples, beyond the secrets the config may not read: a sample errs on the
/// side of hiding (`pwdLastSet` is hidden here, though a filter may read it).
pub(super) const HIDDEN_PARTS: &[&str] = &["pwd", "secret", "privatekey"];

/// Whether the values of the attribute `description` must never be shown: the secrets
/// of [`is_secret_attribute`] (passwords and their hashes, `unicodePwd`,
/// `krbPrincipalKey`, trust secrets), and anything whose name contains `pwd`, `secret`
/// or `privatekey`.
pub(crate) fn is_secret(description: &str) -> bool {
    if is_secret_attribute(description) {
        return true;
    }
    let name = base_name(description).to_ascii_lowercase();
    HIDDEN_PARTS.iter().any(|part| name.contains(part))
}

/// The first value seen of an attribute, as it may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sample {
    /// Text, control and invisible characters escaped (`\n`, `\u{202e}`), cut to
    /// [`SAMPLE_CHARS`] characters.
    Text(String),
    /// A value that is not text (not UTF-8, or holding control characters): its length.
    Binary { bytes: usize },
    /// A secret attribute: never shown.
    Hidden,
}

impl Sample {
    /// The sample of `value`, a value of the attribute `description`.
    pub fn of(description: &str, value: &[u8]) -> Sample {
        if is_secret(description) {
            return Sample::Hidden;
        }
        match std::str::from_utf8(value) {
            Ok(text)
                if !text
                    .chars()
                    .any(|c| c.is_control() && !"\t\n\r".contains(c)) =>
            {
                let mut shown = printable(&text.chars().take(SAMPLE_CHARS).collect::<String>());
                if text.chars().nth(SAMPLE_CHARS).is_some() {
                    shown.push('…');
                }
                Sample::Text(shown)
            }
            _ => Sample::Binary { bytes: value.len() },
        }
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sample::Text(text) => f.write_str(text),
            Sample::Binary { bytes } => write!(f, "<{bytes} bytes>"),
            Sample::Hidden => f.write_str("<hidden>"),
        }
    }
}
