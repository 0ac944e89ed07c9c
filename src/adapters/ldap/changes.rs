//! The change feeds of an LDAP source: which entries changed since a cookie the server
//! gave, without reading the others.
//!
//! - `syncrepl`: RFC 4533 content synchronization in refreshOnly mode, which OpenLDAP
//!   serves with its syncprov overlay. Deletions arrive as such (with a session log), or
//!   as the set of entries still present (the present phase).
//! - `dirsync`: Active Directory's DirSync control, from the naming context holding the
//!   source's base. Deleted objects arrive flagged `isDeleted`, moved and renamed ones
//!   under their new DN.
//!
//! A feed says which entries changed, each by its 16-byte identity (`entryUUID`, or
//! `objectGUID` on Active Directory) with its DN now, or none when it is gone; what they
//! hold now is for the caller to read with the source's own search, so that a delta read
//! and a full read see the same entries. Asked without a cookie, a feed only gives the
//! cookie of now. A cookie the server no longer honours (RFC 4533's
//! e-syncRefreshRequired, any DirSync error result) is a [`FeedOutcome::Refused`], not an
//! error: the caller then reads in full. A connection or bind failure is an error.

use std::collections::HashSet;

use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapResult, ResultEntry, Scope as LdapScope, SearchResult};

use super::controls::{
    self, dirsync_request, parse_dirsync, parse_sync_done, parse_sync_info, parse_sync_state,
    sync_request, EntryState, Malformed, SyncInfo,
};
use super::error::LdapReadError;
use super::read::{entry_from_tag, first_reference, ldap_scope, scope_controls};
use super::session::{self, describe, result_text, Credentials};
use crate::config::LdapSettings;
use registrar_core::dn::normalize_dn;
use registrar_core::entry::Entry;
use registrar_core::filter::Filter;

/// A change feed a server may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// RFC 4533 content synchronization (OpenLDAP's syncprov).
    ContentSync,
    /// Active Directory's DirSync.
    DirSync,
}

impl Feed {
    /// The name a config gives it (`delta: syncrepl | dirsync`).
    pub fn name(self) -> &'static str {
        match self {
            Feed::ContentSync => "syncrepl",
            Feed::DirSync => "dirsync",
        }
    }

    /// The feed the config names (`syncrepl`, `dirsync`).
    pub fn named(name: &str) -> Option<Feed> {
        [Feed::ContentSync, Feed::DirSync]
            .into_iter()
            .find(|feed| feed.name() == name)
    }

    /// The attribute holding an entry's identity as this feed names it: `entryUUID`
    /// (RFC 4530) for content synchronization, `objectGUID` on Active Directory.
    pub fn identity_attribute(self) -> &'static str {
        match self {
            Feed::ContentSync => "entryUUID",
            Feed::DirSync => "objectGUID",
        }
    }

    /// The identity of `entry` as this feed names it, from [`Feed::identity_attribute`]:
    /// an `entryUUID`'s 36-character text as its 16 bytes (RFC 4530), an `objectGUID`'s
    /// 16 bytes as they are. `None` when the entry holds no such value.
    pub fn identity_of(self, entry: &Entry) -> Option<[u8; 16]> {
        let value = entry.values(self.identity_attribute()).next()?;
        match self {
            Feed::DirSync => <[u8; 16]>::try_from(value).ok(),
            Feed::ContentSync => uuid_bytes(value),
        }
    }

    fn control(self) -> &'static str {
        match self {
            Feed::ContentSync => controls::SYNC_REQUEST,
            Feed::DirSync => controls::DIRSYNC,
        }
    }
}

/// One entry that changed: its identity, and its DN now (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedEntry {
    pub id: [u8; 16],
    pub dn: Option<String>,
}

/// How the deletions since the cookie arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletions {
    /// Each deleted entry is among the changes, with no DN.
    Listed,
    /// The server named the entries still present instead (RFC 4533's present phase):
    /// every entry neither among them nor among the changes is gone.
    AllBut(HashSet<[u8; 16]>),
}

/// What changed since a cookie, and the cookie to come back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// In the order the server sent them; an entry may appear more than once.
    pub changed: Vec<ChangedEntry>,
    pub deletions: Deletions,
    pub cookie: Vec<u8>,
}

/// A feed's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedOutcome {
    Changes(Changes),
    /// The server no longer honours the cookie, or refused the feed: read in full.
    Refused {
        reason: String,
    },
}

/// What a server's root DSE says of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerFeatures {
    /// The change feeds among its `supportedControl`s.
    pub feeds: Vec<Feed>,
    /// Its `namingContexts`.
    pub naming_contexts: Vec<String>,
}

/// DirSync's flags: none. Without `LDAP_DIRSYNC_OBJECT_SECURITY` (1) the account needs
/// the "Replicating Directory Changes" right, and in exchange Windows returns deleted
/// objects; with it, deletions the account cannot list would be missed.
const DIRSYNC_FLAGS: i64 = 0;
/// The most a DirSync answer holds before the server says there is more.
const DIRSYNC_MAX_BYTES: i64 = 1 << 20;
/// The filter of a feed's search: every entry (one that left the source's filter changed
/// too), or without a cookie none, so that the feed sends nothing but its cookie.
fn feed_filter(cookie: Option<&[u8]>) -> &'static str {
    match cookie {
        Some(_) => "(objectClass=*)",
        None => "(!(objectClass=*))",
    }
}
/// Where the server says a cookie is too old (RFC 4533 §2.6, e-syncRefreshRequired).
const SYNC_REFRESH_REQUIRED: u32 = 4096;

/// Reads the server's root DSE: the feeds it offers and its naming contexts.
pub fn server_features(
    settings: &LdapSettings,
    credentials: &Credentials,
) -> Result<ServerFeatures, LdapReadError> {
    let runtime = session::runtime(settings)?;
    runtime.block_on(async {
        let mut ldap = session::open(settings, credentials).await?;
        let features = root_dse(&mut ldap, settings).await;
        let _ = ldap.unbind().await;
        features
    })
}

/// What changed under the source's base since `cookie` (none: only the cookie of now).
pub fn changes_since(
    settings: &LdapSettings,
    credentials: &Credentials,
    feed: Feed,
    cookie: Option<&[u8]>,
) -> Result<FeedOutcome, LdapReadError> {
    let runtime = session::runtime(settings)?;
    runtime.block_on(async {
        let mut ldap = session::open(settings, credentials).await?;
        let outcome = match feed {
            Feed::ContentSync => content_sync(&mut ldap, settings, cookie).await,
            Feed::DirSync => dirsync(&mut ldap, settings, cookie).await,
        };
        let _ = ldap.unbind().await;
        outcome
    })
}

fn feed_error(feed: Feed, settings: &LdapSettings, reason: String) -> LdapReadError {
    LdapReadError::Changes {
        feed: feed.name(),
        base: settings.base_dn.clone(),
        reason,
    }
}

async fn root_dse(
    ldap: &mut Ldap,
    settings: &LdapSettings,
) -> Result<ServerFeatures, LdapReadError> {
    let error = |reason: String| LdapReadError::Search {
        base: String::new(),
        entries: 0,
        reason,
    };
    let SearchResult(entries, result) = ldap
        .with_timeout(settings.timeout)
        .search(
            "",
            LdapScope::Base,
            "(objectClass=*)",
            vec!["supportedControl", "namingContexts"],
        )
        .await
        .map_err(|e| error(describe(&e, settings.timeout, "timeout_seconds")))?;
    if result.rc != 0 {
        return Err(error(result_text(&result)));
    }
    let mut features = ServerFeatures::default();
    let Some(item) = entries.into_iter().find(|item| !item.is_ref()) else {
        return Ok(features);
    };
    let entry = entry_from_tag(item.0).map_err(|e| error(e.to_string()))?;
    let text = |name: &str| -> Vec<String> {
        entry
            .values(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect()
    };
    let controls = text("supportedControl");
    features.feeds = [Feed::ContentSync, Feed::DirSync]
        .into_iter()
        .filter(|feed| controls.iter().any(|oid| oid == feed.control()))
        .collect();
    features.naming_contexts = text("namingContexts");
    Ok(features)
}

/// RFC 4533 refreshOnly from `cookie`, over the source's whole subtree as the full read
/// bounds it (`domain_scope`), every entry (not only those the source's filter selects).
async fn content_sync(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    cookie: Option<&[u8]>,
) -> Result<FeedOutcome, LdapReadError> {
    let feed = Feed::ContentSync;
    let fail = |reason: String| feed_error(feed, settings, reason);
    let broken = |error: Malformed| feed_error(feed, settings, error.to_string());
    let filter = feed_filter(cookie);
    let mut controls = scope_controls(settings);
    controls.push(sync_request(cookie));
    let mut stream = ldap
        .with_controls(controls)
        .with_timeout(settings.timeout)
        .streaming_search(
            &settings.base_dn,
            ldap_scope(settings.scope),
            filter,
            vec!["1.1"],
        )
        .await
        .map_err(|e| fail(describe(&e, settings.timeout, "timeout_seconds")))?;
    let mut changed = Vec::new();
    let mut present = HashSet::new();
    let mut latest_cookie = None;
    loop {
        let item = match stream.next().await {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => return Err(fail(describe(&e, settings.timeout, "timeout_seconds"))),
        };
        if item.is_ref() {
            return Err(LdapReadError::Referral {
                base: settings.base_dn.clone(),
                entries: changed.len() as u64,
                url: first_reference(item.0),
            });
        }
        if item.is_intermediate() {
            match parse_sync_info(item.0).map_err(broken)? {
                Some(SyncInfo::NewCookie(new)) => latest_cookie = Some(new),
                Some(SyncInfo::PhaseDone { cookie }) => latest_cookie = cookie.or(latest_cookie),
                Some(SyncInfo::IdSet {
                    cookie,
                    refresh_deletes,
                    uuids,
                }) => {
                    latest_cookie = cookie.or(latest_cookie);
                    for id in uuids {
                        if refresh_deletes {
                            changed.push(ChangedEntry { id, dn: None });
                        } else {
                            present.insert(id);
                        }
                    }
                }
                None => {}
            }
            continue;
        }
        let state = control_value(&item, controls::SYNC_STATE)
            .ok_or_else(|| fail("an entry came without its sync state control".to_string()))
            .and_then(|value| parse_sync_state(value).map_err(broken))?;
        let dn = entry_from_tag(item.0).map_err(|e| fail(e.to_string()))?.dn;
        match state.state {
            EntryState::Present => {
                present.insert(state.uuid);
            }
            EntryState::Add | EntryState::Modify => changed.push(ChangedEntry {
                id: state.uuid,
                dn: Some(dn),
            }),
            EntryState::Delete => changed.push(ChangedEntry {
                id: state.uuid,
                dn: None,
            }),
        }
    }
    let result = stream.finish().await;
    if result.rc == SYNC_REFRESH_REQUIRED {
        return Ok(FeedOutcome::Refused {
            reason: format!(
                "the server asks for a full refresh ({})",
                result_text(&result)
            ),
        });
    }
    if result.rc != 0 {
        return Err(fail(result_text(&result)));
    }
    let done = result_control(&result, controls::SYNC_DONE)
        .map(|value| parse_sync_done(value).map_err(broken))
        .transpose()?;
    let refresh_deletes = done.as_ref().is_some_and(|done| done.refresh_deletes);
    // A server that does not know the cookie it was given answers with none (OpenLDAP
    // sends an empty one): nothing to continue from, so read in full.
    let Some(next_cookie) = done
        .and_then(|done| done.cookie)
        .or(latest_cookie)
        .or_else(|| cookie.map(<[u8]>::to_vec))
        .filter(|next| !next.is_empty())
    else {
        return Ok(FeedOutcome::Refused {
            reason: "the server sent no cookie to continue from".to_string(),
        });
    };
    // Without a cookie nothing was asked for but the cookie of now.
    let deletions = if refresh_deletes || cookie.is_none() {
        Deletions::Listed
    } else {
        Deletions::AllBut(present)
    };
    Ok(FeedOutcome::Changes(Changes {
        changed,
        deletions,
        cookie: next_cookie,
    }))
}

/// DirSync from `cookie` over the naming context holding the source's base, answer after
/// answer while the server says it has more.
async fn dirsync(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    cookie: Option<&[u8]>,
) -> Result<FeedOutcome, LdapReadError> {
    let feed = Feed::DirSync;
    let fail = |reason: String| feed_error(feed, settings, reason);
    let broken = |error: Malformed| feed_error(feed, settings, error.to_string());
    let features = root_dse(ldap, settings).await?;
    let Some(naming_context) = naming_context_of(&settings.base_dn, &features.naming_contexts)
    else {
        return Ok(FeedOutcome::Refused {
            reason: format!(
                "no naming context of the server holds {:?}",
                settings.base_dn
            ),
        });
    };
    let filter = feed_filter(cookie);
    // DirSync sends an object when one of the attributes asked for changed: what the
    // source reads, what its filter tests (an object that enters or leaves it), and what
    // says an object moved or went.
    let source_filter = Filter::parse(&settings.filter).ok();
    let tested = source_filter.iter().flat_map(Filter::attributes);
    let mut attributes: Vec<&str> = Vec::new();
    let reads = settings.attributes.iter().map(String::as_str);
    for wanted in reads
        .chain(tested)
        .chain(["objectGUID", "name", "isDeleted"])
    {
        if !attributes.iter().any(|a| a.eq_ignore_ascii_case(wanted)) {
            attributes.push(wanted);
        }
    }
    let mut changed = Vec::new();
    let mut cookie = cookie.map(<[u8]>::to_vec).unwrap_or_default();
    loop {
        let SearchResult(entries, result) = ldap
            .with_controls(dirsync_request(DIRSYNC_FLAGS, DIRSYNC_MAX_BYTES, &cookie))
            .with_timeout(settings.timeout)
            .search(
                &naming_context,
                LdapScope::Subtree,
                filter,
                attributes.clone(),
            )
            .await
            .map_err(|e| fail(describe(&e, settings.timeout, "timeout_seconds")))?;
        if result.rc != 0 {
            return Ok(FeedOutcome::Refused {
                reason: format!("the server refused DirSync ({})", result_text(&result)),
            });
        }
        for item in entries {
            // DirSync answers with no references; one is no change of this domain.
            if item.is_ref() {
                continue;
            }
            let entry = entry_from_tag(item.0).map_err(|e| fail(e.to_string()))?;
            changed.push(changed_object(entry).map_err(broken)?);
        }
        let response = result_control(&result, controls::DIRSYNC)
            .ok_or_else(|| fail("the server sent no DirSync response control".to_string()))
            .and_then(|value| parse_dirsync(value).map_err(broken))?;
        cookie = response.cookie;
        if !response.more {
            break;
        }
    }
    if cookie.is_empty() {
        return Err(fail("the server sent an empty cookie".to_string()));
    }
    Ok(FeedOutcome::Changes(Changes {
        changed,
        deletions: Deletions::Listed,
        cookie,
    }))
}

/// One object DirSync sent: its `objectGUID`, and its DN unless it is deleted.
fn changed_object(entry: Entry) -> Result<ChangedEntry, Malformed> {
    let guid = entry
        .values("objectGUID")
        .next()
        .and_then(|value| <[u8; 16]>::try_from(value).ok())
        .ok_or(Malformed {
            what: "DirSync object (no 16-byte objectGUID)",
        })?;
    let deleted = entry
        .values("isDeleted")
        .any(|value| value.eq_ignore_ascii_case(b"TRUE"));
    Ok(ChangedEntry {
        id: guid,
        dn: (!deleted).then_some(entry.dn),
    })
}

/// The 16 bytes of a UUID written as RFC 4122 text (`8-4-4-4-12` hex digits).
fn uuid_bytes(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 36 || [8, 13, 18, 23].iter().any(|&dash| text[dash] != b'-') {
        return None;
    }
    let digits: Vec<u8> = text.iter().copied().filter(|&c| c != b'-').collect();
    let mut bytes = [0u8; 16];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

/// The longest of `naming_contexts` at or above `base`.
fn naming_context_of(base: &str, naming_contexts: &[String]) -> Option<String> {
    let base = normalize_dn(base);
    naming_contexts
        .iter()
        .filter(|context| {
            let context = normalize_dn(context);
            base == context || base.ends_with(&format!(",{context}"))
        })
        .max_by_key(|context| context.len())
        .cloned()
}

/// The value of the control `oid` on a search result entry.
fn control_value<'e>(item: &'e ResultEntry, oid: &str) -> Option<&'e [u8]> {
    raw_value(item.1.iter().map(|control| &control.1), oid)
}

/// The value of the control `oid` on a search's result.
fn result_control<'r>(result: &'r LdapResult, oid: &str) -> Option<&'r [u8]> {
    raw_value(result.ctrls.iter().map(|control| &control.1), oid)
}

fn raw_value<'c>(
    mut controls: impl Iterator<Item = &'c RawControl>,
    oid: &str,
) -> Option<&'c [u8]> {
    controls
        .find(|control| control.ctype == oid)
        .and_then(|control| control.val.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_naming_context_is_the_longest_one_holding_the_base() {
        let contexts = [
            "DC=corp,DC=example".to_string(),
            "CN=Configuration,DC=corp,DC=example".to_string(),
            "DC=emea,DC=corp,DC=example".to_string(),
        ];
        assert_eq!(
            naming_context_of("OU=People,DC=EMEA,dc=corp,DC=example", &contexts).as_deref(),
            Some("DC=emea,DC=corp,DC=example")
        );
        assert_eq!(
            naming_context_of("dc=corp,dc=example", &contexts).as_deref(),
            Some("DC=corp,DC=example")
        );
        assert_eq!(naming_context_of("DC=other,DC=example", &contexts), None);
        assert_eq!(naming_context_of("DC=xcorp,DC=example", &contexts), None);
    }

    #[test]
    fn an_identity_is_the_16_bytes_of_an_entry_uuid_or_an_object_guid() {
        let mut entry = Entry::new("cn=a,dc=x".to_string());
        entry.push_value(
            "entryUUID",
            b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".to_vec(),
        );
        assert_eq!(
            Feed::ContentSync.identity_of(&entry),
            Some([
                0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
                0xe1, 0xf0
            ])
        );
        assert_eq!(Feed::DirSync.identity_of(&entry), None);
        for broken in [
            &b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f"[..],
            b"0f1e2d3c-4b5a-6978-8796+a5b4c3d2e1f0",
            b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1é".as_bytes(),
        ] {
            let mut entry = Entry::new("cn=b,dc=x".to_string());
            entry.push_value("entryUUID", broken.to_vec());
            assert_eq!(Feed::ContentSync.identity_of(&entry), None, "{broken:?}");
        }
        let mut guid = Entry::new("CN=c,DC=x".to_string());
        guid.push_value("objectGUID", vec![9; 16]);
        assert_eq!(Feed::DirSync.identity_of(&guid), Some([9; 16]));
        assert_eq!(Feed::named("dirsync"), Some(Feed::DirSync));
        assert_eq!(Feed::named("auto"), None);
    }

    #[test]
    fn a_dirsync_object_is_its_guid_and_its_dn_unless_deleted() {
        let mut entry = Entry::new("CN=a,DC=x".to_string());
        entry.push_value("objectGUID", vec![7; 16]);
        assert_eq!(
            changed_object(entry.clone()),
            Ok(ChangedEntry {
                id: [7; 16],
                dn: Some("CN=a,DC=x".to_string())
            })
        );
        entry.push_value("isDeleted", b"TRUE".to_vec());
        assert_eq!(
            changed_object(entry),
            Ok(ChangedEntry {
                id: [7; 16],
                dn: None
            })
        );
        let mut short = Entry::new("CN=b,DC=x".to_string());
        short.push_value("objectGUID", vec![1; 4]);
        assert!(changed_object(short).is_err());
    }
}
