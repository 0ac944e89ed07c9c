//! `desired = f(rules, entries)`: the accounts and registrations the directory calls for.
//!
//! Pure and deterministic: entries are visited in (source, anchor) order and every
//! collection is sorted, so the same input always gives the same value. Nothing here
//! looks at the store; conflicts with existing rows are the planner's business.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::core::dn::normalize_dn;
use crate::core::entry::Entry;
use crate::core::model::{im_name_key, Anchor, Mapping, Profile, Rules, USER_TYPE};
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

impl Warning {
    /// A warning with only a kind and a message; set the other fields with `..`.
    pub fn new(kind: WarningKind, message: String) -> Self {
        Warning {
            kind,
            protocol: None,
            im_name: None,
            account: None,
            held_by: None,
            mapping: None,
            message,
        }
    }
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

/// Computes the desired state from whole sources. `sources` may come in any order.
pub fn desired(rules: &Rules, sources: &[SourceEntries]) -> Desired {
    let mut builder = DesiredBuilder::new(rules);
    for source in sources {
        builder.begin_source(&source.source);
        for entry in &source.entries {
            builder.add_entry(&source.source, entry);
        }
    }
    builder.finish()
}

/// An account under construction, with the claims its entry makes.
struct Candidate {
    account: DesiredAccount,
    /// (protocol, mapping, im_name) for each value the mappings produced.
    claims: Vec<(RegistrationKey, String, String)>,
}

/// Builds [`Desired`] one entry at a time, so that readers can stream entries through it
/// without holding a whole directory in memory. The result does not depend on the order
/// in which entries or sources arrive.
pub struct DesiredBuilder<'r> {
    rules: &'r Rules,
    /// Whether any rule needs entries' normalised DNs (parsing a DN costs).
    needs_normalized_dn: bool,
    /// By anchor; unordered until `finish` sorts it.
    candidates: HashMap<String, Candidate>,
    out: Desired,
}

impl<'r> DesiredBuilder<'r> {
    /// Starts an empty desired state for `rules`.
    pub fn new(rules: &'r Rules) -> Self {
        let needs_normalized_dn = rules.sources.iter().any(|s| s.anchor == Anchor::Dn)
            || !rules.policy.protected_principals.is_empty()
            || rules.exclusions.iter().any(|e| e.freezes_by_dn());
        DesiredBuilder {
            rules,
            needs_normalized_dn,
            candidates: HashMap::new(),
            out: Desired::default(),
        }
    }

    /// Records that `source` was read, even if it yields no entry (rule 7 needs to know).
    pub fn begin_source(&mut self, source: &str) {
        self.out
            .accounts_per_source
            .entry(source.to_string())
            .or_insert(0);
    }

    /// Adds one entry of `source`. Entries that are not users are ignored.
    pub fn add_entry(&mut self, source_name: &str, entry: &Entry) {
        let rules = self.rules;
        let Some(source) = rules.sources.iter().find(|s| s.name == source_name) else {
            return;
        };
        if rules.object_types.classify(entry) != Some(USER_TYPE) {
            return;
        }
        let Some(anchor) = source.anchor.value_of(entry) else {
            self.out.warnings.push(Warning {
                account: Some(entry.dn.clone()),
                ..Warning::new(
                    WarningKind::MissingAnchor,
                    format!(
                        "entry \"{}\" of source {} has no anchor attribute; skipped",
                        entry.dn, source.name
                    ),
                )
            });
            return;
        };
        let normalized_dn = if self.needs_normalized_dn {
            normalize_dn(&entry.dn)
        } else {
            String::new()
        };
        if rules
            .exclusions
            .iter()
            .any(|exclusion| exclusion.freezes_entry(entry, &normalized_dn))
        {
            self.candidates.remove(&anchor);
            self.out.frozen_accounts.insert(anchor);
            return;
        }
        if self.out.frozen_accounts.contains(&anchor) {
            return;
        }
        if let Some(existing) = self.candidates.get(&anchor) {
            // Two entries share an anchor: the one first in (source, DN) order wins, so
            // the outcome does not depend on the order entries arrive in.
            let keep_existing = (
                existing.account.source.as_str(),
                existing.account.dn.as_str(),
            ) <= (source.name.as_str(), entry.dn.as_str());
            let (kept, dropped) = if keep_existing {
                (existing.account.dn.clone(), entry.dn.clone())
            } else {
                (entry.dn.clone(), existing.account.dn.clone())
            };
            self.out.warnings.push(Warning {
                account: Some(anchor.clone()),
                ..Warning::new(
                    WarningKind::DuplicateAnchor,
                    format!(
                    "entries \"{kept}\" and \"{dropped}\" share anchor {anchor}; only \"{kept}\" is used"
                ),
                )
            });
            if keep_existing {
                return;
            }
        }

        let enabled = rules
            .accounts
            .disabled_when
            .as_ref()
            .is_none_or(|filter| !filter.matches(entry));
        let protected = !rules.policy.protected_principals.is_empty()
            && rules.policy.protected_principals.contains(&normalized_dn);
        let mut profile = Profile::default();
        for (field, template) in &rules.accounts.profile {
            profile.set(*field, template.render(entry).into_iter().next());
        }

        let mut claims = Vec::new();
        if enabled {
            let mut withheld = 0usize;
            for mapping in rules.mappings.iter().filter(|m| m.reads(&source.name)) {
                if mapping.when.as_ref().is_some_and(|f| !f.matches(entry)) {
                    continue;
                }
                let values = match mapping.value.render_outcome(entry) {
                    RenderOutcome::Values(values) => values,
                    RenderOutcome::MissingAttribute(_) => {
                        self.skip(mapping).missing_attribute += 1;
                        continue;
                    }
                    RenderOutcome::Empty => continue,
                };
                for im_name in values {
                    if let Some(problem) = invalid_im_name(&im_name) {
                        self.skip(mapping).invalid_name += 1;
                        self.out.warnings.push(Warning {
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
                        self.out.frozen_registrations.insert(key);
                        continue;
                    }
                    if protected {
                        withheld += 1;
                        continue;
                    }
                    claims.push((key, mapping.name.clone(), im_name));
                }
            }
            if withheld > 0 {
                self.out.warnings.push(Warning {
                    account: Some(anchor.clone()),
                    ..Warning::new(
                        WarningKind::ProtectedPrincipal,
                        format!(
                        "{anchor} is a protected principal: {withheld} registration(s) withheld"
                    ),
                    )
                });
            }
        }
        self.candidates.insert(
            anchor.clone(),
            Candidate {
                account: DesiredAccount {
                    anchor,
                    dn: entry.dn.clone(),
                    source: source.name.clone(),
                    enabled,
                    profile,
                    protected,
                },
                claims,
            },
        );
    }

    fn skip(&mut self, mapping: &Mapping) -> &mut SkipCounts {
        self.out.skipped.entry(mapping.name.clone()).or_default()
    }

    /// The desired state of every entry added.
    pub fn finish(self) -> Desired {
        let mut out = self.out;
        let mut candidates: Vec<(String, Candidate)> = self.candidates.into_iter().collect();
        candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut claims: Vec<(RegistrationKey, Claim)> = Vec::new();
        let mut accounts = Vec::with_capacity(candidates.len());
        for (anchor, candidate) in candidates {
            *out.accounts_per_source
                .entry(candidate.account.source.clone())
                .or_default() += 1;
            for (key, mapping, im_name) in candidate.claims {
                let claim = Claim {
                    account: anchor.clone(),
                    mapping,
                    im_name,
                };
                claims.push((key, claim));
            }
            accounts.push((anchor, candidate.account));
        }
        // Sorted input lets the maps build in one pass instead of by repeated insertion.
        out.accounts = accounts.into_iter().collect();
        claims.sort_unstable();
        claims.dedup();
        let mut grouped: Vec<(RegistrationKey, Vec<Claim>)> = Vec::new();
        for (key, claim) in claims {
            match grouped.last_mut() {
                Some((last, group)) if *last == key => group.push(claim),
                _ => grouped.push((key, vec![claim])),
            }
        }
        out.claims = grouped.into_iter().collect();
        out.warnings.sort();
        out.warnings.dedup();
        out
    }
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
