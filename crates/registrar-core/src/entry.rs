//! Directory entries as the core sees them: a DN and multi-valued attributes.
//!
//! Attribute names are case-insensitive and an attribute with options is a subtype of its
//! base attribute (RFC 4512 §2.5): asking for `cn` sees the values of `cn` and
//! `cn;lang-fr`, asking for `cn;lang-fr` sees only attributes whose options include
//! `lang-fr`. Values are bytes, because directories hold binary values (`jpegPhoto`,
//! `objectGUID`); callers that need text decode them.
//!
//! This module is pure: no I/O. Readers (LDIF, LDAP) build entries; the core reads them.

/// One directory object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The distinguished name, as the source wrote it.
    pub dn: String,
    /// Attributes in the order the source gave them. Two attributes never share a
    /// description that differs only in case: readers merge them.
    pub attributes: Vec<Attribute>,
}

/// One attribute description (`cn`, `cn;lang-fr`) and its values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribute {
    /// The attribute description as first written by the source, options included.
    pub description: String,
    /// The values, in source order; may be empty only while a reader builds the entry.
    pub values: Vec<Vec<u8>>,
}

impl Attribute {
    /// The attribute type without options: `cn` for `cn;lang-fr`.
    pub fn base_name(&self) -> &str {
        base_name(&self.description)
    }

    /// Whether this attribute is `wanted` or a subtype of it (case-insensitive).
    #[inline]
    pub fn is_described_by(&self, wanted: &str) -> bool {
        description_matches(&self.description, wanted)
    }
}

/// The part of an attribute description before the first `;`.
pub fn base_name(description: &str) -> &str {
    description.split(';').next().unwrap_or(description)
}

/// Whether `actual` (say `cn;lang-fr`) is described by `wanted` (say `cn`): same base
/// name, ignoring case, and every option of `wanted` present in `actual`.
#[inline]
pub(crate) fn description_matches(actual: &str, wanted: &str) -> bool {
    // Most lookups compare different names: the first byte tells, without a call.
    match (actual.as_bytes().first(), wanted.as_bytes().first()) {
        (Some(a), Some(w)) if a.eq_ignore_ascii_case(w) => same_description(actual, wanted),
        _ => false,
    }
}

/// [`description_matches`] once the first bytes agree.
fn same_description(actual: &str, wanted: &str) -> bool {
    let (actual_bytes, wanted_bytes) = (actual.as_bytes(), wanted.as_bytes());
    let Some(wanted_options_at) = wanted_bytes.iter().position(|&b| b == b';') else {
        // The common case, no options wanted: a prefix compare, no allocation.
        // Reject on length first (most descriptions differ in length), then compare.
        return match actual_bytes.get(wanted_bytes.len()) {
            None => actual_bytes.len() == wanted_bytes.len(),
            Some(&next) => next == b';',
        } && actual_bytes[..wanted_bytes.len()].eq_ignore_ascii_case(wanted_bytes);
    };
    if base_name(actual).len() != wanted_options_at
        || !actual_bytes[..wanted_options_at]
            .eq_ignore_ascii_case(&wanted_bytes[..wanted_options_at])
    {
        return false;
    }
    wanted[wanted_options_at + 1..].split(';').all(|option| {
        actual
            .split(';')
            .skip(1)
            .any(|have| have.eq_ignore_ascii_case(option))
    })
}

impl Entry {
    /// Creates an entry with no attributes.
    pub fn new(dn: impl Into<String>) -> Self {
        Entry {
            dn: dn.into(),
            attributes: Vec::new(),
        }
    }

    /// Adds one value, merging it into an existing attribute whose description is the
    /// same ignoring case.
    pub fn push_value(&mut self, description: &str, value: Vec<u8>) {
        match self
            .attributes
            .iter_mut()
            .find(|attribute| attribute.description.eq_ignore_ascii_case(description))
        {
            Some(attribute) => attribute.values.push(value),
            None => self.attributes.push(Attribute {
                description: description.to_string(),
                values: vec![value],
            }),
        }
    }

    /// Builder form of [`Entry::push_value`] for text values.
    pub fn with(mut self, description: &str, values: &[&str]) -> Self {
        for value in values {
            self.push_value(description, value.as_bytes().to_vec());
        }
        self
    }

    /// Every value of `description` and its subtypes, in source order.
    pub fn values<'a>(&'a self, description: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attributes
            .iter()
            .filter(move |attribute| attribute.is_described_by(description))
            .flat_map(|attribute| attribute.values.iter().map(Vec::as_slice))
    }

    /// Every value of `description` and its subtypes as text (invalid UTF-8 replaced).
    pub fn text_values<'a>(
        &'a self,
        description: &'a str,
    ) -> impl Iterator<Item = std::borrow::Cow<'a, str>> + 'a {
        // Checking for valid UTF-8 first is much faster than the lossy decoder, and
        // values are almost always valid.
        self.values(description)
            .map(|value| match std::str::from_utf8(value) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(value),
            })
    }

    /// The first value of `description` as text, if any.
    pub fn first_text(&self, description: &str) -> Option<String> {
        self.text_values(description).next().map(|v| v.into_owned())
    }

    /// Whether the entry has at least one value of `description` or a subtype.
    pub fn has(&self, description: &str) -> bool {
        self.values(description).next().is_some()
    }

    /// The `objectClass` values in source order.
    pub fn object_classes(&self) -> Vec<String> {
        self.text_values("objectClass")
            .map(|v| v.into_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_attribute_sees_subtypes_and_subtype_sees_only_itself() {
        let entry = Entry::new("cn=a")
            .with("cn", &["Alice"])
            .with("CN;lang-fr", &["Alice-fr"])
            .with("cn;lang-de;phonetic", &["Alitse"]);
        let all: Vec<_> = entry.text_values("CN").collect();
        assert_eq!(all, ["Alice", "Alice-fr", "Alitse"]);
        let fr: Vec<_> = entry.text_values("cn;LANG-FR").collect();
        assert_eq!(fr, ["Alice-fr"]);
        let phonetic: Vec<_> = entry.text_values("cn;phonetic").collect();
        assert_eq!(phonetic, ["Alitse"]);
        assert!(!entry.has("sn"));
    }

    #[test]
    fn push_value_merges_descriptions_that_differ_only_in_case() {
        let mut entry = Entry::new("cn=a");
        entry.push_value("objectClass", b"top".to_vec());
        entry.push_value("objectclass", b"person".to_vec());
        assert_eq!(entry.attributes.len(), 1);
        assert_eq!(entry.attributes[0].description, "objectClass");
        assert_eq!(entry.object_classes(), ["top", "person"]);
    }
}
