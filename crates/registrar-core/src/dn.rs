//! Distinguished names (RFC 4514): parsing into RDNs and a normalised form for comparison.
//!
//! DNs arrive spelled many ways: `CN=Svc ,OU=Service Accounts,DC=Corp` from a config,
//! `cn=svc,ou=service accounts,dc=corp` from a server, `\2C` or `\,` for the same comma.
//! The core compares them through [`Dn::normalized`] and [`Dn::is_within`] (exclusion
//! `dn_subtree`, org-unit groups, protected principals).
//!
//! This module is pure: no I/O, no clock, no global state, and no schema: attribute types
//! are compared by name ignoring ASCII case, never resolved (`cn` and `2.5.4.3` differ),
//! and values are compared ignoring case only (no RFC 4518 space folding: `a  b` and
//! `a b` differ). Errors carry a 1-based character column; callers add the context.
//!
//! # Accepted syntax
//!
//! RFC 4514, plus what RFC 4514 §4 says implementations may accept from RFC 1779:
//! - RDNs separated by `,` or `;`, multi-valued RDNs joined by `+`; spaces around `,`,
//!   `;`, `+` and `=` are ignored (an escaped space, `\ ` or `\20`, is kept).
//! - Escapes: a backslash before one of `space " # + , ; < = > \`, or two hex digits
//!   (UTF-8 bytes such as `\C4\8D`). The unescaped value must be UTF-8.
//! - `#` followed by an even, non-zero number of hex digits is a BER-encoded value, kept
//!   as hex (lowercased), not decoded.
//! - Quoted values (`CN="Smith, John"`) and the `OID.` prefix on numeric types.
//! - Attribute types are names (`ALPHA *(ALPHA / DIGIT / "-")`) or numeric OIDs; options
//!   (`uid;x-option`), `_` in names and leading zeros in OIDs are errors.
//! - The empty string (or only spaces) is the root DN, with no RDNs.
//!
//! # Normal form
//!
//! [`Dn::normalized`]: types lowercased, values lowercased character by character
//! (`char::to_lowercase`), each AVA re-escaped canonically (backslash before
//! `" + , ; < > \`, a leading `#`, a leading or trailing space; `\XX` for control
//! characters), the AVAs of a multi-valued RDN sorted, no spaces. It is a fixed point:
//! parsing a normalised DN and normalising again gives the same string. Two [`Dn`]s are
//! equal when their normal forms are.

use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::attribute_name::{check_attribute_type, TypeProblem};
use crate::cursor::Cursor;
use crate::quote::{quote_for_message, shown_for_message};

/// A DN that failed to parse: where (1-based character column) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct DnError {
    /// 1-based character (not byte) column in the DN text.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed distinguished name: its RDNs from the entry's own (leftmost) to the root's
/// child (rightmost).
#[derive(Debug, Clone, Default)]
pub struct Dn {
    rdns: Vec<Rdn>,
}

/// One relative distinguished name: one or more attribute-value assertions.
#[derive(Debug, Clone)]
pub struct Rdn {
    avas: Vec<Ava>,
    /// The canonical form, computed once for comparisons.
    normalized: String,
}

/// One `type=value` pair of an RDN, as written (unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    /// The attribute type as written, without an `OID.` prefix.
    pub attribute_type: String,
    /// The value.
    pub value: AttributeValue,
}

/// An RDN value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// A string value, unescaped.
    Text(String),
    /// A `#hex` BER-encoded value: the hex digits as written, without the `#`.
    Ber(String),
}

impl Dn {
    /// Parses an RFC 4514 DN string. See the module documentation for what is accepted.
    pub fn parse(input: &str) -> Result<Dn, DnError> {
        let mut parser = Parser {
            cursor: Cursor::new(input),
        };
        parser.skip_spaces();
        if parser.cursor.at_end() {
            return Ok(Dn::root());
        }
        let mut rdns = Vec::new();
        loop {
            rdns.push(parser.parse_rdn()?);
            match parser.cursor.peek() {
                None => break,
                Some(c @ (',' | ';')) => {
                    let separator = parser.cursor.pos();
                    parser.cursor.bump();
                    parser.skip_spaces();
                    if parser.cursor.at_end() {
                        return Err(
                            parser.error(separator, format!("trailing {c:?} with no RDN after it"))
                        );
                    }
                }
                Some(c) => return Err(parser.error_here(format!("unexpected {c:?}"))),
            }
        }
        Ok(Dn { rdns })
    }

    /// The root DN (the empty string): no RDNs.
    pub fn root() -> Dn {
        Dn { rdns: Vec::new() }
    }

    /// The RDNs, the entry's own first.
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// The entry's own RDN (`cn=Alice` in `cn=Alice,ou=People`); `None` for the root.
    pub fn rdn(&self) -> Option<&Rdn> {
        self.rdns.first()
    }

    /// The DN without its first RDN; `None` for the root. The parent of a one-RDN DN is
    /// the root.
    pub fn parent(&self) -> Option<Dn> {
        (!self.rdns.is_empty()).then(|| Dn {
            rdns: self.rdns[1..].to_vec(),
        })
    }

    /// The canonical string (see the module documentation), for comparing and storing.
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        for (index, rdn) in self.rdns.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(&rdn.normalized);
        }
        out
    }

    /// Whether this DN is `ancestor` or lies below it. Everything is within the root.
    pub fn is_within(&self, ancestor: &Dn) -> bool {
        let Some(skip) = self.rdns.len().checked_sub(ancestor.rdns.len()) else {
            return false;
        };
        self.rdns[skip..]
            .iter()
            .zip(&ancestor.rdns)
            .all(|(mine, theirs)| mine.normalized == theirs.normalized)
    }
}

impl Rdn {
    fn new(avas: Vec<Ava>) -> Rdn {
        let mut parts: Vec<String> = avas.iter().map(Ava::normalized).collect();
        parts.sort();
        Rdn {
            avas,
            normalized: parts.join("+"),
        }
    }

    /// The attribute-value pairs, as written.
    pub fn avas(&self) -> &[Ava] {
        &self.avas
    }

    /// The canonical form of this RDN alone.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

impl Ava {
    fn normalized(&self) -> String {
        let mut out = self.attribute_type.to_ascii_lowercase();
        out.push('=');
        match &self.value {
            AttributeValue::Text(text) => {
                let folded: String = text.chars().flat_map(char::to_lowercase).collect();
                push_escaped(&mut out, &folded);
            }
            AttributeValue::Ber(hex) => {
                out.push('#');
                out.push_str(&hex.to_ascii_lowercase());
            }
        }
        out
    }
}

impl PartialEq for Rdn {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for Rdn {}

impl Hash for Rdn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Self) -> bool {
        self.rdns == other.rdns
    }
}

impl Eq for Dn {}

impl Hash for Dn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rdns.hash(state);
    }
}

/// RFC 4514 form with the case as written and canonical escaping.
impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, rdn) in self.rdns.iter().enumerate() {
            if index > 0 {
                f.write_char(',')?;
            }
            write!(f, "{rdn}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, ava) in self.avas.iter().enumerate() {
            if index > 0 {
                f.write_char('+')?;
            }
            write!(f, "{ava}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Ava {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            AttributeValue::Text(text) => {
                write!(f, "{}={}", self.attribute_type, escape_value(text))
            }
            AttributeValue::Ber(hex) => write!(f, "{}=#{hex}", self.attribute_type),
        }
    }
}

impl FromStr for Dn {
    type Err = DnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dn::parse(s)
    }
}

/// Escapes a string for use as an RDN value (RFC 4514 §2.4): a backslash before
/// `" + , ; < > \`, a leading `#`, a leading or trailing space; `\XX` for control
/// characters. `format!("cn={},ou=People", escape_value(name))`.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_escaped(&mut out, value);
    out
}

fn push_escaped(out: &mut String, value: &str) {
    for (at, c) in value.char_indices() {
        let first = at == 0;
        let last = at + c.len_utf8() == value.len();
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if first => out.push_str("\\#"),
            ' ' if first || last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buffer = [0; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    let _ = write!(out, "\\{byte:02x}");
                }
            }
            c => out.push(c),
        }
    }
}

/// The normal form of `dn` when it parses; otherwise (DNs from files can be odd) the
/// trimmed, lowercased text, itself normalised if that parses. Idempotent.
///
/// ```
/// use registrar_core::dn::normalize_dn;
///
/// let normal = normalize_dn("CN=Alice Liddell, OU=People,DC=Example");
/// assert_eq!(normal, "cn=alice liddell,ou=people,dc=example");
/// assert_eq!(normalize_dn(&normal), normal);
/// // Escapes read as the characters they stand for.
/// assert_eq!(normalize_dn(r"cn=Smith\2C John,dc=x"), normalize_dn(r"cn=smith\, john,dc=x"));
/// ```
pub fn normalize_dn(dn: &str) -> String {
    if let Some(normal) = plain_normal_form(dn) {
        return normal;
    }
    if let Ok(parsed) = Dn::parse(dn) {
        return parsed.normalized();
    }
    let lowered: String = dn.trim().chars().flat_map(char::to_lowercase).collect();
    match Dn::parse(&lowered) {
        Ok(parsed) => parsed.normalized(),
        Err(_) => lowered,
    }
}

/// The normal form of a DN written plainly, as directories mostly write them: ASCII
/// `type=value` pairs joined by commas, each type a name, each value free of what the
/// normal form escapes or drops (no `" + ; < > \ =`, no control character, no `#`
/// first, no space at either end). Parsing such a DN yields exactly its RDNs as written,
/// one pair each, so its normal form is its ASCII lowercase, found without building a
/// [`Dn`] (an apply of a million accounts normalises a million DNs). `None` for any
/// other DN: the parser decides.
fn plain_normal_form(dn: &str) -> Option<String> {
    if dn.is_empty() {
        return None;
    }
    for rdn in dn.split(',') {
        let (attribute_type, value) = rdn.split_once('=')?;
        let mut type_bytes = attribute_type.bytes();
        let named = type_bytes.next()?.is_ascii_alphabetic()
            && type_bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let value = value.as_bytes();
        let (first, last) = (*value.first()?, *value.last()?);
        let plain = first != b'#'
            && first != b' '
            && last != b' '
            && value.iter().all(|&b| {
                (b' '..=b'~').contains(&b)
                    && !matches!(b, b'"' | b'+' | b';' | b'<' | b'>' | b'\\' | b'=')
            });
        if !(named && plain) {
            return None;
        }
    }
    Some(dn.to_ascii_lowercase())
}

/// Characters that may follow a backslash as themselves.
const ESCAPABLE: &[char] = &[' ', '"', '#', '+', ',', ';', '<', '=', '>', '\\'];

struct Parser<'a> {
    cursor: Cursor<'a>,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        self.cursor.skip_while(|c| c == ' ');
    }

    fn at_separator_or_end(&self) -> bool {
        matches!(self.cursor.peek(), None | Some(',' | ';' | '+'))
    }

    fn error(&self, pos: usize, message: impl Into<String>) -> DnError {
        DnError {
            column: self.cursor.column(pos),
            message: message.into(),
        }
    }

    /// An error at the next character.
    fn error_here(&self, message: impl Into<String>) -> DnError {
        self.error(self.cursor.pos(), message)
    }

    fn parse_rdn(&mut self) -> Result<Rdn, DnError> {
        let mut avas = vec![self.parse_ava()?];
        while self.cursor.eat('+') {
            self.skip_spaces();
            avas.push(self.parse_ava()?);
        }
        Ok(Rdn::new(avas))
    }

    /// `type = value`, then any spaces; stops on a separator or the end.
    fn parse_ava(&mut self) -> Result<Ava, DnError> {
        let start = self.cursor.pos();
        let written = self
            .cursor
            .skip_while(|c| !matches!(c, '=' | ',' | '+' | ';' | ' '));
        if written.is_empty() {
            return Err(match self.cursor.peek() {
                Some(',' | ';') => self.error_here("empty RDN: two separators in a row"),
                Some('+') => self.error_here("empty attribute-value pair before '+'"),
                _ => self.error_here("missing attribute type before '='"),
            });
        }
        let attribute_type = self.attribute_type(written, start)?;
        self.skip_spaces();
        if !self.cursor.eat('=') {
            return Err(self.error_here(format!(
                "expected \"=\" after attribute type {}",
                quote_for_message(written)
            )));
        }
        self.skip_spaces();
        let value = match self.cursor.peek() {
            Some('#') => self.parse_ber()?,
            Some('"') => self.parse_quoted()?,
            _ => self.parse_string()?,
        };
        Ok(Ava {
            attribute_type,
            value,
        })
    }

    /// Checks a type (name or numeric OID, `OID.` prefix allowed) and returns it.
    fn attribute_type(&self, written: &str, start: usize) -> Result<String, DnError> {
        let (name, offset) = match written.get(..4) {
            Some(prefix)
                if prefix.eq_ignore_ascii_case("oid.")
                    && written[4..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                (&written[4..], 4)
            }
            _ => (written, 0),
        };
        match check_attribute_type(name) {
            Ok(()) => Ok(name.to_string()),
            Err(TypeProblem::InvalidCharacter(at, c)) => Err(self.error(
                start + offset + at,
                format!(
                    "invalid character {c:?} in attribute type {}",
                    quote_for_message(written)
                ),
            )),
            Err(TypeProblem::InvalidNumericOid) => Err(self.error(
                start,
                format!("invalid numeric OID {}", quote_for_message(name)),
            )),
            Err(TypeProblem::Empty) => Err(self.error(start, "missing attribute type before '='")),
        }
    }

    /// `#hex`, positioned on the `#`.
    fn parse_ber(&mut self) -> Result<AttributeValue, DnError> {
        let start = self.cursor.pos();
        self.cursor.bump();
        let hex = self
            .cursor
            .skip_while(|c| !matches!(c, ',' | ';' | '+' | ' '));
        if hex.is_empty()
            || !hex.len().is_multiple_of(2)
            || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(self.error(
                start,
                format!(
                    "invalid hex value \"#{}\": '#' starts a BER value and must be followed \
                     by an even number of hex digits; write \\# for a value starting with '#'",
                    shown_for_message(hex)
                ),
            ));
        }
        let hex = hex.to_string();
        self.skip_spaces();
        self.expect_separator_or_end()?;
        Ok(AttributeValue::Ber(hex))
    }

    /// `"..."` (RFC 1779), positioned on the opening quote.
    fn parse_quoted(&mut self) -> Result<AttributeValue, DnError> {
        let open = self.cursor.pos();
        self.cursor.bump();
        let mut bytes = Vec::new();
        loop {
            match self.cursor.peek() {
                None => return Err(self.error(open, "unterminated quoted value: missing '\"'")),
                Some('"') => {
                    self.cursor.bump();
                    break;
                }
                Some('\\') => self.unescape(&mut bytes)?,
                Some(c) => {
                    self.cursor.bump();
                    push_char(&mut bytes, c);
                }
            }
        }
        let text = self.utf8(bytes, open)?;
        self.skip_spaces();
        self.expect_separator_or_end()?;
        Ok(AttributeValue::Text(text))
    }

    /// A plain string value up to a separator; unescaped trailing spaces are dropped.
    fn parse_string(&mut self) -> Result<AttributeValue, DnError> {
        let start = self.cursor.pos();
        let mut bytes = Vec::new();
        let mut significant = 0;
        while !self.at_separator_or_end() {
            match self.cursor.peek() {
                Some('\\') => {
                    self.unescape(&mut bytes)?;
                    significant = bytes.len();
                }
                Some(c) => {
                    self.cursor.bump();
                    push_char(&mut bytes, c);
                    if c != ' ' {
                        significant = bytes.len();
                    }
                }
                None => break,
            }
        }
        bytes.truncate(significant);
        Ok(AttributeValue::Text(self.utf8(bytes, start)?))
    }

    /// One escape, positioned on the backslash.
    fn unescape(&mut self, bytes: &mut Vec<u8>) -> Result<(), DnError> {
        let at = self.cursor.pos();
        self.cursor.bump();
        let rest = self.cursor.rest();
        match (self.cursor.peek(), self.cursor.peek_nth(1)) {
            (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                bytes.push(u8::from_str_radix(&rest[..2], 16).unwrap_or_default());
                self.cursor.bump();
                self.cursor.bump();
            }
            (Some(c), _) if ESCAPABLE.contains(&c) => {
                self.cursor.bump();
                push_char(bytes, c);
            }
            _ => {
                let shown: String = rest.chars().take(2).collect();
                return Err(self.error(
                    at,
                    format!(
                        "invalid escape \"\\{}\": a backslash must be followed by two hex \
                         digits or by one of: space \" # + , ; < = > \\",
                        shown_for_message(&shown)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn utf8(&self, bytes: Vec<u8>, start: usize) -> Result<String, DnError> {
        String::from_utf8(bytes)
            .map_err(|_| self.error(start, "value is not valid UTF-8 once unescaped"))
    }

    fn expect_separator_or_end(&self) -> Result<(), DnError> {
        match self.cursor.peek() {
            None | Some(',' | ';' | '+') => Ok(()),
            Some(c) => Err(self.error_here(format!(
                "unexpected {c:?} after the value; expected ',', '+' or the end"
            ))),
        }
    }
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buffer = [0; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn normal(s: &str) -> String {
        dn(s).normalized()
    }

    fn text(ava: &Ava) -> &str {
        match &ava.value {
            AttributeValue::Text(text) => text,
            AttributeValue::Ber(hex) => panic!("unexpected BER value #{hex}"),
        }
    }

    #[test]
    fn differently_spelled_dns_compare_equal() {
        assert_eq!(
            dn("CN=Svc  ,OU=Service Accounts,DC=Corp"),
            dn("cn=svc,ou=service accounts,dc=corp")
        );
        assert_eq!(
            normal("CN=Svc  ,OU=Service Accounts,DC=Corp"),
            "cn=svc,ou=service accounts,dc=corp"
        );
        assert_eq!(
            normal("UID=jsmith, O=example, C=US"),
            "uid=jsmith,o=example,c=us"
        );
        assert_eq!(
            normal("UID=jsmith;O=example;C=US"),
            "uid=jsmith,o=example,c=us"
        );
        assert_eq!(normal("  cn = a  +  sn = b  ,  dc = x  "), "cn=a+sn=b,dc=x");
        assert_ne!(dn("cn=a  b"), dn("cn=a b"), "inner spaces are significant");
        assert_ne!(dn("cn=a,dc=x"), dn("sn=a,dc=x"));
    }

    #[test]
    fn openldap_test_dn_corpus_forms() {
        // From /work/shared/corpus/ldif/openldap/test-dn.ldif: each pair is the same DN.
        for (a, b, expected) in [
            (
                "CN=John Smith\\, III,DC=example,DC=net",
                "CN=John Smith\\2C III,DC=example,DC=net",
                "cn=john smith\\, iii,dc=example,dc=net",
            ),
            (
                "OU=Sales\\; Data\\+Algorithms,DC=example,DC=net",
                "OU=Sales\\3B Data\\2BAlgorithms,DC=example,DC=net",
                "ou=sales\\; data\\+algorithms,dc=example,dc=net",
            ),
            (
                "CN=\\23John Smith\\20,DC=example,DC=net",
                "CN=\\#John Smith\\ ,DC=example,DC=net",
                "cn=\\#john smith\\ ,dc=example,dc=net",
            ),
            (
                "OU=Sales+CN=J. Smith,DC=example,DC=net",
                "cn=J. Smith+ou=Sales,dc=example,dc=net",
                "cn=j. smith+ou=sales,dc=example,dc=net",
            ),
            ("CN=Lu\\C4\\8Di\\C4\\87", "cn=Lučić", "cn=lučić"),
            (
                "UID=jsmith,DC=example,DC=net",
                "uid=JSMITH,dc=EXAMPLE,dc=NET",
                "uid=jsmith,dc=example,dc=net",
            ),
            (
                "testUUID=597ae2f6-16a6-1027-98f4-abcdefABCDEF,DC=Example",
                "testuuid=597AE2F6-16A6-1027-98F4-ABCDEFABCDEF,dc=example",
                "testuuid=597ae2f6-16a6-1027-98f4-abcdefabcdef,dc=example",
            ),
            (
                "1.3.6.1.4.1.1466.0=#04024869,DC=example,DC=com",
                "1.3.6.1.4.1.1466.0=#04024869,dc=example,dc=com",
                "1.3.6.1.4.1.1466.0=#04024869,dc=example,dc=com",
            ),
            (
                "CN=Before\\0dAfter,DC=example,DC=net",
                "cn=before\\0Dafter,dc=example,dc=net",
                "cn=before\\0dafter,dc=example,dc=net",
            ),
            (
                "OID.0.9.2342.19200300.100.1.1=jsmith",
                "0.9.2342.19200300.100.1.1=jsmith",
                "0.9.2342.19200300.100.1.1=jsmith",
            ),
            (
                "CN=\"John Smith\",O=example,C=US",
                "cn=John Smith,o=example,c=us",
                "cn=john smith,o=example,c=us",
            ),
            ("CN=\"Smith, John\"", "cn=Smith\\, John", "cn=smith\\, john"),
        ] {
            assert_eq!(normal(a), expected, "{a}");
            assert_eq!(dn(a), dn(b), "{a} vs {b}");
        }
        let smith = dn("CN=John Smith\\, III,DC=example,DC=net");
        assert_eq!(text(&smith.rdns()[0].avas()[0]), "John Smith, III");
        let cr = dn("CN=Before\\0dAfter,DC=example,DC=net");
        assert_eq!(text(&cr.rdns()[0].avas()[0]), "Before\rAfter");
        let ber = dn("1.3.6.1.4.1.1466.0=#04024869,DC=example,DC=com");
        assert_eq!(
            ber.rdns()[0].avas()[0].value,
            AttributeValue::Ber("04024869".into())
        );
        let equals = dn("cn=A*x=b is a linear algebra problem,ou=LDAPv3,dc=example,dc=com");
        assert_eq!(
            text(&equals.rdns()[0].avas()[0]),
            "A*x=b is a linear algebra problem"
        );
        let empty = dn("1.1.1=");
        assert_eq!(text(&empty.rdns()[0].avas()[0]), "");
        assert_eq!(empty.normalized(), "1.1.1=");
        let multi = dn("OU=Sales+CN=J. Smith,DC=example,DC=net");
        let types: Vec<&str> = multi.rdns()[0]
            .avas()
            .iter()
            .map(|a| a.attribute_type.as_str())
            .collect();
        assert_eq!(types, ["OU", "CN"], "AVAs keep their written order");
    }

    #[test]
    fn openldap_test_dn_corpus_failures() {
        for (input, column, message) in [
            (
                "uid;x-option=jsmith",
                4,
                "expected \"=\" after attribute type \"uid\"",
            ),
            (
                "at_tr=jsmith",
                3,
                "invalid character '_' in attribute type \"at_tr\"",
            ),
            (
                "-attr=jsmith",
                1,
                "invalid character '-' in attribute type \"-attr\"",
            ),
            ("1..1=jsmith", 1, "invalid numeric OID \"1..1\""),
            ("1.1.=jsmith", 1, "invalid numeric OID \"1.1.\""),
            ("01.1=jsmith", 1, "invalid numeric OID \"01.1\""),
            (
                "1.ff=jsmith",
                3,
                "invalid character 'f' in attribute type \"1.ff\"",
            ),
            (
                "UID=jsmith,,DC=example,DC=net",
                12,
                "empty RDN: two separators in a row",
            ),
            (
                "UID=john,smith",
                15,
                "expected \"=\" after attribute type \"smith\"",
            ),
            (
                "UID=john+smith",
                15,
                "expected \"=\" after attribute type \"smith\"",
            ),
            ("cn=a,", 5, "trailing ',' with no RDN after it"),
            ("cn=a+", 6, "missing attribute type before '='"),
            ("=a", 1, "missing attribute type before '='"),
            (
                "<UID=jsmith,O=example,C=US>",
                1,
                "invalid character '<' in attribute type \"<UID\"",
            ),
            ("cn=\"open", 4, "unterminated quoted value: missing '\"'"),
            (
                "cn=\"x\" y",
                8,
                "unexpected 'y' after the value; expected ',', '+' or the end",
            ),
            ("cn=\\ff", 4, "value is not valid UTF-8 once unescaped"),
        ] {
            let e = Dn::parse(input).expect_err(input);
            assert_eq!((e.column, e.message.as_str()), (column, message), "{input}");
        }
        for (input, column, shown) in [
            ("UID=john\\?smith", 9, "\\?s"),
            ("UID=john\\Fsmith", 9, "\\Fs"),
            ("UID=john\\GGsmith", 9, "\\GG"),
            ("UID=john\\", 9, "\\"),
        ] {
            let e = Dn::parse(input).expect_err(input);
            assert_eq!(e.column, column, "{input}");
            assert!(
                e.message
                    .starts_with(&format!("invalid escape \"{shown}\"")),
                "{input}: {}",
                e.message
            );
        }
        for hex in ["#GG", "#000", "#F", "#"] {
            let input = format!("1.1.1={hex}");
            let e = Dn::parse(&input).expect_err(&input);
            assert_eq!(e.column, 7, "{input}");
            assert!(
                e.message
                    .starts_with(&format!("invalid hex value \"{hex}\"")),
                "{input}"
            );
        }
        assert_eq!(
            Dn::parse("cn=a,,b").unwrap_err().to_string(),
            "column 6: empty RDN: two separators in a row"
        );
    }

    #[test]
    fn root_parent_rdn_and_is_within() {
        let root = dn("");
        assert!(root.rdns().is_empty());
        assert_eq!(dn("   "), root);
        assert_eq!(root.parent(), None);
        assert_eq!(root.rdn(), None);
        assert_eq!(root.normalized(), "");

        let alice = dn("CN=Alice,OU=People,DC=Corp,DC=Example");
        assert_eq!(alice.rdn().map(Rdn::normalized), Some("cn=alice"));
        assert_eq!(
            alice.rdn().map(ToString::to_string),
            Some("CN=Alice".to_string())
        );
        let parent = alice.parent().unwrap();
        assert_eq!(parent, dn("ou=people,dc=corp,dc=example"));
        assert_eq!(dn("dc=example").parent(), Some(Dn::root()));

        let people = dn("ou=PEOPLE, dc=corp, dc=example");
        assert!(alice.is_within(&people));
        assert!(people.is_within(&people), "a DN is within itself");
        assert!(!people.is_within(&alice));
        assert!(alice.is_within(&root));
        assert!(!alice.is_within(&dn("ou=People,dc=other,dc=example")));
        assert!(
            !dn("ou=SalesPeople,dc=corp,dc=example").is_within(&dn("ou=People,dc=corp,dc=example"))
        );
        assert!(
            !dn("cn=x,ou=People\\,Old,dc=corp,dc=example")
                .is_within(&dn("ou=Old,dc=corp,dc=example")),
            "an escaped comma does not split RDNs"
        );
        let service = dn("OU=Service Accounts,DC=corp,DC=example");
        assert!(dn("CN=svc-registrar,OU=Service Accounts,DC=corp,DC=example").is_within(&service));
    }

    #[test]
    fn display_keeps_case_and_escapes_canonically() {
        assert_eq!(
            dn("CN=John Smith\\2C III , OU=Sales\\3B Data,DC=Example").to_string(),
            "CN=John Smith\\, III,OU=Sales\\; Data,DC=Example"
        );
        assert_eq!(
            dn("cn=\\ lead\\20and trail\\ ").to_string(),
            "cn=\\ lead and trail\\ "
        );
        assert_eq!(dn("cn=\\#x#").to_string(), "cn=\\#x#");
        assert_eq!(dn("cn=a\\00b").to_string(), "cn=a\\00b");
        assert_eq!(
            escape_value("Smith, John <jr>; #1 + \"x\" \\"),
            "Smith\\, John \\<jr\\>\\; #1 \\+ \\\"x\\\" \\\\"
        );
        assert_eq!(escape_value("#x "), "\\#x\\ ");
        assert_eq!(escape_value(" "), "\\ ");
        let parsed: Dn = "cn=a".parse().unwrap();
        assert_eq!(parsed, dn("CN=A"));
    }

    #[test]
    fn normalize_dn_falls_back_to_trimmed_lowercase() {
        assert_eq!(normalize_dn("CN=Svc ,DC=Corp"), "cn=svc,dc=corp");
        assert_eq!(
            normalize_dn("  <UID=JSmith,O=Example>  "),
            "<uid=jsmith,o=example>"
        );
        assert_eq!(normalize_dn("CN=a_b=c"), "cn=a_b=c");
        assert_eq!(normalize_dn("Not A DN"), "not a dn");
        // Lowercasing can turn a non-DN into one (KELVIN SIGN lowercases to 'k').
        assert_eq!(normalize_dn("\u{212a}n = X"), "kn=x");
    }

    fn attribute_type() -> impl Strategy<Value = String> {
        "[a-zA-Z][a-zA-Z0-9-]{0,5}|[1-9](\\.(0|[1-9][0-9]?)){1,3}"
    }

    fn dn_parts() -> impl Strategy<Value = Vec<Vec<(String, String)>>> {
        let value = prop_oneof!["\\PC{0,8}", "[ #+,;<=>\"\\\\a-zA-Z\u{1}\u{85}]{0,8}"];
        prop::collection::vec(prop::collection::vec((attribute_type(), value), 1..3), 0..4)
    }

    fn build(parts: &[Vec<(String, String)>]) -> String {
        parts
            .iter()
            .map(|rdn| {
                rdn.iter()
                    .map(|(t, v)| format!("{t}={}", escape_value(v)))
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn plain_dns_take_the_short_way_and_others_the_parser() {
        for (dn, normal) in [
            (
                "uid=User01,ou=People,dc=Example,dc=com",
                "uid=user01,ou=people,dc=example,dc=com",
            ),
            (
                "CN=Svc Account,OU=Service-Accounts,DC=corp",
                "cn=svc account,ou=service-accounts,dc=corp",
            ),
            ("cn=a#b,o=x.y@z", "cn=a#b,o=x.y@z"),
        ] {
            assert_eq!(plain_normal_form(dn).as_deref(), Some(normal), "{dn}");
            assert_eq!(normalize_dn(dn), normal, "{dn}");
        }
        for (dn, normal) in [
            ("", ""),
            ("cn=a, ou=b", "cn=a,ou=b"),
            ("cn=a ,ou=b", "cn=a,ou=b"),
            ("cn=#41", "cn=#41"),
            ("cn=\\#a", "cn=\\#a"),
            ("sn=a+CN=b", "cn=b+sn=a"),
            ("cn=a;ou=b", "cn=a,ou=b"),
            ("cn=Smith\\, John,ou=x", "cn=smith\\, john,ou=x"),
            ("OID.2.5.4.3=x", "2.5.4.3=x"),
            ("cn=Jürgen", "cn=jürgen"),
            ("cn=a=b", "cn=a=b"),
        ] {
            assert_eq!(plain_normal_form(dn), None, "{dn}");
            assert_eq!(normalize_dn(dn), normal, "{dn}");
        }
    }

    proptest! {
        #[test]
        fn escaped_values_parse_back_exactly(parts in dn_parts()) {
            let text = build(&parts);
            let parsed = Dn::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let got: Vec<Vec<(String, String)>> = parsed
                .rdns()
                .iter()
                .map(|rdn| rdn.avas().iter().map(|a| (a.attribute_type.clone(), text_of(a))).collect())
                .collect();
            prop_assert_eq!(got, parts);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn normalized_is_a_fixed_point(parts in dn_parts()) {
            let normalized = dn(&build(&parts)).normalized();
            prop_assert_eq!(dn(&normalized).normalized(), normalized.clone());
            prop_assert_eq!(normalize_dn(&normalized), normalized);
        }

        #[test]
        fn plain_dns_normalise_as_the_parser_does(input in prop_oneof![
            "[a-zA-Z0-9 =,+;\\\\#\"<>.é\t-]{0,24}",
            "([a-zA-Z][a-zA-Z0-9-]{0,3}=[a-zA-Z0-9 #.@é-]{1,6},){0,3}[a-zA-Z][a-zA-Z0-9-]{0,3}=[a-zA-Z0-9 #.@-]{1,6}",
        ]) {
            if let Some(plain) = plain_normal_form(&input) {
                let parsed = Dn::parse(&input)
                    .map_err(|e| TestCaseError::fail(format!("{input:?} is plain but: {e}")))?;
                prop_assert_eq!(plain, parsed.normalized(), "{:?}", input);
            }
        }

        #[test]
        fn normalize_dn_is_idempotent(input in prop_oneof![
            "[a-zA-Z0-9 =,+;\\\\#\"<>.]{0,24}",
            "\\PC{0,16}",
            "[cCnN]{1,2} ?= ?[a-zA-Z ]{0,5}(\\\\[0-9a-fA-F,+ ]{1,2})?[a-zA-Z ]{0,3}(, ?[dD][cC]=[a-zA-Z]{1,4}){0,2}",
        ]) {
            let once = normalize_dn(&input);
            prop_assert_eq!(normalize_dn(&once), once.clone(), "{:?}", input);
        }

        #[test]
        fn is_within_its_parent_chain(parts in dn_parts()) {
            let leaf = dn(&build(&parts));
            let mut ancestor = Some(leaf.clone());
            while let Some(current) = ancestor {
                prop_assert!(leaf.is_within(&current));
                ancestor = current.parent();
            }
        }
    }

    fn text_of(ava: &Ava) -> String {
        match &ava.value {
            AttributeValue::Text(text) => text.clone(),
            AttributeValue::Ber(hex) => format!("#{hex}"),
        }
    }
}
