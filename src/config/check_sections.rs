//! The checks of the sections only one file may set: `object_types`, `accounts` and
//! `policy`.

use std::collections::BTreeMap;

use super::check::Checker;
use super::locate::Locator;
use super::raw::{AccountsSpec, PolicySpec};
use registrar_core::dn::normalize_dn;
use registrar_core::model::{AccountRules, ObjectTypes, Policy, ProfileField, DEFAULT_MAX_DELETES};

impl Checker<'_> {
    /// Checks `object_types`, which must define the user type.
    pub(super) fn object_types(
        &mut self,
        types: Option<&BTreeMap<String, Vec<Vec<String>>>>,
        locate: &Locator<'_>,
    ) {
        let Some(types) = types else {
            return;
        };
        self.single("object_types", locate.section("object_types"));
        if !types.contains_key("user") {
            self.problem(
                locate.section("object_types"),
                "object_types must define the user type".to_string(),
            );
        }
        self.rules.object_types = ObjectTypes::new(types.clone());
    }

    /// Takes `accounts`: the profile's templates, `disabled_when`, `on_departure`.
    pub(super) fn accounts(&mut self, accounts: Option<&AccountsSpec>, locate: &Locator<'_>) {
        let Some(accounts) = accounts else {
            return;
        };
        self.single("accounts", locate.section("accounts"));
        let p = &accounts.profile;
        let fields = [
            (ProfileField::DisplayName, &p.display_name),
            (ProfileField::Department, &p.department),
            (ProfileField::Title, &p.title),
            (ProfileField::Telephone, &p.telephone),
            (ProfileField::Location, &p.location),
            (ProfileField::Mail, &p.mail),
        ];
        self.rules.accounts = AccountRules {
            profile: fields
                .into_iter()
                .filter_map(|(field, template)| template.as_ref().map(|t| (field, t.1.clone())))
                .collect(),
            disabled_when: accounts.disabled_when.as_ref().map(|f| f.1.clone()),
            on_departure: accounts.on_departure,
        };
    }

    /// Checks `policy`: `max_delete_percent` is a percentage.
    pub(super) fn policy(&mut self, policy: Option<&PolicySpec>, locate: &Locator<'_>) {
        let Some(policy) = policy else {
            return;
        };
        let at = locate.section("policy");
        self.single("policy", at.clone());
        if let Some(percent) = policy.max_delete_percent {
            if !(0.0..=100.0).contains(&percent) {
                self.problem(
                    locate.token_after(&at, "max_delete_percent"),
                    format!("policy.max_delete_percent must be between 0 and 100, not {percent}"),
                );
            }
        }
        self.rules.policy = Policy {
            protected_principals: policy
                .protected_principals
                .iter()
                .map(|dn| normalize_dn(dn))
                .collect(),
            max_deletes: policy.max_deletes.unwrap_or(DEFAULT_MAX_DELETES),
            max_delete_percent: policy.max_delete_percent,
        };
    }
}
