//! The check of the `sources` sections: unique names, the anchor, and where each source's
//! data lives (an LDIF file that must exist, or LDAP settings, `ldap_settings.rs`).

use std::path::Path;

use super::check::{Checker, DataFileCheck};
use super::ldap_settings::ldap_settings;
use super::locate::Locator;
use super::problem::Location;
use super::raw::{self, LdifSpec, SourceSpec};
use super::settings::{SourceLocation, SourceSettings};
use registrar_core::model::{Anchor, SourceRule};

impl Checker<'_> {
    /// Checks a file's sources.
    pub(super) fn sources(
        &mut self,
        sources: &[SourceSpec],
        locate: &Locator<'_>,
        base_dir: &Path,
        check_file: DataFileCheck<'_>,
    ) {
        for (index, source) in sources.iter().enumerate() {
            let at = locate.list_item("sources", index);
            if !self.unique("source", &source.name.0, at.clone()) {
                continue;
            }
            let anchor = self.anchor(source, locate, &at);
            let location = match (&source.ldif, &source.ldap) {
                (Some(ldif), None) => {
                    Some(self.ldif_location(source, ldif, locate, &at, base_dir, check_file))
                }
                (None, Some(ldap)) => match ldap_settings(ldap, &anchor, base_dir) {
                    Ok(ldap) => Some(SourceLocation::Ldap(ldap)),
                    Err(error) => {
                        self.problem(at.clone(), format!("source {}: {error}", source.name));
                        None
                    }
                },
                _ => {
                    let message = format!(
                        "source {} must have exactly one of ldap or ldif",
                        source.name
                    );
                    self.problem(at.clone(), message);
                    None
                }
            };
            self.rules.sources.push(SourceRule {
                name: source.name.0.clone(),
                anchor,
                allow_empty: source.allow_empty,
            });
            if let Some(location) = location {
                self.settings.push(SourceSettings {
                    name: source.name.0.clone(),
                    defined_at: at,
                    location,
                });
            }
        }
    }

    /// The source's anchor (its DN unless an attribute is named), which may not be a
    /// secret attribute.
    fn anchor(&mut self, source: &SourceSpec, locate: &Locator<'_>, at: &Location) -> Anchor {
        match source.anchor.as_deref() {
            None => Anchor::Dn,
            Some(a) if a.eq_ignore_ascii_case("dn") => Anchor::Dn,
            Some(a) => {
                if let Err(secret) = raw::refuse_secrets([a]) {
                    self.problem(
                        locate.token_after(at, a),
                        format!("source {}: anchor {a:?} {secret}", source.name),
                    );
                }
                Anchor::Attribute(a.to_string())
            }
        }
    }

    /// Where an `ldif` source's data lives, its file checked to exist.
    fn ldif_location(
        &mut self,
        source: &SourceSpec,
        ldif: &LdifSpec,
        locate: &Locator<'_>,
        at: &Location,
        base_dir: &Path,
        check_file: DataFileCheck<'_>,
    ) -> SourceLocation {
        let path = base_dir.join(&ldif.path);
        if let Err(unreadable) = check_file(&path) {
            self.problem(
                locate.token_after(at, &ldif.path),
                format!(
                    "source {}: ldif path {:?} {unreadable}",
                    source.name, ldif.path
                ),
            );
        }
        if ldif.max_value_bytes == Some(0) {
            self.problem(
                locate.token_after(at, "max_value_bytes"),
                format!("source {}: max_value_bytes must be at least 1", source.name),
            );
        }
        SourceLocation::Ldif {
            path,
            changes: ldif.changes.as_ref().map(|c| base_dir.join(c)),
            max_value_bytes: ldif
                .max_value_bytes
                .map_or(crate::adapters::ldif::DEFAULT_MAX_VALUE_BYTES, |bytes| {
                    usize::try_from(bytes).unwrap_or(usize::MAX)
                }),
        }
    }
}
