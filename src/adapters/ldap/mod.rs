//! The LDAP adapter: reads one source's entries from a directory server (Active
//! Directory, OpenLDAP, …) through `ldap3`, on a tokio runtime of its own.
//!
//! - [`session`]: the connection (TLS through rustls) and the bind.
//! - [`read`]: the full read, paged, ranged values completed, references refused.
//! - [`changes`]: the change feeds (RFC 4533 content synchronization, DirSync): which
//!   entries changed since a cookie.
//! - [`controls`]: the BER of the feeds' controls, decoded without panics.
//! - [`sign_in`]: proving who a person is, by login and password (`registrar serve`).
//! - [`error`]: what failed, never with the password.

mod changes;
mod controls;
mod error;
mod read;
mod session;
mod sign_in;

pub use changes::{
    changes_since, server_features, ChangedEntry, Changes, Deletions, Feed, FeedOutcome,
    ServerFeatures,
};
pub use error::{EntryError, LdapReadError, RangeError};
pub use read::{read_each, read_entries, SearchSummary};
pub use session::{Credentials, Password};
pub use sign_in::{find_person, password_matches, DirectoryPerson, Found};
