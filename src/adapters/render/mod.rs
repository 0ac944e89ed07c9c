//! Plan output for people and scripts: Terraform-like text, JSON (the saved-plan format)
//! and Markdown for a pull-request comment, each with the effect of a change since a
//! base revision (`plan --base`) when there is one; and LDIF change records for
//! `ldapmodify` (`ldif`), which mirror the store in an LDAP tree.
//!
//! Rendering is pure: a plan in, a string out, the same bytes for the same plan. It never
//! decides anything about the plan's content.
//!
//! One file per format: `text`, `markdown`, `document` (the saved plan, with `json`
//! underneath), `ldif`, and `drift` reports; `describe` holds what they share.

mod describe;
mod document;
mod drift;
mod json;
mod ldif;
mod markdown;
mod text;

#[cfg(test)]
mod tests;

pub use self::ldif::{profile_attribute, write_ldif, LdifBase, LdifBaseError};
pub use describe::{summary_line, Color};
pub use document::{json, write_json, PlanDocument};
pub use drift::{drift_html, drift_markdown, drift_summary_line, drift_text};
pub use markdown::{fit_markdown, markdown, MARKDOWN_LIMIT};
pub use text::{text, write_effect_text, write_text, write_trust_text};
