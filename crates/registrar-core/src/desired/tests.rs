//! Unit tests of the desired state: claim sort, anchors, groups.

use arcstr::ArcStr;
use std::collections::BTreeMap;

use super::build::{desired, DesiredBuilder, ARRIVAL_CHUNK};
use super::claims::sort_prefix;
use super::desired_state::{Claim, Desired, GroupSkipCounts, SourceEntries, WarningKind};
use super::groups::strip_unique_id;
use crate::dn::normalize_dn;
use crate::entry::Entry;
use crate::filter::Filter;

use crate::model::{Anchor, GroupKind, GroupSelector, Rules};
use crate::model::{Exclusion, ExclusionSelector, GroupRule, Mapping, SourceRule};
use crate::template::Template;

const PEOPLE: &str = "ou=people,dc=x";

fn user(cn: &str) -> Entry {
    Entry::new(format!("cn={cn},{PEOPLE}"))
        .with("objectClass", &["top", "person", "organizationalPerson"])
        .with("cn", &[cn])
}

fn group(cn: &str, members: &[&str]) -> Entry {
    let dns: Vec<String> = members.iter().map(|m| dn_of(m)).collect();
    let dns: Vec<&str> = dns.iter().map(String::as_str).collect();
    Entry::new(format!("cn={cn},ou=groups,dc=x"))
        .with("objectClass", &["top", "groupOfNames"])
        .with("cn", &[cn])
        .with("mail", &[&format!("{cn}@x")])
        .with("member", &dns)
}

/// `g:NAME` is a group's DN, anything else a user's.
fn dn_of(member: &str) -> String {
    match member.strip_prefix("g:") {
        Some(group) => format!("CN={group},OU=Groups,DC=x"),
        None => format!("cn={member},{PEOPLE}"),
    }
}

fn list_rule(owner: &str, filter: &str) -> GroupRule {
    GroupRule {
        owner: owner.to_string(),
        name: Template::parse(owner).unwrap(),
        source: "hr".to_string(),
        selector: GroupSelector::DistributionList(Box::new(Filter::parse(filter).unwrap())),
    }
}

fn org_unit_rule(name: &str, dn: &str) -> GroupRule {
    GroupRule {
        owner: name.to_string(),
        name: Template::parse(name).unwrap(),
        source: "hr".to_string(),
        selector: GroupSelector::OrgUnit(normalize_dn(dn)),
    }
}

fn rules(groups: Vec<GroupRule>) -> Rules {
    Rules {
        sources: vec![SourceRule {
            name: "hr".to_string(),
            anchor: Anchor::Dn,
            allow_empty: false,
        }],
        groups,
        ..Rules::default()
    }
}

fn build(rules: &Rules, entries: &[Entry]) -> Desired {
    desired(
        rules,
        &[SourceEntries {
            source: "hr".to_string(),
            entries: entries.to_vec(),
        }],
    )
}

/// Each group's members as user common names.
fn members(desired: &Desired) -> BTreeMap<String, Vec<String>> {
    desired
        .groups
        .iter()
        .map(|(name, group)| {
            let cns = group
                .members
                .iter()
                .map(|anchor| anchor.trim_start_matches("cn=").split(',').next().unwrap())
                .map(str::to_string)
                .collect();
            (name.clone(), cns)
        })
        .collect()
}

fn expect(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(name, cns)| {
            (
                name.to_string(),
                cns.iter().map(|c| c.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn sort_prefixes_order_like_the_strings() {
    let words = [
        "",
        "a",
        "a\u{0}",
        "ab",
        "abcdefghijklmn",
        "abcdefghijklmnop",
        "abcdefghijklmno",
        "b",
        "é",
        "zzzzzzzzzzzzzzzzzz",
        "00000001-0000-4000",
        "00000001-0000-3000",
    ];
    for rank_a in [0u16, 1, 300] {
        for rank_b in [0u16, 1, 300] {
            for a in words {
                for b in words {
                    let (x, y) = (sort_prefix(rank_a, a), sort_prefix(rank_b, b));
                    if x != y {
                        assert_eq!(x.cmp(&y), (rank_a, a).cmp(&(rank_b, b)), "{a:?} {b:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn claims_sorted_in_two_halves_are_the_claims_sorted_whole() {
    let mut rules = rules(Vec::new());
    let mapping = |name: &str, protocol: &str, value: &str| Mapping {
        name: name.to_string(),
        protocol: protocol.to_string(),
        value: Template::parse(value).unwrap(),
        when: None,
        sources: None,
        renamed_from: Vec::new(),
    };
    // Two mappings of one protocol that often give one name (to one account, and
    // nicknames to many), and a second protocol: enough claims to be split.
    rules.mappings = vec![
        mapping("by-cn", "aol", "{cn}"),
        mapping("by-nick", "aol", "{nick}"),
        mapping("xmpp", "xmpp", "{cn}@x"),
    ];
    let users = crate::join::WORTH_SPLITTING / 2;
    let entries: Vec<Entry> = (0..users)
        .rev()
        .map(|i| {
            let nick = if i % 3 == 0 {
                format!("u{i}")
            } else {
                format!("n{}", i % 997)
            };
            user(&format!("u{i}")).with("nick", &[&nick])
        })
        .collect();
    let build_with = |join: &dyn Fn(DesiredBuilder) -> Desired| {
        let mut builder = DesiredBuilder::new(&rules);
        builder.begin_source("hr");
        for entry in &entries {
            builder.add_entry("hr", entry);
        }
        join(builder)
    };
    // `finish` sorts in one piece (`Sequential` does not split); `SecondFirst` splits.
    let whole = build_with(&|builder| builder.finish());
    let halves = build_with(&|builder| builder.finish_with(&crate::join::SecondFirst));
    assert!(whole.claims.len() > crate::join::WORTH_SPLITTING);
    assert_eq!(halves.claims, whole.claims);
    assert_eq!(halves.accounts, whole.accounts);
    // Sorted by (protocol, name key, account, mapping, IM name), each claim once.
    let sort_key = |c: &Claim| {
        (
            c.protocol.clone(),
            c.name_key.clone(),
            c.account,
            c.mapping.clone(),
            c.im_name.clone(),
        )
    };
    assert!(whole
        .claims
        .windows(2)
        .all(|pair| sort_key(&pair[0]) < sort_key(&pair[1])));
}

#[test]
fn shared_anchors_and_frozen_anchors_settle_alike_in_any_order() {
    let mut rules = rules(Vec::new());
    rules.sources[0].anchor = Anchor::Attribute("employeeNumber".to_string());
    rules.exclusions = vec![Exclusion {
        name: "board".to_string(),
        selector: ExclusionSelector::Filter(Box::new(Filter::parse("(title=board)").unwrap())),
    }];
    let numbered = |cn: &str, number: &str| user(cn).with("employeeNumber", &[number]);
    let entries = vec![
        numbered("ann", "1"),
        numbered("bob", "2"),
        numbered("abe", "1"),
        numbered("cat", "3"),
        numbered("boss", "3").with("title", &["board"]),
        numbered("cid", "3"),
    ];
    let reference = build(&rules, &entries);
    let anchors: Vec<&str> = reference.accounts.iter().map(|a| &*a.anchor).collect();
    assert_eq!(anchors, ["1", "2"]);
    assert_eq!(&*reference.accounts[0].dn, format!("cn=abe,{PEOPLE}"));
    assert!(reference.frozen_accounts.contains("3"));
    for shift in 0..entries.len() {
        let mut order = entries.clone();
        order.rotate_left(shift);
        let out = build(&rules, &order);
        assert_eq!(out.accounts, reference.accounts, "order {shift}");
        assert_eq!(out.frozen_accounts, reference.frozen_accounts);
    }
    // More users than one chunk of arrivals holds.
    let many: Vec<Entry> = (0..ARRIVAL_CHUNK + 10)
        .rev()
        .map(|i| numbered(&format!("u{i}"), &format!("{i:06}")))
        .collect();
    let out = build(&rules, &many);
    assert_eq!(out.accounts.len(), ARRIVAL_CHUNK + 10);
    assert!(out.accounts.windows(2).all(|w| w[0].anchor < w[1].anchor));
}

#[test]
fn nested_groups_are_flattened_and_only_listed_entries_become_groups() {
    let rules = rules(vec![list_rule("{cn}", "(cn=all)")]);
    let entries = [
        user("ann"),
        user("bob"),
        user("cat"),
        group("all", &["ann", "g:sub"]),
        group("sub", &["bob", "g:subsub"]),
        group("subsub", &["cat"]),
    ];
    let out = build(&rules, &entries);
    assert_eq!(members(&out), expect(&[("all", &["ann", "bob", "cat"])]));
    assert_eq!(out.groups["all"].rule, "{cn}");
    assert_eq!(out.groups["all"].kind, GroupKind::DistributionList);
    assert!(out.group_skipped.is_empty());
}

#[test]
fn cycles_terminate_and_every_group_in_the_cycle_sees_all_members() {
    let rules = rules(vec![list_rule("{cn}", "(mail=*)")]);
    let entries = [
        user("ann"),
        user("bob"),
        group("a", &["ann", "g:b"]),
        group("b", &["bob", "g:a"]),
        group("self", &["g:self", "ann"]),
    ];
    let out = build(&rules, &entries);
    assert_eq!(
        members(&out),
        expect(&[
            ("a", &["ann", "bob"]),
            ("b", &["ann", "bob"]),
            ("self", &["ann"])
        ])
    );
}

#[test]
fn groups_do_not_depend_on_entry_order() {
    let rules = rules(vec![
        list_rule("{cn}", "(mail=*)"),
        org_unit_rule("people", PEOPLE),
    ]);
    let entries = vec![
        user("ann"),
        user("bob"),
        group("a", &["ann", "g:b", "ghost"]),
        group("b", &["bob", "g:c"]),
        group("c", &["g:a", "ann"]),
    ];
    let reference = build(&rules, &entries);
    assert_eq!(reference.groups.len(), 4);
    // Every rotation and its reverse: enough to move each entry to each place.
    for shift in 0..entries.len() {
        let mut order = entries.clone();
        order.rotate_left(shift);
        for order in [order.clone(), order.into_iter().rev().collect()] {
            let out = build(&rules, &order);
            assert_eq!(out.groups, reference.groups, "order {shift}");
            assert_eq!(out.group_skipped, reference.group_skipped);
            assert_eq!(out.warnings, reference.warnings);
        }
    }
}

#[test]
fn dropped_members_are_counted_by_reason() {
    let mut rules = rules(vec![list_rule("{cn}", "(cn=all)")]);
    rules.accounts.disabled_when = Some(Filter::parse("(employeeType=former)").unwrap());
    rules.exclusions = vec![Exclusion {
        name: "board".to_string(),
        selector: ExclusionSelector::Filter(Box::new(Filter::parse("(title=board)").unwrap())),
    }];
    let entries = [
        user("ann"),
        user("old").with("employeeType", &["former"]),
        user("boss").with("title", &["board"]),
        group("all", &["ann", "old", "boss", "ghost", "g:sub"]),
        // Reached twice (directly and via sub): counted once.
        group("sub", &["ghost", "old"]),
    ];
    let out = build(&rules, &entries);
    assert_eq!(members(&out), expect(&[("all", &["ann"])]));
    assert_eq!(
        out.group_skipped["all"],
        GroupSkipCounts {
            unknown_members: 1,
            disabled_members: 1,
            excluded_members: 1,
        }
    );
}

#[test]
fn unique_member_values_lose_their_uid_suffix() {
    assert_eq!(strip_unique_id("cn=a,dc=x#'0101'B"), "cn=a,dc=x");
    assert_eq!(strip_unique_id("cn=a,dc=x"), "cn=a,dc=x");
    assert_eq!(strip_unique_id(r"cn=a\#'1'B"), r"cn=a\#'1'B");
    assert_eq!(strip_unique_id("cn=a#'12'B"), "cn=a#'12'B");
    let rules = rules(vec![list_rule("{cn}", "(mail=*)")]);
    let list = Entry::new("cn=u,ou=groups,dc=x")
        .with("objectClass", &["top", "groupOfUniqueNames"])
        .with("cn", &["u"])
        .with("mail", &["u@x"])
        .with("uniqueMember", &["CN=Ann,OU=People,DC=x#'0'B"]);
    let out = build(&rules, &[user("ann"), list]);
    assert_eq!(members(&out), expect(&[("u", &["ann"])]));
}

#[test]
fn org_units_hold_the_enabled_users_of_their_subtree() {
    let mut rules = rules(vec![org_unit_rule("sales", "OU=Sales,OU=People,DC=x")]);
    rules.accounts.disabled_when = Some(Filter::parse("(employeeType=former)").unwrap());
    let in_sales = |cn: &str| {
        let mut entry = user(cn);
        entry.dn = format!("cn={cn},ou=emea,ou=sales,{PEOPLE}");
        entry
    };
    let entries = [
        in_sales("ann"),
        in_sales("old").with("employeeType", &["former"]),
        user("bob"),
    ];
    let out = build(&rules, &entries);
    assert_eq!(
        out.groups["sales"].members,
        [ArcStr::from(format!("cn=ann,ou=emea,ou=sales,{PEOPLE}"))]
    );
    assert_eq!(out.groups["sales"].kind, GroupKind::OrgUnit);
    assert_eq!(out.group_skipped["sales"].disabled_members, 1);
}

#[test]
fn a_name_two_rules_give_goes_to_the_first_rule_with_a_warning() {
    let rules = rules(vec![
        list_rule("{cn}", "(mail=*)"),
        org_unit_rule("all", PEOPLE),
    ]);
    let entries = [user("ann"), user("bob"), group("all", &["bob"])];
    let out = build(&rules, &entries);
    assert_eq!(out.groups["all"].rule, "all");
    assert_eq!(members(&out), expect(&[("all", &["ann", "bob"])]));
    let collisions: Vec<_> = out
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::GroupCollision)
        .collect();
    assert_eq!(collisions.len(), 1, "{:?}", out.warnings);
    assert_eq!(collisions[0].group.as_deref(), Some("all"));
}

#[test]
fn a_group_entry_without_a_name_is_skipped_with_a_warning() {
    let rules = rules(vec![list_rule("{displayName}", "(mail=*)")]);
    let out = build(&rules, &[user("ann"), group("a", &["ann"])]);
    assert!(out.groups.is_empty());
    assert!(out
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::InvalidGroupName));
}

#[test]
fn a_frozen_group_entry_is_neither_a_group_nor_expanded() {
    let mut rules = rules(vec![list_rule("{cn}", "(mail=*)")]);
    rules.exclusions = vec![Exclusion {
        name: "secret".to_string(),
        selector: ExclusionSelector::DnSubtree(normalize_dn("cn=secret,ou=groups,dc=x")),
    }];
    let entries = [
        user("ann"),
        user("bob"),
        group("secret", &["bob"]),
        group("all", &["ann", "g:secret"]),
    ];
    let out = build(&rules, &entries);
    assert_eq!(members(&out), expect(&[("all", &["ann"])]));
    assert!(out.frozen_groups.contains("secret"));
    assert_eq!(out.group_skipped["all"].excluded_members, 1);
}
