//! RFC 4515 search filters: parser, canonical printer and local evaluator over
//! [`Entry`].
//!
//! The same filter strings appear in three places: sent to an LDAP server as a source's
//! search filter, evaluated locally by mappings (`when`), groups, exclusions and
//! `disabled_when`. So parsing is strict about RFC 4515 (a filter that parses here is one
//! a server accepts), and evaluation follows what a directory would answer closely enough
//! for those uses.
//!
//! This module is pure: no I/O, no clock, no global state. It must not know about
//! configuration files or line numbers: errors carry a 1-based character column and the
//! caller adds `file:line`.
//!
//! # Syntax accepted
//!
//! - `&`, `|`, `!`, equality `(a=v)`, presence `(a=*)`, substrings `(a=x*y*z)`,
//!   `(a>=v)`, `(a<=v)`, `(a~=v)`, and extensible match with the Active Directory bitwise
//!   rules only: `(a:1.2.840.113556.1.4.803:=N)` (all bits of `N` set) and
//!   `(a:1.2.840.113556.1.4.804:=N)` (any bit of `N` set), `N` a decimal integer (a
//!   value in `2^63..2^64` is taken as its two's complement, so AD's unsigned spelling of
//!   signed `groupType` flags works).
//! - Other extensible forms are parse errors that name the problem: an unknown matching
//!   rule is named, `:dn:` and rule-less or attribute-less forms are refused. They cannot
//!   be evaluated here, and silently treating them as "no match" would hide a mistake.
//! - `(&)` and `(|)` are the absolute true and false filters of RFC 4526.
//! - Values use RFC 4515 escapes only: a backslash followed by two hex digits (`\2a`
//!   for `*`, `\28` `\29` for parentheses, `\5c` for backslash, `\00`, or UTF-8 bytes
//!   such as `\c3\a9`). The older `\*` form is an error with a hint.
//! - The outer parentheses may be omitted: `mail=*` and `&(a=b)(c=d)` parse as if
//!   parenthesised (configs often carry `mail=*`). Whitespace is allowed around the
//!   whole filter and between the filters of a `&`, `|` or `!` list, never inside an item,
//!   where it belongs to the attribute (an error) or to the value (kept).
//! - Attribute descriptions follow RFC 4512: a name (`msRTCSIP-PrimaryUserAddress`) or a
//!   numeric OID, then `;options`. Numeric OIDs are not resolved to names.
//! - Nesting is limited to [`MAX_DEPTH`] levels, so hostile input cannot overflow the stack.
//!
//! # Evaluation
//!
//! - Attribute descriptions match with RFC 4512 subtype semantics through
//!   [`Entry::values`]: `(cn=x)` sees `cn;lang-fr`, `(cn;lang-fr=x)` sees only that.
//! - Values compare case-insensitively by Unicode simple lowercase mapping of each
//!   character (`char::to_lowercase`) for `=`, substrings, `~=`, `>=` and `<=`.
//! - `~=` is case-insensitive equality after deleting all whitespace from both sides
//!   (`"+1 555 0100"` approximately equals `"+15550100"`). No phonetic matching.
//! - `>=` and `<=` compare as integers when both sides are decimal integers, otherwise as
//!   case-folded strings by code point.
//! - A value that is not UTF-8 (binary, such as `objectGUID`) compares byte for byte with
//!   the assertion value; it never equals a UTF-8 assertion of different bytes.
//! - Two-valued logic: an absent attribute makes every item false, so `(!(mail=*))` is true
//!   for an entry without mail. (LDAP's Undefined is not modelled.)
//!
//! # Printing
//!
//! [`Filter`]'s `Display` is the canonical RFC 4515 string: fully parenthesised, no
//! whitespace, attribute descriptions as written, values re-escaped with lowercase hex
//! escapes for `* ( ) \ NUL` and ASCII control characters (and for every non-ASCII byte
//! of a non-UTF-8 value).
//! `Filter::parse(&f.to_string()) == Ok(f)` for every filter the parser produces.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use crate::attribute_name::validate_attribute;
use crate::cursor::Cursor;
use crate::entry::Entry;
use crate::quote::{quote_for_message, shown_for_message};

/// The Active Directory matching rule "all bits of the assertion set" (`LDAP_MATCHING_RULE_BIT_AND`).
pub const BIT_AND_RULE: &str = "1.2.840.113556.1.4.803";
/// The Active Directory matching rule "any bit of the assertion set" (`LDAP_MATCHING_RULE_BIT_OR`).
pub const BIT_OR_RULE: &str = "1.2.840.113556.1.4.804";
/// Active Directory's transitive membership rule: needs the server, refused with a hint.
const IN_CHAIN_RULE: &str = "1.2.840.113556.1.4.1941";

/// Deepest nesting of `(`...`)` the parser accepts.
pub const MAX_DEPTH: usize = 100;

/// A filter that failed to parse: where (1-based character column) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct FilterError {
    /// 1-based character (not byte) column in the filter text.
    pub column: usize,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

/// A parsed search filter.
///
/// Equality is structural: `(Mail=x)` and `(mail=x)` are different filters even though
/// they match the same entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `(&f1 f2 ...)`; `(&)` is true.
    And(Vec<Filter>),
    /// `(|f1 f2 ...)`; `(|)` is false.
    Or(Vec<Filter>),
    /// `(!f)`.
    Not(Box<Filter>),
    /// `(attr=*)`.
    Present { attribute: String },
    /// `(attr=value)`.
    Equality {
        attribute: String,
        value: AssertionValue,
    },
    /// `(attr=initial*any1*any2*final)`. The parser never produces empty pieces, nor a
    /// substrings filter with no piece at all (that is [`Filter::Present`]).
    Substrings {
        attribute: String,
        initial: Option<AssertionValue>,
        any: Vec<AssertionValue>,
        final_: Option<AssertionValue>,
    },
    /// `(attr>=value)`.
    GreaterOrEqual {
        attribute: String,
        value: AssertionValue,
    },
    /// `(attr<=value)`.
    LessOrEqual {
        attribute: String,
        value: AssertionValue,
    },
    /// `(attr~=value)`.
    Approx {
        attribute: String,
        value: AssertionValue,
    },
    /// `(attr:1.2.840.113556.1.4.803:=mask)` or `...804...`.
    Bitwise {
        attribute: String,
        rule: BitwiseRule,
        mask: i64,
    },
}

/// The two Active Directory bitwise matching rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitwiseRule {
    /// 1.2.840.113556.1.4.803: every bit of the mask is set in the value.
    And,
    /// 1.2.840.113556.1.4.804: at least one bit of the mask is set in the value.
    Or,
}

impl BitwiseRule {
    /// The rule's OID as written in filters.
    pub fn oid(self) -> &'static str {
        match self {
            BitwiseRule::And => BIT_AND_RULE,
            BitwiseRule::Or => BIT_OR_RULE,
        }
    }

    fn test(self, value: i64, mask: i64) -> bool {
        match self {
            BitwiseRule::And => value & mask == mask,
            BitwiseRule::Or => value & mask != 0,
        }
    }
}

/// An assertion value (unescaped bytes) with the forms evaluation needs, computed once.
#[derive(Clone)]
pub struct AssertionValue {
    raw: Vec<u8>,
    /// `raw` case-folded character by character, when `raw` is UTF-8.
    folded: Option<String>,
    /// `folded` without whitespace, for `~=`.
    squeezed: Option<String>,
    /// `raw` as a decimal integer, for `>=` and `<=`.
    integer: Option<i128>,
}

impl AssertionValue {
    /// Builds an assertion value from unescaped bytes.
    pub fn new(raw: impl Into<Vec<u8>>) -> Self {
        let raw = raw.into();
        let text = std::str::from_utf8(&raw).ok();
        let folded = text.map(|t| fold(t).collect::<String>());
        let squeezed = text.map(|t| squeeze(t).collect::<String>());
        let integer = text.and_then(parse_integer);
        AssertionValue {
            raw,
            folded,
            squeezed,
            integer,
        }
    }

    /// The unescaped value.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn equals(&self, value: &[u8]) -> bool {
        let Some(folded) = &self.folded else {
            return value == self.raw.as_slice();
        };
        match std::str::from_utf8(value) {
            // An ASCII value folds to ASCII, so a non-ASCII `folded` cannot match: the
            // byte comparison below rejects it without a special case.
            Ok(text) if text.is_ascii() => text.as_bytes().eq_ignore_ascii_case(folded.as_bytes()),
            Ok(text) => fold(text).eq(folded.chars()),
            Err(_) => false,
        }
    }

    fn approx_equals(&self, value: &[u8]) -> bool {
        let Some(squeezed) = &self.squeezed else {
            return value == self.raw.as_slice();
        };
        match std::str::from_utf8(value) {
            Ok(text) => squeeze(text).eq(squeezed.chars()),
            Err(_) => false,
        }
    }

    /// How `value` orders against this assertion value.
    fn compare(&self, value: &[u8]) -> Ordering {
        let text = std::str::from_utf8(value).ok();
        if let (Some(assertion), Some(number)) = (self.integer, text.and_then(parse_integer)) {
            return number.cmp(&assertion);
        }
        match (text, &self.folded) {
            (Some(text), Some(folded)) => fold(text).cmp(folded.chars()),
            _ => value.cmp(&self.raw),
        }
    }
}

impl PartialEq for AssertionValue {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for AssertionValue {}

impl std::hash::Hash for AssertionValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl fmt::Debug for AssertionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AssertionValue({:?})",
            String::from_utf8_lossy(&self.raw)
        )
    }
}

/// Unicode simple lowercase of each character.
fn fold(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase)
}

/// [`fold`] without whitespace.
fn squeeze(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
}

/// A decimal integer with an optional sign; no spaces.
fn parse_integer(text: &str) -> Option<i128> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Escapes a value so that it can be placed inside a filter as a literal:
/// `format!("(mail={})", escape_value(v))`. RFC 4515 requires `*`, `(`, `)`, `\` and NUL
/// to be escaped (`\2a`, `\28`, `\29`, `\5c`, `\00`); other ASCII control characters
/// are escaped too, so that the filter stays on one line, and when `value` is not UTF-8,
/// so is every non-ASCII byte, so that the filter is text. Parsing the result gives back
/// exactly `value`'s bytes.
pub fn escape_value(value: impl AsRef<[u8]>) -> String {
    fn push(out: &mut String, c: char) {
        if matches!(c, '*' | '(' | ')' | '\\') || c.is_ascii_control() {
            let _ = write!(out, "\\{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    let raw = value.as_ref();
    let mut out = String::with_capacity(raw.len());
    match std::str::from_utf8(raw) {
        Ok(text) => text.chars().for_each(|c| push(&mut out, c)),
        Err(_) => {
            for &byte in raw {
                if byte.is_ascii() {
                    push(&mut out, byte as char);
                } else {
                    let _ = write!(out, "\\{byte:02x}");
                }
            }
        }
    }
    out
}

/// Writes a value for [`Filter`]'s `Display`, escaped by [`escape_value`].
fn write_value(out: &mut fmt::Formatter<'_>, raw: &[u8]) -> fmt::Result {
    out.write_str(&escape_value(raw))
}

impl Filter {
    /// Parses an RFC 4515 filter string. See the module documentation for what is
    /// accepted.
    ///
    /// ```
    /// use registrar_core::entry::Entry;
    /// use registrar_core::filter::Filter;
    ///
    /// let staff = Filter::parse("(&(objectClass=person)(!(title=Contractor*)))").unwrap();
    /// let alice = Entry::new("cn=Alice,dc=example")
    ///     .with("objectClass", &["top", "person"])
    ///     .with("title", &["Director"]);
    /// let bob = Entry::new("cn=Bob,dc=example")
    ///     .with("objectClass", &["top", "person"])
    ///     .with("title", &["contractor (3 months)"]);
    /// assert!(staff.matches(&alice));
    /// assert!(!staff.matches(&bob)); // values compare ignoring case
    ///
    /// let error = Filter::parse("(cn=a))").unwrap_err();
    /// assert!(error.to_string().contains("unbalanced parenthesis"));
    /// ```
    pub fn parse(input: &str) -> Result<Filter, FilterError> {
        // Trailing whitespace never belongs to a filter; dropping it up front lets a bare
        // `title=Director* ` end where it appears to. Leading whitespace is skipped below,
        // so columns still count from the start of `input`.
        let mut parser = Parser {
            cursor: Cursor::new(input.trim_end()),
            depth: 0,
        };
        parser.skip_whitespace();
        if parser.cursor.at_end() {
            return Err(parser.error_here("empty filter"));
        }
        let filter = if parser.cursor.peek() == Some('(') {
            parser.parse_parenthesised()?
        } else {
            parser.parse_item(None)?
        };
        parser.skip_whitespace();
        match parser.cursor.peek() {
            None => Ok(filter),
            Some(')') => {
                Err(parser.error_here("unbalanced parenthesis: this ')' has no matching '('"))
            }
            Some('(') => Err(parser.error_here(
                "unexpected text after the end of the filter; combine several filters \
                 with (&...) or (|...)",
            )),
            Some(_) => Err(parser.error_here(format!(
                "unexpected text after the end of the filter: {}",
                quote_for_message(parser.cursor.rest())
            ))),
        }
    }

    /// Whether `entry` matches this filter (see the module documentation for the rules).
    pub fn matches(&self, entry: &Entry) -> bool {
        match self {
            Filter::And(filters) => filters.iter().all(|f| f.matches(entry)),
            Filter::Or(filters) => filters.iter().any(|f| f.matches(entry)),
            Filter::Not(filter) => !filter.matches(entry),
            Filter::Present { attribute } => entry.has(attribute),
            Filter::Equality { attribute, value } => {
                entry.values(attribute).any(|v| value.equals(v))
            }
            Filter::Approx { attribute, value } => {
                entry.values(attribute).any(|v| value.approx_equals(v))
            }
            Filter::GreaterOrEqual { attribute, value } => entry
                .values(attribute)
                .any(|v| value.compare(v) != Ordering::Less),
            Filter::LessOrEqual { attribute, value } => entry
                .values(attribute)
                .any(|v| value.compare(v) != Ordering::Greater),
            Filter::Substrings {
                attribute,
                initial,
                any,
                final_,
            } => entry
                .values(attribute)
                .any(|v| substrings_match(v, initial.as_ref(), any, final_.as_ref())),
            Filter::Bitwise {
                attribute,
                rule,
                mask,
            } => entry.values(attribute).any(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(parse_integer)
                    .and_then(|n| i64::try_from(n).ok())
                    .is_some_and(|n| rule.test(n, *mask))
            }),
        }
    }

    /// The attribute descriptions this filter reads, in order of first appearance,
    /// without duplicates (compared ignoring case). Useful to ask a server for them.
    pub fn attributes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        self.collect_attributes(&mut out);
        out
    }

    /// [`Filter::attributes`] less those read only under a negation `(!…)`, where an
    /// attribute that no entry holds is the point (`(!(disabled=TRUE))`).
    pub fn asserted_attributes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        self.collect_asserted(&mut out);
        out
    }

    fn collect_asserted<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Filter::And(filters) | Filter::Or(filters) => {
                for filter in filters {
                    filter.collect_asserted(out);
                }
            }
            Filter::Not(_) => {}
            _ => self.collect_attributes(out),
        }
    }

    fn collect_attributes<'a>(&'a self, out: &mut Vec<&'a str>) {
        let attribute = match self {
            Filter::And(filters) | Filter::Or(filters) => {
                for filter in filters {
                    filter.collect_attributes(out);
                }
                return;
            }
            Filter::Not(filter) => return filter.collect_attributes(out),
            Filter::Present { attribute }
            | Filter::Equality { attribute, .. }
            | Filter::Substrings { attribute, .. }
            | Filter::GreaterOrEqual { attribute, .. }
            | Filter::LessOrEqual { attribute, .. }
            | Filter::Approx { attribute, .. }
            | Filter::Bitwise { attribute, .. } => attribute.as_str(),
        };
        if !out.iter().any(|seen| seen.eq_ignore_ascii_case(attribute)) {
            out.push(attribute);
        }
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

/// Substring match; `value` is a directory value, the pieces are assertion values.
fn substrings_match(
    value: &[u8],
    initial: Option<&AssertionValue>,
    any: &[AssertionValue],
    final_: Option<&AssertionValue>,
) -> bool {
    let pieces = initial.into_iter().chain(any).chain(final_);
    match std::str::from_utf8(value) {
        Err(_) => {
            // Binary value: byte for byte against the raw pieces.
            fn raw(v: &AssertionValue) -> &[u8] {
                &v.raw
            }
            match_pieces(
                value,
                initial.map(raw),
                any.iter().map(raw),
                final_.map(raw),
                false,
            )
        }
        Ok(text) => {
            // A non-UTF-8 piece can never occur in a UTF-8 value.
            if pieces.clone().any(|p| p.folded.is_none()) {
                return false;
            }
            fn folded(v: &AssertionValue) -> &[u8] {
                v.folded.as_deref().unwrap_or("").as_bytes()
            }
            if text.is_ascii() {
                // Compare ASCII bytes ignoring case: no allocation.
                match_pieces(
                    value,
                    initial.map(folded),
                    any.iter().map(folded),
                    final_.map(folded),
                    true,
                )
            } else {
                let haystack: String = fold(text).collect();
                match_pieces(
                    haystack.as_bytes(),
                    initial.map(folded),
                    any.iter().map(folded),
                    final_.map(folded),
                    false,
                )
            }
        }
    }
}

/// `initial`, then each of `any` in order without overlap, then `final_`, in `haystack`.
/// Byte-level search is safe on UTF-8: a valid UTF-8 needle only matches at character
/// boundaries of a valid UTF-8 haystack.
fn match_pieces<'p>(
    haystack: &[u8],
    initial: Option<&[u8]>,
    any: impl Iterator<Item = &'p [u8]>,
    final_: Option<&[u8]>,
    ignore_ascii_case: bool,
) -> bool {
    let same = |a: &[u8], b: &[u8]| {
        if ignore_ascii_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let mut rest = haystack;
    if let Some(initial) = initial {
        if rest.len() < initial.len() || !same(&rest[..initial.len()], initial) {
            return false;
        }
        rest = &rest[initial.len()..];
    }
    if let Some(final_) = final_ {
        if rest.len() < final_.len() || !same(&rest[rest.len() - final_.len()..], final_) {
            return false;
        }
        rest = &rest[..rest.len() - final_.len()];
    }
    for piece in any {
        if piece.is_empty() {
            continue;
        }
        match rest.windows(piece.len()).position(|w| same(w, piece)) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(filters) | Filter::Or(filters) => {
                f.write_str(if matches!(self, Filter::And(_)) {
                    "(&"
                } else {
                    "(|"
                })?;
                for filter in filters {
                    write!(f, "{filter}")?;
                }
                f.write_str(")")
            }
            Filter::Not(filter) => write!(f, "(!{filter})"),
            Filter::Present { attribute } => write!(f, "({attribute}=*)"),
            Filter::Equality { attribute, value }
            | Filter::GreaterOrEqual { attribute, value }
            | Filter::LessOrEqual { attribute, value }
            | Filter::Approx { attribute, value } => {
                let operator = match self {
                    Filter::Equality { .. } => "=",
                    Filter::GreaterOrEqual { .. } => ">=",
                    Filter::LessOrEqual { .. } => "<=",
                    _ => "~=",
                };
                write!(f, "({attribute}{operator}")?;
                write_value(f, &value.raw)?;
                f.write_str(")")
            }
            Filter::Substrings {
                attribute,
                initial,
                any,
                final_,
            } => {
                write!(f, "({attribute}=")?;
                if let Some(initial) = initial {
                    write_value(f, &initial.raw)?;
                }
                f.write_str("*")?;
                for piece in any {
                    write_value(f, &piece.raw)?;
                    f.write_str("*")?;
                }
                if let Some(final_) = final_ {
                    write_value(f, &final_.raw)?;
                }
                f.write_str(")")
            }
            Filter::Bitwise {
                attribute,
                rule,
                mask,
            } => write!(f, "({attribute}:{}:={mask})", rule.oid()),
        }
    }
}

struct Parser<'a> {
    cursor: Cursor<'a>,
    depth: usize,
}

/// One value as scanned: unescaped bytes split at unescaped `*`, with the byte offset of
/// each `*`.
struct ScannedValue {
    pieces: Vec<Vec<u8>>,
    stars: Vec<usize>,
}

impl Parser<'_> {
    fn skip_whitespace(&mut self) {
        self.cursor.skip_while(char::is_whitespace);
    }

    fn error(&self, pos: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            column: self.cursor.column(pos),
            message: message.into(),
        }
    }

    /// An error at the next character.
    fn error_here(&self, message: impl Into<String>) -> FilterError {
        self.error(self.cursor.pos(), message)
    }

    fn unbalanced(&self, open: usize) -> FilterError {
        self.error_here(format!(
            "unbalanced parenthesis: missing ')' to close the '(' at column {}",
            self.cursor.column(open)
        ))
    }

    /// `( item )`, positioned on the `(`.
    fn parse_parenthesised(&mut self) -> Result<Filter, FilterError> {
        let open = self.cursor.pos();
        self.cursor.bump();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                open,
                format!("filter nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        let filter = self.parse_item(Some(open))?;
        match self.cursor.peek() {
            Some(')') => {
                self.cursor.bump();
            }
            None => return Err(self.unbalanced(open)),
            Some(c) => {
                return Err(self.error_here(format!("expected ')', found {c:?}")));
            }
        }
        self.depth -= 1;
        Ok(filter)
    }

    /// The inside of a parenthesised filter (or a bare top-level one).
    fn parse_item(&mut self, open: Option<usize>) -> Result<Filter, FilterError> {
        match self.cursor.peek() {
            Some('&') => {
                self.cursor.bump();
                Ok(Filter::And(self.parse_list('&')?))
            }
            Some('|') => {
                self.cursor.bump();
                Ok(Filter::Or(self.parse_list('|')?))
            }
            Some('!') => {
                self.cursor.bump();
                self.skip_whitespace();
                if self.cursor.peek() != Some('(') {
                    return Err(self.error_here("expected '(' after '!'"));
                }
                let inner = self.parse_parenthesised()?;
                self.skip_whitespace();
                if self.cursor.peek() == Some('(') {
                    return Err(self.error_here(
                        "'!' takes exactly one filter; wrap several in (&...) or (|...)",
                    ));
                }
                Ok(Filter::Not(Box::new(inner)))
            }
            None => match open {
                Some(open) => Err(self.unbalanced(open)),
                None => Err(self.error_here("empty filter")),
            },
            Some(')') => {
                Err(self.error_here("empty filter \"()\": expected an attribute, '&', '|' or '!'"))
            }
            Some('(') => Err(self.error_here(
                "unexpected '(': a filter list needs '&' or '|' before it, as in (&(a=1)(b=2))",
            )),
            Some(_) => self.parse_simple(),
        }
    }

    fn parse_list(&mut self, operator: char) -> Result<Vec<Filter>, FilterError> {
        let mut filters = Vec::new();
        loop {
            self.skip_whitespace();
            if self.cursor.peek() != Some('(') {
                break;
            }
            filters.push(self.parse_parenthesised()?);
        }
        match self.cursor.peek() {
            None | Some(')') => Ok(filters),
            Some(c) => Err(self.error_here(format!(
                "expected '(' to start a filter inside '{operator}', found {c:?}; \
                     each filter in a list needs its own parentheses"
            ))),
        }
    }

    /// `attr=value`, `attr=*`, substrings, `attr>=v`, `attr<=v`, `attr~=v`, extensible.
    fn parse_simple(&mut self) -> Result<Filter, FilterError> {
        let start = self.cursor.pos();
        let attribute = self
            .cursor
            .skip_while(|c| !matches!(c, '=' | '~' | '>' | '<' | ':' | '(' | ')'));
        if attribute.is_empty() {
            return Err(match self.cursor.peek() {
                Some(':') => {
                    self.error_here("extensible match without an attribute is not supported")
                }
                Some(c @ ('=' | '~' | '>' | '<')) => {
                    self.error_here(format!("missing attribute description before {c:?}"))
                }
                _ => self.error_here("expected an attribute description"),
            });
        }
        validate_attribute(attribute).map_err(|(offset, message)| FilterError {
            column: self.cursor.column(start + offset),
            message,
        })?;
        let attribute = attribute.to_string();
        match self.cursor.peek() {
            Some('=') => {
                self.cursor.bump();
                let scanned = self.scan_value()?;
                self.equality_or_substrings(attribute, scanned)
            }
            Some(c @ ('~' | '>' | '<')) => {
                self.cursor.bump();
                if !self.cursor.eat('=') {
                    return Err(self.error_here(format!("expected \"=\" after {c:?}")));
                }
                let value = AssertionValue::new(self.scan_plain_value(&format!("{c}="))?);
                Ok(match c {
                    '~' => Filter::Approx { attribute, value },
                    '>' => Filter::GreaterOrEqual { attribute, value },
                    _ => Filter::LessOrEqual { attribute, value },
                })
            }
            Some(':') => self.parse_extensible(attribute),
            _ => Err(self.error_here(format!(
                "expected \"=\" after attribute {}",
                quote_for_message(&attribute)
            ))),
        }
    }

    fn equality_or_substrings(
        &self,
        attribute: String,
        scanned: ScannedValue,
    ) -> Result<Filter, FilterError> {
        let ScannedValue { mut pieces, stars } = scanned;
        if stars.is_empty() {
            let value = AssertionValue::new(pieces.pop().unwrap_or_default());
            return Ok(Filter::Equality { attribute, value });
        }
        if pieces.len() == 2 && pieces.iter().all(Vec::is_empty) {
            return Ok(Filter::Present { attribute });
        }
        // pieces.len() == stars.len() + 1; the middle ones lie between two stars.
        for (index, piece) in pieces.iter().enumerate().skip(1) {
            if piece.is_empty() && index < pieces.len() - 1 {
                return Err(self.error(
                    stars[index],
                    "empty substring: two '*' in a row; write \\2a for a literal '*'",
                ));
            }
        }
        let final_piece = pieces.pop().unwrap_or_default();
        let mut pieces = pieces.into_iter();
        let initial_piece = pieces.next().unwrap_or_default();
        let non_empty = |piece: Vec<u8>| (!piece.is_empty()).then(|| AssertionValue::new(piece));
        Ok(Filter::Substrings {
            attribute,
            initial: non_empty(initial_piece),
            any: pieces.map(AssertionValue::new).collect(),
            final_: non_empty(final_piece),
        })
    }

    /// After `attr:`: only `attr:RULE:=integer` with a bitwise rule is supported.
    fn parse_extensible(&mut self, attribute: String) -> Result<Filter, FilterError> {
        self.cursor.bump(); // ':'
        let start = self.cursor.pos();
        let rule = self
            .cursor
            .skip_while(|c| !matches!(c, ':' | '=' | '(' | ')'));
        if rule.is_empty() {
            return Err(self.error(
                start,
                format!(
                    "extensible match without a matching rule is not supported; \
                     write ({attribute}=value) for equality"
                ),
            ));
        }
        if rule.eq_ignore_ascii_case("dn") && self.cursor.peek() == Some(':') {
            return Err(self.error(
                start,
                "the \":dn:\" form of extensible match is not supported",
            ));
        }
        if !self.cursor.rest().starts_with(":=") {
            return Err(self.error_here(format!(
                "expected \":=\" after matching rule {}",
                quote_for_message(rule)
            )));
        }
        let rule_kind = match rule {
            BIT_AND_RULE => BitwiseRule::And,
            BIT_OR_RULE => BitwiseRule::Or,
            IN_CHAIN_RULE => {
                return Err(self.error(
                    start,
                    format!(
                        "matching rule {IN_CHAIN_RULE} (LDAP_MATCHING_RULE_IN_CHAIN) needs \
                         the directory server and cannot be evaluated locally"
                    ),
                ))
            }
            _ => {
                return Err(self.error(
                    start,
                    format!(
                        "unknown matching rule {}; supported: {BIT_AND_RULE} (bitwise \
                         AND), {BIT_OR_RULE} (bitwise OR)",
                        shown_for_message(rule)
                    ),
                ))
            }
        };
        self.cursor.bump(); // ':'
        self.cursor.bump(); // '='
        let value_start = self.cursor.pos();
        let raw = self.scan_plain_value(":=")?;
        let mask = std::str::from_utf8(&raw)
            .ok()
            .and_then(parse_integer)
            .and_then(|n| {
                i64::try_from(n)
                    .ok()
                    .or_else(|| u64::try_from(n).ok().map(|u| u as i64))
            })
            .ok_or_else(|| {
                self.error(
                    value_start,
                    format!(
                        "matching rule {} needs a decimal integer, found {}",
                        shown_for_message(rule),
                        quote_for_message(&raw)
                    ),
                )
            })?;
        Ok(Filter::Bitwise {
            attribute,
            rule: rule_kind,
            mask,
        })
    }

    /// A value in which `*` is not a wildcard (after `~=`, `>=`, `<=`, `:=`).
    fn scan_plain_value(&mut self, operator: &str) -> Result<Vec<u8>, FilterError> {
        let ScannedValue { mut pieces, stars } = self.scan_value()?;
        if let Some(&star) = stars.first() {
            return Err(self.error(
                star,
                format!(
                    "unescaped '*' in value: wildcards work only with \"=\", not {operator:?}; \
                     write \\2a for a literal '*'"
                ),
            ));
        }
        Ok(pieces.pop().unwrap_or_default())
    }

    /// Scans a value up to `)` or the end, unescaping `\XX`.
    fn scan_value(&mut self) -> Result<ScannedValue, FilterError> {
        let mut pieces = vec![Vec::new()];
        let mut stars = Vec::new();
        while let Some(c) = self.cursor.peek() {
            match c {
                ')' => break,
                '(' => {
                    return Err(self
                        .error_here("unescaped '(' in value; write \\28 for '(' and \\29 for ')'"))
                }
                '*' => {
                    stars.push(self.cursor.pos());
                    pieces.push(Vec::new());
                    self.cursor.bump();
                }
                '\\' => {
                    let at = self.cursor.pos();
                    self.cursor.bump();
                    let hex: String = self.cursor.rest().chars().take(2).collect();
                    let byte = (hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                        .then(|| u8::from_str_radix(&hex, 16).ok())
                        .flatten();
                    let Some(byte) = byte else {
                        let shown: String = hex.chars().take_while(|&c| c != ')').collect();
                        return Err(self.error(
                            at,
                            format!(
                                "invalid escape \\{shown}: a backslash must be followed by two \
                                 hex digits (\\2a for '*', \\28 for '(', \\29 for ')', \\5c for \
                                 '\\')"
                            ),
                        ));
                    };
                    self.cursor.bump();
                    self.cursor.bump();
                    if let Some(piece) = pieces.last_mut() {
                        piece.push(byte);
                    }
                }
                _ => {
                    self.cursor.bump();
                    if let Some(piece) = pieces.last_mut() {
                        let mut buffer = [0; 4];
                        piece.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                    }
                }
            }
        }
        Ok(ScannedValue { pieces, stars })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Filter {
        Filter::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn error(s: &str) -> FilterError {
        match Filter::parse(s) {
            Ok(f) => panic!("{s} parsed as {f:?}"),
            Err(e) => e,
        }
    }

    fn alice() -> Entry {
        Entry::new("cn=Alice,ou=People,dc=example,dc=com")
            .with("objectClass", &["top", "person", "inetOrgPerson"])
            .with("cn", &["Alice Liddell"])
            .with("cn;lang-fr", &["Alice Merveille"])
            .with("mail", &["Alice@Corp.Example"])
            .with("telephoneNumber", &["+1 555 0100"])
            .with("employeeNumber", &["42"])
            .with("title", &["Director of Sales"])
            .with("userAccountControl", &["514"])
            .with("groupType", &["-2147483646"])
            .with("sn", &["Ñandú"])
    }

    #[test]
    fn parses_every_kind_of_item() {
        assert_eq!(
            parse("(mail=*)"),
            Filter::Present {
                attribute: "mail".into()
            }
        );
        assert_eq!(
            parse("(cn=Babs Jensen)"),
            Filter::Equality {
                attribute: "cn".into(),
                value: AssertionValue::new("Babs Jensen")
            }
        );
        assert_eq!(
            parse("(cn=a*b*c)"),
            Filter::Substrings {
                attribute: "cn".into(),
                initial: Some(AssertionValue::new("a")),
                any: vec![AssertionValue::new("b")],
                final_: Some(AssertionValue::new("c")),
            }
        );
        assert_eq!(
            parse("(cn=*x)"),
            Filter::Substrings {
                attribute: "cn".into(),
                initial: None,
                any: vec![],
                final_: Some(AssertionValue::new("x")),
            }
        );
        assert_eq!(
            parse("(cn=x*)"),
            Filter::Substrings {
                attribute: "cn".into(),
                initial: Some(AssertionValue::new("x")),
                any: vec![],
                final_: None,
            }
        );
        assert!(matches!(parse("(n>=5)"), Filter::GreaterOrEqual { .. }));
        assert!(matches!(parse("(n<=5)"), Filter::LessOrEqual { .. }));
        assert!(matches!(parse("(n~=5)"), Filter::Approx { .. }));
        assert_eq!(
            parse("(userAccountControl:1.2.840.113556.1.4.803:=2)"),
            Filter::Bitwise {
                attribute: "userAccountControl".into(),
                rule: BitwiseRule::And,
                mask: 2
            }
        );
        assert_eq!(
            parse("(&(a=1)(|(b=2)(!(c=3))))"),
            Filter::And(vec![
                parse("(a=1)"),
                Filter::Or(vec![parse("(b=2)"), Filter::Not(Box::new(parse("(c=3)")))]),
            ])
        );
    }

    #[test]
    fn rfc4515_examples_parse_and_print_canonically() {
        for (input, canonical) in [
            ("(cn=Babs Jensen)", "(cn=Babs Jensen)"),
            ("(!(cn=Tim Howes))", "(!(cn=Tim Howes))"),
            (
                "(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))",
                "(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))",
            ),
            ("(o=univ*of*mich*)", "(o=univ*of*mich*)"),
            ("(seeAlso=)", "(seeAlso=)"),
            (
                "(o=Parens R Us \\28for all your parenthetical needs\\29)",
                "(o=Parens R Us \\28for all your parenthetical needs\\29)",
            ),
            ("(cn=*\\2A*)", "(cn=*\\2a*)"),
            ("(filename=C:\\5cMyFile)", "(filename=C:\\5cMyFile)"),
            ("(bin=\\00\\00\\00\\04\\0a)", "(bin=\\00\\00\\00\\04\\0a)"),
            ("(sn=Lu\\c4\\8di\\c4\\87)", "(sn=Lučić)"),
            (
                "(1.3.6.1.4.1.1466.0=\\04\\02\\48\\69)",
                "(1.3.6.1.4.1.1466.0=\\04\\02Hi)",
            ),
            ("(objectGUID=\\ff\\fe)", "(objectGUID=\\ff\\fe)"),
            ("  (& (a=1)\n  (b=2) )  ", "(&(a=1)(b=2))"),
            ("(&)", "(&)"),
            ("(|)", "(|)"),
        ] {
            assert_eq!(parse(input).to_string(), canonical, "{input}");
        }
        assert_eq!(
            parse("(sn=Lu\\c4\\8di\\c4\\87)"),
            parse("(sn=Lučić)"),
            "UTF-8 escapes decode to the same value"
        );
    }

    #[test]
    fn outer_parentheses_may_be_omitted() {
        assert_eq!(parse("mail=*"), parse("(mail=*)"));
        assert_eq!(parse(" title=Director* "), parse("(title=Director*)"));
        assert_eq!(parse("&(a=1)(b=2)"), parse("(&(a=1)(b=2))"));
        assert_eq!(parse("!(a=1)"), parse("(!(a=1))"));
        assert_eq!(
            error("mail=x)").message,
            "unbalanced parenthesis: this ')' has no matching '('"
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases = [
            ("", 1, "empty filter"),
            ("   ", 1, "empty filter"),
            ("(mail=*", 8, "unbalanced parenthesis: missing ')' to close the '(' at column 1"),
            ("(&(a=1)(b=2)", 13, "unbalanced parenthesis: missing ')' to close the '(' at column 1"),
            ("(", 2, "unbalanced parenthesis: missing ')' to close the '(' at column 1"),
            ("(a=1))", 6, "unbalanced parenthesis: this ')' has no matching '('"),
            ("(mail)", 6, "expected \"=\" after attribute \"mail\""),
            ("(mail", 6, "expected \"=\" after attribute \"mail\""),
            ("(a=1)(b=2)", 6, "unexpected text after the end of the filter; combine several filters with (&...) or (|...)"),
            ("(a=1) x", 7, "unexpected text after the end of the filter: \"x\""),
            ("(a=\\zz)", 4, "invalid escape \\zz: a backslash must be followed by two hex digits (\\2a for '*', \\28 for '(', \\29 for ')', \\5c for '\\')"),
            ("(a=\\*)", 4, "invalid escape \\*: a backslash must be followed by two hex digits (\\2a for '*', \\28 for '(', \\29 for ')', \\5c for '\\')"),
            ("(a=x\\2)", 5, "invalid escape \\2: a backslash must be followed by two hex digits (\\2a for '*', \\28 for '(', \\29 for ')', \\5c for '\\')"),
            ("(a=x(y)", 5, "unescaped '(' in value; write \\28 for '(' and \\29 for ')'"),
            ("(a=x**y)", 6, "empty substring: two '*' in a row; write \\2a for a literal '*'"),
            ("(a>=x*)", 6, "unescaped '*' in value: wildcards work only with \"=\", not \">=\"; write \\2a for a literal '*'"),
            ("(a~x)", 4, "expected \"=\" after '~'"),
            ("(=x)", 2, "missing attribute description before '='"),
            ("()", 2, "empty filter \"()\": expected an attribute, '&', '|' or '!'"),
            ("(&a=1)", 3, "expected '(' to start a filter inside '&', found 'a'; each filter in a list needs its own parentheses"),
            ("(!(a=1)(b=2))", 8, "'!' takes exactly one filter; wrap several in (&...) or (|...)"),
            ("(!a=1)", 3, "expected '(' after '!'"),
            ("((a=1))", 2, "unexpected '(': a filter list needs '&' or '|' before it, as in (&(a=1)(b=2))"),
            ("(ma_il=x)", 4, "invalid character '_' in attribute description \"ma_il\""),
            ("( mail=x)", 2, "invalid character ' ' in attribute description \" mail\""),
            ("(-a=x)", 2, "invalid character '-' in attribute description \"-a\""),
            ("(cn;=x)", 5, "empty option in attribute description \"cn;\""),
            ("(1..1=x)", 2, "invalid numeric OID \"1..1\""),
            ("(a:1.2.3:=1)", 4, "unknown matching rule 1.2.3; supported: 1.2.840.113556.1.4.803 (bitwise AND), 1.2.840.113556.1.4.804 (bitwise OR)"),
            ("(a:caseIgnoreMatch:=x)", 4, "unknown matching rule caseIgnoreMatch; supported: 1.2.840.113556.1.4.803 (bitwise AND), 1.2.840.113556.1.4.804 (bitwise OR)"),
            ("(memberOf:1.2.840.113556.1.4.1941:=cn=x)", 11, "matching rule 1.2.840.113556.1.4.1941 (LDAP_MATCHING_RULE_IN_CHAIN) needs the directory server and cannot be evaluated locally"),
            ("(a:dn:1.2.3:=x)", 4, "the \":dn:\" form of extensible match is not supported"),
            ("(a:=x)", 4, "extensible match without a matching rule is not supported; write (a=value) for equality"),
            ("(:1.2.3:=x)", 2, "extensible match without an attribute is not supported"),
            ("(a:1.2.840.113556.1.4.803=2)", 26, "expected \":=\" after matching rule \"1.2.840.113556.1.4.803\""),
            ("(a:1.2.840.113556.1.4.803:=two)", 28, "matching rule 1.2.840.113556.1.4.803 needs a decimal integer, found \"two\""),
            ("(é=x)", 2, "invalid character 'é' in attribute description \"é\""),
            ("(cn=é\\zz)", 6, "invalid escape \\zz: a backslash must be followed by two hex digits (\\2a for '*', \\28 for '(', \\29 for ')', \\5c for '\\')"),
        ];
        for (input, column, message) in cases {
            let e = error(input);
            assert_eq!((e.column, e.message.as_str()), (column, message), "{input}");
        }
        assert_eq!(
            error("(mail)").to_string(),
            "column 6: expected \"=\" after attribute \"mail\""
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "(!".repeat(MAX_DEPTH + 1) + "(a=1)" + &")".repeat(MAX_DEPTH + 1);
        assert!(error(&deep).message.contains("nested more than"));
        let ok = "(!".repeat(MAX_DEPTH - 1) + "(a=1)" + &")".repeat(MAX_DEPTH - 1);
        assert!(Filter::parse(&ok).is_ok());
    }

    #[test]
    fn equality_presence_and_substrings_ignore_case() {
        let e = alice();
        for (filter, expected) in [
            ("(mail=alice@corp.example)", true),
            ("(MAIL=ALICE@CORP.EXAMPLE)", true),
            ("(mail=alice@corp)", false),
            ("(mail=*)", true),
            ("(pager=*)", false),
            ("(mail=*@corp.example)", true),
            ("(mail=*@other.example)", false),
            ("(mail=ali*)", true),
            ("(mail=a*c*e*)", true),
            ("(mail=a*e*c)", false),
            ("(mail=*LICE@*)", true),
            ("(mail=alice*corp.example)", true),
            // initial and final must not overlap
            ("(employeeNumber=4*2)", true),
            ("(employeeNumber=42*2)", false),
            ("(employeeNumber=4*4*2)", false),
            ("(title=Director*)", true),
            ("(title=*of*)", true),
            ("(sn=ñandú)", true),
            ("(sn=ÑANDÚ)", true),
            ("(sn=*ANDÚ)", true),
            ("(sn=ñ*)", true),
            ("(sn=n*)", false),
            ("(objectClass=PERSON)", true),
        ] {
            assert_eq!(parse(filter).matches(&e), expected, "{filter}");
        }
    }

    #[test]
    fn subtypes_follow_rfc4512() {
        let e = alice();
        assert!(
            parse("(cn=Alice Merveille)").matches(&e),
            "cn sees cn;lang-fr"
        );
        assert!(parse("(cn;lang-fr=alice merveille)").matches(&e));
        assert!(
            !parse("(cn;lang-fr=Alice Liddell)").matches(&e),
            "cn;lang-fr does not see cn"
        );
        assert!(parse("(CN;LANG-FR=*)").matches(&e));
        assert!(!parse("(cn;lang-de=*)").matches(&e));
    }

    #[test]
    fn logic_and_absent_attributes() {
        let e = alice();
        assert!(
            parse("(!(pager=*))").matches(&e),
            "! of an absent attribute is true"
        );
        assert!(!parse("(!(mail=*))").matches(&e));
        assert!(parse("(&(mail=*)(cn=alice*))").matches(&e));
        assert!(!parse("(&(mail=*)(pager=*))").matches(&e));
        assert!(parse("(|(pager=*)(cn=alice*))").matches(&e));
        assert!(!parse("(|(pager=*)(fax=*))").matches(&e));
        assert!(parse("(&)").matches(&e));
        assert!(!parse("(|)").matches(&e));
        assert!(!parse("(pager=x)").matches(&e));
        assert!(!parse("(pager>=0)").matches(&e));
        assert!(!parse("(pager:1.2.840.113556.1.4.804:=1)").matches(&e));
    }

    #[test]
    fn approximate_ignores_case_and_whitespace() {
        let e = alice();
        assert!(parse("(telephoneNumber~=+15550100)").matches(&e));
        assert!(parse("(cn~=  alice   LIDDELL )").matches(&e));
        assert!(parse("(cn~=aliceliddell)").matches(&e));
        assert!(!parse("(cn~=alice)").matches(&e));
        assert!(
            !parse("(telephoneNumber=+15550100)").matches(&e),
            "= keeps spaces"
        );
    }

    #[test]
    fn ordering_is_numeric_when_both_sides_are_integers() {
        let e = alice();
        assert!(
            parse("(employeeNumber>=9)").matches(&e),
            "42 >= 9 as integers"
        );
        assert!(!parse("(employeeNumber<=9)").matches(&e));
        assert!(parse("(employeeNumber>=42)").matches(&e));
        assert!(parse("(employeeNumber<=42)").matches(&e));
        assert!(parse("(employeeNumber>=-5)").matches(&e));
        assert!(!parse("(employeeNumber>=100)").matches(&e));
        // Strings: case-insensitive order.
        assert!(parse("(title>=director)").matches(&e));
        assert!(parse("(title<=E)").matches(&e));
        assert!(!parse("(title<=d)").matches(&e));
        assert!(parse("(title>=DIRECTOR OF SALES)").matches(&e));
        assert!(parse("(title<=director of sales)").matches(&e));
        // Mixed: "42" against "4x" compares as strings.
        assert!(parse("(employeeNumber>=4x)").matches(&e) == ("42" >= "4x"));
    }

    #[test]
    fn bitwise_rules_follow_active_directory() {
        let e = alice(); // userAccountControl 514 = 512 | 2
        let disabled = parse("(userAccountControl:1.2.840.113556.1.4.803:=2)");
        assert!(disabled.matches(&e));
        assert!(parse("(userAccountControl:1.2.840.113556.1.4.803:=514)").matches(&e));
        assert!(!parse("(userAccountControl:1.2.840.113556.1.4.803:=515)").matches(&e));
        assert!(parse("(userAccountControl:1.2.840.113556.1.4.804:=3)").matches(&e));
        assert!(!parse("(userAccountControl:1.2.840.113556.1.4.804:=1)").matches(&e));
        let enabled = Entry::new("cn=b").with("userAccountControl", &["512"]);
        assert!(!disabled.matches(&enabled));
        assert!(parse("(!(userAccountControl:1.2.840.113556.1.4.803:=2))").matches(&enabled));
        // groupType is a signed 32-bit value; AD users write the security bit unsigned.
        assert!(parse("(groupType:1.2.840.113556.1.4.803:=2147483648)").matches(&e));
        assert!(parse("(groupType:1.2.840.113556.1.4.803:=2)").matches(&e));
        assert!(!parse("(groupType:1.2.840.113556.1.4.803:=4)").matches(&e));
        // Values that are not integers never match.
        let odd = Entry::new("cn=c").with("userAccountControl", &["0x202", " 514"]);
        assert!(!disabled.matches(&odd));
    }

    #[test]
    fn binary_values_compare_byte_for_byte() {
        let mut e = Entry::new("cn=bin");
        e.push_value("objectGUID", vec![0xff, 0x00, b'A', 0x2a]);
        assert!(parse("(objectGUID=\\ff\\00A\\2a)").matches(&e));
        assert!(!parse("(objectGUID=\\ff\\00a\\2a)").matches(&e));
        assert!(parse("(objectGUID=\\ff*)").matches(&e));
        assert!(parse("(objectGUID=*A\\2a)").matches(&e));
        assert!(!parse("(objectGUID=A)").matches(&e));
        let text = Entry::new("cn=t").with("cn", &["abc"]);
        assert!(!parse("(cn=\\ff*)").matches(&text));
        assert!(!parse("(cn=\\ff)").matches(&text));
    }

    #[test]
    fn non_ascii_folding_handles_expanding_lowercase() {
        // 'İ' lowercases to two characters: "i̇".
        let e = Entry::new("cn=x").with("cn", &["İstanbul", "KELVIN \u{212a}"]);
        assert!(parse("(cn=i\u{307}stanbul)").matches(&e));
        assert!(parse("(cn=İSTANBUL)").matches(&e));
        assert!(parse("(cn=*stanbul)").matches(&e));
        assert!(parse("(cn=kelvin k)").matches(&e), "KELVIN SIGN folds to k");
        assert!(!parse("(cn=istanbul)").matches(&e));
    }

    #[test]
    fn attributes_lists_each_description_once() {
        let f =
            parse("(&(mail=*)(|(CN=a)(cn;lang-fr=b))(!(Mail=x))(uac:1.2.840.113556.1.4.803:=2))");
        assert_eq!(f.attributes(), ["mail", "CN", "cn;lang-fr", "uac"]);
        assert!(parse("(&)").attributes().is_empty());
        let f = parse("(&(objectClass=group)(!(disabled=TRUE))(|(mail=*)(!(cn=x))))");
        assert_eq!(f.asserted_attributes(), ["objectClass", "mail"]);
    }

    #[test]
    fn escape_value_escapes_the_five_specials() {
        assert_eq!(escape_value("a*b(c)d\\e\0f"), "a\\2ab\\28c\\29d\\5ce\\00f");
        assert_eq!(escape_value("Lučić"), "Lučić");
        let f = parse(&format!("(cn={})", escape_value("*(x)\\")));
        assert_eq!(
            f,
            Filter::Equality {
                attribute: "cn".into(),
                value: AssertionValue::new("*(x)\\")
            }
        );
    }

    #[test]
    fn escape_value_takes_bytes_and_round_trips_through_an_equality_filter() {
        // Control characters keep the filter on one line; a non-UTF-8 value escapes
        // every non-ASCII byte, so the filter is text.
        assert_eq!(escape_value(b"a\nb\x7f".as_slice()), "a\\0ab\\7f");
        assert_eq!(escape_value([0xff, b'*', 0x00, 0xc3]), "\\ff\\2a\\00\\c3");
        let originals: [&[u8]; 5] = [
            b"*@example.com",
            b"(x)\\y\0z",
            "Lučić*".as_bytes(),
            &[0x01, 0xfe, 0x28, 0xff],
            b"",
        ];
        for original in originals {
            let text = format!("(mail={})", escape_value(original));
            let filter = parse(&text);
            assert_eq!(
                filter,
                Filter::Equality {
                    attribute: "mail".into(),
                    value: AssertionValue::new(original)
                },
                "{text}"
            );
            let mut holder = Entry::new("cn=x");
            holder.push_value("mail", original.to_vec());
            assert!(filter.matches(&holder), "{text}");
        }
        // An escaped `*` is a literal, not a wildcard.
        let star = parse(&format!("(mail={})", escape_value(b"a*".as_slice())));
        assert!(!star.matches(&Entry::new("cn=x").with("mail", &["abc"])));
        assert!(star.matches(&Entry::new("cn=x").with("mail", &["A*"])));
    }

    #[test]
    fn from_str_parses() {
        let f: Filter = "(a=1)".parse().unwrap();
        assert_eq!(f, parse("(a=1)"));
    }

    fn attribute() -> impl Strategy<Value = String> {
        "[a-zA-Z][a-zA-Z0-9-]{0,6}(;[a-zA-Z0-9-]{1,4})?|[1-9][0-9]?(\\.(0|[1-9][0-9]?)){0,3}"
    }

    fn value() -> impl Strategy<Value = AssertionValue> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..8).prop_map(AssertionValue::new),
            "\\PC{0,8}".prop_map(AssertionValue::new),
        ]
    }

    fn piece() -> impl Strategy<Value = AssertionValue> {
        value().prop_map(|v| {
            if v.as_bytes().is_empty() {
                AssertionValue::new("x")
            } else {
                v
            }
        })
    }

    fn filter() -> impl Strategy<Value = Filter> {
        let leaf = prop_oneof![
            attribute().prop_map(|attribute| Filter::Present { attribute }),
            (attribute(), value())
                .prop_map(|(attribute, value)| Filter::Equality { attribute, value }),
            (attribute(), value())
                .prop_map(|(attribute, value)| Filter::Approx { attribute, value }),
            (attribute(), value())
                .prop_map(|(attribute, value)| Filter::GreaterOrEqual { attribute, value }),
            (attribute(), value())
                .prop_map(|(attribute, value)| Filter::LessOrEqual { attribute, value }),
            (
                attribute(),
                prop::option::of(piece()),
                prop::collection::vec(piece(), 0..3),
                prop::option::of(piece())
            )
                .prop_map(|(attribute, initial, mut any, final_)| {
                    if initial.is_none() && any.is_empty() && final_.is_none() {
                        any.push(AssertionValue::new("x"));
                    }
                    Filter::Substrings {
                        attribute,
                        initial,
                        any,
                        final_,
                    }
                }),
            (attribute(), any::<bool>(), any::<i64>()).prop_map(|(attribute, and, mask)| {
                Filter::Bitwise {
                    attribute,
                    rule: if and {
                        BitwiseRule::And
                    } else {
                        BitwiseRule::Or
                    },
                    mask,
                }
            }),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::And),
                prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::Or),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(f in filter()) {
            let text = f.to_string();
            prop_assert_eq!(Filter::parse(&text), Ok(f), "{}", text);
        }

        #[test]
        fn parse_never_panics_and_reprints_stably(input in "[(&|!)=*~<>:a-c1.\\\\0-9 ]{0,24}") {
            if let Ok(f) = Filter::parse(&input) {
                let text = f.to_string();
                prop_assert_eq!(Filter::parse(&text), Ok(f));
            }
        }

        #[test]
        fn escaped_value_matches_itself_exactly(v in "\\PC{0,12}") {
            let f = Filter::parse(&format!("(cn={})", escape_value(&v))).unwrap();
            let e = Entry::new("cn=x").with("cn", &[v.as_str()]);
            prop_assert!(f.matches(&e));
            prop_assert_eq!(f, Filter::Equality { attribute: "cn".into(), value: AssertionValue::new(v.as_str()) });
        }

        #[test]
        fn escaped_bytes_match_themselves_exactly(v in proptest::collection::vec(any::<u8>(), 0..12)) {
            let f = Filter::parse(&format!("(cn={})", escape_value(&v))).unwrap();
            let mut e = Entry::new("cn=x");
            e.push_value("cn", v.clone());
            prop_assert!(f.matches(&e));
            prop_assert_eq!(f, Filter::Equality { attribute: "cn".into(), value: AssertionValue::new(v) });
        }

        #[test]
        fn equality_agrees_with_folded_comparison(a in "[a-zA-ZÀ-ÿ ]{0,6}", b in "[a-zA-ZÀ-ÿ ]{0,6}") {
            let f = Filter::Equality { attribute: "cn".into(), value: AssertionValue::new(a.as_str()) };
            let e = Entry::new("cn=x").with("cn", &[b.as_str()]);
            prop_assert_eq!(f.matches(&e), fold(&a).eq(fold(&b)));
        }
    }
}
