//! The streaming LDIF (RFC 2849) reader: bytes in, one [`Record`] at a time out.
//!
//! The reader holds one record's bytes at a time (memory follows the largest record, not
//! the file) and reuses its buffers from record to record. It checks LDIF syntax and the
//! shape of change records. It must not validate DN syntax, schema or duplicate DNs
//! (that is for whoever builds a directory from the records), must not apply change
//! records, and must not fetch URL values itself: its [`UrlResolver`] does.
//!
//! Leniencies, as in OpenLDAP's tools (and python-ldap, where it reads the same
//! thing): `version: 1` may be left out; raw UTF-8 (non-ASCII) text is accepted in values
//! and DNs; keywords (`dn`, `changetype`, `add`, `newrdn`, ...) and the attribute of a
//! mod-spec's values match case-insensitively; the `-` after a modify record's last
//! mod-spec may be left out; base64 may lack its padding.
//!
//! Strictness: a continuation line starts with exactly one space (RFC 2849). A line
//! starting with a tab is an error, not a continuation (OpenLDAP accepts tabs; no file in
//! the corpus uses them, and a tab-indented line in a hand-edited file is more likely a
//! mistake than a fold). Raw values must be valid UTF-8; binary values must be base64
//! (`attr:: ...`). A file holds content records or change records, not both. `dn:` or
//! `changetype:` inside an entry is an error (a missing blank line), not an attribute.
//!
//! Bounds: no value may be larger than [`DEFAULT_MAX_VALUE_BYTES`] (or the limit given
//! to [`LdifReader::with_max_value_bytes`]), plain, base64 or read from a URL. A line too
//! long to hold a value within the limit is refused while it is read, before it is held
//! whole; a URL's file is refused on its size, before it is read.
//!
//! One file per job, in the order the bytes travel: [`scan`] cuts the input into blocks
//! of physical lines (one record each), [`unfold`] walks a block's logical lines,
//! [`line`] splits one into `attr` and value, [`decode`] turns the value into bytes,
//! [`assemble`] and [`change`] build the record, [`pool`] recycles entries between
//! records, and [`stream`] drives it all as an iterator.
//!
//! [`Record`]: crate::adapters::ldif::Record
//! [`UrlResolver`]: crate::adapters::ldif::UrlResolver

mod assemble;
mod change;
mod decode;
mod line;
mod pool;
mod scan;
mod stream;
mod unfold;

#[cfg(test)]
mod tests;

pub(crate) use line::is_valid_description;
pub use pool::recycle;
pub use stream::{LdifReader, DEFAULT_MAX_VALUE_BYTES};
