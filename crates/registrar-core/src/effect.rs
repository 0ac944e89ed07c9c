//! The effect of a config change, for pull-request review: what the desired state at
//! the head revision changes compared with the desired state at the base revision,
//! whatever the registration store holds.
//!
//! It is an ordinary plan: [`state_from`] turns the base's desired state into the store
//! it would produce once applied to an empty one (every row managed, owned by the base's
//! mappings), and [`effect`] plans the head against that. So the effect speaks the same
//! language as a plan (`mapping removed`, `entry no longer matches mapping X's filter`,
//! additions, departures), and a change to the planner changes both alike. Pure: no I/O.
//!
//! A review also says how it read the head's LDAP sources ([`SourceTrust`]): with the
//! trusted revision's connection settings, or not at all (`config::trust` decides).

use serde::{Deserialize, Serialize};

use crate::desired::Desired;
use crate::model::Rules;
use crate::plan::{plan, Change, Plan, PlanError, Summary};
use crate::state::{AccountStatus, RegistrationSource, State, StateAccount, StateRegistration};

/// The store `desired` would produce if applied to an empty store: its enabled accounts,
/// and each name claimed by exactly one account, owned by the first claiming mapping in
/// name order (as the planner gives names). Serial 0.
pub fn state_from(desired: &Desired) -> State {
    let mut state = State::default();
    for account in &desired.accounts {
        if !account.enabled {
            continue;
        }
        state.accounts.insert(
            account.anchor.clone(),
            StateAccount {
                anchor: account.anchor.clone(),
                dn: account.dn.to_string(),
                source: Some(account.source.clone()),
                status: AccountStatus::Active,
                profile: account.profile.clone(),
            },
        );
    }
    for claims in desired.claims_by_name() {
        let first = &claims[0];
        if claims.iter().any(|claim| claim.account != first.account) {
            continue; // wanted by several accounts: nobody gets it
        }
        state.registrations.insert(
            first.key(),
            StateRegistration {
                protocol: first.protocol.clone(),
                im_name: first.im_name.clone(),
                account: desired.accounts[first.account].anchor.clone(),
                source: RegistrationSource::Ldap,
                owner: Some(first.mapping.clone()),
            },
        );
    }
    state
}

/// The changes that turn what `base` produces into what `head` produces, under the
/// head's rules: the effect of merging a change, as a plan against
/// [`state_from`]`(base)`.
pub fn effect(head_rules: &Rules, head: Desired, base: &Desired) -> Result<Plan, PlanError> {
    plan(head_rules, head, &state_from(base))
}

/// The effect as it appears in the plan JSON (`"effect"`) and in review output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// The base revision's commit.
    pub base: String,
    /// The head revision's commit (HEAD for the working tree), when known.
    pub head: Option<String>,
    /// The head was the working tree and differed from HEAD.
    #[serde(default)]
    pub head_dirty: bool,
    pub summary: Summary,
    pub changes: Vec<Change>,
    /// The config files that differ between base and head.
    #[serde(default)]
    pub files: Vec<FileDiff>,
}

/// One config file that differs between the base and the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDiff {
    pub path: String,
    pub status: FileStatus,
    /// The unified diff, base to head.
    pub diff: String,
}

/// How a config file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Added,
    Removed,
    Modified,
}

/// How a review run reads one LDAP source of the head revision whose settings are not
/// exactly the trusted revision's. Sources whose connection settings did not change
/// are read as configured and get no note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTrust {
    /// The source's name.
    pub source: String,
    pub reading: TrustedReading,
}

/// What a review run did with a source (see [`SourceTrust`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustedReading {
    /// The head changes its connection settings: read with the trusted revision's.
    TrustedSettings,
    /// The trusted revision has no LDAP source of this name: not read.
    NotRead,
}

impl SourceTrust {
    /// The one line a plan shows for this source.
    pub fn message(&self) -> String {
        match self.reading {
            TrustedReading::TrustedSettings => format!(
                "source {}: connection settings changed in this revision: read with the \
                 trusted revision's settings; the new ones are used after merge",
                self.source
            ),
            TrustedReading::NotRead => format!(
                "source {}: new LDAP source in this revision: not read until merged (its \
                 connection settings are not trusted yet)",
                self.source
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::desired;
    use crate::model::Mapping;
    use crate::plan::{Action, Kind};

    fn rules(mappings: &[(&str, &str)]) -> Rules {
        let mut rules = Rules::default();
        rules.sources.push(crate::model::SourceRule {
            name: "corp".to_string(),
            anchor: crate::model::Anchor::Dn,
            allow_empty: false,
        });
        for (name, template) in mappings {
            rules.mappings.push(Mapping {
                name: name.to_string(),
                protocol: "aol".to_string(),
                value: template.parse().unwrap(),
                when: None,
                sources: None,
                renamed_from: Vec::new(),
            });
        }
        rules
    }

    fn people() -> Vec<crate::desired::SourceEntries> {
        let entry = |cn: &str, mail: &str, uid: &str| {
            crate::entry::Entry::new(format!("cn={cn},dc=example,dc=com"))
                .with("objectClass", &["top", "person"])
                .with("mail", &[mail])
                .with("uid", &[uid])
        };
        vec![crate::desired::SourceEntries {
            source: "corp".to_string(),
            entries: vec![
                entry("Ann", "ann.a@example.com", "ann"),
                entry("Bob", "bob.b@example.com", "bob"),
            ],
        }]
    }

    #[test]
    fn same_config_has_no_effect() {
        let rules = rules(&[("aol-mail", "{mail|local_part}")]);
        let base = desired(&rules, &people());
        let head = desired(&rules, &people());
        let effect = effect(&rules, head, &base).unwrap();
        assert!(effect.changes.is_empty(), "{:?}", effect.changes);
    }

    #[test]
    fn a_template_change_removes_the_old_names_and_adds_the_new() {
        let base_rules = rules(&[("aol-mail", "{mail|local_part}")]);
        let head_rules = rules(&[("aol-uid", "{uid}")]);
        let base = desired(&base_rules, &people());
        let head = desired(&head_rules, &people());
        let effect = effect(&head_rules, head, &base).unwrap();
        let registrations: Vec<(Action, &str, &str, &str)> = effect
            .changes
            .iter()
            .filter(|c| c.kind == Kind::Registration)
            .map(|c| {
                (
                    c.action,
                    c.im_name.as_deref().unwrap(),
                    c.mapping.as_deref().unwrap(),
                    c.reason.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            registrations,
            vec![
                (Action::Remove, "ann.a", "aol-mail", "mapping removed"),
                (Action::Remove, "bob.b", "aol-mail", "mapping removed"),
                (Action::Add, "ann", "aol-uid", ""),
                (Action::Add, "bob", "aol-uid", ""),
            ]
        );
        assert!(effect.changes.iter().all(|c| c.kind == Kind::Registration));
        assert_eq!((effect.summary.add, effect.summary.remove), (2, 2));
    }
}
