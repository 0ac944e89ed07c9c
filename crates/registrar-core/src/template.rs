//! Value templates (`{mail|lower|local_part}`) rendered over directory entries.
//!
//! Mappings turn an entry into IM names with a template, and account profiles and group
//! names come from templates too. A template is parsed once, when the configuration is
//! loaded, and rendered for every entry.
//!
//! This module is pure: no I/O, no clock, no global state, and rendering never panics,
//! whatever bytes the directory holds. It must not know about configuration files:
//! errors carry a 1-based character column and the caller adds `file:line`.
//!
//! # Syntax
//!
//! Literal text with placeholders. `{{` and `}}` are a literal `{` and `}`; a lone `}`
//! outside a placeholder is an error.
//!
//! A placeholder is `{attr}` or `{attr|filter|filter:arg}`. `attr` is an RFC 4512
//! attribute description, options included (`{cn;lang-fr}`,
//! `{msRTCSIP-PrimaryUserAddress}`). Whitespace around the attribute and around filter
//! names is ignored; an argument is taken exactly as written.
//!
//! Filters, applied left to right to each value:
//!
//! | filter | result |
//! |---|---|
//! | `lower`, `upper` | Unicode lower / upper case |
//! | `trim` | without leading and trailing whitespace |
//! | `local_part` | the part before the last `@`; a value without `@` stays whole |
//! | `domain` | the part after the last `@`; a value without `@` gives no value |
//! | `strip_prefix:X` | without the prefix `X`, matched ignoring case (`sip:` and `SIP:`); a value without it is unchanged |
//! | `strip_suffix:X` | the same at the end |
//! | `replace:REGEX:WITH` | every match of REGEX (the `regex` crate's syntax) replaced by WITH, where `$1`, `${name}` refer to groups and `$$` is a `$` (write `${1}x` rather than `$1x`) |
//!
//! An argument runs to the next unescaped `|`, or to the unescaped `}` that closes the
//! placeholder: braces inside an argument nest, so `replace:\d{3}:N` and `${1}` need no
//! escape. Inside an argument, `\|`, `\{`, `\}`, `\:` and `\\` stand for `|`, `{`, `}`,
//! `:` and `\` (use `\{` / `\}` for a brace without its partner); a backslash before any
//! other character is kept with it, so regex escapes such as `\d` or `\.` pass through
//! unchanged. A `:` needs no escape in `strip_prefix`/`strip_suffix`
//! (`strip_prefix:sip:` strips `sip:`). In `replace`, REGEX ends at the first unescaped
//! `:`: write `\:` for a `:` inside the regex and `\|` for alternation. The regex sees
//! the text after these escapes are removed: `replace:a\|b:x` is the regex `a|b`, and the
//! regex `\|` (a literal pipe) is written `\\\|`.
//!
//! # Rendering
//!
//! - A placeholder yields every value of its attribute (and of its subtypes, per
//!   [`Entry::values`]), in source order, decoded as UTF-8 with invalid bytes replaced.
//! - A value that is empty after the filters (or that `domain` drops) is dropped; a
//!   partial name such as `.smith` is never produced from an empty `givenName`.
//! - Several placeholders give the cartesian product of their values, the first
//!   placeholder varying slowest. Duplicate results are removed keeping the first.
//! - If an attribute of the template is absent, the template yields nothing, and
//!   [`Template::render_outcome`] says which attribute was missing so the plan can count
//!   the entry as skipped. If the attributes are present but nothing survives the
//!   filters, the outcome is [`RenderOutcome::Empty`].
//! - A template without placeholders renders its text once; the empty template renders
//!   nothing.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use regex::Regex;

use crate::attribute_name::validate_attribute;
use crate::cursor::Cursor;
use crate::entry::Entry;
use crate::quote::quote_for_message;

/// The filters a placeholder can use, as listed in error messages.
pub const KNOWN_FILTERS: &str =
    "lower, upper, trim, local_part, domain, strip_prefix:X, strip_suffix:X, replace:REGEX:WITH";

/// A template that failed to parse: where (1-based character column) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct TemplateError {
    /// 1-based character (not byte) column in the template text.
    pub column: usize,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

/// A parsed value template. Two templates are equal when their source texts are.
#[derive(Clone)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone)]
enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

#[derive(Clone)]
struct Placeholder {
    attribute: String,
    filters: Vec<ValueFilter>,
}

#[derive(Clone)]
enum ValueFilter {
    Lower,
    Upper,
    Trim,
    LocalPart,
    Domain,
    StripPrefix(String),
    StripSuffix(String),
    Replace { regex: Regex, with: String },
}

/// What rendering a template over one entry gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderOutcome {
    /// One or more values, non-empty, without duplicates, in template order.
    Values(Vec<String>),
    /// The entry has no value for this attribute description (the first one missing,
    /// as written in the template): the entry is skipped.
    MissingAttribute(String),
    /// Every attribute is present, but no value survived the filters.
    Empty,
}

impl RenderOutcome {
    /// The rendered values; empty unless the outcome is [`RenderOutcome::Values`].
    pub fn into_values(self) -> Vec<String> {
        match self {
            RenderOutcome::Values(values) => values,
            RenderOutcome::MissingAttribute(_) | RenderOutcome::Empty => Vec::new(),
        }
    }
}

impl Template {
    /// Parses a template. See the module documentation for the syntax.
    ///
    /// ```
    /// use registrar_core::entry::Entry;
    /// use registrar_core::template::{RenderOutcome, Template};
    ///
    /// let aim = Template::parse("{mail|lower|local_part}").unwrap();
    /// let entry = Entry::new("cn=Alice,dc=example")
    ///     .with("mail", &["Alice.Liddell@Example.org", "al@example.org"]);
    /// assert_eq!(aim.render(&entry), ["alice.liddell", "al"]);
    /// assert_eq!(aim.attributes(), ["mail"]);
    ///
    /// // Nothing to render, and why.
    /// let bare = Entry::new("cn=Bob,dc=example");
    /// assert!(aim.render(&bare).is_empty());
    /// assert!(matches!(aim.render_outcome(&bare), RenderOutcome::MissingAttribute(_)));
    ///
    /// assert!(Template::parse("{mail|shout}").is_err());
    /// ```
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parser = Parser {
            cursor: Cursor::new(source),
        };
        let mut parts = Vec::new();
        let mut literal = String::new();
        while let Some(c) = parser.cursor.peek() {
            match c {
                '{' | '}' if parser.cursor.peek_nth(1) == Some(c) => {
                    literal.push(c);
                    parser.cursor.bump();
                    parser.cursor.bump();
                }
                '{' => {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Placeholder(parser.parse_placeholder()?));
                }
                '}' => {
                    return Err(parser.error(
                        parser.cursor.pos(),
                        "unmatched '}'; write '}}' for a literal '}'",
                    ))
                }
                _ => {
                    literal.push(c);
                    parser.cursor.bump();
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The attribute descriptions the template reads, in order of first use, without
    /// duplicates (compared ignoring case).
    pub fn attributes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::Placeholder(placeholder) = part {
                if !out
                    .iter()
                    .any(|seen| seen.eq_ignore_ascii_case(&placeholder.attribute))
                {
                    out.push(&placeholder.attribute);
                }
            }
        }
        out
    }

    /// The rendered values for `entry`; empty when an attribute is missing or nothing
    /// survives the filters (use [`Template::render_outcome`] to tell which).
    pub fn render(&self, entry: &Entry) -> Vec<String> {
        self.render_outcome(entry).into_values()
    }

    /// The first value [`Template::render`] gives, without making the others (a profile
    /// field takes one value).
    pub fn render_first(&self, entry: &Entry) -> Option<String> {
        if let [Part::Placeholder(placeholder)] = self.parts.as_slice() {
            return placeholder.first_value(entry);
        }
        self.render(entry).into_iter().next()
    }

    /// Renders over `entry`, saying why nothing was rendered when that is the case.
    pub fn render_outcome(&self, entry: &Entry) -> RenderOutcome {
        // The common template is one placeholder: one pass over the entry, no product.
        if let [Part::Placeholder(placeholder)] = self.parts.as_slice() {
            let values = placeholder.values(entry);
            return if !values.is_empty() {
                RenderOutcome::Values(values)
            } else if entry.has(&placeholder.attribute) {
                RenderOutcome::Empty
            } else {
                RenderOutcome::MissingAttribute(placeholder.attribute.clone())
            };
        }
        for part in &self.parts {
            if let Part::Placeholder(placeholder) = part {
                if !entry.has(&placeholder.attribute) {
                    return RenderOutcome::MissingAttribute(placeholder.attribute.clone());
                }
            }
        }
        let mut results = vec![String::new()];
        for part in &self.parts {
            match part {
                Part::Literal(text) => {
                    for result in &mut results {
                        result.push_str(text);
                    }
                }
                Part::Placeholder(placeholder) => {
                    let values = placeholder.values(entry);
                    if values.is_empty() {
                        return RenderOutcome::Empty;
                    }
                    results = if values.len() == 1 {
                        for result in &mut results {
                            result.push_str(&values[0]);
                        }
                        results
                    } else {
                        results
                            .iter()
                            .flat_map(|prefix| {
                                values.iter().map(move |value| {
                                    let mut combined =
                                        String::with_capacity(prefix.len() + value.len());
                                    combined.push_str(prefix);
                                    combined.push_str(value);
                                    combined
                                })
                            })
                            .collect()
                    };
                }
            }
        }
        results.retain(|result| !result.is_empty());
        dedupe(&mut results);
        if results.is_empty() {
            RenderOutcome::Empty
        } else {
            RenderOutcome::Values(results)
        }
    }
}

impl Placeholder {
    /// The first value of [`Placeholder::values`].
    fn first_value(&self, entry: &Entry) -> Option<String> {
        'values: for value in entry.text_values(&self.attribute) {
            let mut value = value;
            for filter in &self.filters {
                match filter.apply(value) {
                    Some(next) => value = next,
                    None => continue 'values,
                }
            }
            if !value.is_empty() {
                return Some(value.into_owned());
            }
        }
        None
    }

    /// The filtered, non-empty, distinct values of the attribute, in source order.
    fn values(&self, entry: &Entry) -> Vec<String> {
        let mut out = Vec::new();
        'values: for value in entry.text_values(&self.attribute) {
            let mut value = value;
            for filter in &self.filters {
                match filter.apply(value) {
                    Some(next) => value = next,
                    None => continue 'values,
                }
            }
            if !value.is_empty() {
                out.push(value.into_owned());
            }
        }
        dedupe(&mut out);
        out
    }
}

/// Removes later duplicates, keeping the order of first occurrences.
fn dedupe(values: &mut Vec<String>) {
    if values.len() < 16 {
        let mut index = 0;
        while index < values.len() {
            if values[..index].contains(&values[index]) {
                values.remove(index);
            } else {
                index += 1;
            }
        }
    } else {
        let mut seen = HashSet::with_capacity(values.len());
        values.retain(|value| seen.insert(value.clone()));
    }
}

impl ValueFilter {
    /// The filtered value, or `None` when the filter drops it.
    fn apply<'a>(&self, value: Cow<'a, str>) -> Option<Cow<'a, str>> {
        Some(match self {
            // ASCII values (most) change case byte by byte, and are kept when they
            // already have the case wanted: no copy for `{mail|lower}` of a lower-case mail.
            ValueFilter::Lower if value.is_ascii() => {
                if value.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(value.to_ascii_lowercase())
                } else {
                    value
                }
            }
            ValueFilter::Upper if value.is_ascii() => {
                if value.bytes().any(|b| b.is_ascii_lowercase()) {
                    Cow::Owned(value.to_ascii_uppercase())
                } else {
                    value
                }
            }
            ValueFilter::Lower => Cow::Owned(value.to_lowercase()),
            ValueFilter::Upper => Cow::Owned(value.to_uppercase()),
            ValueFilter::Trim => {
                let trimmed = value.trim();
                let start = trimmed.as_ptr() as usize - value.as_ptr() as usize;
                let end = start + trimmed.len();
                slice(value, start, end)
            }
            ValueFilter::LocalPart => match value.rfind('@') {
                Some(at) => slice(value, 0, at),
                None => value,
            },
            ValueFilter::Domain => {
                let at = value.rfind('@')?;
                let len = value.len();
                slice(value, at + 1, len)
            }
            ValueFilter::StripPrefix(prefix) => match prefix_len_ignoring_case(&value, prefix) {
                Some(end) => {
                    let len = value.len();
                    slice(value, end, len)
                }
                None => value,
            },
            ValueFilter::StripSuffix(suffix) => match suffix_start_ignoring_case(&value, suffix) {
                Some(start) => slice(value, 0, start),
                None => value,
            },
            ValueFilter::Replace { regex, with } => {
                match regex.replace_all(&value, with.as_str()) {
                    Cow::Borrowed(_) => value,
                    Cow::Owned(replaced) => Cow::Owned(replaced),
                }
            }
        })
    }
}

/// `value[start..end]`, borrowing when `value` does.
fn slice(value: Cow<'_, str>, start: usize, end: usize) -> Cow<'_, str> {
    match value {
        Cow::Borrowed(text) => Cow::Borrowed(&text[start..end]),
        Cow::Owned(mut text) => {
            text.truncate(end);
            text.drain(..start);
            Cow::Owned(text)
        }
    }
}

fn same_ignoring_case(a: char, b: char) -> bool {
    a == b || a.to_lowercase().eq(b.to_lowercase())
}

/// The byte length of `prefix` at the start of `value`, compared character by character
/// ignoring case.
fn prefix_len_ignoring_case(value: &str, prefix: &str) -> Option<usize> {
    let mut chars = value.char_indices();
    for wanted in prefix.chars() {
        let (_, have) = chars.next()?;
        if !same_ignoring_case(have, wanted) {
            return None;
        }
    }
    Some(chars.next().map_or(value.len(), |(at, _)| at))
}

/// Where `suffix` starts at the end of `value`, compared ignoring case.
fn suffix_start_ignoring_case(value: &str, suffix: &str) -> Option<usize> {
    let mut chars = value.char_indices().rev();
    let mut start = value.len();
    for wanted in suffix.chars().rev() {
        let (at, have) = chars.next()?;
        if !same_ignoring_case(have, wanted) {
            return None;
        }
        start = at;
    }
    Some(start)
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Template {}

impl std::hash::Hash for Template {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

struct Parser<'a> {
    cursor: Cursor<'a>,
}

impl<'a> Parser<'a> {
    fn error(&self, pos: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            column: self.cursor.column(pos),
            message: message.into(),
        }
    }

    fn unclosed(&self, open: usize) -> TemplateError {
        self.error(
            open,
            "unclosed '{': missing '}' (write '{{' for a literal '{')",
        )
    }

    /// Advances over characters until one of `stops` or the end; returns the text and the
    /// byte offset of its first non-whitespace character.
    fn scan_name(&mut self, stops: &[char]) -> (&'a str, usize) {
        let start = self.cursor.pos();
        let raw = self.cursor.skip_while(|c| !stops.contains(&c));
        let trimmed = raw.trim();
        let leading = raw.len() - raw.trim_start().len();
        (trimmed, start + leading)
    }

    /// `{attr|filter|filter:arg}`, positioned on the `{`.
    fn parse_placeholder(&mut self) -> Result<Placeholder, TemplateError> {
        let open = self.cursor.pos();
        self.cursor.bump();
        let (attribute, attribute_at) = self.scan_name(&['|', '}']);
        let attribute = attribute.to_string();
        if self.cursor.at_end() {
            return Err(self.unclosed(open));
        }
        if attribute.is_empty() {
            return Err(self.error(
                open,
                "empty placeholder: expected an attribute name after '{' (write '{{' for a \
                 literal '{')",
            ));
        }
        if let Err((offset, message)) = validate_attribute(&attribute) {
            return Err(self.error(attribute_at + offset, message));
        }
        let mut filters = Vec::new();
        while self.cursor.eat('|') {
            filters.push(self.parse_filter(open)?);
        }
        // The loop above stops only on '}' (or the end, reported inside it).
        self.cursor.bump();
        Ok(Placeholder { attribute, filters })
    }

    /// One filter after `|`.
    fn parse_filter(&mut self, open: usize) -> Result<ValueFilter, TemplateError> {
        let (name, name_at) = self.scan_name(&[':', '|', '}']);
        let name = name.to_string();
        let argument = match self.cursor.peek() {
            None => return Err(self.unclosed(open)),
            Some(':') => {
                self.cursor.bump();
                let argument_at = self.cursor.pos();
                Some((self.scan_argument(open)?, argument_at))
            }
            Some(_) => None,
        };
        let no_argument = |filter: ValueFilter| match &argument {
            Some(_) => Err(self.error(name_at, format!("filter {name} takes no argument"))),
            None => Ok(filter),
        };
        match name.as_str() {
            "lower" => no_argument(ValueFilter::Lower),
            "upper" => no_argument(ValueFilter::Upper),
            "trim" => no_argument(ValueFilter::Trim),
            "local_part" => no_argument(ValueFilter::LocalPart),
            "domain" => no_argument(ValueFilter::Domain),
            "strip_prefix" | "strip_suffix" => {
                let text: String = match &argument {
                    Some((chars, _)) if !chars.is_empty() => {
                        chars.iter().map(|&(c, _)| c).collect()
                    }
                    _ => {
                        return Err(self.error(
                            name_at,
                            format!("filter {name} needs an argument: {name}:X"),
                        ))
                    }
                };
                Ok(if name == "strip_prefix" {
                    ValueFilter::StripPrefix(text)
                } else {
                    ValueFilter::StripSuffix(text)
                })
            }
            "replace" => {
                let Some((chars, argument_at)) = &argument else {
                    return Err(self.error(
                        name_at,
                        "filter replace needs an argument: replace:REGEX:WITH",
                    ));
                };
                let Some(split) = chars.iter().position(|&(c, escaped)| c == ':' && !escaped)
                else {
                    return Err(self.error(
                        *argument_at,
                        "filter replace needs REGEX:WITH, separated by ':' (write \\: for a ':' \
                         inside the regex)",
                    ));
                };
                let pattern: String = chars[..split].iter().map(|&(c, _)| c).collect();
                let with: String = chars[split + 1..].iter().map(|&(c, _)| c).collect();
                let regex = Regex::new(&pattern).map_err(|e| {
                    self.error(
                        *argument_at,
                        format!(
                            "invalid regex {} in replace: {}",
                            quote_for_message(&pattern),
                            regex_reason(&e)
                        ),
                    )
                })?;
                Ok(ValueFilter::Replace { regex, with })
            }
            "" => Err(self.error(
                name_at,
                format!("missing filter name after '|'; known filters: {KNOWN_FILTERS}"),
            )),
            _ => Err(self.error(
                name_at,
                format!(
                    "unknown filter {}; known filters: {KNOWN_FILTERS}",
                    quote_for_message(name)
                ),
            )),
        }
    }

    /// An argument up to the next unescaped `|`, or the unescaped `}` that closes the
    /// placeholder (inner braces nest): each character, and whether it was escaped.
    fn scan_argument(&mut self, open: usize) -> Result<Vec<(char, bool)>, TemplateError> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        loop {
            match self.cursor.peek() {
                None => return Err(self.unclosed(open)),
                Some('|') | Some('}') if depth == 0 => return Ok(out),
                Some(c @ ('{' | '}')) => {
                    self.cursor.bump();
                    if c == '{' {
                        depth += 1;
                    } else {
                        depth -= 1;
                    }
                    out.push((c, false));
                }
                Some('\\') => {
                    self.cursor.bump();
                    match self.cursor.peek() {
                        Some(c @ ('|' | '{' | '}' | ':' | '\\')) => {
                            self.cursor.bump();
                            out.push((c, true));
                        }
                        _ => out.push(('\\', false)),
                    }
                }
                Some(c) => {
                    self.cursor.bump();
                    out.push((c, false));
                }
            }
        }
    }
}

/// The one-line reason of a regex error (the crate's message spans several lines).
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn template(s: &str) -> Template {
        Template::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn error(s: &str) -> TemplateError {
        match Template::parse(s) {
            Ok(t) => panic!("{s} parsed as {t:?}"),
            Err(e) => e,
        }
    }

    fn render(t: &str, entry: &Entry) -> Vec<String> {
        template(t).render(entry)
    }

    fn alice() -> Entry {
        Entry::new("cn=Alice,ou=People,dc=example,dc=com")
            .with("cn", &["Alice Liddell"])
            .with("cn;lang-fr", &["Alice Merveille"])
            .with("mail", &["Alice.Liddell@Corp.Example"])
            .with("msRTCSIP-PrimaryUserAddress", &["SIP:alice@corp.example"])
            .with("givenName", &["Alice", "Ally"])
            .with("sn", &["Liddell", "Pleasance"])
            .with("uid", &["alice"])
            .with("telephoneNumber", &["+1 (555) 010-0100"])
    }

    #[test]
    fn design_examples_render() {
        let e = alice();
        assert_eq!(render("{mail|lower|local_part}", &e), ["alice.liddell"]);
        assert_eq!(
            render("{msRTCSIP-PrimaryUserAddress|strip_prefix:sip:}", &e),
            ["alice@corp.example"],
            "strip_prefix ignores case and its argument may contain ':'"
        );
        assert_eq!(render("{cn}", &e), ["Alice Liddell", "Alice Merveille"]);
        assert_eq!(render("Sales", &e), ["Sales"]);
    }

    #[test]
    fn each_filter_does_its_job() {
        let e = Entry::new("cn=x")
            .with("mail", &["Bob@Example.COM"])
            .with("plain", &["  Mixed Case  "])
            .with("nomail", &["bob"])
            .with("uri", &["sip:bob@example.com", "tel:+1555"]);
        assert_eq!(render("{mail|lower}", &e), ["bob@example.com"]);
        assert_eq!(render("{mail|upper}", &e), ["BOB@EXAMPLE.COM"]);
        assert_eq!(render("[{plain|trim}]", &e), ["[Mixed Case]"]);
        assert_eq!(render("[{plain}]", &e), ["[  Mixed Case  ]"]);
        assert_eq!(render("{mail|local_part}", &e), ["Bob"]);
        assert_eq!(
            render("{nomail|local_part}", &e),
            ["bob"],
            "no '@': whole value"
        );
        assert_eq!(render("{mail|domain}", &e), ["Example.COM"]);
        assert_eq!(
            template("{nomail|domain}").render_outcome(&e),
            RenderOutcome::Empty,
            "no '@': no value"
        );
        assert_eq!(
            render("{uri|strip_prefix:SIP:}", &e),
            ["bob@example.com", "tel:+1555"],
            "a value without the prefix is unchanged"
        );
        assert_eq!(render("{mail|strip_suffix:@example.com}", &e), ["Bob"]);
        assert_eq!(
            render("{mail|strip_suffix:@other.com}", &e),
            ["Bob@Example.COM"]
        );
        assert_eq!(
            render("{mail|lower|replace:example:corp}", &e),
            ["bob@corp.com"]
        );
        assert_eq!(
            render("{mail|replace:^(.*)@(.*)$:$2\\:$1}", &e),
            ["Example.COM:Bob"]
        );
        // Braces nest inside an argument, so `${1}` needs no escape.
        assert_eq!(
            render("{mail|replace:(?i)(b)o:${1}x}", &e),
            ["Bxb@Example.COM"]
        );
    }

    #[test]
    fn arguments_have_escapes_for_pipe_brace_colon_and_backslash() {
        let e = Entry::new("cn=x")
            .with("cn", &["hello|world"])
            .with("tel", &["+1 (555) 010-0100"])
            .with("path", &["a\\b:c"]);
        // `\|` is a regex alternation once unescaped...
        assert_eq!(
            render("{tel|replace:\\(\\|\\)\\| :}", &e),
            ["+1555010-0100"]
        );
        // ...and `\\\|` the regex `\|`, a literal pipe.
        assert_eq!(render("{cn|replace:\\\\\\|:/}", &e), ["hello/world"]);
        // Braces nest, `\d` passes through to the regex; `\{` `\}` are lone braces.
        assert_eq!(render("{tel|replace:\\d{3}:N}", &e), ["+1 (N) N-N0"]);
        assert_eq!(render("{tel|replace:\\d\\{3\\}:N}", &e), ["+1 (N) N-N0"]);
        assert_eq!(render("{cn|replace:o:\\{}", &e), ["hell{|w{rld"]);
        assert_eq!(
            render("<{cn|strip_prefix:\\{hello\\|}>", &e),
            ["<hello|world>"]
        );
        assert_eq!(
            error("<{cn|strip_prefix:{hello}>").column,
            2,
            "an unbalanced '{{' must be escaped"
        );
        // `\:` inside the regex, `\\` a backslash (the regex `\\`).
        assert_eq!(render("{path|replace:\\:c:}", &e), ["a\\b"]);
        assert_eq!(render("{path|replace:\\\\\\\\:/}", &e), ["a/b:c"]);
        assert_eq!(render("{path|strip_suffix:\\\\b\\:c}", &e), ["a"]);
        assert_eq!(render("{cn|strip_prefix:hello\\|}", &e), ["world"]);
        assert_eq!(render("{cn|strip_suffix:\\}}", &e), ["hello|world"]);
    }

    #[test]
    fn literal_braces_and_surrounding_text() {
        let e = alice();
        assert_eq!(render("{{{uid}}}", &e), ["{alice}"]);
        assert_eq!(render("{{uid}}", &e), ["{uid}"]);
        assert_eq!(render("pre-{ uid | upper }-post", &e), ["pre-ALICE-post"]);
    }

    #[test]
    fn multi_valued_attributes_give_the_cartesian_product_in_order() {
        let e = alice();
        assert_eq!(
            render("{givenName}.{sn}", &e),
            [
                "Alice.Liddell",
                "Alice.Pleasance",
                "Ally.Liddell",
                "Ally.Pleasance"
            ]
        );
    }

    #[test]
    fn duplicates_are_removed_keeping_the_first() {
        let e = Entry::new("cn=x")
            .with("mail", &["B@x", "a@x", "b@X", "A@y"])
            .with("n", &["1", "2"]);
        assert_eq!(render("{mail|lower|local_part}", &e), ["b", "a"]);
        assert_eq!(
            render("{mail|lower|local_part}{n|replace:.*:}", &e),
            Vec::<String>::new()
        );
        let many: Vec<String> = (0..40).map(|i| format!("v{}", i % 7)).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = Entry::new("cn=x").with("v", &refs);
        assert_eq!(
            render("{v}", &e),
            ["v0", "v1", "v2", "v3", "v4", "v5", "v6"]
        );
    }

    #[test]
    fn empty_values_are_dropped_not_half_rendered() {
        let e = Entry::new("cn=x")
            .with("givenName", &["   "])
            .with("sn", &["Smith"])
            .with("mail", &["@corp.example", "bob@corp.example"]);
        let t = template("{givenName|trim}.{sn}");
        assert_eq!(t.render_outcome(&e), RenderOutcome::Empty);
        assert_eq!(render("{mail|local_part}", &e), ["bob"]);
        assert_eq!(template("").render_outcome(&e), RenderOutcome::Empty);
    }

    #[test]
    fn missing_attribute_is_told_apart_from_filtered_out() {
        let e = Entry::new("cn=x").with("mail", &["bob"]);
        let t = template("{mail}@{domainName}");
        assert_eq!(
            t.render_outcome(&e),
            RenderOutcome::MissingAttribute("domainName".into())
        );
        assert!(t.render(&e).is_empty());
        assert_eq!(
            template("{mail|domain}").render_outcome(&e),
            RenderOutcome::Empty
        );
        assert_eq!(
            template("{mail}").render_outcome(&e),
            RenderOutcome::Values(vec!["bob".into()])
        );
    }

    #[test]
    fn subtypes_follow_rfc4512() {
        let e = alice();
        assert_eq!(render("{cn;lang-fr}", &e), ["Alice Merveille"]);
        assert_eq!(render("{CN;LANG-FR}", &e), ["Alice Merveille"]);
        assert_eq!(render("{CN}", &e), ["Alice Liddell", "Alice Merveille"]);
        assert_eq!(
            template("{cn;lang-de}").render_outcome(&e),
            RenderOutcome::MissingAttribute("cn;lang-de".into())
        );
    }

    #[test]
    fn non_utf8_values_are_decoded_lossily() {
        let mut e = Entry::new("cn=x");
        e.push_value("cn", vec![b'a', 0xff, b'b']);
        assert_eq!(render("{cn}", &e), ["a\u{fffd}b"]);
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases = [
            ("{mail|lowr}", 7, format!("unknown filter \"lowr\"; known filters: {KNOWN_FILTERS}")),
            ("{mail|}", 7, format!("missing filter name after '|'; known filters: {KNOWN_FILTERS}")),
            ("ab{mail", 3, "unclosed '{': missing '}' (write '{{' for a literal '{')".to_string()),
            ("{mail|lower", 1, "unclosed '{': missing '}' (write '{{' for a literal '{')".to_string()),
            ("{mail|replace:a:b", 1, "unclosed '{': missing '}' (write '{{' for a literal '{')".to_string()),
            ("a}b", 2, "unmatched '}'; write '}}' for a literal '}'".to_string()),
            ("x{}", 2, "empty placeholder: expected an attribute name after '{' (write '{{' for a literal '{')".to_string()),
            ("{ma il}", 4, "invalid character ' ' in attribute description \"ma il\"".to_string()),
            ("{ms_x}", 4, "invalid character '_' in attribute description \"ms_x\"".to_string()),
            ("{mail|lower:x}", 7, "filter lower takes no argument".to_string()),
            ("{mail|strip_prefix}", 7, "filter strip_prefix needs an argument: strip_prefix:X".to_string()),
            ("{mail|strip_suffix:}", 7, "filter strip_suffix needs an argument: strip_suffix:X".to_string()),
            ("{mail|replace}", 7, "filter replace needs an argument: replace:REGEX:WITH".to_string()),
            ("{mail|replace:abc}", 15, "filter replace needs REGEX:WITH, separated by ':' (write \\: for a ':' inside the regex)".to_string()),
            ("{mail|replace:(a:b}", 15, "invalid regex \"(a\" in replace: unclosed group".to_string()),
            ("é{mail|Lower}", 8, format!("unknown filter \"Lower\"; known filters: {KNOWN_FILTERS}")),
        ];
        for (input, column, message) in cases {
            let e = error(input);
            assert_eq!(
                (e.column, e.message.as_str()),
                (column, message.as_str()),
                "{input}"
            );
        }
        assert_eq!(
            error("a}").to_string(),
            "column 2: unmatched '}'; write '}}' for a literal '}'"
        );
    }

    #[test]
    fn attributes_display_and_equality() {
        let t = template("{mail|lower}/{CN;lang-fr}/{Mail}/{sn}");
        assert_eq!(t.attributes(), ["mail", "CN;lang-fr", "sn"]);
        assert_eq!(t.to_string(), "{mail|lower}/{CN;lang-fr}/{Mail}/{sn}");
        assert_eq!(t.as_str(), t.to_string());
        assert_eq!(t, template("{mail|lower}/{CN;lang-fr}/{Mail}/{sn}"));
        assert_ne!(t, template("{mail|lower}/{cn;lang-fr}/{Mail}/{sn}"));
        assert_eq!(format!("{:?}", template("{a}")), "Template(\"{a}\")");
        assert!(template("constant").attributes().is_empty());
        let parsed: Template = "{uid}".parse().unwrap();
        assert_eq!(parsed, template("{uid}"));
    }

    const TEMPLATES: &[&str] = &[
        "{v}",
        "{v|lower|local_part}",
        "{v|upper|domain}",
        "{v|trim|strip_prefix:sİp:|strip_suffix:ß}",
        "{v|replace:(.)(.):${2}$1}",
        "{v|replace:\\s+:}",
        "x{v}.{w|lower}y",
        "{w}{v}{w|trim}",
    ];

    proptest! {
        #[test]
        fn render_never_panics_and_keeps_its_promises(
            index in 0..TEMPLATES.len(),
            v in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..4),
            w in prop::collection::vec("\\PC{0,6}|[ @sSİıß:]{0,6}", 1..3),
        ) {
            let mut e = Entry::new("cn=x");
            for value in v {
                e.push_value("v", value);
            }
            for value in &w {
                e.push_value("w", value.as_bytes().to_vec());
            }
            let t = template(TEMPLATES[index]);
            match t.render_outcome(&e) {
                RenderOutcome::Values(values) => {
                    prop_assert!(!values.is_empty());
                    prop_assert!(values.iter().all(|v| !v.is_empty()));
                    let distinct: HashSet<&String> = values.iter().collect();
                    prop_assert_eq!(distinct.len(), values.len());
                }
                RenderOutcome::Empty => {}
                RenderOutcome::MissingAttribute(a) => prop_assert!(false, "{} reported missing", a),
            }
        }

        #[test]
        fn parse_never_panics_and_keeps_the_source(input in "[{}|:a-z\\\\ .]{0,20}") {
            if let Ok(t) = Template::parse(&input) {
                prop_assert_eq!(t.to_string(), input);
            }
        }
    }
}
