//! The adapters around the pure core: each turns one outside thing into the core's types
//! or back. None of them decides anything the core decides.
//!
//! - [`ldif`]: the LDIF reader and writer (RFC 2849), and the in-memory directory that
//!   change files apply to.
//! - [`ldap`]: LDAP searches (ldap3 over rustls), paged, and the change feeds
//!   (content synchronization, DirSync).
//! - [`git`]: revisions, blobs and the working tree's status, through libgit2.
//! - [`tree`]: where every file comes from, the working tree or one commit; in the working
//!   tree every file a config names stays inside it.
//! - [`store`]: the SQLite registration store: schema, reads and the apply's writer.
//! - [`postgres`]: connecting to the store's PostgreSQL with libpq's conventions (URL,
//!   password file, `sslmode` through rustls).
//! - [`render`]: plans and drift reports as text, Markdown, JSON and LDIF.

pub mod git;
pub mod ldap;
pub mod ldif;
pub mod postgres;
pub mod render;
pub mod store;
pub mod tree;
