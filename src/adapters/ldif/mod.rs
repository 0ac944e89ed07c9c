//! LDIF (RFC 2849): the adapter between LDIF files and the core's [`Entry`] values.
//!
//! [`LdifReader`] streams [`Record`]s out of any `BufRead`; [`read_content_file`] reads an
//! `ldif` source's content file; [`write_entry`] and [`write_change`] write entries and
//! change records back out; a [`Directory`] holds entries by DN and applies change records
//! to them, whole or as an overlay over a [`DirectoryBase`] (the store's kept snapshot);
//! [`entry_record`] and [`parse_entry_record`] turn one entry into one LDIF record and
//! back, the form in which the store keeps its snapshots. This module must
//! not know about sources or the store, or fetch anything over the network: `attr:< URL`
//! values are only read from local files (see [`FileUrls`]).
//!
//! [`Entry`]: registrar_core::entry::Entry

mod directory;
mod entries;
mod error;
mod reader;
mod record;
mod url;
mod writer;

pub use directory::{
    below_range, tree_key, BaseError, ChangeError, ChangeProblem, Directory, DirectoryBase,
};
pub use entries::{
    entry_record, for_each_entry, parse_content, parse_entry_record, read_content_file,
};
pub use error::{LdifError, LdifFileError};
pub use reader::{recycle, LdifReader, DEFAULT_MAX_VALUE_BYTES};
pub use record::RenameKeyword;
pub use record::{Change, ChangeRecord, Control, ModOp, ModRdn, Modification, Record};
pub use url::{read_bounded, FileUrls, UrlError, UrlResolver};
pub use writer::{write_change, write_entry, write_version};
