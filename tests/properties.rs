//! Properties of the reconcile loop over generated directories and stores:
//! - applying a plan and planning again gives an empty plan, in one run;
//! - the plan does not depend on the order of entries or sources;
//! - unmanaged rows are never touched by any plan.
//!
//! Plans are applied to a real SQLite file, as `apply` does.

use proptest::prelude::*;

use registrar::core::desired::{desired, SourceEntries};
use registrar::core::entry::Entry;
use registrar::core::filter::Filter;
use registrar::core::model::{
    Anchor, Departure, Exclusion, ExclusionSelector, Mapping, ProfileField, Rules, SourceRule,
};
use registrar::core::plan::{plan, Kind};
use registrar::core::state::RegistrationSource;
use registrar::core::template::Template;
use registrar::store::{RunRecord, Store};

/// A generated user: index, mail local part and domain picks, disabled flag, department.
#[derive(Debug, Clone)]
struct User {
    id: usize,
    mail: Option<(u8, u8)>,
    im_name: Option<u8>,
    disabled: bool,
    department: u8,
}

const LOCALS: [&str; 6] = ["alice", "bob", "Carol", "dave", "ALICE", "erin"];
const DOMAINS: [&str; 3] = ["example.com", "corp.example.com", "partner.org"];

fn user_strategy(id: usize) -> impl Strategy<Value = User> {
    (
        proptest::option::weighted(0.85, (0u8..6, 0u8..3)),
        proptest::option::weighted(0.6, 0u8..6),
        proptest::bool::weighted(0.15),
        0u8..3,
    )
        .prop_map(move |(mail, im_name, disabled, department)| User {
            id,
            mail,
            im_name,
            disabled,
            department,
        })
}

fn directory_strategy() -> impl Strategy<Value = Vec<User>> {
    (1usize..12).prop_flat_map(|n| (0..n).map(user_strategy).collect::<Vec<_>>())
}

fn entry(user: &User) -> Entry {
    let mut entry = Entry::new(format!("uid=u{},ou=People,dc=example,dc=com", user.id))
        .with(
            "objectClass",
            &["top", "person", "organizationalPerson", "inetOrgPerson"],
        )
        .with("uid", &[&format!("u{}", user.id)])
        .with("entryUUID", &[&format!("uuid-{}", user.id)])
        .with(
            "departmentNumber",
            &[["Sales", "Finance", "Legal"][user.department as usize]],
        );
    if let Some((local, domain)) = user.mail {
        let mail = format!("{}@{}", LOCALS[local as usize], DOMAINS[domain as usize]);
        entry = entry.with("mail", &[&mail]);
    }
    if let Some(name) = user.im_name {
        entry = entry.with("imName", &[LOCALS[name as usize]]);
    }
    if user.disabled {
        entry = entry.with("userAccountControl", &["514"]);
    }
    entry
}

/// One of a few configurations, so that successive plans change templates, filters,
/// departures and exclusions.
fn rules(variant: u8) -> Rules {
    let mapping = |name: &str, protocol: &str, value: &str, when: Option<&str>| Mapping {
        name: name.to_string(),
        protocol: protocol.to_string(),
        value: Template::parse(value).unwrap(),
        when: when.map(|w| Filter::parse(w).unwrap()),
        sources: None,
        renamed_from: Vec::new(),
    };
    let mut rules = Rules {
        sources: vec![SourceRule {
            name: "hr".to_string(),
            anchor: Anchor::Attribute("entryUUID".to_string()),
            allow_empty: true,
        }],
        ..Rules::default()
    };
    rules.accounts.disabled_when =
        Some(Filter::parse("(userAccountControl:1.2.840.113556.1.4.803:=2)").unwrap());
    rules.accounts.profile = vec![(
        ProfileField::Department,
        Template::parse("{departmentNumber}").unwrap(),
    )];
    rules.policy.max_deletes = u64::MAX;
    match variant % 4 {
        0 => rules.mappings = vec![mapping("aol-from-mail", "aol", "{mail|local_part}", None)],
        1 => {
            rules.mappings = vec![
                mapping("aol-from-mail", "aol", "{imName}", None),
                mapping(
                    "lcs-mail",
                    "lcs",
                    "{mail|lower}",
                    Some("(departmentNumber=Sales)"),
                ),
            ];
            rules.accounts.on_departure = Departure::Delete;
        }
        2 => {
            rules.mappings = vec![mapping("lcs-mail", "lcs", "{mail}", None)];
            rules.exclusions = vec![Exclusion {
                name: "legal".to_string(),
                selector: ExclusionSelector::Filter(Box::new(
                    Filter::parse("(departmentNumber=Legal)").unwrap(),
                )),
            }];
            rules.accounts.on_departure = Departure::Keep;
        }
        _ => rules.mappings = Vec::new(),
    }
    rules
}

fn run() -> RunRecord {
    RunRecord::new("test", "test")
}

fn sources(users: &[User]) -> Vec<SourceEntries> {
    vec![SourceEntries {
        source: "hr".to_string(),
        entries: users.iter().map(entry).collect(),
    }]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A sequence of directories and configs, each planned and applied: after every apply
    /// the next plan against the same inputs is empty, and unmanaged rows survive.
    #[test]
    fn plan_after_apply_is_empty_and_unmanaged_rows_survive(
        steps in proptest::collection::vec((directory_strategy(), 0u8..4), 1..4),
        manual in proptest::collection::vec((0u8..6, 0usize..12, proptest::bool::ANY), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db")).unwrap();
        for (name, owner, self_service) in &manual {
            let source = if *self_service { RegistrationSource::SelfService } else { RegistrationSource::Manual };
            let _ = store.register("aol", LOCALS[*name as usize], &format!("uid=u{owner},ou=People,dc=example,dc=com"), source, run());
        }
        let unmanaged_before: Vec<_> = store.load().unwrap().registrations.into_iter().filter(|(_, r)| r.owner.is_none()).collect();
        for (users, variant) in steps {
            let rules = rules(variant);
            let state = store.load().unwrap();
            let first = plan(&rules, desired(&rules, &sources(&users)), &state).unwrap();
            for change in &first.changes {
                if change.kind == Kind::Registration {
                    prop_assert!(change.mapping.is_some(), "registration change without owner: {change:?}");
                }
            }
            store.apply(&first, run()).unwrap();
            let state = store.load().unwrap();
            let second = plan(&rules, desired(&rules, &sources(&users)), &state).unwrap();
            prop_assert!(second.changes.is_empty(), "not converged after one apply: {:#?}", second.changes);
            let unmanaged_now: Vec<_> = state.registrations.into_iter().filter(|(_, r)| r.owner.is_none()).collect();
            prop_assert_eq!(&unmanaged_now, &unmanaged_before);
        }
    }

    /// Shuffling entries (and their attributes) never changes the plan's bytes.
    #[test]
    fn plan_output_does_not_depend_on_input_order(
        users in directory_strategy(),
        variant in 0u8..4,
        seed in any::<u64>(),
    ) {
        let rules = rules(variant);
        let state = registrar::core::state::State::default();
        let ordered = sources(&users);
        let mut shuffled = ordered.clone();
        let entries = &mut shuffled[0].entries;
        // A deterministic shuffle from the seed (Fisher–Yates with an LCG).
        let mut x = seed | 1;
        for i in (1..entries.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            entries.swap(i, (x >> 33) as usize % (i + 1));
        }
        for entry in entries.iter_mut() {
            entry.attributes.reverse();
        }
        let a = plan(&rules, desired(&rules, &ordered), &state).unwrap();
        let b = plan(&rules, desired(&rules, &shuffled), &state).unwrap();
        prop_assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }
}
