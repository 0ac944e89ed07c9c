//! The planner's unit tests: apply order, group and membership changes, the reasons a
//! registration goes.

use super::change::{Action, Change, ChangeList, Kind, Plan};
use super::context::{registration_key, People};
use super::planner::plan;
use crate::desired::{Desired, DesiredAccount, DesiredGroup};
use crate::model::{Departure, GroupKind, GroupRule, GroupSelector, Profile, Rules, SourceRule};
use crate::state::{AccountStatus, GroupRow, State, StateAccount};
use crate::template::Template;

fn rules(group_rules: &[&str]) -> Rules {
    Rules {
        sources: vec![SourceRule {
            name: "hr".to_string(),
            anchor: crate::model::Anchor::Dn,
            allow_empty: true,
        }],
        groups: group_rules
            .iter()
            .map(|name| GroupRule {
                owner: name.to_string(),
                name: Template::parse(name).unwrap(),
                source: "hr".to_string(),
                selector: GroupSelector::OrgUnit("dc=x".to_string()),
            })
            .collect(),
        ..Rules::default()
    }
}

fn account(anchor: &str) -> DesiredAccount {
    DesiredAccount::new(anchor, &format!("cn={anchor},dc=x"), "hr")
}

fn state_account(anchor: &str) -> StateAccount {
    StateAccount {
        anchor: anchor.into(),
        dn: format!("cn={anchor},dc=x"),
        source: Some("hr".into()),
        status: AccountStatus::Active,
        profile: Profile::default(),
    }
}

fn wanted(name: &str, rule: &str, members: &[&str]) -> (String, DesiredGroup) {
    (
        name.to_string(),
        DesiredGroup {
            name: name.to_string(),
            kind: GroupKind::OrgUnit,
            source: "hr".to_string(),
            rule: rule.to_string(),
            members: members.iter().map(|&m| m.into()).collect(),
        },
    )
}

fn row(name: &str, owner: Option<&str>, members: &[&str]) -> (String, GroupRow) {
    (
        name.to_string(),
        GroupRow {
            name: name.to_string(),
            kind: "org_unit".to_string(),
            source: owner.map(|_| "hr".to_string()),
            owner: owner.map(str::to_string),
            members: members.iter().map(|m| m.to_string()).collect(),
        },
    )
}

/// (action, kind, group, member) of each change, in plan order.
fn steps(plan: &Plan) -> Vec<(Action, Kind, String, String)> {
    plan.changes
        .iter()
        .map(|c| {
            (
                c.action,
                c.kind,
                c.group.as_deref().unwrap_or_default().to_string(),
                c.member
                    .as_deref()
                    .or(c.account.as_deref())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn apply_order_creates_accounts_then_groups_then_members() {
    let rules = rules(&["staff"]);
    let mut desired = Desired::default();
    desired.insert_account(account("new"));
    desired.groups.extend([wanted("staff", "staff", &["new"])]);
    let plan = plan(&rules, desired, &State::default()).unwrap();
    use Action::Add;
    assert_eq!(
        steps(&plan),
        vec![
            (Add, Kind::Account, String::new(), "new".to_string()),
            (Add, Kind::Group, "staff".to_string(), String::new()),
            (
                Add,
                Kind::GroupMember,
                "staff".to_string(),
                "new".to_string()
            ),
        ]
    );
    let member = &plan.changes[2];
    assert_eq!(member.dn.as_deref(), Some("cn=new,dc=x"));
    let group = &plan.changes[1];
    assert_eq!(group.group_rule().map(|rule| &**rule), Some("staff"));
    assert_eq!(group.group_kind(), Some(GroupKind::OrgUnit));
    assert_eq!(plan.summary.add, 3);
}

#[test]
fn a_removed_rule_removes_members_before_the_group_and_before_accounts_go() {
    let mut rules = rules(&[]);
    rules.accounts.on_departure = Departure::Delete;
    let mut state = State::default();
    state.accounts.insert("old".into(), state_account("old"));
    state.groups.extend([row("staff", Some("staff"), &["old"])]);
    let plan = plan(&rules, Desired::default(), &state).unwrap();
    use Action::Remove;
    assert_eq!(
        steps(&plan),
        vec![
            (
                Remove,
                Kind::GroupMember,
                "staff".to_string(),
                "old".to_string()
            ),
            (Remove, Kind::Group, "staff".to_string(), String::new()),
            (Remove, Kind::Account, String::new(), "old".to_string()),
        ]
    );
    assert_eq!(
        plan.changes[1].reason.as_deref(),
        Some("group rule removed")
    );
    assert_eq!(plan.summary.remove, 3);
}

#[test]
fn a_group_no_selected_entry_gives_says_so_whatever_became_of_its_entry() {
    // Gone from the directory or out of the rule's filter: one reason, true of both,
    // that a delta plan gives as a full one does.
    let rules = rules(&["{cn}"]);
    let mut state = State::default();
    state.groups.extend([row("old-team", Some("{cn}"), &[])]);
    let plan = plan(&rules, Desired::default(), &state).unwrap();
    assert_eq!(
        plan.changes[0].reason.as_deref(),
        Some("no entry the rule's filter selects gives this group any more")
    );
}

#[test]
fn a_registration_lost_by_an_entry_still_there_says_why() {
    use crate::desired::{desired, SourceEntries};
    use crate::entry::Entry;
    use crate::filter::Filter;
    use crate::model::Mapping;
    use crate::state::{RegistrationSource, StateRegistration};
    let mut rules = rules(&[]);
    rules.sources.push(SourceRule {
        name: "partners".to_string(),
        anchor: crate::model::Anchor::Dn,
        allow_empty: true,
    });
    let mapping = |name: &str, value: &str, when: Option<&str>, sources: Option<&str>| Mapping {
        name: name.to_string(),
        protocol: name.to_string(),
        value: Template::parse(value).unwrap(),
        when: when.map(|f| Filter::parse(f).unwrap()),
        sources: sources.map(|s| vec![s.to_string()]),
        renamed_from: Vec::new(),
    };
    rules.mappings = vec![
        mapping("filtered", "{cn}", Some("(dept=sales)"), None),
        mapping("elsewhere", "{cn}", None, Some("partners")),
        mapping("changed", "{mail}", None, None),
        mapping("emptied", "{nick}", None, None),
    ];
    let entry = Entry::new("cn=a,dc=x")
        .with("objectClass", &["top", "person"])
        .with("cn", &["a"])
        .with("dept", &["it"])
        .with("mail", &["new"]);
    let wanted = desired(
        &rules,
        &[SourceEntries {
            source: "hr".to_string(),
            entries: vec![entry],
        }],
    );
    let anchor = "cn=a,dc=x";
    let mut state = State::default();
    let mut stored = state_account(anchor);
    stored.dn = anchor.to_string();
    state.accounts.insert(anchor.into(), stored);
    for protocol in ["filtered", "elsewhere", "changed", "emptied"] {
        state.registrations.insert(
            registration_key(protocol, "old"),
            StateRegistration {
                protocol: protocol.into(),
                im_name: "old".into(),
                account: anchor.into(),
                source: RegistrationSource::Ldap,
                owner: Some(protocol.into()),
            },
        );
    }
    let plan = plan(&rules, wanted, &state).unwrap();
    let removals: Vec<(&str, &str)> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Remove)
        .map(|c| (c.mapping.as_deref().unwrap(), c.reason.as_deref().unwrap()))
        .collect();
    assert_eq!(
        removals,
        [
            (
                "changed",
                "mapping changed now produces another value for the entry"
            ),
            (
                "elsewhere",
                "entry's source hr is not among mapping elsewhere's sources"
            ),
            ("emptied", "mapping emptied produces no value for the entry"),
            (
                "filtered",
                "entry no longer matches mapping filtered's filter"
            ),
        ]
    );
}

#[test]
fn unmanaged_groups_are_never_touched() {
    let rules = rules(&["staff"]);
    let mut desired = Desired::default();
    desired.insert_account(account("a"));
    desired.groups.extend([wanted("staff", "staff", &["a"])]);
    let mut state = State::default();
    state.accounts.insert("a".into(), state_account("a"));
    state
        .groups
        .extend([row("staff", None, &["x"]), row("handmade", None, &["a"])]);
    let plan = plan(&rules, desired, &state).unwrap();
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert_eq!(plan.summary.conflicts, 1);
    assert_eq!(plan.warnings[0].group.as_deref(), Some("staff"));
}

#[test]
fn membership_changes_are_a_diff_and_a_new_owner_is_an_update() {
    let rules = rules(&["{cn}"]);
    let mut desired = Desired::default();
    for anchor in ["a", "b", "c"] {
        desired.insert_account(account(anchor));
    }
    desired
        .groups
        .extend([wanted("staff", "{cn}", &["a", "c"])]);
    let mut state = State::default();
    for anchor in ["a", "b", "c"] {
        state.accounts.insert(anchor.into(), state_account(anchor));
    }
    state
        .groups
        .extend([row("staff", Some("staff"), &["a", "b"])]);
    let plan = plan(&rules, desired, &state).unwrap();
    assert_eq!(
        steps(&plan),
        vec![
            (
                Action::Remove,
                Kind::GroupMember,
                "staff".to_string(),
                "b".to_string()
            ),
            (
                Action::Update,
                Kind::Group,
                "staff".to_string(),
                String::new()
            ),
            (
                Action::Add,
                Kind::GroupMember,
                "staff".to_string(),
                "c".to_string()
            ),
        ]
    );
    let fields = plan.changes[1].fields().unwrap();
    assert_eq!(
        fields["group_rule"],
        (Some("staff".to_string()), Some("{cn}".to_string()))
    );
}

#[test]
fn frozen_accounts_keep_their_memberships() {
    let rules = rules(&["staff"]);
    let mut desired = Desired::default();
    desired.frozen_accounts.insert("boss".to_string());
    desired.groups.extend([wanted("staff", "staff", &[])]);
    let mut state = State::default();
    state.accounts.insert("boss".into(), state_account("boss"));
    state
        .groups
        .extend([row("staff", Some("staff"), &["boss"])]);
    let plan = plan(&rules, desired, &state).unwrap();
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
}

proptest::proptest! {
    /// Sorting positions and then moving the changes along the permutation gives what a
    /// stable sort of the changes gives, ties (here, many) included. The kinds of change
    /// picked by `in_order` come in apply order (as the walks give them), interleaved
    /// with the others: a phase all of whose changes come so needs no sort.
    #[test]
    fn apply_order_is_what_a_stable_sort_gives(
        picks in proptest::collection::vec((0usize..11, 0u8..4, 0u8..4, 0u8..3), 0..300),
        in_order in proptest::bits::u16::masked(0x7ff),
    ) {
        const ACTIONS: [(Action, Kind); 11] = [
            (Action::Add, Kind::Account),
            (Action::Update, Kind::Account),
            (Action::Reactivate, Kind::Account),
            (Action::Remove, Kind::Registration),
            (Action::Update, Kind::Registration),
            (Action::Add, Kind::Registration),
            (Action::Remove, Kind::GroupMember),
            (Action::Remove, Kind::Group),
            (Action::Add, Kind::GroupMember),
            (Action::Deactivate, Kind::Account),
            (Action::Remove, Kind::Account),
        ];
        let changes: Vec<Change> = picks
            .iter()
            .enumerate()
            .map(|(serial, &(pick, name, account, group))| {
                let (action, kind) = ACTIONS[pick];
                Change {
                    protocol: (kind == Kind::Registration).then(|| "aim".into()),
                    im_name: (kind == Kind::Registration).then(|| format!("n{name}").into()),
                    account: Some(format!("a{account}").into()),
                    group: (group > 0).then(|| format!("g{group}").into()),
                    // Tells apart changes the order ties.
                    reason: Some(serial.to_string().into()),
                    ..Change::new(action, kind)
                }
            })
            .collect();
        let mut changes = changes;
        for (phase, &(action, kind)) in ACTIONS.iter().enumerate() {
            if in_order & (1 << phase) == 0 {
                continue;
            }
            let slots: Vec<usize> = (0..changes.len())
                .filter(|&i| (changes[i].action, changes[i].kind) == (action, kind))
                .collect();
            let mut phase_changes: Vec<Change> =
                slots.iter().map(|&i| changes[i].clone()).collect();
            phase_changes.sort_by(Change::order);
            for (slot, change) in slots.into_iter().zip(phase_changes) {
                changes[slot] = change;
            }
        }
        let mut stable = changes.clone();
        stable.sort_by(Change::order);
        let mut ours = ChangeList::with_capacity(changes.len());
        for change in changes {
            ours.push(change);
        }
        proptest::prop_assert_eq!(ours.into_apply_order(), stable);
    }
}

proptest::proptest! {
    /// The galloping search finds what the plain one finds, whatever order the anchors
    /// are asked in (runs upward, jumps back, anchors only the store has, or no one has).
    #[test]
    fn dn_of_from_finds_what_dn_of_finds(
        wanted in proptest::collection::btree_set(0u16..400, 0..120),
        stored in proptest::collection::btree_set(0u16..400, 0..40),
        asked in proptest::collection::vec(0u16..400, 0..200),
    ) {
        let anchor = |n: &u16| format!("a{n:03}");
        let accounts: Vec<DesiredAccount> = wanted.iter().map(|n| account(&anchor(n))).collect();
        let mut state = State::default();
        for n in &stored {
            let row = StateAccount {
                dn: format!("cn=stored {n},dc=x"),
                ..state_account(&anchor(n))
            };
            state.accounts.insert(row.anchor.clone(), row);
        }
        let people = People { accounts: &accounts, state: &state };
        let mut near = 0;
        for n in &asked {
            let anchor = anchor(n);
            proptest::prop_assert_eq!(people.dn_of_from(&anchor, &mut near), people.dn_of(&anchor));
        }
    }
}
