//! `desired = f(rules, entries)`: the accounts and registrations the directory calls for.
//!
//! Pure and deterministic: entries are visited in (source, anchor) order and every
//! collection is sorted, so the same input always gives the same value. Nothing here
//! looks at the store; conflicts with existing rows are the planner's business.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::core::dn::normalize_dn;
use crate::core::entry::Entry;
use crate::core::model::{im_name_key, Mapping, Profile, Rules, USER_TYPE};
use crate::core::state::RegistrationKey;
use crate::core::template::RenderOutcome;

/// The entries one source yielded.
#[derive(Debug, Clone, Default)]
pub struct SourceEntries {
    pub source: String,
    pub entries: Vec<Entry>,
}

/// An account the directory calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAccount {
    pub anchor: String,
    pub dn: String,
    pub source: String,
    /// `false` when `disabled_when` matched: the account should be deactivated.
    pub enabled: bool,
    pub profile: Profile,
    /// A protected principal: never receives a registration.
    pub protected: bool,
}

/// One mapping's wish that an account hold an IM name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim {
    pub account: String,
    pub mapping: String,
    /// The IM name as produced (display form).
    pub im_name: String,
}

/// Why a mapping produced nothing for some entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts {
    /// Entries lacking an attribute the template reads.
    pub missing_attribute: u64,
    /// Values skipped because they are not a valid IM name.
    pub invalid_name: u64,
}

/// A problem worth telling the user about that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub im_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account: Option<String>,
    /// The account already holding the name, for conflicts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub held_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mapping: Option<String>,
    /// One human-readable sentence.
    pub message: String,
}

/// The kinds of warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A desired name is held by another account, or wanted by several.
    Conflict,
    /// A desired name is already held by an unmanaged row of the same account.
    AlreadyRegistered,
    /// Two entries of one source share an anchor value; the first DN wins.
    DuplicateAnchor,
    /// A user entry lacks its source's anchor attribute and was skipped.
    MissingAnchor,
    /// A protected principal would have received registrations.
    ProtectedPrincipal,
    /// A produced value is not a valid IM name and was skipped.
    InvalidName,
}

/// The desired state, plus what the planner needs to report about how it was made.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// By anchor.
    pub accounts: BTreeMap<String, DesiredAccount>,
    /// Every claim on each name, sorted by (account, mapping).
    pub claims: BTreeMap<RegistrationKey, Vec<Claim>>,
    /// Anchors of accounts frozen by a DN or filter exclusion.
    pub frozen_accounts: BTreeSet<String>,
    /// Names produced but frozen by an IM-name exclusion.
    pub frozen_registrations: BTreeSet<RegistrationKey>,
    /// Per mapping name.
    pub skipped: BTreeMap<String, SkipCounts>,
    /// Accounts (enabled or not) each source yielded, for the empty-source rule.
    pub accounts_per_source: BTreeMap<String, u64>,
    pub warnings: Vec<Warning>,
}

/// The longest IM name accepted; longer values are skipped with a warning.
pub const MAX_IM_NAME_LENGTH: usize = 256;

/// Computes the desired state. `sources` may come in any order.
pub fn desired(rules: &Rules, sources: &[SourceEntries]) -> Desired {
    let mut out = Desired::default();
    let mut by_source: Vec<&SourceEntries> = sources.iter().collect();
    by_source.sort_by(|a, b| a.source.cmp(&b.source));

    for source_entries in by_source {
        let Some(source) = rules
            .sources
            .iter()
            .find(|s| s.name == source_entries.source)
        else {
            continue;
        };
        out.accounts_per_source.insert(source.name.clone(), 0);
        let mappings: Vec<&Mapping> = rules
            .mappings
            .iter()
            .filter(|m| m.reads(&source.name))
            .collect();

        // Visit users in anchor order so duplicate anchors resolve the same way always.
        let mut users: Vec<(String, String, &Entry)> = Vec::new();
        for entry in &source_entries.entries {
            if rules.object_types.classify(&entry.object_classes()) != Some(USER_TYPE) {
                continue;
            }
            let normalized_dn = normalize_dn(&entry.dn);
            match source.anchor.value_of(entry) {
                Some(anchor) => users.push((anchor, normalized_dn, entry)),
                None => out.warnings.push(Warning {
                    kind: WarningKind::MissingAnchor,
                    protocol: None,
                    im_name: None,
                    account: Some(entry.dn.clone()),
                    held_by: None,
                    mapping: None,
                    message: format!(
                        "entry \"{}\" of source {} has no anchor attribute; skipped",
                        entry.dn, source.name
                    ),
                }),
            }
        }
        users.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));

        for (anchor, normalized_dn, entry) in users {
            if out.accounts.contains_key(&anchor) || out.frozen_accounts.contains(&anchor) {
                out.warnings.push(Warning {
                    kind: WarningKind::DuplicateAnchor,
                    protocol: None,
                    im_name: None,
                    account: Some(anchor.clone()),
                    held_by: None,
                    mapping: None,
                    message: format!(
                        "entry \"{}\" of source {} repeats anchor {anchor}; only the first is used",
                        entry.dn, source.name
                    ),
                });
                continue;
            }
            if rules
                .exclusions
                .iter()
                .any(|exclusion| exclusion.freezes_entry(entry, &normalized_dn))
            {
                out.frozen_accounts.insert(anchor);
                continue;
            }
            *out.accounts_per_source
                .entry(source.name.clone())
                .or_default() += 1;

            let enabled = rules
                .accounts
                .disabled_when
                .as_ref()
                .is_none_or(|filter| !filter.matches(entry));
            let protected = rules.policy.protected_principals.contains(&normalized_dn);
            let profile: Profile = rules
                .accounts
                .profile
                .iter()
                .filter_map(|(field, template)| {
                    template
                        .render(entry)
                        .into_iter()
                        .next()
                        .map(|v| (*field, v))
                })
                .collect();

            if enabled {
                let mut protected_names = 0usize;
                for mapping in &mappings {
                    if mapping.when.as_ref().is_some_and(|f| !f.matches(entry)) {
                        continue;
                    }
                    let values = match mapping.value.render_outcome(entry) {
                        RenderOutcome::Values(values) => values,
                        RenderOutcome::MissingAttribute(_) => {
                            out.skipped
                                .entry(mapping.name.clone())
                                .or_default()
                                .missing_attribute += 1;
                            continue;
                        }
                        RenderOutcome::Empty => continue,
                    };
                    for im_name in values {
                        if let Some(problem) = invalid_im_name(&im_name) {
                            out.skipped
                                .entry(mapping.name.clone())
                                .or_default()
                                .invalid_name += 1;
                            out.warnings.push(Warning {
                                kind: WarningKind::InvalidName,
                                protocol: Some(mapping.protocol.clone()),
                                im_name: Some(im_name.clone()),
                                account: Some(anchor.clone()),
                                held_by: None,
                                mapping: Some(mapping.name.clone()),
                                message: format!(
                                    "mapping {} produced {} name {:?} for {anchor}, which {problem}; skipped",
                                    mapping.name, mapping.protocol, im_name
                                ),
                            });
                            continue;
                        }
                        let key = RegistrationKey {
                            protocol: mapping.protocol.clone(),
                            name_key: im_name_key(&mapping.protocol, &im_name),
                        };
                        if rules
                            .exclusions
                            .iter()
                            .any(|e| e.freezes_registration(&key.protocol, &key.name_key))
                        {
                            out.frozen_registrations.insert(key);
                            continue;
                        }
                        if protected {
                            protected_names += 1;
                            continue;
                        }
                        out.claims.entry(key).or_default().push(Claim {
                            account: anchor.clone(),
                            mapping: mapping.name.clone(),
                            im_name,
                        });
                    }
                }
                if protected_names > 0 {
                    out.warnings.push(Warning {
                        kind: WarningKind::ProtectedPrincipal,
                        protocol: None,
                        im_name: None,
                        account: Some(anchor.clone()),
                        held_by: None,
                        mapping: None,
                        message: format!(
                            "{anchor} is a protected principal: {protected_names} registration(s) withheld"
                        ),
                    });
                }
            }

            out.accounts.insert(
                anchor.clone(),
                DesiredAccount {
                    anchor,
                    dn: entry.dn.clone(),
                    source: source.name.clone(),
                    enabled,
                    profile,
                    protected,
                },
            );
        }
    }

    for claims in out.claims.values_mut() {
        claims.sort();
        claims.dedup();
    }
    out.warnings.sort();
    out
}

/// Why `im_name` cannot be registered, if it cannot.
fn invalid_im_name(im_name: &str) -> Option<&'static str> {
    if im_name.trim().is_empty() {
        Some("is empty")
    } else if im_name.chars().count() > MAX_IM_NAME_LENGTH {
        Some("is longer than 256 characters")
    } else if im_name.chars().any(|c| c.is_control()) {
        Some("contains control characters")
    } else if im_name.trim().chars().any(char::is_whitespace) {
        Some("contains white space")
    } else {
        None
    }
}
