//! The BER of the controls and messages the change feeds exchange, encoded and decoded
//! here rather than by `ldap3`'s own parsers, which panic on a value they do not expect:
//! a server's answer that is not what RFC 4533 or MS-ADTS say is a [`Malformed`] error,
//! never a panic.
//!
//! - Content synchronization (RFC 4533 §2): the Sync Request control sent, the Sync State
//!   control on each entry, the Sync Done control on the result, and the Sync Info
//!   intermediate message.
//! - DirSync (MS-ADTS 3.1.1.3.4.1.3, `1.2.840.113556.1.4.841`): the request's flags,
//!   size and cookie, and the response's "more data" flag and cookie.

use bytes::BytesMut;
use ldap3::asn1::{
    parse_tag, write, ASNTag, Enumerated, Integer, OctetString, Sequence, StructureTag, Tag,
    TagClass, Types, PL,
};
use ldap3::controls::RawControl;

/// RFC 4533's Sync Request control.
pub const SYNC_REQUEST: &str = "1.3.6.1.4.1.4203.1.9.1.1";
/// RFC 4533's Sync State control, on each entry of a synchronization.
pub const SYNC_STATE: &str = "1.3.6.1.4.1.4203.1.9.1.2";
/// RFC 4533's Sync Done control, on the search's result.
pub const SYNC_DONE: &str = "1.3.6.1.4.1.4203.1.9.1.3";
/// RFC 4533's Sync Info intermediate message.
pub const SYNC_INFO: &str = "1.3.6.1.4.1.4203.1.9.1.4";
/// Active Directory's DirSync control.
pub const DIRSYNC: &str = "1.2.840.113556.1.4.841";

/// A control or message whose value is not what its specification says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} from the server")]
pub struct Malformed {
    pub what: &'static str,
}

fn malformed(what: &'static str) -> Malformed {
    Malformed { what }
}

/// An entry's state in a synchronization (RFC 4533 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Present,
    Add,
    Modify,
    Delete,
}

/// The Sync State control: the entry's state and its `entryUUID` (16 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    pub state: EntryState,
    pub uuid: [u8; 16],
}

/// The Sync Done control: the cookie to come back with, and whether the refresh sent
/// deletions (`true`) or the entries still present (`false`, the present phase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDone {
    pub cookie: Option<Vec<u8>>,
    pub refresh_deletes: bool,
}

/// A Sync Info message (RFC 4533 §2.5), as far as a refreshOnly search needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInfo {
    NewCookie(Vec<u8>),
    /// The end of a refresh phase (refreshDelete or refreshPresent), with its cookie.
    PhaseDone {
        cookie: Option<Vec<u8>>,
    },
    /// Entries by UUID only: deleted when `refresh_deletes`, otherwise still present.
    IdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<[u8; 16]>,
    },
}

/// The DirSync response: whether the server holds more changes than it sent, and the
/// cookie to ask for them (or for the next changes) with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSyncResponse {
    pub more: bool,
    pub cookie: Vec<u8>,
}

/// The Sync Request control for a refreshOnly search from `cookie` (none: from the start).
pub fn sync_request(cookie: Option<&[u8]>) -> RawControl {
    let mut inner = vec![Tag::Enumerated(Enumerated {
        inner: 1, // refreshOnly
        ..Default::default()
    })];
    if let Some(cookie) = cookie {
        inner.push(Tag::OctetString(OctetString {
            inner: cookie.to_vec(),
            ..Default::default()
        }));
    }
    RawControl {
        ctype: SYNC_REQUEST.to_string(),
        crit: true,
        val: Some(encode(Tag::Sequence(Sequence {
            inner,
            ..Default::default()
        }))),
    }
}

/// The DirSync request control: `flags`, at most `max_bytes` per answer, from `cookie`
/// (empty: from the start). Critical, as MS-ADTS requires.
pub fn dirsync_request(flags: i64, max_bytes: i64, cookie: &[u8]) -> RawControl {
    RawControl {
        ctype: DIRSYNC.to_string(),
        crit: true,
        val: Some(encode(Tag::Sequence(Sequence {
            inner: vec![
                Tag::Integer(Integer {
                    inner: flags,
                    ..Default::default()
                }),
                Tag::Integer(Integer {
                    inner: max_bytes,
                    ..Default::default()
                }),
                Tag::OctetString(OctetString {
                    inner: cookie.to_vec(),
                    ..Default::default()
                }),
            ],
            ..Default::default()
        }))),
    }
}

fn encode(tag: Tag) -> Vec<u8> {
    let mut buffer = BytesMut::new();
    // Encoding into a growable buffer does not fail.
    let _ = write::encode_into(&mut buffer, tag.into_structure());
    buffer.to_vec()
}

/// The one BER element `value` holds, whole.
fn element(value: &[u8], what: &'static str) -> Result<StructureTag, Malformed> {
    match parse_tag(value) {
        Ok((&[], tag)) => Ok(tag),
        _ => Err(malformed(what)),
    }
}

fn elements(tag: StructureTag, what: &'static str) -> Result<Vec<StructureTag>, Malformed> {
    match tag.payload {
        PL::C(inner) => Ok(inner),
        PL::P(_) => Err(malformed(what)),
    }
}

fn bytes(tag: StructureTag, what: &'static str) -> Result<Vec<u8>, Malformed> {
    match tag.payload {
        PL::P(bytes) => Ok(bytes),
        PL::C(_) => Err(malformed(what)),
    }
}

fn is_universal(tag: &StructureTag, kind: Types) -> bool {
    tag.class == TagClass::Universal && tag.id == kind as u64
}

fn boolean(tag: StructureTag, what: &'static str) -> Result<bool, Malformed> {
    match bytes(tag, what)?.as_slice() {
        [byte] => Ok(*byte != 0),
        _ => Err(malformed(what)),
    }
}

/// A non-negative INTEGER or ENUMERATED small enough for a flag or a state.
fn small_integer(tag: StructureTag, what: &'static str) -> Result<u64, Malformed> {
    let bytes = bytes(tag, what)?;
    if bytes.is_empty() || bytes.len() > 8 || bytes[0] & 0x80 != 0 {
        return Err(malformed(what));
    }
    Ok(bytes.iter().fold(0, |n, b| (n << 8) | u64::from(*b)))
}

fn uuid(bytes: Vec<u8>, what: &'static str) -> Result<[u8; 16], Malformed> {
    bytes.try_into().map_err(|_| malformed(what))
}

/// Parses a Sync State control's value.
pub fn parse_sync_state(value: &[u8]) -> Result<SyncState, Malformed> {
    const WHAT: &str = "sync state control";
    let mut parts = elements(element(value, WHAT)?, WHAT)?.into_iter();
    let state = match parts
        .next()
        .map(|tag| small_integer(tag, WHAT))
        .transpose()?
    {
        Some(0) => EntryState::Present,
        Some(1) => EntryState::Add,
        Some(2) => EntryState::Modify,
        Some(3) => EntryState::Delete,
        _ => return Err(malformed(WHAT)),
    };
    let uuid = uuid(
        bytes(parts.next().ok_or_else(|| malformed(WHAT))?, WHAT)?,
        WHAT,
    )?;
    Ok(SyncState { state, uuid })
}

/// Parses a Sync Done control's value.
pub fn parse_sync_done(value: &[u8]) -> Result<SyncDone, Malformed> {
    const WHAT: &str = "sync done control";
    let mut done = SyncDone {
        cookie: None,
        refresh_deletes: false,
    };
    for part in elements(element(value, WHAT)?, WHAT)? {
        if is_universal(&part, Types::OctetString) {
            done.cookie = Some(bytes(part, WHAT)?);
        } else if is_universal(&part, Types::Boolean) {
            done.refresh_deletes = boolean(part, WHAT)?;
        } else {
            return Err(malformed(WHAT));
        }
    }
    Ok(done)
}

/// Parses an IntermediateResponse (`[APPLICATION 25]`): `None` when it is not a Sync
/// Info message.
pub fn parse_sync_info(message: StructureTag) -> Result<Option<SyncInfo>, Malformed> {
    const WHAT: &str = "sync info message";
    let mut name = None;
    let mut value = None;
    for part in elements(message, WHAT)? {
        match (part.class, part.id) {
            (TagClass::Context, 0) => name = Some(bytes(part, WHAT)?),
            (TagClass::Context, 1) => value = Some(bytes(part, WHAT)?),
            _ => return Err(malformed(WHAT)),
        }
    }
    if name.as_deref() != Some(SYNC_INFO.as_bytes()) {
        return Ok(None);
    }
    let info = element(&value.ok_or_else(|| malformed(WHAT))?, WHAT)?;
    if info.class != TagClass::Context {
        return Err(malformed(WHAT));
    }
    let id = info.id;
    if id == 0 {
        return Ok(Some(SyncInfo::NewCookie(bytes(info, WHAT)?)));
    }
    if id > 3 {
        return Err(malformed(WHAT));
    }
    let mut cookie = None;
    let mut flag = id != 3; // refreshDone defaults to TRUE, refreshDeletes to FALSE
    let mut uuids = Vec::new();
    for part in elements(info, WHAT)? {
        if is_universal(&part, Types::OctetString) {
            cookie = Some(bytes(part, WHAT)?);
        } else if is_universal(&part, Types::Boolean) {
            flag = boolean(part, WHAT)?;
        } else if id == 3 && is_universal(&part, Types::Set) {
            for one in elements(part, WHAT)? {
                uuids.push(uuid(bytes(one, WHAT)?, WHAT)?);
            }
        } else {
            return Err(malformed(WHAT));
        }
    }
    Ok(Some(match id {
        3 => SyncInfo::IdSet {
            cookie,
            refresh_deletes: flag,
            uuids,
        },
        _ => SyncInfo::PhaseDone { cookie },
    }))
}

/// Parses the DirSync response control's value.
pub fn parse_dirsync(value: &[u8]) -> Result<DirSyncResponse, Malformed> {
    const WHAT: &str = "DirSync response control";
    let mut parts = elements(element(value, WHAT)?, WHAT)?.into_iter();
    let more = small_integer(parts.next().ok_or_else(|| malformed(WHAT))?, WHAT)? != 0;
    let _unused = parts.next().ok_or_else(|| malformed(WHAT))?;
    let cookie = bytes(parts.next().ok_or_else(|| malformed(WHAT))?, WHAT)?;
    Ok(DirSyncResponse { more, cookie })
}

/// BER values for the adapter's unit tests.
#[cfg(test)]
pub(super) mod test_tags {
    use ldap3::asn1::{OctetString, Sequence, Tag};

    pub fn octets(bytes: &[u8]) -> Tag {
        Tag::OctetString(OctetString {
            inner: bytes.to_vec(),
            ..Default::default()
        })
    }

    pub fn sequence(inner: Vec<Tag>) -> Tag {
        Tag::Sequence(Sequence {
            inner,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_tags::{octets, sequence};
    use super::*;
    use ldap3::asn1::{Boolean, ExplicitTag, Set};

    fn boolean_tag(value: bool) -> Tag {
        Tag::Boolean(Boolean {
            inner: value,
            ..Default::default()
        })
    }

    fn enumerated(value: i64) -> Tag {
        Tag::Enumerated(Enumerated {
            inner: value,
            ..Default::default()
        })
    }

    const UUID: [u8; 16] = *b"0123456789abcdef";

    #[test]
    fn sync_state_reads_each_state_and_refuses_what_is_not_one() {
        for (number, state) in [
            (0, EntryState::Present),
            (1, EntryState::Add),
            (2, EntryState::Modify),
            (3, EntryState::Delete),
        ] {
            let value = encode(sequence(vec![
                enumerated(number),
                octets(&UUID),
                octets(b"cookie"),
            ]));
            assert_eq!(
                parse_sync_state(&value),
                Ok(SyncState { state, uuid: UUID })
            );
        }
        for bad in [
            encode(sequence(vec![enumerated(4), octets(&UUID)])),
            encode(sequence(vec![enumerated(1), octets(b"short")])),
            encode(sequence(vec![enumerated(1)])),
            encode(octets(b"x")),
            b"\x30\x05\x0a".to_vec(),
            Vec::new(),
        ] {
            assert!(parse_sync_state(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sync_done_reads_its_cookie_and_flag() {
        let value = encode(sequence(vec![octets(b"csn"), boolean_tag(true)]));
        assert_eq!(
            parse_sync_done(&value),
            Ok(SyncDone {
                cookie: Some(b"csn".to_vec()),
                refresh_deletes: true
            })
        );
        assert_eq!(
            parse_sync_done(&encode(sequence(vec![]))),
            Ok(SyncDone {
                cookie: None,
                refresh_deletes: false
            })
        );
        assert!(parse_sync_done(&encode(sequence(vec![enumerated(1)]))).is_err());
    }

    fn intermediate(name: &[u8], value: Option<Vec<u8>>) -> StructureTag {
        let mut inner = vec![Tag::OctetString(OctetString {
            class: TagClass::Context,
            id: 0,
            inner: name.to_vec(),
        })];
        if let Some(value) = value {
            inner.push(Tag::OctetString(OctetString {
                class: TagClass::Context,
                id: 1,
                inner: value,
            }));
        }
        Tag::Sequence(Sequence {
            class: TagClass::Application,
            id: 25,
            inner,
        })
        .into_structure()
    }

    #[test]
    fn sync_info_reads_cookies_phases_and_id_sets() {
        let new_cookie = encode(Tag::OctetString(OctetString {
            class: TagClass::Context,
            id: 0,
            inner: b"c1".to_vec(),
        }));
        assert_eq!(
            parse_sync_info(intermediate(SYNC_INFO.as_bytes(), Some(new_cookie))),
            Ok(Some(SyncInfo::NewCookie(b"c1".to_vec())))
        );
        let refresh_delete = encode(Tag::Sequence(Sequence {
            class: TagClass::Context,
            id: 1,
            inner: vec![octets(b"c2")],
        }));
        assert_eq!(
            parse_sync_info(intermediate(SYNC_INFO.as_bytes(), Some(refresh_delete))),
            Ok(Some(SyncInfo::PhaseDone {
                cookie: Some(b"c2".to_vec())
            }))
        );
        let id_set = encode(Tag::Sequence(Sequence {
            class: TagClass::Context,
            id: 3,
            inner: vec![
                boolean_tag(true),
                Tag::Set(Set {
                    inner: vec![octets(&UUID)],
                    ..Default::default()
                }),
            ],
        }));
        assert_eq!(
            parse_sync_info(intermediate(SYNC_INFO.as_bytes(), Some(id_set))),
            Ok(Some(SyncInfo::IdSet {
                cookie: None,
                refresh_deletes: true,
                uuids: vec![UUID]
            }))
        );
        assert_eq!(parse_sync_info(intermediate(b"1.2.3", None)), Ok(None));
        assert!(parse_sync_info(intermediate(SYNC_INFO.as_bytes(), None)).is_err());
        let explicit = Tag::ExplicitTag(ExplicitTag {
            class: TagClass::Context,
            id: 5,
            inner: Box::new(octets(b"x")),
        });
        assert!(
            parse_sync_info(intermediate(SYNC_INFO.as_bytes(), Some(encode(explicit)))).is_err()
        );
    }

    #[test]
    fn dirsync_round_trips_its_request_and_reads_its_response() {
        let request = dirsync_request(0, 1 << 20, b"cookie");
        assert_eq!(request.ctype, DIRSYNC);
        assert!(request.crit);
        let value = request.val.unwrap();
        let parts = elements(element(&value, "test").unwrap(), "test").unwrap();
        assert_eq!(parts.len(), 3);
        let response = encode(sequence(vec![
            Tag::Integer(Integer {
                inner: 1,
                ..Default::default()
            }),
            Tag::Integer(Integer {
                inner: 0,
                ..Default::default()
            }),
            octets(b"next"),
        ]));
        assert_eq!(
            parse_dirsync(&response),
            Ok(DirSyncResponse {
                more: true,
                cookie: b"next".to_vec()
            })
        );
        assert!(parse_dirsync(&encode(sequence(vec![octets(b"x")]))).is_err());
    }

    #[test]
    fn the_sync_request_carries_refresh_only_and_the_cookie() {
        let request = sync_request(Some(b"rid=001,csn=x"));
        assert_eq!(request.ctype, SYNC_REQUEST);
        let value = request.val.unwrap();
        let parts = elements(element(&value, "test").unwrap(), "test").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(small_integer(parts[0].clone(), "test"), Ok(1));
        assert_eq!(bytes(parts[1].clone(), "test").unwrap(), b"rid=001,csn=x");
        let start = sync_request(None).val.unwrap();
        assert_eq!(
            elements(element(&start, "test").unwrap(), "test")
                .unwrap()
                .len(),
            1
        );
    }
}
