//! The starter's heuristics: which attributes likely hold IM names, for which protocol,
//! with which template and filter, and the suggested mappings they give.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use crate::filter::{escape_value, Filter};
use crate::template::Template;

use super::count::{AttributeCount, Report};
use super::sample::Sample;
use super::suggestions::{Starter, StarterContext, Suggestion};
use super::yaml::{plural, starter_yaml};

/// A candidate before naming: the protocol, how strong it is (lower is better), the
/// template and filter.
pub(super) struct Candidate<'r> {
    pub(super) protocol: &'static str,
    pub(super) rank: u8,
    pub(super) attribute: &'r AttributeCount,
    pub(super) users: u64,
    pub(super) value: String,
    pub(super) when: Option<String>,
    pub(super) reason: String,
}

/// The likely IM attribute `attribute` is, if any: at most one candidate per attribute,
/// from the first rule that fits. Attributes with options, secret ones, ones that are
/// mostly not text, and ones no user entry holds are never candidates.
///
/// | attribute | protocol | value |
/// |---|---|---|
/// | mostly `sip:` values (`msRTCSIP-PrimaryUserAddress` first) | `lcs` | `{a\|strip_prefix:sip:\|lower}` |
/// | `jabberID`, `xmppAddr`, `jid`, names with `jabber`/`xmpp`, or mostly `xmpp:` values | `jabber` | `{a\|lower}` (with `strip_prefix:xmpp:` when some have it) |
/// | names with `screenname`, `aim`, `aimId`, `aolId` | `aol` | `{a\|lower}` |
/// | `mail` with mostly email-shaped values | `aol` | `{mail\|lower\|local_part}`, `when` the most common domain |
/// | `imName`, `imAddress`, `imHandle`, `imId`, `imAccount` | `aol` | `{a\|lower}` (`local_part` when email-shaped) |
/// | `userPrincipalName` (email-shaped) | `lcs` | `{userPrincipalName\|lower}` |
/// | `uid`, then `sAMAccountName` | `sametime` | `{a\|lower}` |
pub(super) fn candidate<'r>(
    report: &Report,
    attribute: &'r AttributeCount,
) -> Option<Candidate<'r>> {
    let shape = &attribute.shape;
    let users = report.user_entries(&attribute.attribute);
    let mostly = |n: u64| n > 0 && 2 * n > attribute.values;
    if attribute.attribute.contains(';')
        || attribute.sample == Sample::Hidden
        || users == 0
        || !mostly(shape.text)
    {
        return None;
    }
    let a = attribute.attribute.as_str();
    let name = a.to_ascii_lowercase();
    let make = |protocol, rank, value: String, when, reason: String| Candidate {
        protocol,
        rank,
        attribute,
        users,
        value,
        when,
        reason,
    };
    let emails = mostly(shape.email);
    if mostly(shape.sip) {
        let rank = if name == "msrtcsip-primaryuseraddress" {
            0
        } else {
            1
        };
        return Some(make(
            "lcs",
            rank,
            format!("{{{a}|strip_prefix:sip:|lower}}"),
            None,
            "sip: addresses".to_string(),
        ));
    }
    let jabber_name =
        name.contains("jabber") || name.contains("xmpp") || name == "jid" || name == "imjabber";
    if jabber_name || mostly(shape.xmpp) {
        let value = if shape.xmpp > 0 {
            format!("{{{a}|strip_prefix:xmpp:|lower}}")
        } else {
            format!("{{{a}|lower}}")
        };
        let reason = if jabber_name {
            "a Jabber/XMPP address by its name"
        } else {
            "xmpp: addresses"
        };
        return Some(make(
            "jabber",
            u8::from(!jabber_name),
            value,
            None,
            reason.to_string(),
        ));
    }
    if name.contains("screenname") || matches!(name.as_str(), "aim" | "aimid" | "aolid") {
        return Some(make(
            "aol",
            0,
            format!("{{{a}|lower}}"),
            None,
            "a screen name by its name".to_string(),
        ));
    }
    if name == "mail" && emails {
        let when = shape
            .top_domain
            .as_ref()
            .map(|domain| format!("({a}=*@{})", escape_value(domain)));
        return Some(make(
            "aol",
            1,
            format!("{{{a}|lower|local_part}}"),
            when,
            "email addresses".to_string(),
        ));
    }
    let im_name = name
        .strip_prefix("im")
        .is_some_and(|rest| matches!(rest, "name" | "address" | "handle" | "id" | "account"));
    if im_name {
        let value = if emails {
            format!("{{{a}|lower|local_part}}")
        } else {
            format!("{{{a}|lower}}")
        };
        return Some(make(
            "aol",
            2,
            value,
            None,
            "an IM name by its name".to_string(),
        ));
    }
    if name == "userprincipalname" && emails {
        return Some(make(
            "lcs",
            2,
            format!("{{{a}|lower}}"),
            None,
            "sign-in names (user principal names)".to_string(),
        ));
    }
    if name == "uid" || name == "samaccountname" {
        return Some(make(
            "sametime",
            u8::from(name != "uid"),
            format!("{{{a}|lower}}"),
            None,
            "login names".to_string(),
        ));
    }
    None
}

/// Builds the starter configuration for `report`'s source.
pub fn starter(report: &Report, context: &StarterContext<'_>) -> Starter {
    let mut candidates: Vec<Candidate<'_>> = report
        .attributes
        .iter()
        .filter_map(|attribute| candidate(report, attribute))
        // Never suggest what would not load.
        .filter(|c| Template::parse(&c.value).is_ok())
        .filter(|c| c.when.as_deref().is_none_or(|w| Filter::parse(w).is_ok()))
        .collect();
    candidates.sort_by(|a, b| {
        (
            a.protocol,
            a.rank,
            Reverse(a.users),
            a.attribute.attribute.to_ascii_lowercase(),
        )
            .cmp(&(
                b.protocol,
                b.rank,
                Reverse(b.users),
                b.attribute.attribute.to_ascii_lowercase(),
            ))
    });

    let mut taken: BTreeSet<&str> = BTreeSet::new();
    for mapping in context.existing {
        taken.insert(&mapping.name);
        taken.extend(mapping.renamed_from.iter().map(String::as_str));
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut unique_name = |protocol: &str, attribute: &str| {
        let stem: String = format!("{protocol}-from-{}", attribute.to_ascii_lowercase())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let mut name = stem.clone();
        let mut n = 2;
        while taken.contains(name.as_str()) || names.contains(&name) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        names.insert(name.clone());
        name
    };

    let mut mappings = Vec::new();
    let mut alternatives = Vec::new();
    let mut already_mapped = Vec::new();
    let mut covered_protocols: BTreeSet<&str> = BTreeSet::new();
    for candidate in &candidates {
        // An attribute the config already maps from this source, for any protocol, is
        // not suggested again (the README's promise); its protocol counts as covered only
        // when the mapping is for that protocol.
        let existing = context.existing.iter().find(|m| {
            m.reads(context.source)
                && m.value
                    .attributes()
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&candidate.attribute.attribute))
        });
        if let Some(existing) = existing {
            if existing.protocol == candidate.protocol {
                covered_protocols.insert(candidate.protocol);
            }
            if already_mapped
                .iter()
                .any(|(_, attribute, _): &(String, String, String)| {
                    attribute.eq_ignore_ascii_case(&candidate.attribute.attribute)
                })
            {
                continue;
            }
            already_mapped.push((
                candidate.protocol.to_string(),
                candidate.attribute.attribute.clone(),
                existing.name.clone(),
            ));
            continue;
        }
        let suggestion = Suggestion {
            name: unique_name(candidate.protocol, &candidate.attribute.attribute),
            protocol: candidate.protocol.to_string(),
            attribute: candidate.attribute.attribute.clone(),
            value: candidate.value.clone(),
            when: candidate.when.clone(),
            reason: format!(
                "{} on {} user {}{}",
                candidate.reason,
                candidate.users,
                plural(candidate.users, "entry", "entries"),
                if candidate.when.is_some() {
                    "; when: the most common domain"
                } else {
                    ""
                }
            ),
        };
        if covered_protocols.insert(candidate.protocol) {
            mappings.push(suggestion);
        } else {
            alternatives.push(suggestion);
        }
    }
    let yaml = starter_yaml(report, context, &mappings, &alternatives, &already_mapped);
    Starter {
        mappings,
        alternatives,
        already_mapped,
        yaml,
    }
}
