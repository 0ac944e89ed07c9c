//! What a starter configuration is: the context it is built against, the suggested
//! mappings, and the starter itself with its YAML text.

use serde::Serialize;

use crate::model::Mapping;

/// What the starter is built against: the source and what the configuration already has.
pub struct StarterContext<'a> {
    /// The source discovered; every suggested mapping reads only it.
    pub source: &'a str,
    /// The configured mappings: their names (and former names) are taken, and an
    /// attribute one of them already maps for a protocol is not suggested again.
    pub existing: &'a [Mapping],
    /// The config file that sets `object_types`, if one does: only one file may, so the
    /// starter then shows its chains as comments.
    pub object_types_set_in: Option<&'a str>,
}

/// One suggested mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub name: String,
    pub protocol: String,
    /// The attribute read.
    pub attribute: String,
    /// The value template.
    pub value: String,
    /// The `when` filter, if any.
    pub when: Option<String>,
    /// Why: what the attribute holds.
    pub reason: String,
}

/// The starter configuration: the suggested mappings, the weaker candidates (shown
/// commented out), and the YAML text holding both and the object types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starter {
    /// At most one per protocol, in protocol order.
    pub mappings: Vec<Suggestion>,
    /// Other candidates, commented out in the YAML.
    pub alternatives: Vec<Suggestion>,
    /// Protocols left out because a configured mapping already reads the attribute:
    /// (protocol, attribute, the mapping's name).
    pub already_mapped: Vec<(String, String, String)>,
    pub yaml: String,
}
