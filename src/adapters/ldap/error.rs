//! Why reading an LDAP source failed: [`LdapReadError`] and the errors of one entry.
//! Messages name the server, what was being done and the server's answer; never the
//! password.

use registrar_core::quote::quote_for_message;

/// Why reading an LDAP source failed. Messages name the server, what was being done and
/// the server's answer; never the password.
#[derive(Debug, thiserror::Error)]
pub enum LdapReadError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("ca_file: {0}")]
    CaFile(String),
    #[error("bind as {who} failed: {reason}")]
    Bind { who: String, reason: String },
    #[error("search of {base:?} failed after {entries} entries: {reason}")]
    Search {
        base: String,
        entries: u64,
        reason: String,
    },
    /// An entry the server sent could not be read whole.
    #[error("search of {base:?} failed after {entries} entries: {source}")]
    Entry {
        base: String,
        entries: u64,
        source: EntryError,
    },
    /// A change feed's answer could not be read, or the search for it failed.
    #[error("reading the {feed} changes under {base:?} failed: {reason}")]
    Changes {
        feed: &'static str,
        base: String,
        reason: String,
    },
    /// The server sent a continuation reference: part of the subtree lives in another
    /// naming context, which this read does not follow.
    #[error(
        "search of {base:?} returned a continuation reference to {} after {entries} entries: \
         referrals are not followed (they would take this source's bind to a server its config \
         does not name); read that naming context as a source of its own, or on Active \
         Directory set domain_scope: true to read this domain only",
        quote_for_message(url)
    )]
    Referral {
        base: String,
        entries: u64,
        url: String,
    },
}

/// Why an entry the server sent could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Its BER structure is not a search result entry's.
    #[error("malformed search result entry from the server ({what})")]
    Malformed { what: &'static str },
    /// A search for the rest of a ranged attribute failed, or the server refused it.
    #[error("reading {wanted} of {dn}: {reason}")]
    RangeSearch {
        wanted: String,
        dn: String,
        reason: String,
    },
    /// The entry went away between the search and the search for its ranged values.
    #[error("reading {wanted} of {dn}: the entry is gone")]
    Gone { wanted: String, dn: String },
    /// The rest of a ranged attribute is not what was asked for.
    #[error("reading {wanted} of {dn}: {source}")]
    Range {
        wanted: String,
        dn: String,
        source: RangeError,
    },
}

/// Why the values of a range do not continue a ranged attribute.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error("not a ranged attribute")]
    NotRanged,
    #[error("the server sent no {plain};range=… values")]
    NoValues { plain: String },
    #[error("asked for values from {expected_low}, the server sent {sent}")]
    WrongStart { expected_low: u64, sent: String },
    #[error("{description} holds no value")]
    Empty { description: String },
}
