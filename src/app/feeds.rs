//! LDAP sources read through their server's change feed (DESIGN.md, "LDAP delta read"):
//! what `--mode delta` reads of an LDAP source, and what an apply keeps so that the next
//! delta can.
//!
//! An apply that reads an LDAP source in full first asks its feed (`delta:`; with `auto`
//! the one the server's `supportedControl` offers) for the cookie of now, then reads every
//! entry with its identity (`entryUUID`, `objectGUID`), spooling each to a temporary file
//! as it passes, and keeps that snapshot with the cookie in its transaction
//! ([`FeedKeep::Whole`]). A delta read asks the feed what changed since the kept cookie
//! and reads those entries again with the source's own search ([`ldap::read_each`]),
//! with the entries whose values name them (`ReadAgain`: Active Directory re-renders a
//! group's `member` and keeps `memberOf` as back links, changes no feed reports):
//! then either every kept entry it did not touch streams with them (and an apply keeps
//! the whole snapshot again), or a delta plan by region reads only the touched ones and
//! an apply writes only those ([`FeedKeep::Advance`]). The cookie is taken before the
//! entries are read, so a change made meanwhile is read again by the next delta, never
//! lost; reading an entry twice is harmless.
//!
//! A delta read falls back to a full read, with one note, when the kept snapshot was read
//! with another search (URL, bind DN, base, scope, filter, attributes, `domain_scope`),
//! through another feed than `delta:` names now, or when the server no longer honours the
//! cookie. A source whose filter or rules read a back link is never fed
//! ([`back_link_read`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};

use sha2::{Digest, Sha256};

use super::error::AppError;
use super::snapshots::{kept_entry, stream_kept};
use super::sources::{
    hex_digest, ldap_credentials, read_ldap, source_error, EntrySum, InputsDigest,
};
use crate::adapters::ldap::{self, ChangedEntry, Credentials, Deletions, Feed, FeedOutcome};
use crate::adapters::ldif::entry_record;
use crate::adapters::store::{KeptFeed, KeptSnapshot, Store};
use crate::adapters::tree::Tree;
use crate::config::raw::{DeltaFeed, Scope};
use crate::config::{LdapBind, LdapSettings, SourceSettings};
use registrar_core::dn::{normalize_dn, Dn};
use registrar_core::entry::Entry;
use registrar_core::filter::Filter;
use registrar_core::matched::Watch;
use registrar_core::model::Rules;
use registrar_core::plan::ImportedFile;
use registrar_core::quote::quote_for_message;

/// What an apply keeps of an LDAP source read through its change feed.
#[derive(Debug)]
pub enum FeedKeep {
    /// The whole snapshot, as it was read and spooled, with the cookie taken before.
    Whole {
        source: String,
        search: ImportedFile,
        feed: KeptFeed,
        spool: Spool,
    },
    /// The kept snapshot brought forward by what the feed changed since `from`: `put`
    /// (by normalised DN, with identities) and `remove`.
    Advance {
        source: String,
        search: ImportedFile,
        from: Vec<u8>,
        to: KeptFeed,
        put: Vec<(String, Entry, [u8; 16])>,
        remove: Vec<String>,
    },
}

impl FeedKeep {
    /// The source it keeps.
    pub(super) fn source(&self) -> &str {
        match self {
            FeedKeep::Whole { source, .. } | FeedKeep::Advance { source, .. } => source,
        }
    }
}

/// An LDAP source's search as its kept snapshot records it: `path` names it (URL and
/// base), `digest` covers everything that decides which entries it reads and what they
/// hold: URL, bind DN, base, scope, `domain_scope`, filter and attributes.
pub(super) fn search_of(settings: &LdapSettings) -> ImportedFile {
    let mut digest = Sha256::new();
    let bind = match &settings.bind {
        LdapBind::Anonymous => "",
        LdapBind::Simple { dn, .. } => dn.as_str(),
    };
    let scope = match settings.scope {
        Scope::Base => "base",
        Scope::One => "one",
        Scope::Subtree => "subtree",
    };
    let domain_scope = if settings.domain_scope { "1" } else { "0" };
    for part in [
        settings.url.as_str(),
        bind,
        &settings.base_dn,
        scope,
        domain_scope,
        &settings.filter,
    ]
    .into_iter()
    .chain(settings.attributes.iter().map(String::as_str))
    {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    ImportedFile {
        path: format!("{} {}", settings.url, settings.base_dn),
        digest: hex_digest(digest),
    }
}

/// `settings` asking for `feed`'s identity attribute too, and whether it had to be
/// added (then [`strip_identity`] takes it out of each entry again, so that the entries
/// are the ones a read without a feed gives). `*` covers `objectGUID`, `+` `entryUUID`.
fn with_identity(settings: &LdapSettings, feed: Feed) -> (LdapSettings, bool) {
    let attribute = feed.identity_attribute();
    let covered_by = match feed {
        Feed::DirSync => "*",
        Feed::ContentSync => "+",
    };
    let covered = settings
        .attributes
        .iter()
        .any(|a| a.eq_ignore_ascii_case(attribute) || a == covered_by);
    let mut settings = settings.clone();
    if !covered {
        settings.attributes.push(attribute.to_string());
    }
    (settings, !covered)
}

/// `entry` without the identity attribute [`with_identity`] added.
fn strip_identity(entry: &mut Entry, feed: Feed, added: bool) {
    if added {
        let attribute = feed.identity_attribute();
        entry
            .attributes
            .retain(|a| !a.description.eq_ignore_ascii_case(attribute));
    }
}

/// Attributes a server keeps as the other side of a link (Active Directory's back links,
/// never replicated; OpenLDAP's `memberOf` as dynlist computes it): a change feed never
/// names an entry whose back link changed. Active Directory names the others of their
/// kind with the suffix `BL`.
const BACK_LINKS: [&str; 5] = [
    "memberOf",
    "directReports",
    "managedObjects",
    "masteredBy",
    "isMemberOfPartialAttributeSet",
];

/// The back link (see [`BACK_LINKS`]) the source's filter tests, its attribute list
/// names or the rules read, if any: then no feed can keep its snapshot true.
pub(super) fn back_link_read(
    rules: &Rules,
    source: &SourceSettings,
    settings: &LdapSettings,
) -> Option<String> {
    let filter = Filter::parse(&settings.filter).ok();
    let tested = filter.iter().flat_map(Filter::attributes);
    let listed = settings.attributes.iter().map(String::as_str);
    let watch = Watch::new(rules);
    let read = rules
        .sources
        .iter()
        .position(|rule| rule.name == source.name)
        .map(|index| watch.attributes_of(index))
        .unwrap_or_default()
        .iter()
        .map(String::as_str);
    let back_link = |name: &&str| {
        let plain = name.split(';').next().unwrap_or(name);
        BACK_LINKS
            .iter()
            .any(|link| link.eq_ignore_ascii_case(plain))
            || plain.ends_with("BL")
    };
    tested
        .chain(listed)
        .chain(read)
        .find(back_link)
        .map(str::to_string)
}

/// Why `settings` cannot be read through a feed under `rules` although `delta:` allows
/// one, if it cannot.
pub(super) fn feedless(
    rules: &Rules,
    source: &SourceSettings,
    settings: &LdapSettings,
) -> Option<String> {
    back_link_read(rules, source, settings).map(|attribute| {
        format!("its filter or rules read {attribute}, a back link no change feed reports")
    })
}

/// The feed an apply keeps `settings`' snapshot through: the one `delta:` names, or
/// with `auto` the one the server offers (`None`: it offers none).
fn chosen_feed(
    source: &SourceSettings,
    settings: &LdapSettings,
    credentials: &Credentials,
) -> Result<Option<Feed>, AppError> {
    Ok(match settings.delta {
        DeltaFeed::None => None,
        DeltaFeed::Dirsync => Some(Feed::DirSync),
        DeltaFeed::Syncrepl => Some(Feed::ContentSync),
        DeltaFeed::Auto => {
            let features = ldap::server_features(settings, credentials)
                .map_err(|error| source_error(source, error))?;
            // Active Directory's own feed first: Samba offers both.
            [Feed::DirSync, Feed::ContentSync]
                .into_iter()
                .find(|feed| features.feeds.contains(feed))
        }
    })
}

/// Reads the LDAP source `source` in full, every entry to `on_entry`. With `keep` (an
/// apply) and a feed to keep it through, the cookie of now is taken first and every
/// entry spooled with its identity: the snapshot an apply keeps. `delta` says whether
/// the run reads in delta (then a source that cannot keep one gets a note).
pub(super) fn read_in_full(
    (rules, source, settings): (&Rules, &SourceSettings, &LdapSettings),
    files: &Tree,
    (keep, delta): (bool, bool),
    digest: &mut InputsDigest,
    on_entry: &mut dyn FnMut(Entry),
) -> Result<Option<FeedKeep>, AppError> {
    let credentials = ldap_credentials(source, settings, files)?;
    let note = |why: String| {
        if delta {
            eprintln!(
                "note: source {}: {why}; --mode delta reads it in full every run",
                source.name
            );
        }
    };
    let feedless = match settings.delta {
        DeltaFeed::None => None,
        _ => feedless(rules, source, settings),
    };
    let chosen = match feedless {
        Some(why) => {
            note(why);
            None
        }
        None if keep => Some(chosen_feed(source, settings, &credentials)?),
        None => None,
    };
    if chosen == Some(None) && settings.delta == DeltaFeed::Auto {
        note("the server offers no change feed (DirSync, syncprov)".to_string());
    }
    let feed = chosen.flatten();
    let cookie = match feed {
        Some(feed) => match ldap::changes_since(settings, &credentials, feed, None)
            .map_err(|error| source_error(source, error))?
        {
            FeedOutcome::Changes(changes) => Some((feed, changes.cookie)),
            FeedOutcome::Refused { reason } => {
                note(format!(
                    "the server refused its {} feed ({reason})",
                    feed.name()
                ));
                None
            }
        },
        None => None,
    };
    let mut sum = EntrySum::default();
    let Some((feed, cookie)) = cookie else {
        read_ldap(source, settings, &credentials, &mut |entry| {
            sum.add(&entry);
            on_entry(entry);
        })?;
        digest.entries(&sum);
        return Ok(None);
    };
    let (read_settings, added) = with_identity(settings, feed);
    let mut spool = Spool::new();
    let mut missing = None;
    read_ldap(source, &read_settings, &credentials, &mut |mut entry| {
        match feed.identity_of(&entry) {
            Some(identity) => {
                strip_identity(&mut entry, feed, added);
                spool.push(identity, &entry);
            }
            None => missing = missing.take().or(Some(entry.dn.clone())),
        }
        sum.add(&entry);
        on_entry(entry);
    })?;
    let search = search_of(settings);
    whole_keep(
        source,
        (feed, cookie, search),
        missing,
        sum,
        Some(spool),
        digest,
    )
}

/// What an apply keeps of a source read whole through `feed` (its cookie, its search)
/// into `spool`: nothing, with a note, when an entry (`missing`) came without its
/// identity (the bind account may not read it, say).
fn whole_keep(
    source: &SourceSettings,
    (feed, cookie, search): (Feed, Vec<u8>, ImportedFile),
    missing: Option<String>,
    sum: EntrySum,
    spool: Option<Spool>,
    digest: &mut InputsDigest,
) -> Result<Option<FeedKeep>, AppError> {
    digest.entries(&sum);
    if let Some(dn) = missing {
        eprintln!(
            "note: source {}: entry {} holds no {} (the identity its {} feed names it by), \
             so no snapshot is kept and --mode delta reads it in full",
            source.name,
            quote_for_message(&dn),
            feed.identity_attribute(),
            feed.name()
        );
        return Ok(None);
    }
    let spool = spool.and_then(|spool| spool.finish(&source.name));
    Ok(spool.map(|spool| FeedKeep::Whole {
        source: source.name.clone(),
        search,
        feed: KeptFeed {
            feed: feed.name().to_string(),
            cookie,
            entries_digest: sum.to_text(),
        },
        spool,
    }))
}

/// What a source's feed changed since its kept snapshot's cookie.
pub(super) struct FeedChanges {
    /// By normalised DN, every entry the changes touched: what it is now, with its
    /// identity, or `None` when it is gone (deleted, moved away, out of the filter).
    pub(super) touched: BTreeMap<String, Option<(Entry, [u8; 16])>>,
    /// The kept entry of each touched key, as the kept snapshot has it (`None`: none).
    before: BTreeMap<String, Option<Entry>>,
    search: ImportedFile,
    from: KeptFeed,
    /// The digest of the kept entries, `from`'s.
    kept_sum: EntrySum,
    feed: Feed,
    cookie: Vec<u8>,
}

impl FeedChanges {
    /// Whether the delta settles the kept entry `key` (it is among the touched).
    pub(super) fn settles(&self, key: &str) -> bool {
        self.touched.contains_key(key)
    }

    /// The kept entry of the touched key `key`, if the kept snapshot has one.
    pub(super) fn before(&self, key: &str) -> Option<&Entry> {
        self.before.get(key).and_then(Option::as_ref)
    }

    /// What an apply keeps of a delta plan by region, the entries' digest now being
    /// `sum` ([`FeedChanges::entries_sum`]).
    pub(super) fn advance(self, source: &str, sum: EntrySum) -> FeedKeep {
        let (mut put, mut remove) = (Vec::new(), Vec::new());
        for (key, now) in self.touched {
            match now {
                Some((entry, identity)) => put.push((key, entry, identity)),
                None => remove.push(key),
            }
        }
        FeedKeep::Advance {
            source: source.to_string(),
            search: self.search,
            from: self.from.cookie,
            to: KeptFeed {
                feed: self.feed.name().to_string(),
                cookie: self.cookie,
                entries_digest: sum.to_text(),
            },
            put,
            remove,
        }
    }

    /// The digest of the entries the delta reads, from the kept one: the kept entries
    /// it touched out, the touched entries now in.
    pub(super) fn entries_sum(&self) -> EntrySum {
        let mut sum = self.kept_sum;
        self.before
            .values()
            .flatten()
            .for_each(|entry| sum.remove(entry));
        for (entry, _) in self.touched.values().flatten() {
            sum.add(entry);
        }
        sum
    }
}

/// How a delta read of an LDAP source went.
pub(super) enum FeedDelta {
    Changed(Box<FeedChanges>),
    /// The kept snapshot cannot be brought forward: read in full, for this reason.
    ReadInFull(String),
}

/// What the feed of the LDAP source `source` changed since the cookie of its kept
/// snapshot `kept` in `store`, each touched entry read again.
pub(super) fn open_feed_delta(
    (rules, source, settings): (&Rules, &SourceSettings, &LdapSettings),
    files: &Tree,
    kept: &KeptSnapshot,
    store: &Store,
) -> Result<FeedDelta, AppError> {
    let read_in_full = |why: String| Ok(FeedDelta::ReadInFull(why));
    if settings.delta == DeltaFeed::None {
        return read_in_full("delta: none".to_string());
    }
    if let Some(why) = feedless(rules, source, settings) {
        return read_in_full(why);
    }
    let Some(from) = &kept.feed else {
        return read_in_full("its kept snapshot was not read through a change feed".to_string());
    };
    let search = search_of(settings);
    if kept.content.path != search.path || kept.content.digest != search.digest {
        return read_in_full(
            "its search (url, bind_dn, base_dn, scope, domain_scope, filter or attributes) \
             changed since its snapshot was kept"
                .to_string(),
        );
    }
    let Some(feed) = Feed::named(&from.feed) else {
        return read_in_full(format!("its snapshot was kept through {:?}", from.feed));
    };
    let Some(kept_sum) = EntrySum::parse(&from.entries_digest) else {
        return read_in_full(format!(
            "its kept entries' digest {:?} does not read",
            from.entries_digest
        ));
    };
    if settings.delta != DeltaFeed::Auto && settings.delta.name() != feed.name() {
        return read_in_full(format!(
            "delta: {}, but its snapshot was kept through {}",
            settings.delta.name(),
            feed.name()
        ));
    }
    let credentials = ldap_credentials(source, settings, files)?;
    let fail = |error| source_error(source, error);
    let changes = match ldap::changes_since(settings, &credentials, feed, Some(&from.cookie))
        .map_err(fail)?
    {
        FeedOutcome::Changes(changes) => changes,
        FeedOutcome::Refused { reason } => {
            return read_in_full(format!(
                "the server no longer honours its {} cookie ({reason})",
                feed.name()
            ))
        }
    };
    let reading = ReadAgain {
        source,
        settings,
        credentials: &credentials,
        store,
        feed,
        base: Dn::parse(&settings.base_dn).ok(),
    };
    let mut touched = reading.changed(changes.changed, &changes.deletions)?;
    let before = match reading.referenced(&mut touched)? {
        Ok(before) => before,
        Err(why) => return read_in_full(why),
    };
    Ok(FeedDelta::Changed(Box::new(FeedChanges {
        touched,
        before,
        search,
        from: from.clone(),
        kept_sum,
        feed,
        cookie: changes.cookie,
    })))
}

/// Touched entries: by normalised DN, each entry now with its identity, or `None`.
type Touched = BTreeMap<String, Option<(Entry, [u8; 16])>>;

/// Kept entries: by normalised DN, each as the kept snapshot has it, or `None`.
type Kept = BTreeMap<String, Option<Entry>>;

/// An entry read again and the identity it holds, or `None` when it is gone or out of
/// the filter.
type ReadBack = Option<(Entry, Option<[u8; 16]>)>;

/// What a delta read reads again, with the source's own search.
struct ReadAgain<'r> {
    source: &'r SourceSettings,
    settings: &'r LdapSettings,
    credentials: &'r Credentials,
    store: &'r Store,
    feed: Feed,
    base: Option<Dn>,
}

impl ReadAgain<'_> {
    /// The entries the feed named, read again: each by its DN now if the search reaches
    /// it, the kept entry of its identity gone when it moved or went.
    fn changed(
        &self,
        changed: Vec<ChangedEntry>,
        deletions: &Deletions,
    ) -> Result<Touched, AppError> {
        let (source, settings, store) = (self.source, self.settings, self.store);
        // The last word on each entry the feed named.
        let mut last: BTreeMap<[u8; 16], Option<String>> = BTreeMap::new();
        for change in changed {
            last.insert(change.id, change.dn);
        }
        let mut gone: BTreeSet<String> = BTreeSet::new();
        if let Deletions::AllBut(present) = deletions {
            for (identity, key) in store.kept_identities(&source.name)? {
                if !present.contains(&identity) && !last.contains_key(&identity) {
                    gone.insert(key);
                }
            }
        }
        let mut to_read: Vec<([u8; 16], Option<String>)> = Vec::new();
        let mut dns = Vec::new();
        for (identity, dn) in last {
            let was = store.kept_key_of(&source.name, &identity)?;
            match dn.filter(|dn| in_scope(dn, self.base.as_ref(), settings.scope)) {
                Some(dn) => {
                    to_read.push((identity, was));
                    dns.push(dn);
                }
                None => gone.extend(was),
            }
        }
        let mut now: HashMap<String, (Entry, [u8; 16])> = HashMap::new();
        self.read(&dns, &mut |index, entry| {
            let (identity, was) = &to_read[index];
            gone.extend(was.clone());
            if let Some((entry, _)) = entry {
                now.insert(normalize_dn(&entry.dn), (entry, *identity));
            }
        })?;
        let mut touched: Touched = gone.into_iter().map(|key| (key, None)).collect();
        touched.extend(now.into_iter().map(|(key, entry)| (key, Some(entry))));
        Ok(touched)
    }

    /// Entries whose values name a touched entry can read differently with no change of
    /// their own that a feed reports: Active Directory renders a group's `member` with
    /// its member's DN now (and drops a deleted one), and keeps `memberOf` and
    /// `directReports` (back links, never replicated) on the other side of each link.
    /// These are read again into `touched`: each DN a touched entry named before or names
    /// now, that it does not name both times (or every one, when the entry moved or
    /// went), and the kept group entries listing one that moved or went.
    /// Answers the kept entry of every touched key, read on the way; `Ok(Err(why))` when
    /// one cannot be kept (it holds no identity).
    fn referenced(&self, touched: &mut Touched) -> Result<Result<Kept, String>, AppError> {
        let (source, settings, store) = (self.source, self.settings, self.store);
        let kept = |key: &str| {
            kept_entry(store, &source.name, key).map_err(|error| source_error(source, error))
        };
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        let mut befores = Kept::new();
        for (key, after) in touched.iter() {
            let before = kept(key)?;
            let after = after.as_ref().map(|(entry, _)| entry);
            let names =
                |entry: Option<&Entry>| dn_values(entry, self.base.as_ref(), settings.scope);
            let (then, now) = (names(before.as_ref()), names(after));
            let moved =
                before.as_ref().map(|b| normalize_dn(&b.dn)) != after.map(|a| normalize_dn(&a.dn));
            for dn in then
                .symmetric_difference(&now)
                .chain(then.intersection(&now).filter(|_| moved))
            {
                referenced.insert(dn.clone());
            }
            if moved && before.is_some() {
                referenced.extend(store.kept_listing(&source.name, key)?);
            }
            befores.insert(key.clone(), before);
        }
        referenced.retain(|key| !touched.contains_key(key));
        let dns: Vec<String> = referenced.into_iter().collect();
        let mut reread = Vec::new();
        self.read(&dns, &mut |index, entry| reread.push((index, entry)))?;
        for (index, entry) in reread {
            let key = match &entry {
                Some((entry, _)) => normalize_dn(&entry.dn),
                None => dns[index].clone(),
            };
            let before = kept(&key)?;
            match entry {
                Some((entry, Some(identity))) => {
                    touched.insert(key.clone(), Some((entry, identity)));
                }
                Some((entry, None)) => {
                    return Ok(Err(format!(
                        "entry {} holds no {}",
                        quote_for_message(&entry.dn),
                        self.feed.identity_attribute()
                    )))
                }
                None if before.is_some() => {
                    touched.insert(key.clone(), None);
                }
                None => continue,
            }
            befores.insert(key, before);
        }
        Ok(Ok(befores))
    }

    /// The entries at `dns`, read again with the source's search: each as a full read
    /// gives it, with the identity the feed names it by (`None` when it holds none).
    fn read(
        &self,
        dns: &[String],
        on_entry: &mut dyn FnMut(usize, ReadBack),
    ) -> Result<(), AppError> {
        let (read_settings, added) = with_identity(self.settings, self.feed);
        ldap::read_each(
            &read_settings,
            self.credentials,
            dns,
            &mut |index, entry| {
                on_entry(
                    index,
                    entry.map(|mut entry| {
                        let identity = self.feed.identity_of(&entry);
                        strip_identity(&mut entry, self.feed, added);
                        (entry, identity)
                    }),
                )
            },
        )
        .map_err(|error| source_error(self.source, error))
    }
}

/// The normalised DNs among the values of `entry` that the source's search reaches.
fn dn_values(entry: Option<&Entry>, base: Option<&Dn>, scope: Scope) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Some(entry) = entry else { return names };
    for attribute in &entry.attributes {
        for value in &attribute.values {
            let Ok(text) = std::str::from_utf8(value) else {
                continue;
            };
            if !text.contains('=') {
                continue;
            }
            if let (Ok(dn), Some(_)) = (Dn::parse(text), base) {
                if !dn.rdns().is_empty() && in_scope(text, base, scope) {
                    names.insert(dn.normalized());
                }
            }
        }
    }
    names
}

/// Whether the entry at `dn` is one the source's search reaches (a DN that does not
/// parse is read, and the server says).
fn in_scope(dn: &str, base: Option<&Dn>, scope: Scope) -> bool {
    let (Ok(dn), Some(base)) = (Dn::parse(dn), base) else {
        return true;
    };
    match scope {
        Scope::Base => dn.normalized() == base.normalized(),
        Scope::One => dn
            .parent()
            .is_some_and(|p| p.normalized() == base.normalized()),
        Scope::Subtree => dn.is_within(base),
    }
}

/// A delta read of `source` that streams every entry: the kept entries the changes did
/// not settle, then the touched ones now. With `keep`, every entry is spooled too, and
/// an apply keeps the whole snapshot with the new cookie.
pub(super) fn stream_feed_delta(
    source: &SourceSettings,
    changes: FeedChanges,
    store: &Store,
    keep: bool,
    digest: &mut InputsDigest,
    on_entry: &mut dyn FnMut(Entry),
) -> Result<Option<FeedKeep>, AppError> {
    let mut sum = EntrySum::default();
    let mut spool = keep.then(Spool::new);
    let mut unidentified = None;
    let mut each = |entry: Entry, identity: Option<[u8; 16]>| {
        match (identity, &mut spool) {
            (Some(identity), Some(spool)) => spool.push(identity, &entry),
            (None, _) => unidentified = unidentified.take().or(Some(entry.dn.clone())),
            _ => {}
        }
        sum.add(&entry);
        on_entry(entry);
    };
    stream_kept(store, source, &|key| changes.settles(key), &mut each)?;
    let FeedChanges {
        touched,
        search,
        feed,
        cookie,
        ..
    } = changes;
    for (entry, identity) in touched.into_values().flatten() {
        each(entry, Some(identity));
    }
    whole_keep(
        source,
        (feed, cookie, search),
        unidentified,
        sum,
        spool,
        digest,
    )
}

/// Entries spooled to an unnamed temporary file while a source is read, for the apply
/// to keep: each its 16-byte identity, the length of its LDIF record (4 bytes, little
/// endian) and the record. A write that fails keeps no snapshot (with a note), never
/// fails the read.
#[derive(Debug)]
pub struct Spool {
    file: Option<BufWriter<File>>,
    failed: Option<std::io::Error>,
    entries: u64,
}

impl Spool {
    fn new() -> Spool {
        match tempfile::tempfile() {
            Ok(file) => Spool {
                file: Some(BufWriter::with_capacity(1 << 20, file)),
                failed: None,
                entries: 0,
            },
            Err(error) => Spool {
                file: None,
                failed: Some(error),
                entries: 0,
            },
        }
    }

    fn push(&mut self, identity: [u8; 16], entry: &Entry) {
        let Some(file) = &mut self.file else { return };
        let written = entry_record(entry).and_then(|record| {
            let length = u32::try_from(record.len())
                .map_err(|_| std::io::Error::other("an entry of 4 GiB or more"))?;
            file.write_all(&identity)?;
            file.write_all(&length.to_le_bytes())?;
            file.write_all(&record)
        });
        match written {
            Ok(()) => self.entries += 1,
            Err(error) => {
                self.failed = Some(error);
                self.file = None;
            }
        }
    }

    /// The spool, flushed and ready to be read; `None` (with a note) when it could not be
    /// written.
    fn finish(mut self, source: &str) -> Option<Spool> {
        let flushed = match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        };
        match self.failed.take().map_or(flushed, Err) {
            Ok(()) => Some(self),
            Err(error) => {
                eprintln!(
                    "note: source {source}: its entries could not be spooled for the store to keep \
                     ({error}); the next --mode delta reads it in full"
                );
                None
            }
        }
    }

    /// Reads the spooled entries back, in order: each identity and LDIF record.
    pub(super) fn read(
        self,
        each: &mut dyn FnMut([u8; 16], Vec<u8>) -> bool,
    ) -> Result<(), std::io::Error> {
        let Some(file) = self.file else {
            return Ok(());
        };
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        for _ in 0..self.entries {
            let mut identity = [0u8; 16];
            let mut length = [0u8; 4];
            reader.read_exact(&mut identity)?;
            reader.read_exact(&mut length)?;
            let mut record = vec![0u8; u32::from_le_bytes(length) as usize];
            reader.read_exact(&mut record)?;
            if !each(identity, record) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, cn: &str) -> Entry {
        let mut entry = Entry::new(dn.to_string());
        entry.push_value("cn", cn.as_bytes().to_vec());
        entry
    }

    #[test]
    fn a_spool_gives_back_every_entry_with_its_identity_in_order() {
        let mut spool = Spool::new();
        let entries: Vec<Entry> = (0..3000)
            .map(|n| entry(&format!("cn=u{n},dc=x"), &"x".repeat(n % 700)))
            .collect();
        for (n, entry) in entries.iter().enumerate() {
            spool.push([n as u8; 16], entry);
        }
        let spool = spool.finish("hr").expect("spooled");
        let mut back = Vec::new();
        spool
            .read(&mut |identity, record| {
                back.push((identity, record));
                true
            })
            .unwrap();
        assert_eq!(back.len(), 3000);
        for (n, (identity, record)) in back.iter().enumerate() {
            assert_eq!(*identity, [n as u8; 16]);
            assert_eq!(*record, entry_record(&entries[n]).unwrap());
        }
    }

    #[test]
    fn the_scope_of_a_search_decides_which_changed_entries_are_read() {
        let base = Dn::parse("ou=People,dc=x").ok();
        let base = base.as_ref();
        assert!(in_scope("cn=a,OU=people,dc=x", base, Scope::Subtree));
        assert!(in_scope("cn=a,ou=b,ou=people,dc=x", base, Scope::Subtree));
        assert!(!in_scope("cn=a,ou=b,ou=people,dc=x", base, Scope::One));
        assert!(in_scope("cn=a,ou=people,dc=x", base, Scope::One));
        assert!(!in_scope("cn=a,ou=gone,dc=x", base, Scope::Subtree));
        assert!(!in_scope("cn=a\\,ou=people,dc=x", base, Scope::Subtree));
        assert!(in_scope("ou=People,DC=x", base, Scope::Base));
        assert!(!in_scope("cn=a,ou=People,DC=x", base, Scope::Base));
    }

    #[test]
    fn the_identity_is_asked_for_only_where_the_attribute_list_does_not_cover_it() {
        let plain = LdapSettings::plain("ldap://127.0.0.1", LdapBind::Anonymous, "dc=x");
        let (star, added) = with_identity(&plain, Feed::DirSync);
        assert!(!added);
        assert_eq!(star.attributes, plain.attributes);
        let (asked, added) = with_identity(&plain, Feed::ContentSync);
        assert!(added);
        assert!(asked.attributes.iter().any(|a| a == "entryUUID"));
        let mut read = entry("cn=a,dc=x", "a");
        read.push_value(
            "entryUUID",
            b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".to_vec(),
        );
        strip_identity(&mut read, Feed::ContentSync, added);
        assert_eq!(read, entry("cn=a,dc=x", "a"));
    }

    #[test]
    fn a_search_digest_changes_with_what_decides_the_entries() {
        let plain = LdapSettings::plain("ldap://127.0.0.1", LdapBind::Anonymous, "dc=x");
        let digest = search_of(&plain).digest;
        let mut filtered = plain.clone();
        filtered.filter = "(cn=a)".to_string();
        let mut scoped = plain.clone();
        scoped.domain_scope = true;
        let mut fewer = plain.clone();
        fewer.attributes = vec!["cn".to_string()];
        for other in [filtered, scoped, fewer] {
            assert_ne!(search_of(&other).digest, digest);
        }
        let mut slower = plain.clone();
        slower.page_size = 10;
        assert_eq!(search_of(&slower).digest, digest);
    }
}
