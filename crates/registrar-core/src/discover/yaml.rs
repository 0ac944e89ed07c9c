//! The starter's YAML writer: the object types and suggested mappings as YAML, with
//! comments saying where everything comes from, every scalar from the directory quoted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::model::USER_TYPE;
use crate::quote::printable;

use super::count::{ChainCount, Report};
use super::suggestions::{StarterContext, Suggestion};

/// The starter as YAML: comments say where everything comes from; every scalar from the
/// directory is quoted by [`yaml_scalar`].
pub(super) fn starter_yaml(
    report: &Report,
    context: &StarterContext<'_>,
    mappings: &[Suggestion],
    alternatives: &[Suggestion],
    already_mapped: &[(String, String, String)],
) -> String {
    let source = context.source;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Starter configuration for source {}, from `registrar discover` ({} {}).",
        printable(source),
        report.entries,
        plural(report.entries, "entry", "entries")
    );
    out.push_str(
        "# The mappings are guesses from attribute names and values: review them, then save\n\
         # this as a .yaml file in the config directory, next to the one defining the source.\n",
    );

    // Object types: the chains found, under the type the current object types give them.
    let mut typed: BTreeMap<&str, Vec<&ChainCount>> = BTreeMap::new();
    let mut untyped = Vec::new();
    for chain in &report.chains {
        match &chain.object_type {
            Some(name) => typed.entry(name).or_default().push(chain),
            None => untyped.push(chain),
        }
    }
    let mut types = String::from("object_types:\n");
    for (name, chains) in &typed {
        let _ = writeln!(types, "  {}:", yaml_scalar(name));
        for chain in chains {
            let _ = writeln!(
                types,
                "    - {}  # {} {}",
                yaml_flow_list(&chain.chain),
                chain.entries,
                plural(chain.entries, "entry", "entries")
            );
        }
    }
    for chain in &untyped {
        let _ = writeln!(
            types,
            "  # no object type: {}  # {} {}",
            yaml_flow_list(&chain.chain),
            chain.entries,
            plural(chain.entries, "entry", "entries")
        );
    }
    if let Some(file) = context.object_types_set_in {
        let _ = writeln!(
            out,
            "# object_types is set in {} (only one file may set it); the chains of source {} are:",
            printable(file),
            printable(source)
        );
        for line in types.lines() {
            let _ = writeln!(out, "# {line}");
        }
    } else if typed.contains_key(USER_TYPE) {
        let _ = writeln!(
            out,
            "# The objectClass chains of source {}, typed as the current object types type \
             them.\n# Other sources' chains must be listed too if they differ.",
            printable(source)
        );
        out.push_str(&types);
    } else {
        let _ = writeln!(
            out,
            "# object_types: left as configured, since source {} holds no user entry.",
            printable(source)
        );
    }

    if mappings.is_empty() {
        out.push_str("mappings: []\n");
        if already_mapped.is_empty() {
            out.push_str("# No attribute of user entries looks like it holds IM names.\n");
        }
    } else {
        out.push_str("mappings:\n");
    }
    for suggestion in mappings {
        write_mapping(&mut out, source, suggestion, "  ");
    }
    for (protocol, attribute, mapping) in already_mapped {
        let _ = writeln!(
            out,
            "  # {protocol} from {}: already mapped by {mapping}",
            printable(attribute)
        );
    }
    if !alternatives.is_empty() {
        out.push_str("  # Other candidates, to uncomment instead (at most one mapping per protocol is\n  # suggested):\n");
        for suggestion in alternatives {
            write_mapping(&mut out, source, suggestion, "  # ");
        }
    }
    out
}

pub(super) fn write_mapping(out: &mut String, source: &str, suggestion: &Suggestion, indent: &str) {
    let _ = writeln!(
        out,
        "{indent}# {} from {}: {}",
        suggestion.protocol,
        printable(&suggestion.attribute),
        printable(&suggestion.reason)
    );
    let _ = writeln!(out, "{indent}- name: {}", yaml_scalar(&suggestion.name));
    let _ = writeln!(
        out,
        "{indent}  protocol: {}",
        yaml_scalar(&suggestion.protocol)
    );
    let _ = writeln!(out, "{indent}  sources: {}", yaml_flow_list(&[source]));
    let _ = writeln!(out, "{indent}  value: {}", yaml_quoted(&suggestion.value));
    if let Some(when) = &suggestion.when {
        let _ = writeln!(out, "{indent}  when: {}", yaml_quoted(when));
    }
}

pub(super) fn plural<'w>(n: u64, one: &'w str, many: &'w str) -> &'w str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `[a, b]`, each item a [`yaml_scalar`].
pub(super) fn yaml_flow_list(items: &[impl AsRef<str>]) -> String {
    let items: Vec<String> = items.iter().map(|i| yaml_scalar(i.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// `text` as a YAML scalar that reads back as the same string, in block or flow context:
/// plain when it is a simple name (a letter, then letters, digits, `.`, `_`, `-`) that
/// YAML would not take for a boolean or null, double-quoted otherwise.
pub fn yaml_scalar(text: &str) -> String {
    let simple = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if simple {
        text.to_string()
    } else {
        yaml_quoted(text)
    }
}

/// `text` as a double-quoted YAML scalar. Characters YAML does not allow raw, or reads
/// as line breaks (`U+0085`, `U+2028`, `U+2029`), are escaped, as are the invisible ones
/// [`printable`] escapes.
pub(crate) fn yaml_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control()
                || matches!(c,
                    '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}'
                    | '\u{feff}' | '\u{fffe}' | '\u{ffff}') =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
