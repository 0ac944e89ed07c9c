//! Properties of the reconcile loop over generated directories and stores:
//! - applying a plan and planning again gives an empty plan, in one run;
//! - the plan does not depend on the order of entries or sources;
//! - unmanaged rows (registrations and groups) are never touched by any plan.
//!
//! Directories hold users and a few groups (nested, cyclic, with unknown members);
//! configurations hold distribution-list and org-unit rules, so every property covers
//! group membership too. Plans are applied to a real store, as `apply` does: a SQLite
//! file, or a PostgreSQL database under `REGISTRAR_TEST_STORE=postgres`.

use proptest::prelude::*;

use registrar::core::desired::{desired, SourceEntries};
use registrar::core::dn::normalize_dn;
use registrar::core::entry::Entry;
use registrar::core::filter::Filter;
use registrar::core::model::{
    im_name_key, Anchor, Departure, Exclusion, ExclusionSelector, GroupRule, GroupSelector,
    Mapping, ProfileField, Rules, SourceRule,
};
use registrar::core::plan::{plan, Kind};
use registrar::core::state::RegistrationSource;
use registrar::core::template::Template;
use registrar::store::{RunRecord, Store};

mod common;

use common::store::{self, TestStore};

/// A generated user: index, mail local part and domain picks, disabled flag, department.
#[derive(Debug, Clone)]
struct User {
    id: usize,
    mail: Option<(u8, u8)>,
    im_name: Option<u8>,
    disabled: bool,
    department: u8,
    /// Lives under ou=Contractors,ou=People instead of ou=People.
    contractor: bool,
}

/// A generated group entry: members are users, other groups (cycles allowed) or DNs
/// that name nothing.
#[derive(Debug, Clone)]
struct Group {
    id: usize,
    mail: bool,
    /// groupOfUniqueNames with `uniqueMember` values (some with a `#'…'B` suffix).
    unique: bool,
    members: Vec<Member>,
}

#[derive(Debug, Clone)]
enum Member {
    User(usize),
    Group(usize),
    Unknown,
}

const LOCALS: [&str; 6] = ["alice", "bob", "Carol", "dave", "ALICE", "erin"];
const DOMAINS: [&str; 3] = ["example.com", "corp.example.com", "partner.org"];

fn user_strategy(id: usize) -> impl Strategy<Value = User> {
    (
        proptest::option::weighted(0.85, (0u8..6, 0u8..3)),
        proptest::option::weighted(0.6, 0u8..6),
        proptest::bool::weighted(0.15),
        0u8..3,
        proptest::bool::weighted(0.3),
    )
        .prop_map(
            move |(mail, im_name, disabled, department, contractor)| User {
                id,
                mail,
                im_name,
                disabled,
                department,
                contractor,
            },
        )
}

fn member_strategy() -> impl Strategy<Value = Member> {
    prop_oneof![
        6 => (0usize..12).prop_map(Member::User),
        3 => (0usize..4).prop_map(Member::Group),
        1 => Just(Member::Unknown),
    ]
}

fn groups_strategy() -> impl Strategy<Value = Vec<Group>> {
    (0usize..4).prop_flat_map(|n| {
        (0..n)
            .map(|id| {
                (
                    proptest::bool::weighted(0.8),
                    proptest::bool::ANY,
                    proptest::collection::vec(member_strategy(), 0..6),
                )
                    .prop_map(move |(mail, unique, members)| Group {
                        id,
                        mail,
                        unique,
                        members,
                    })
            })
            .collect::<Vec<_>>()
    })
}

fn user_dn(user: &User) -> String {
    if user.contractor {
        format!(
            "uid=u{},ou=Contractors,ou=People,dc=example,dc=com",
            user.id
        )
    } else {
        format!("uid=u{},ou=People,dc=example,dc=com", user.id)
    }
}

fn group_entry(group: &Group, users: &[User]) -> Entry {
    let class = if group.unique {
        "groupOfUniqueNames"
    } else {
        "groupOfNames"
    };
    let attribute = if group.unique {
        "uniqueMember"
    } else {
        "member"
    };
    let mut entry = Entry::new(format!("cn=g{},ou=Groups,dc=example,dc=com", group.id))
        .with("objectClass", &["top", class])
        .with("cn", &[&format!("g{}", group.id)]);
    if group.mail {
        entry = entry.with("mail", &[&format!("g{}@example.com", group.id)]);
    }
    for (index, member) in group.members.iter().enumerate() {
        let dn = match member {
            Member::User(id) => users
                .iter()
                .find(|u| u.id == *id)
                .map(user_dn)
                .unwrap_or_else(|| format!("uid=u{id},ou=People,dc=example,dc=com")),
            Member::Group(id) => format!("CN=g{id},OU=Groups,DC=example,DC=com"),
            Member::Unknown => "cn=nobody,dc=example,dc=com".to_string(),
        };
        let dn = if group.unique && index % 2 == 0 {
            format!("{dn}#'0'B")
        } else {
            dn
        };
        entry = entry.with(attribute, &[&dn]);
    }
    entry
}

fn directory_strategy() -> impl Strategy<Value = Vec<User>> {
    (1usize..12).prop_flat_map(|n| (0..n).map(user_strategy).collect::<Vec<_>>())
}

fn entry(user: &User) -> Entry {
    let mut entry = Entry::new(user_dn(user))
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
    let list = |filter: &str| GroupRule {
        owner: "{cn}".to_string(),
        name: Template::parse("{cn}").unwrap(),
        source: "hr".to_string(),
        selector: GroupSelector::DistributionList(Box::new(Filter::parse(filter).unwrap())),
    };
    let org_unit = |name: &str, dn: &str| GroupRule {
        owner: name.to_string(),
        name: Template::parse(name).unwrap(),
        source: "hr".to_string(),
        selector: GroupSelector::OrgUnit(normalize_dn(dn)),
    };
    match variant % 4 {
        0 => {
            rules.mappings = vec![mapping("aol-from-mail", "aol", "{mail|local_part}", None)];
            rules.groups = vec![
                list("(mail=*)"),
                org_unit("staff", "ou=People,dc=example,dc=com"),
            ];
        }
        1 => {
            // g1 is also a distribution list's name: a collision, settled by rule order.
            rules.groups = vec![
                list("(objectClass=groupOfNames)"),
                org_unit("g1", "ou=Contractors,ou=People,dc=example,dc=com"),
            ];
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
            rules.groups = vec![
                org_unit("contractors", "ou=Contractors,ou=People,dc=example,dc=com"),
                list("(mail=*)"),
            ];
        }
        _ => rules.mappings = Vec::new(),
    }
    rules
}

fn run() -> RunRecord {
    RunRecord::new("test", "test")
}

fn sources(users: &[User], groups: &[Group]) -> Vec<SourceEntries> {
    vec![SourceEntries {
        source: "hr".to_string(),
        entries: users
            .iter()
            .map(entry)
            .chain(groups.iter().map(|g| group_entry(g, users)))
            .collect(),
    }]
}

/// Groups made by hand (no owner), one of them with a name the rules also produce.
fn add_unmanaged_groups(test_store: &TestStore) {
    store::execute(
        test_store,
        "INSERT INTO groups (name, kind, source, owner) VALUES ('g2', 'distribution_list', NULL, NULL);
             INSERT INTO group_members (group_name, member) VALUES ('g2', 'uuid-1');
             INSERT INTO groups (name, kind, source, owner) VALUES ('handmade', 'team', NULL, NULL);
             INSERT INTO group_members (group_name, member) VALUES ('handmade', 'uuid-0');",
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A sequence of directories and configs, each planned and applied: after every apply
    /// the next plan against the same inputs is empty, and unmanaged rows survive.
    #[test]
    fn plan_after_apply_is_empty_and_unmanaged_rows_survive(
        steps in proptest::collection::vec((directory_strategy(), groups_strategy(), 0u8..4), 1..4),
        manual in proptest::collection::vec((0u8..6, 0usize..12, proptest::bool::ANY), 0..4),
    ) {
        let test_store = TestStore::fresh();
        let mut store = Store::open(store::location(&test_store)).unwrap();
        add_unmanaged_groups(&test_store);
        let unmanaged_groups: Vec<_> = store.load().unwrap().groups.into_values().filter(|g| g.owner.is_none()).collect();
        prop_assert_eq!(unmanaged_groups.len(), 2);
        for (name, owner, self_service) in &manual {
            let source = if *self_service { RegistrationSource::SelfService } else { RegistrationSource::Manual };
            let local = LOCALS[*name as usize];
            let _ = store.register(("aol", &im_name_key(local)), local, &format!("uid=u{owner},ou=People,dc=example,dc=com"), (source, None), run());
        }
        let unmanaged_before: Vec<_> = store.load().unwrap().registrations.into_iter().filter(|(_, r)| r.owner.is_none()).collect();
        for (users, groups, variant) in steps {
            let rules = rules(variant);
            let state = store.load().unwrap();
            let first = plan(&rules, desired(&rules, &sources(&users, &groups)), &state).unwrap();
            for change in &first.changes {
                if change.kind == Kind::Registration {
                    prop_assert!(change.mapping.is_some(), "registration change without owner: {change:?}");
                }
                if let Some(group) = change.group.as_deref() {
                    prop_assert!(
                        state.groups.get(group).is_none_or(|g| g.owner.is_some()),
                        "change to an unmanaged group: {change:?}"
                    );
                }
            }
            store.apply(&first, run()).unwrap();
            let state = store.load().unwrap();
            // The hashes the apply kept row by row are those of the rows it left.
            prop_assert_eq!(store.managed_hashes().unwrap(), registrar::core::drift::managed_hashes(&state));
            let second = plan(&rules, desired(&rules, &sources(&users, &groups)), &state).unwrap();
            prop_assert!(second.changes.is_empty(), "not converged after one apply: {:#?}", second.changes);
            let unmanaged_now: Vec<_> = state.registrations.into_iter().filter(|(_, r)| r.owner.is_none()).collect();
            prop_assert_eq!(&unmanaged_now, &unmanaged_before);
            let unmanaged_groups_now: Vec<_> = state.groups.into_values().filter(|g| g.owner.is_none()).collect();
            prop_assert_eq!(&unmanaged_groups_now, &unmanaged_groups);
            // Every managed group holds exactly what the directory calls for (unless
            // departed accounts keep their rows or exclusions freeze some members).
            let exact = rules.accounts.on_departure != Departure::Keep && rules.exclusions.is_empty();
            let wanted = desired(&rules, &sources(&users, &groups)).groups;
            for (name, group) in store.load().unwrap().groups.into_iter().filter(|(_, g)| exact && g.owner.is_some()) {
                let expected = wanted.get(&name).map(|g| g.members.iter().map(|m| m.to_string()).collect::<Vec<_>>());
                prop_assert_eq!(Some(group.members), expected, "group {}", name);
            }
        }
    }

    /// Shuffling entries (and their attributes) never changes the plan's bytes.
    #[test]
    fn plan_output_does_not_depend_on_input_order(
        users in directory_strategy(),
        groups in groups_strategy(),
        variant in 0u8..4,
        seed in any::<u64>(),
    ) {
        let rules = rules(variant);
        let state = registrar::core::state::State::default();
        let ordered = sources(&users, &groups);
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
