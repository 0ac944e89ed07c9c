//! The full read of an LDAP source: base, scope, filter and attributes, with Simple Paged
//! Results (RFC 2696) so that every entry arrives even where the server's size limit is
//! below the result. Entries stream to a callback as they arrive: nothing is held here.
//!
//! - Failure is total: an error result on any page, or the connection lost mid-search is
//!   an error, never a short result.
//! - Active Directory's ranged values (`member;range=0-1499`) are read to the end.
//! - Referrals are not followed: a continuation reference (RFC 4511 §4.5.3, the entries
//!   of another naming context) fails the read, naming where it points. Following it
//!   would bind with this source's credentials to a server the config does not name.
//!   Active Directory's domain scope control (`domain_scope: true`) asks the server to
//!   send none, the source then reading its own domain's naming context only.

use std::time::Duration;

use futures_util::future::join_all;
use ldap3::adapters::{Adapter, PagedResults};
use ldap3::asn1::{StructureTag, PL};
use ldap3::controls::RawControl;
use ldap3::{Ldap, Scope as LdapScope, SearchResult};

use super::error::{EntryError, LdapReadError, RangeError};
use super::session::{self, describe, result_text, Credentials};
use crate::config::raw::Scope;
use crate::config::LdapSettings;
use registrar_core::entry::{Attribute, Entry};

/// What a finished search saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchSummary {
    pub entries: u64,
}

/// Active Directory's LDAP_SERVER_DOMAIN_SCOPE_OID: no continuation references to other
/// naming contexts (the configuration partition, DNS application partitions, child
/// domains). Sent critical, so that a server without it refuses the search instead of
/// sending references anyway.
const DOMAIN_SCOPE_CONTROL: &str = "1.2.840.113556.1.4.1339";

/// The controls that bound a search of the source's subtree (`domain_scope`), the full
/// read's and a change feed's alike, so that both see the same entries.
pub(super) fn scope_controls(settings: &LdapSettings) -> Vec<RawControl> {
    let mut controls = Vec::new();
    if settings.domain_scope {
        controls.push(RawControl {
            ctype: DOMAIN_SCOPE_CONTROL.to_string(),
            crit: true,
            val: None,
        });
    }
    controls
}

/// Reads every entry `settings` selects and hands each to `on_entry`, in the order the
/// server sends them. Returns only when the server reported success for the last page.
pub fn read_entries(
    settings: &LdapSettings,
    credentials: &Credentials,
    on_entry: &mut dyn FnMut(Entry),
) -> Result<SearchSummary, LdapReadError> {
    let runtime = session::runtime(settings)?;
    runtime.block_on(read_entries_async(settings, credentials, on_entry))
}

async fn read_entries_async(
    settings: &LdapSettings,
    credentials: &Credentials,
    on_entry: &mut dyn FnMut(Entry),
) -> Result<SearchSummary, LdapReadError> {
    let entry_error = |summary: &SearchSummary, source: EntryError| LdapReadError::Entry {
        base: settings.base_dn.clone(),
        entries: summary.entries,
        source,
    };
    let mut ldap = session::open(settings, credentials).await?;

    let scope = ldap_scope(settings.scope);
    let attributes: Vec<&str> = settings.attributes.iter().map(String::as_str).collect();
    let mut summary = SearchSummary::default();
    let search_error = |summary: &SearchSummary, reason: String| LdapReadError::Search {
        base: settings.base_dn.clone(),
        entries: summary.entries,
        reason,
    };
    // A second handle on the connection, for the searches that complete ranged values
    // while the paged search goes on.
    let mut ranges = ldap.clone();
    let pager: Box<dyn Adapter<_, _>> = Box::new(PagedResults::new(settings.page_size as i32));
    let controls = scope_controls(settings);
    if !controls.is_empty() {
        ldap.with_controls(controls);
    }
    let mut stream = ldap
        .with_timeout(settings.timeout)
        .streaming_search_with(
            vec![pager],
            &settings.base_dn,
            scope,
            &settings.filter,
            attributes,
        )
        .await
        .map_err(|e| search_error(&summary, describe(&e, settings.timeout, "timeout_seconds")))?;
    loop {
        match stream.next().await {
            Ok(Some(item)) if item.is_ref() => {
                return Err(LdapReadError::Referral {
                    base: settings.base_dn.clone(),
                    entries: summary.entries,
                    url: first_reference(item.0),
                })
            }
            Ok(Some(item)) if item.is_intermediate() => {}
            Ok(Some(item)) => {
                let mut entry =
                    entry_from_tag(item.0).map_err(|source| entry_error(&summary, source))?;
                complete_ranged_values(&mut ranges, &mut entry, settings.timeout)
                    .await
                    .map_err(|source| entry_error(&summary, source))?;
                summary.entries += 1;
                on_entry(entry);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(search_error(
                    &summary,
                    describe(&e, settings.timeout, "timeout_seconds"),
                ))
            }
        }
    }
    let result = stream.finish().await;
    if result.rc != 0 {
        return Err(search_error(&summary, result_text(&result)));
    }
    let _ = ldap.unbind().await;
    Ok(summary)
}

/// Reads again the entries at `dns` (a change feed named them), each with a base search
/// under the source's filter, attributes and scope controls, on one connection (32 in
/// flight at a time), and hands
/// `on_entry` its index in `dns` with the entry, or `None` when there is no such entry
/// any more or it no longer matches the filter. Ranged values are read to the end, as in
/// the full read, so that both give the same entry.
pub fn read_each(
    settings: &LdapSettings,
    credentials: &Credentials,
    dns: &[String],
    on_entry: &mut dyn FnMut(usize, Option<Entry>),
) -> Result<(), LdapReadError> {
    let runtime = session::runtime(settings)?;
    runtime.block_on(async {
        let mut ldap = session::open(settings, credentials).await?;
        let attributes: Vec<&str> = settings.attributes.iter().map(String::as_str).collect();
        let attributes = attributes.as_slice();
        for (window, dns) in dns.chunks(SEARCHES_IN_FLIGHT).enumerate() {
            // The window's searches go out together on the one connection (each on a
            // handle of its own), and come back in order.
            let reads = dns.iter().map(|dn| {
                let (mut search, mut ranges) = (ldap.clone(), ldap.clone());
                async move { read_one(&mut search, &mut ranges, settings, dn, attributes).await }
            });
            for (offset, entry) in join_all(reads).await.into_iter().enumerate() {
                on_entry(window * SEARCHES_IN_FLIGHT + offset, entry?);
            }
        }
        let _ = ldap.unbind().await;
        Ok(())
    })
}

/// Base searches of [`read_each`] in flight at once: enough to hide the round trips, few
/// enough not to queue behind a slow server's other work.
const SEARCHES_IN_FLIGHT: usize = 32;

/// LDAP's noSuchObject result code.
const NO_SUCH_OBJECT: u32 = 32;

/// One entry of [`read_each`].
async fn read_one(
    ldap: &mut Ldap,
    ranges: &mut Ldap,
    settings: &LdapSettings,
    dn: &str,
    attributes: &[&str],
) -> Result<Option<Entry>, LdapReadError> {
    let search_error = |reason: String| LdapReadError::Search {
        base: dn.to_string(),
        entries: 0,
        reason,
    };
    let controls = scope_controls(settings);
    if !controls.is_empty() {
        ldap.with_controls(controls);
    }
    let SearchResult(items, result) = ldap
        .with_timeout(settings.timeout)
        .search(dn, LdapScope::Base, &settings.filter, attributes.to_vec())
        .await
        .map_err(|e| search_error(describe(&e, settings.timeout, "timeout_seconds")))?;
    if result.rc == NO_SUCH_OBJECT {
        return Ok(None);
    }
    if result.rc != 0 {
        return Err(search_error(result_text(&result)));
    }
    let mut found = None;
    for item in items {
        if item.is_ref() {
            return Err(LdapReadError::Referral {
                base: dn.to_string(),
                entries: 0,
                url: first_reference(item.0),
            });
        }
        if !item.is_intermediate() && found.is_none() {
            found = Some(item);
        }
    }
    let Some(item) = found else {
        return Ok(None);
    };
    let entry_error = |source: EntryError| LdapReadError::Entry {
        base: dn.to_string(),
        entries: 0,
        source,
    };
    let mut entry = entry_from_tag(item.0).map_err(entry_error)?;
    complete_ranged_values(ranges, &mut entry, settings.timeout)
        .await
        .map_err(entry_error)?;
    Ok(Some(entry))
}

/// The search scope as ldap3 names it.
pub(super) fn ldap_scope(scope: Scope) -> LdapScope {
    match scope {
        Scope::Base => LdapScope::Base,
        Scope::One => LdapScope::OneLevel,
        Scope::Subtree => LdapScope::Subtree,
    }
}

/// Active Directory sends at most `MaxValRange` (1,500) values of an attribute per entry
/// and marks a cut with a range option: `member;range=0-1499`. This reads the rest with
/// base searches of the entry (`member;range=1500-*`, …) until the server answers with
/// a range ending in `*`, and leaves the attribute under its plain name with every
/// value, so that a large group arrives whole (or the read fails: never a short list).
async fn complete_ranged_values(
    ldap: &mut Ldap,
    entry: &mut Entry,
    timeout: Duration,
) -> Result<(), EntryError> {
    while let Some((index, wanted)) = next_range(entry) {
        let answer = ldap
            .with_timeout(timeout)
            .search(
                &entry.dn,
                LdapScope::Base,
                "(objectClass=*)",
                vec![wanted.as_str()],
            )
            .await
            .map_err(|e| EntryError::RangeSearch {
                wanted: wanted.clone(),
                dn: entry.dn.clone(),
                reason: describe(&e, timeout, "timeout_seconds"),
            })?;
        if answer.1.rc != 0 {
            return Err(EntryError::RangeSearch {
                wanted,
                dn: entry.dn.clone(),
                reason: result_text(&answer.1),
            });
        }
        let more = match answer.0.into_iter().find(|item| !item.is_ref()) {
            Some(item) => entry_from_tag(item.0)?,
            None => {
                return Err(EntryError::Gone {
                    wanted,
                    dn: entry.dn.clone(),
                })
            }
        };
        merge_range(&mut entry.attributes[index], more).map_err(|source| EntryError::Range {
            wanted,
            dn: entry.dn.clone(),
            source,
        })?;
    }
    for attribute in &mut entry.attributes {
        if let Some((plain, _, None)) = range_of(&attribute.description) {
            attribute.description = plain;
        }
    }
    Ok(())
}

/// The first URL of a continuation reference (a SEQUENCE OF LDAPURL), as sent: a
/// reference whose form is not that still fails the read, shown as `(unreadable)`.
pub(super) fn first_reference(tag: StructureTag) -> String {
    match tag.payload {
        PL::C(urls) => urls
            .into_iter()
            .find_map(|url| match url.payload {
                PL::P(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                PL::C(_) => None,
            })
            .unwrap_or_else(|| "(unreadable)".to_string()),
        PL::P(_) => "(unreadable)".to_string(),
    }
}

/// The first attribute of `entry` cut short by a range, and the attribute description
/// that asks for the rest.
fn next_range(entry: &Entry) -> Option<(usize, String)> {
    entry
        .attributes
        .iter()
        .enumerate()
        .find_map(
            |(index, attribute)| match range_of(&attribute.description)? {
                (plain, _, Some(high)) => Some((index, format!("{plain};range={}-*", high + 1))),
                (_, _, None) => None,
            },
        )
}

/// Adds the values of the range `more` holds to `cut`, whose description becomes the
/// range both cover (`member;range=0-2999`, or `member;range=0-*` at the end).
fn merge_range(cut: &mut Attribute, more: Entry) -> Result<(), RangeError> {
    let (plain, low, high) = range_of(&cut.description).ok_or(RangeError::NotRanged)?;
    let expected_low = high.map_or(0, |h| h + 1);
    let (next, next_low, next_high) = more
        .attributes
        .into_iter()
        .find_map(|a| match range_of(&a.description) {
            Some((p, low, high)) if p.eq_ignore_ascii_case(&plain) => Some((a, low, high)),
            _ => None,
        })
        .ok_or_else(|| RangeError::NoValues {
            plain: plain.clone(),
        })?;
    if next_low != expected_low {
        return Err(RangeError::WrongStart {
            expected_low,
            sent: next.description,
        });
    }
    if next_high.is_some() && next.values.is_empty() {
        return Err(RangeError::Empty {
            description: next.description,
        });
    }
    cut.values.extend(next.values);
    cut.description = match next_high {
        Some(high) => format!("{plain};range={low}-{high}"),
        None => format!("{plain};range={low}-*"),
    };
    Ok(())
}

/// The description without its range option, and the range: `member;range=0-1499` is
/// `("member", 0, Some(1499))`, `member;range=1500-*` is `("member", 1500, None)`.
fn range_of(description: &str) -> Option<(String, u64, Option<u64>)> {
    let mut options = description.split(';');
    let mut plain = options.next()?.to_string();
    let mut range = None;
    for option in options {
        match option.get(..6) {
            Some(prefix) if prefix.eq_ignore_ascii_case("range=") => {
                let (low, high) = option[6..].split_once('-')?;
                let high = match high {
                    "*" => None,
                    high => Some(high.parse().ok()?),
                };
                range = Some((low.parse().ok()?, high));
            }
            _ => {
                plain.push(';');
                plain.push_str(option);
            }
        }
    }
    range.map(|(low, high)| (plain, low, high))
}

/// An entry from a SearchResultEntry's BER structure, keeping attribute order and bytes.
pub(super) fn entry_from_tag(tag: StructureTag) -> Result<Entry, EntryError> {
    let malformed = |what: &'static str| EntryError::Malformed { what };
    let mut parts = tag
        .expect_constructed()
        .ok_or_else(|| malformed("not a sequence"))?
        .into_iter();
    let dn = parts
        .next()
        .and_then(StructureTag::expect_primitive)
        .ok_or_else(|| malformed("no DN"))?;
    let dn = String::from_utf8(dn).map_err(|_| malformed("DN not UTF-8"))?;
    let mut entry = Entry::new(dn);
    let attributes = parts
        .next()
        .and_then(StructureTag::expect_constructed)
        .ok_or_else(|| malformed("no attribute list"))?;
    for attribute in attributes {
        let mut attribute = attribute
            .expect_constructed()
            .ok_or_else(|| malformed("attribute not a sequence"))?
            .into_iter();
        let description = attribute
            .next()
            .and_then(StructureTag::expect_primitive)
            .and_then(|name| String::from_utf8(name).ok())
            .ok_or_else(|| malformed("attribute name"))?;
        let values = attribute
            .next()
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| malformed("attribute values"))?;
        for value in values {
            let value = value
                .expect_primitive()
                .ok_or_else(|| malformed("attribute value"))?;
            entry.push_value(&description, value);
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::ldap::controls::test_tags::{octets, sequence};
    use ldap3::asn1::{ASNTag, Set, Tag};

    #[test]
    fn entries_keep_attribute_order_and_binary_values() {
        let guid = [0x01u8, 0x02, 0xff, 0x00, 0x80];
        let tag = sequence(vec![
            octets(b"uid=a,dc=example"),
            sequence(vec![
                sequence(vec![
                    octets(b"uid"),
                    Tag::Set(Set {
                        inner: vec![octets(b"a")],
                        ..Default::default()
                    }),
                ]),
                sequence(vec![
                    octets(b"objectGUID"),
                    Tag::Set(Set {
                        inner: vec![octets(&guid)],
                        ..Default::default()
                    }),
                ]),
            ]),
        ])
        .into_structure();
        let entry = entry_from_tag(tag).unwrap();
        assert_eq!(entry.dn, "uid=a,dc=example");
        let names: Vec<_> = entry
            .attributes
            .iter()
            .map(|a| a.description.as_str())
            .collect();
        assert_eq!(names, ["uid", "objectGUID"]);
        assert_eq!(entry.values("objectGUID").next(), Some(&guid[..]));
    }

    #[test]
    fn a_range_that_does_not_continue_is_a_typed_error() {
        let mut cut = Attribute {
            description: "member;range=0-1".to_string(),
            values: vec![b"a".to_vec(), b"b".to_vec()],
        };
        let mut more = Entry::new("cn=g,dc=x");
        more.push_value("member;range=5-*", b"f".to_vec());
        let error = merge_range(&mut cut, more).unwrap_err();
        assert!(
            matches!(&error, RangeError::WrongStart { expected_low: 2, sent } if sent == "member;range=5-*"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "asked for values from 2, the server sent member;range=5-*"
        );
        let error = merge_range(&mut cut, Entry::new("cn=g,dc=x")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the server sent no member;range=… values"
        );
    }

    #[test]
    fn a_malformed_entry_is_an_error_not_a_panic() {
        let tag = sequence(vec![octets(b"uid=a")]).into_structure();
        assert!(entry_from_tag(tag)
            .unwrap_err()
            .to_string()
            .contains("no attribute list"));
        let tag = octets(b"x").into_structure();
        assert!(entry_from_tag(tag).is_err());
    }

    #[test]
    fn a_continuation_reference_names_its_first_url_and_a_malformed_one_does_not_panic() {
        let tag = sequence(vec![
            octets(b"ldap://dc1.corp.example/CN=Configuration,DC=corp,DC=example"),
            octets(b"ldap://dc2.corp.example/"),
        ])
        .into_structure();
        assert_eq!(
            first_reference(tag),
            "ldap://dc1.corp.example/CN=Configuration,DC=corp,DC=example"
        );
        assert_eq!(
            first_reference(sequence(vec![]).into_structure()),
            "(unreadable)"
        );
        assert_eq!(
            first_reference(octets(b"x").into_structure()),
            "(unreadable)"
        );
        let error = LdapReadError::Referral {
            base: "DC=corp,DC=example".to_string(),
            entries: 12,
            url: "ldap://x/\u{202e}".to_string(),
        }
        .to_string();
        assert!(
            error.starts_with(
                "search of \"DC=corp,DC=example\" returned a continuation reference to \
                 \"ldap://x/\\u{202e}\" after 12 entries: referrals are not followed"
            ),
            "{error}"
        );
    }

    #[test]
    fn ranged_attribute_descriptions_parse() {
        assert_eq!(
            range_of("member;range=0-1499"),
            Some(("member".into(), 0, Some(1499)))
        );
        assert_eq!(
            range_of("member;Range=1500-*"),
            Some(("member".into(), 1500, None))
        );
        assert_eq!(
            range_of("cn;lang-fr;range=3-4"),
            Some(("cn;lang-fr".into(), 3, Some(4)))
        );
        assert_eq!(range_of("member"), None);
        assert_eq!(range_of("member;range=x-1"), None);
    }

    #[test]
    fn ranges_merge_in_order_and_end_under_the_plain_name() {
        let values = |range: std::ops::Range<usize>| -> Vec<Vec<u8>> {
            range.map(|n| format!("cn=u{n}").into_bytes()).collect()
        };
        let mut entry = Entry::new("cn=big");
        entry.attributes.push(Attribute {
            description: "member;range=0-1499".into(),
            values: values(0..1500),
        });
        assert_eq!(
            next_range(&entry),
            Some((0, "member;range=1500-*".to_string()))
        );
        let answer = |description: &str, range| {
            let mut more = Entry::new("cn=big");
            more.attributes.push(Attribute {
                description: description.into(),
                values: values(range),
            });
            more
        };
        merge_range(
            &mut entry.attributes[0],
            answer("member;range=1500-2999", 1500..3000),
        )
        .unwrap();
        assert_eq!(
            next_range(&entry),
            Some((0, "member;range=3000-*".to_string()))
        );
        // A range that does not follow on is refused, not merged.
        let mut copy = entry.attributes[0].clone();
        assert!(merge_range(&mut copy, answer("member;range=4000-*", 4000..4001)).is_err());
        merge_range(
            &mut entry.attributes[0],
            answer("member;range=3000-*", 3000..3100),
        )
        .unwrap();
        assert_eq!(next_range(&entry), None);
        assert_eq!(entry.attributes[0].description, "member;range=0-*");
        assert_eq!(entry.attributes[0].values, values(0..3100));
    }
}
