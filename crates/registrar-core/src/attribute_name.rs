//! RFC 4512 attribute types and descriptions: the syntax checks that DNs, filters and
//! templates share.
//!
//! Only the spelling is checked: a name (`ALPHA *(ALPHA / DIGIT / "-")`) or a numeric
//! OID without leading zeros, then, in a description, `;option`s. Nothing is resolved
//! against a schema (`cn` and `2.5.4.3` stay different). Pure, like the rest of the core.
//! Each caller words its own errors for [`TypeProblem`]; [`validate_attribute`] carries
//! the wording filters and templates use. [`is_secret_attribute`] names the attributes
//! whose values are credentials, which the config may never read.

/// Attribute names (lowercased) that hold credentials though they do not contain
/// `password`: Active Directory's and Samba's hashes and histories, LAPS, Kerberos keys,
/// trust and LSA secrets, PKCS #12 bundles.
const SECRET_NAMES: &[&str] = &[
    "unicodepwd",
    "ntpwdhistory",
    "lmpwdhistory",
    "dbcspwd",
    "ms-mcs-admpwd",
    "supplementalcredentials",
    "krbprincipalkey",
    "trustauthincoming",
    "trustauthoutgoing",
    "currentvalue",
    "priorvalue",
    "userpkcs12",
];

/// Whether the attribute `description` (options allowed: `userPassword;binary`) holds a
/// secret that must stay in the directory: any name containing `password` (any case:
/// `userPassword`, `sambaNTPassword`, `msDS-ManagedPassword`), and the credentials of
/// [`SECRET_NAMES`] (`unicodePwd`, `krbPrincipalKey`, …). A template, filter, anchor or
/// requested attribute of the config may not name one (DESIGN.md, "Trust").
pub fn is_secret_attribute(description: &str) -> bool {
    let name = crate::entry::base_name(description).to_ascii_lowercase();
    name.contains("password") || SECRET_NAMES.contains(&name.as_str())
}

/// The first secret attribute (see [`is_secret_attribute`]) among `descriptions`.
pub fn first_secret<'a>(descriptions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    descriptions.into_iter().find(|d| is_secret_attribute(d))
}

use crate::quote::quote_for_message;

/// Why an attribute type (without options) is not well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeProblem {
    /// The type is empty.
    Empty,
    /// The character at this byte offset may not stand there.
    InvalidCharacter(usize, char),
    /// Digits and dots, but not a numeric OID (`1..1`, `1.1.`, `01.1`).
    InvalidNumericOid,
}

/// Checks an attribute type: a name or a numeric OID, with no options.
pub(crate) fn check_attribute_type(attribute_type: &str) -> Result<(), TypeProblem> {
    let mut chars = attribute_type.char_indices();
    let invalid = match chars.next() {
        None => return Err(TypeProblem::Empty),
        Some((_, c)) if c.is_ascii_alphabetic() => chars.find(|&(_, c)| !is_name_char(c)),
        Some((_, c)) if c.is_ascii_digit() => {
            let invalid = chars.find(|&(_, c)| !(c.is_ascii_digit() || c == '.'));
            if invalid.is_none() && !is_numeric_oid(attribute_type) {
                return Err(TypeProblem::InvalidNumericOid);
            }
            invalid
        }
        first => first,
    };
    match invalid {
        Some((offset, c)) => Err(TypeProblem::InvalidCharacter(offset, c)),
        None => Ok(()),
    }
}

/// Checks an RFC 4512 attribute description: `name` or numeric OID, then `;option`s.
/// On error, the byte offset inside `description` and the message.
pub(crate) fn validate_attribute(description: &str) -> Result<(), (usize, String)> {
    let invalid = |offset: usize, c: char| {
        Err((
            offset,
            format!(
                "invalid character {c:?} in attribute description {}",
                quote_for_message(description)
            ),
        ))
    };
    let type_end = description.find(';').unwrap_or(description.len());
    let attribute_type = &description[..type_end];
    match check_attribute_type(attribute_type) {
        Ok(()) => {}
        Err(TypeProblem::Empty) => {
            return Err((0, "missing attribute type before ';'".to_string()))
        }
        Err(TypeProblem::InvalidCharacter(offset, c)) => return invalid(offset, c),
        Err(TypeProblem::InvalidNumericOid) => {
            return Err((
                0,
                format!("invalid numeric OID {}", quote_for_message(attribute_type)),
            ))
        }
    }
    let mut offset = type_end;
    for option in description[type_end..].split(';').skip(1) {
        offset += 1;
        if option.is_empty() {
            return Err((
                offset,
                format!(
                    "empty option in attribute description {}",
                    quote_for_message(description)
                ),
            ));
        }
        if let Some((inner, c)) = option.char_indices().find(|&(_, c)| !is_name_char(c)) {
            return invalid(offset + inner, c);
        }
        offset += option.len();
    }
    Ok(())
}

/// A character that may follow the first letter of a name, or stand in an option.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// `number *("." number)` with no leading zeros (RFC 4512 numericoid).
fn is_numeric_oid(text: &str) -> bool {
    text.split('.').all(|number| {
        !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
            && (number == "0" || !number.starts_with('0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_names_or_numeric_oids() {
        for ok in ["cn", "msRTCSIP-PrimaryUserAddress", "2.5.4.3", "0.9.2342"] {
            assert_eq!(check_attribute_type(ok), Ok(()), "{ok}");
        }
        for (bad, problem) in [
            ("", TypeProblem::Empty),
            ("at_tr", TypeProblem::InvalidCharacter(2, '_')),
            ("-a", TypeProblem::InvalidCharacter(0, '-')),
            ("1.ff", TypeProblem::InvalidCharacter(2, 'f')),
            ("1..1", TypeProblem::InvalidNumericOid),
            ("01.1", TypeProblem::InvalidNumericOid),
            ("1.1.", TypeProblem::InvalidNumericOid),
        ] {
            assert_eq!(check_attribute_type(bad), Err(problem), "{bad:?}");
        }
        assert_eq!(validate_attribute("cn;lang-fr"), Ok(()));
        assert_eq!(
            validate_attribute("cn;lang_fr"),
            Err((
                7,
                "invalid character '_' in attribute description \"cn;lang_fr\"".to_string()
            ))
        );
    }
}
