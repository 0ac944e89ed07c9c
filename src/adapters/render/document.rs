//! The saved-plan document: a plan with its effect and review notes, as JSON (the
//! format `plan --out` saves and `show`/`apply` read back).

use serde::Serialize;

use super::json::write_document;
use registrar_core::effect::{Effect, SourceTrust};
use registrar_core::plan::Plan;

/// The plan JSON document (and saved plan): the plan's fields, `revision_dirty`, and
/// `effect` with `plan --base`. Its serde form is the document's value; `json.rs` writes
/// that value with the header before the changes and one change a line.
#[derive(Debug, Serialize)]
pub struct PlanDocument<'a> {
    #[serde(flatten)]
    pub plan: &'a Plan,
    /// The plan was made from a working tree that differed from `revision`.
    pub revision_dirty: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<&'a Effect>,
    /// A review: how the head's LDAP sources were read (`config::trust`).
    #[serde(skip_serializing_if = "<[SourceTrust]>::is_empty")]
    pub connection_trust: &'a [SourceTrust],
}

impl<'a> PlanDocument<'a> {
    /// The document of a plan alone.
    pub fn of(plan: &'a Plan) -> Self {
        PlanDocument {
            plan,
            revision_dirty: false,
            effect: None,
            connection_trust: &[],
        }
    }
}

/// The plan as JSON with a final newline, one change a line: the DESIGN.md shape and the
/// saved plan.
pub fn json(document: &PlanDocument<'_>) -> String {
    let mut bytes = Vec::new();
    write_json(document, &mut bytes).expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("serde_json writes UTF-8")
}

/// Streams [`json`]'s output into `out`, for large plans: written by hand (see
/// `json.rs`).
pub fn write_json(
    document: &PlanDocument<'_>,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    write_document(document, out)?;
    out.write_all(b"\n")
}
