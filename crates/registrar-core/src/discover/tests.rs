//! Unit tests of discovery: counting, samples, the starter and its YAML.

use super::count::{AttributeCount, Discovery, FrequentValues, Report, Shape, DOMAIN_SLOTS};
use super::heuristics::starter;
use super::sample::{is_secret, Sample, SAMPLE_CHARS};
use super::suggestions::StarterContext;
use super::yaml::{yaml_quoted, yaml_scalar};
use crate::entry::{Attribute, Entry};
use crate::filter::Filter;
use crate::model::{Mapping, ObjectTypes};
use crate::template::Template;

fn user(dn: &str) -> Entry {
    Entry::new(dn).with(
        "objectClass",
        &["top", "person", "organizationalPerson", "inetOrgPerson"],
    )
}

fn report_of(entries: &[Entry]) -> Report {
    let types = ObjectTypes::default();
    let mut discovery = Discovery::new(&types);
    for entry in entries {
        discovery.add(entry);
    }
    discovery.finish()
}

fn attribute<'r>(report: &'r Report, name: &str) -> &'r AttributeCount {
    report
        .attributes
        .iter()
        .find(|a| a.attribute.eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("no {name} in {report:#?}"))
}

fn context<'a>(source: &'a str, existing: &'a [Mapping]) -> StarterContext<'a> {
    StarterContext {
        source,
        existing,
        object_types_set_in: None,
    }
}

#[test]
fn chains_merge_order_case_and_top_and_are_typed() {
    let entries = [
        user("cn=a"),
        Entry::new("cn=b").with(
            "objectClass",
            &["inetOrgPerson", "organizationalPerson", "PERSON"],
        ),
        Entry::new("ou=x").with("objectClass", &["top", "organizationalUnit"]),
        Entry::new("cn=d").with("objectClass", &["top", "device"]),
        Entry::new("dc=x"),
    ];
    let report = report_of(&entries);
    assert_eq!(report.entries, 5);
    let first = &report.chains[0];
    assert_eq!(
        first.chain,
        ["top", "person", "organizationalPerson", "inetOrgPerson"]
    );
    assert_eq!(first.entries, 2);
    assert_eq!(first.object_type.as_deref(), Some("user"));
    let rest: Vec<(Vec<String>, Option<&str>)> = report.chains[1..]
        .iter()
        .map(|c| (c.chain.clone(), c.object_type.as_deref()))
        .collect();
    let chain = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rest,
        [
            (chain(&["top"]), None),
            (chain(&["top", "device"]), None),
            (chain(&["top", "organizationalUnit"]), Some("org_unit")),
        ]
    );
    let types: Vec<(Option<&str>, u64)> = report
        .object_types
        .iter()
        .map(|t| (t.object_type.as_deref(), t.entries))
        .collect();
    assert_eq!(types, [(Some("org_unit"), 1), (Some("user"), 2), (None, 2)]);
}

#[test]
fn chains_list_the_configured_chain_first_superclass_first() {
    let reversed = Entry::new("cn=b").with(
        "objectClass",
        &[
            "inetOrgPerson",
            "posixAccount",
            "organizationalPerson",
            "Person",
        ],
    );
    let report = report_of(&[reversed]);
    assert_eq!(
        report.chains[0].chain,
        [
            "top",
            "Person",
            "organizationalPerson",
            "inetOrgPerson",
            "posixAccount"
        ]
    );
    let untyped = report_of(&[Entry::new("cn=d").with("objectClass", &["device", "TOP"])]);
    assert_eq!(untyped.chains[0].chain, ["top", "device"]);
}

#[test]
fn attributes_count_entries_and_values_with_the_first_spelling_and_sample() {
    let entries = [
        user("cn=a").with("mail", &["a@example.com", "a2@example.com"]),
        user("cn=b")
            .with("MAIL", &["b@example.com"])
            .with("cn", &["B"]),
        user("cn=c").with("cn", &["C"]),
    ];
    let report = report_of(&entries);
    let mail = attribute(&report, "mail");
    assert_eq!(
        (mail.attribute.as_str(), mail.entries, mail.values),
        ("mail", 2, 3)
    );
    assert_eq!(mail.sample, Sample::Text("a@example.com".into()));
    assert_eq!(mail.shape.email, 3);
    assert_eq!(mail.shape.top_domain.as_deref(), Some("example.com"));
    // objectClass on all three first; then cn and mail (2 each) by name.
    let order: Vec<&str> = report
        .attributes
        .iter()
        .map(|a| a.attribute.as_str())
        .collect();
    assert_eq!(order, ["objectClass", "cn", "mail"]);
    let user_type = &report.object_types[0];
    assert_eq!(user_type.object_type.as_deref(), Some("user"));
    assert_eq!(report.user_entries("MAIL"), 2);
}

#[test]
fn secrets_are_never_sampled_nor_looked_at() {
    for name in [
        "userPassword",
        "unicodePwd",
        "sambaNTPassword",
        "sambaLMPassword",
        "ntPwdHistory",
        "lmPwdHistory",
        "supplementalCredentials",
        "msDS-ManagedPassword",
        "ms-Mcs-AdmPwd",
        "userPassword;binary",
        "krbPrincipalKey",
    ] {
        assert!(is_secret(name), "{name}");
        let report = report_of(&[user("cn=a").with(name, &["sip:hunter2@example.com"])]);
        let secret = attribute(&report, name);
        assert_eq!(secret.sample, Sample::Hidden);
        assert_eq!(secret.sample.to_string(), "<hidden>");
        assert_eq!(secret.shape, Shape::default(), "{name}");
        let starter = starter(&report, &context("corp", &[]));
        assert!(starter.mappings.is_empty(), "{name}");
        assert!(!starter.yaml.contains("hunter2"));
        assert!(!format!("{report:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&report).unwrap().contains("hunter2"));
    }
    for name in ["mail", "cn", "passportNumber", "uid"] {
        assert!(!is_secret(name), "{name}");
    }
}

#[test]
fn binary_and_long_values_are_shortened() {
    let mut entry = user("cn=a").with("description", &[&"x".repeat(100)]);
    entry.attributes.push(Attribute {
        description: "objectGUID".into(),
        values: vec![vec![0xe0, 0x04, 0x25, 0x3f, 0x89, 0x00, 0xff]],
    });
    entry.push_value("jpegPhoto", vec![0xff, 0xd8, 0xff]);
    entry.push_value("note", "line one\nline\u{202e}two".as_bytes().to_vec());
    let report = report_of(&[entry]);
    assert_eq!(
        attribute(&report, "objectGUID").sample,
        Sample::Binary { bytes: 7 }
    );
    assert_eq!(
        attribute(&report, "jpegPhoto").sample.to_string(),
        "<3 bytes>"
    );
    let description = attribute(&report, "description").sample.to_string();
    assert_eq!(description, format!("{}…", "x".repeat(SAMPLE_CHARS)));
    assert_eq!(
        attribute(&report, "note").sample.to_string(),
        "line one\\nline\\u{202e}two"
    );
}

#[test]
fn memory_follows_distinct_chains_and_attributes_not_entries() {
    let types = ObjectTypes::default();
    let mut discovery = Discovery::new(&types);
    for n in 0..2000 {
        discovery.add(&user(&format!("cn=u{n}")).with("mail", &[&format!("u{n}@d{n}.example")]));
    }
    assert_eq!(discovery.chains.len(), 1);
    assert_eq!(discovery.attributes.len(), 2);
    let domains = discovery.attributes["mail"].domains.as_ref().unwrap();
    assert!(domains.counts.len() <= DOMAIN_SLOTS);
}

#[test]
fn the_most_common_domain_survives_many_rare_ones() {
    let mut frequent = FrequentValues::default();
    for n in 0..1000 {
        frequent.add(&format!("rare{n}.example"));
        frequent.add("corp.example");
    }
    assert_eq!(frequent.most_common().as_deref(), Some("corp.example"));
}

fn directory() -> Vec<Entry> {
    vec![
        user("cn=a")
            .with("mail", &["A@Example.com"])
            .with("msRTCSIP-PrimaryUserAddress", &["sip:a@example.com"])
            .with("uid", &["a"])
            .with("imName", &["a.im"])
            .with("userPassword", &["{SSHA}secret"]),
        user("cn=b")
            .with("mail", &["b@example.com", "b@other.example"])
            .with("msRTCSIP-PrimaryUserAddress", &["SIP:b@example.com"])
            .with("jabberID", &["b@jabber.example"])
            .with("uid", &["b"]),
        user("cn=c")
            .with("mail", &["c@other.example"])
            .with("uid", &["c"]),
        Entry::new("cn=g")
            .with("objectClass", &["top", "groupOfNames"])
            .with("mail", &["group@example.com"])
            .with("member", &["cn=a"]),
    ]
}

#[test]
fn starter_suggests_one_mapping_per_protocol_from_likely_attributes() {
    let report = report_of(&directory());
    let starter = starter(&report, &context("corp", &[]));
    let chosen: Vec<(&str, &str, &str, Option<&str>)> = starter
        .mappings
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.protocol.as_str(),
                s.value.as_str(),
                s.when.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        chosen,
        [
            (
                "aol-from-mail",
                "aol",
                "{mail|lower|local_part}",
                Some("(mail=*@example.com)")
            ),
            ("jabber-from-jabberid", "jabber", "{jabberID|lower}", None),
            (
                "lcs-from-msrtcsip-primaryuseraddress",
                "lcs",
                "{msRTCSIP-PrimaryUserAddress|strip_prefix:sip:|lower}",
                None
            ),
            ("sametime-from-uid", "sametime", "{uid|lower}", None),
        ]
    );
    let alternatives: Vec<&str> = starter
        .alternatives
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(alternatives, ["aol-from-imname"]);
    assert!(starter.mappings[0].reason.contains("on 3 user entries"));
    assert!(!starter.yaml.contains("secret"), "{}", starter.yaml);
}

#[test]
fn starter_yaml_reads_back_to_the_suggestions() {
    let report = report_of(&directory());
    let starter = starter(&report, &context("corp", &[]));
    let yaml: serde_yaml::Value = serde_yaml::from_str(&starter.yaml).unwrap();
    let mappings = yaml["mappings"].as_sequence().unwrap();
    assert_eq!(mappings.len(), starter.mappings.len());
    for (read, suggestion) in mappings.iter().zip(&starter.mappings) {
        assert_eq!(read["name"].as_str(), Some(suggestion.name.as_str()));
        assert_eq!(
            read["protocol"].as_str(),
            Some(suggestion.protocol.as_str())
        );
        assert_eq!(read["value"].as_str(), Some(suggestion.value.as_str()));
        assert_eq!(read["when"].as_str(), suggestion.when.as_deref());
        assert_eq!(read["sources"][0].as_str(), Some("corp"));
        Template::parse(read["value"].as_str().unwrap()).unwrap();
    }
    let user_chains = yaml["object_types"]["user"].as_sequence().unwrap();
    assert_eq!(user_chains.len(), 1);
    assert_eq!(
        serde_yaml::to_string(&user_chains[0]).unwrap(),
        "- top\n- person\n- organizationalPerson\n- inetOrgPerson\n"
    );
    assert!(yaml["object_types"]["group"].is_sequence());
    // Uncommenting the alternatives gives valid YAML too.
    let uncommented = starter
        .yaml
        .replace("  # - ", "  - ")
        .replace("  #   ", "    ");
    let again: serde_yaml::Value = serde_yaml::from_str(&uncommented).unwrap();
    assert_eq!(
        again["mappings"].as_sequence().unwrap().len(),
        starter.mappings.len() + starter.alternatives.len()
    );
}

#[test]
fn the_mail_domain_is_escaped_into_the_filter() {
    let entries = [user("cn=a").with("mail", &["a@we*ird(x).example", "b@we*ird(x).example"])];
    let report = report_of(&entries);
    let starter = starter(&report, &context("corp", &[]));
    let when = starter.mappings[0].when.as_deref().unwrap();
    assert_eq!(when, "(mail=*@we\\2aird\\28x\\29.example)");
    let filter = Filter::parse(when).unwrap();
    assert!(filter.matches(&entries[0]));
    assert!(!filter.matches(&user("cn=b").with("mail", &["a@weXird(x).example"])));
    let yaml: serde_yaml::Value = serde_yaml::from_str(&starter.yaml).unwrap();
    assert_eq!(yaml["mappings"][0]["when"].as_str(), Some(when));
}

#[test]
fn existing_mappings_are_not_suggested_again_and_their_names_are_taken() {
    let mapping = |name: &str, protocol: &str, value: &str, renamed_from: &[&str]| Mapping {
        name: name.into(),
        protocol: protocol.into(),
        value: Template::parse(value).unwrap(),
        when: None,
        sources: None,
        renamed_from: renamed_from.iter().map(|s| s.to_string()).collect(),
    };
    let existing = [
        mapping("lcs-sip", "lcs", "{msRTCSIP-PrimaryUserAddress|lower}", &[]),
        mapping("aol-from-mail", "aol", "{imName}", &["sametime-from-uid"]),
    ];
    let report = report_of(&directory());
    let starter = starter(&report, &context("corp", &existing));
    let names: Vec<&str> = starter.mappings.iter().map(|s| s.name.as_str()).collect();
    // aol: mail is new (imName is mapped); lcs is covered; the names are free ones.
    assert_eq!(
        names,
        [
            "aol-from-mail-2",
            "jabber-from-jabberid",
            "sametime-from-uid-2"
        ]
    );
    assert!(starter.alternatives.is_empty());
    assert_eq!(
        starter.already_mapped,
        [
            ("aol".into(), "imName".into(), "aol-from-mail".into()),
            (
                "lcs".into(),
                "msRTCSIP-PrimaryUserAddress".into(),
                "lcs-sip".into()
            )
        ]
    );
    assert!(starter.yaml.contains("already mapped by lcs-sip"));
}

#[test]
fn an_attribute_mapped_for_another_protocol_is_not_suggested_again() {
    let existing = [Mapping {
        name: "lcs-from-mail".into(),
        protocol: "lcs".into(),
        value: Template::parse("{mail|lower}").unwrap(),
        when: None,
        sources: None,
        renamed_from: Vec::new(),
    }];
    let report = report_of(&directory());
    let starter = starter(&report, &context("corp", &existing));
    let suggested: Vec<&str> = starter
        .mappings
        .iter()
        .chain(&starter.alternatives)
        .map(|s| s.attribute.as_str())
        .collect();
    assert!(
        !suggested.iter().any(|a| a.eq_ignore_ascii_case("mail")),
        "{suggested:?}"
    );
    assert!(starter
        .already_mapped
        .iter()
        .any(|(_, attribute, mapping)| attribute == "mail" && mapping == "lcs-from-mail"));
    // The protocol of the suggestion is still open: aol is suggested from another
    // attribute.
    assert!(starter.mappings.iter().any(|s| s.protocol == "aol"));
}

#[test]
fn object_types_set_elsewhere_or_no_users_leave_the_section_out() {
    let report = report_of(&directory());
    let mut ctx = context("corp", &[]);
    ctx.object_types_set_in = Some("types.yaml");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&starter(&report, &ctx).yaml).unwrap();
    assert!(yaml.get("object_types").is_none());
    assert!(yaml["mappings"].is_sequence());

    let groups_only = report_of(&[Entry::new("cn=g").with("objectClass", &["groupOfNames"])]);
    let starter = starter(&groups_only, &context("corp", &[]));
    let yaml: serde_yaml::Value = serde_yaml::from_str(&starter.yaml).unwrap();
    assert!(yaml.get("object_types").is_none());
    assert_eq!(yaml["mappings"].as_sequence().map(Vec::len), Some(0));
}

#[test]
fn yaml_scalars_read_back_as_the_same_string() {
    for text in [
        "corp",
        "true",
        "No",
        "null",
        "1",
        "0x1f",
        ".inf",
        "",
        " lead",
        "a: b",
        "#x",
        "a, b]",
        "{mail|lower}",
        "(mail=*@x\\2a)",
        "'\"\\",
        "tab\there",
        "line\nbreak",
        "nel\u{85}ls\u{2028}ps\u{2029}",
        "bom\u{feff}del\u{7f}",
        "Lučić",
        "😀",
    ] {
        for yaml in [
            format!("v: {}", yaml_scalar(text)),
            format!("v: [{}]", yaml_scalar(text)),
            format!("v: {}", yaml_quoted(text)),
        ] {
            let read: serde_yaml::Value =
                serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
            let value = if read["v"].is_sequence() {
                &read["v"][0]
            } else {
                &read["v"]
            };
            assert_eq!(value.as_str(), Some(text), "{yaml:?}");
        }
    }
}
