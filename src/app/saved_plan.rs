//! Reading a saved plan back (`apply --plan FILE`): the JSON `render/json.rs` writes,
//! parsed in one streamed pass from the file, without a tree of the document or the whole
//! text in memory. A first import of a million users is a plan of millions of changes.
//!
//! The changes go to a [`PlanSink`] a batch at a time as they are read, after the plan's
//! header (every field before `changes` in the file `plan --out` writes, ending with
//! `revision_dirty`), so that an apply writes them while the rest of the file is read.
//! A file whose `revision_dirty` comes after `changes` (key order is not part of the
//! JSON) is read whole first, then handed over the same way; one that has it before but
//! another header field after is refused (that field would come too late for the
//! checks made on the header).
//!
//! The strings the changes repeat (an account's anchor and DN, mapping, protocol, source
//! and group names) are read into one shared `ArcStr` each, as the planner made them.
//! This reads; whether the plan may be applied is decided by the sink.

use registrar_core::ArcStr;
use std::fmt;
use std::io::{BufReader, Read};
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::AppError;
use registrar_core::effect::{Effect, SourceTrust, TrustedReading};
use registrar_core::interner::Interner;
use registrar_core::plan::{Action, Change, Kind, Plan, Summary, PLAN_FORMAT_VERSION, PLAN_HEADER};

/// Changes handed to a [`PlanSink`] at a time: each batch is a `COPY` on PostgreSQL,
/// whose fixed cost fades at this size.
const CHANGES_PER_BATCH: usize = 16384;

/// Where the parts of a saved plan go as they are read.
pub(super) trait PlanSink {
    /// The plan's header: the plan with no changes, warnings or skip counts yet (they
    /// come later), and whether it was made from a dirty working tree. Heard once,
    /// before any change; `false` stops the reading.
    fn head(&mut self, head: &Plan, dirty: bool) -> bool;
    /// The next changes of the plan, in order; `false` stops the reading.
    fn changes(&mut self, batch: Vec<Change>) -> bool;
}

/// Reads the saved plan at `path`, its changes handed to `sink` after its header, to
/// apply it: a review's plan that did not read a source is refused. Returns the plan
/// without its changes (they went to `sink`) and whether it was made from a dirty working
/// tree; `None` when the sink stopped the reading.
pub(super) fn read_plan(
    path: &Path,
    sink: &mut dyn PlanSink,
) -> Result<Option<(Plan, bool)>, AppError> {
    read_document(path, sink, None)
}

/// What a saved plan holds besides the plan, for showing it (`registrar show`).
#[derive(Debug, Default, PartialEq)]
pub struct ReviewParts {
    /// `plan --base`: the effect of the change.
    pub effect: Option<Effect>,
    /// A review's notes on how it read the head's LDAP sources.
    pub connection_trust: Vec<SourceTrust>,
}

/// Why a saved plan cannot be read (the message that follows the file's path).
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    /// The file cannot be opened.
    #[error("cannot read plan: {0}")]
    Open(#[source] std::io::Error),
    /// Reading the file failed part way.
    #[error("cannot read plan: {0}")]
    Read(#[source] serde_json::Error),
    /// The file is not a plan JSON document.
    #[error("not a registrar plan: {0}")]
    NotAPlan(#[source] serde_json::Error),
    /// The reading stopped before the plan's header.
    #[error("not a registrar plan")]
    NoHeader,
    /// A plan of a format this build does not read.
    #[error(
        "plan format_version {version} is not supported (this build reads {PLAN_FORMAT_VERSION})"
    )]
    Unsupported { version: u64 },
    /// The reading stopped before the plan's end.
    #[error("the plan could not be read whole")]
    NotWhole,
}

/// Reads a whole saved plan from `input`, to show it (`registrar show`, and the fuzzing
/// harness in `fuzz/`): the plan with its changes, whether it was made from a dirty
/// working tree, and its review parts. The error is the message that follows the file's
/// path.
pub fn read_whole_plan(input: impl Read) -> Result<(Plan, bool, ReviewParts), SavedPlanError> {
    /// Takes every change, in order.
    struct Collect(Vec<Change>);
    impl PlanSink for Collect {
        fn head(&mut self, _: &Plan, _: bool) -> bool {
            true
        }
        fn changes(&mut self, mut batch: Vec<Change>) -> bool {
            self.0.append(&mut batch);
            true
        }
    }
    let mut sink = Collect(Vec::new());
    let mut review = ReviewParts::default();
    let read = read_plan_from(input, &mut sink, Some(&mut review))?;
    let (mut plan, dirty) = read.ok_or(SavedPlanError::NotWhole)?;
    plan.changes = sink.0;
    Ok((plan, dirty, review))
}

/// Reads a saved plan; with `review`, its effect and trust notes are kept there rather
/// than ignored (the effect) or checked for an apply (the notes).
fn read_document(
    path: &Path,
    sink: &mut dyn PlanSink,
    review: Option<&mut ReviewParts>,
) -> Result<Option<(Plan, bool)>, AppError> {
    let error = |error: SavedPlanError| AppError::SavedPlan {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(|e| error(SavedPlanError::Open(e)))?;
    read_plan_from(BufReader::with_capacity(1 << 20, file), sink, review).map_err(error)
}

/// [`read_document`] from any reader; the error is the message that follows the path.
fn read_plan_from(
    input: impl Read,
    sink: &mut dyn PlanSink,
    review: Option<&mut ReviewParts>,
) -> Result<Option<(Plan, bool)>, SavedPlanError> {
    let mut unsupported = None;
    let mut stopped = false;
    let mut reader = serde_json::Deserializer::from_reader(input);
    let read = DocumentSeed {
        unsupported: &mut unsupported,
        stopped: &mut stopped,
        sink,
        review,
    }
    .deserialize(&mut reader)
    .and_then(|document| reader.end().map(|()| document));
    if let Some(version) = unsupported {
        return Err(SavedPlanError::Unsupported { version });
    }
    match read {
        _ if stopped => Ok(None),
        Ok(document) => Ok(Some(document)),
        Err(e) if e.is_io() => Err(SavedPlanError::Read(e)),
        Err(e) => Err(SavedPlanError::NotAPlan(e)),
    }
}

/// The plan document; a `format_version` this build does not read stops it, noted in
/// `unsupported`, and so does the sink, noted in `stopped`.
struct DocumentSeed<'r> {
    unsupported: &'r mut Option<u64>,
    stopped: &'r mut bool,
    sink: &'r mut dyn PlanSink,
    /// Where the effect and trust notes go when the plan is shown, not applied.
    review: Option<&'r mut ReviewParts>,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = (Plan, bool);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = (Plan, bool);

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a plan object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut format_version = None;
        let mut revision = None;
        let mut state_serial = None;
        let mut inputs_digest = None;
        let mut config_digest = None;
        let mut summary = None;
        let mut warnings = None;
        let mut skipped = None;
        let mut group_skipped = None;
        let mut imports = None;
        let mut sources = None;
        let mut dirty = None;
        // Changes read before the header was whole, handed over at the end.
        let mut held: Option<Vec<Change>> = None;
        let mut handed_over = false;
        let stop = |stopped: &mut bool| {
            *stopped = true;
            de::Error::custom("stopped")
        };
        while let Some(key) = map.next_key::<String>()? {
            // The changes went out under the header read before them: a header field
            // after them would have been read too late for the checks made on it.
            if handed_over && PLAN_HEADER.contains(&key.as_str()) {
                return Err(de::Error::custom(format!(
                    "`{key}` comes after `changes`, but `revision_dirty` came before them \
                     (a saved plan's header comes whole before its changes)"
                )));
            }
            match key.as_str() {
                "format_version" => {
                    let version: u64 = map.next_value()?;
                    if version != u64::from(PLAN_FORMAT_VERSION) {
                        *self.unsupported = Some(version);
                        return Err(de::Error::custom("unsupported format_version"));
                    }
                    format_version = Some(version as u32);
                }
                "revision" => revision = map.next_value()?,
                "state_serial" => state_serial = Some(map.next_value()?),
                "inputs_digest" => inputs_digest = Some(map.next_value()?),
                "config_digest" => config_digest = Some(map.next_value()?),
                "summary" => summary = Some(map.next_value::<Summary>()?),
                "changes" if handed_over || held.is_some() => {
                    return Err(de::Error::duplicate_field("changes"))
                }
                "changes" => {
                    // `revision_dirty` ends the header `plan --out` writes.
                    let head = match (format_version, state_serial, &summary, dirty) {
                        (Some(format_version), Some(state_serial), Some(summary), Some(dirty)) => {
                            Some((
                                Plan {
                                    format_version,
                                    revision: revision.clone(),
                                    state_serial,
                                    inputs_digest: inputs_digest.clone().unwrap_or_default(),
                                    config_digest: config_digest.clone().unwrap_or_default(),
                                    summary: summary.clone(),
                                    changes: Vec::new(),
                                    warnings: Vec::new(),
                                    skipped: Default::default(),
                                    group_skipped: Default::default(),
                                    imports: imports.clone().unwrap_or_default(),
                                    sources: Default::default(),
                                },
                                dirty,
                            ))
                        }
                        _ => None,
                    };
                    match head {
                        Some((head, dirty)) => {
                            if !self.sink.head(&head, dirty) {
                                return Err(stop(self.stopped));
                            }
                            map.next_value_seed(ChangesSeed {
                                sink: Some(&mut *self.sink),
                                stopped: &mut *self.stopped,
                            })?;
                            handed_over = true;
                        }
                        None => {
                            held = Some(map.next_value_seed(ChangesSeed {
                                sink: None,
                                stopped: &mut *self.stopped,
                            })?)
                        }
                    }
                }
                "warnings" => warnings = Some(map.next_value()?),
                "skipped" => skipped = Some(map.next_value()?),
                "group_skipped" => group_skipped = Some(map.next_value()?),
                "imports" => imports = Some(map.next_value()?),
                "sources" => sources = Some(map.next_value()?),
                "revision_dirty" => dirty = Some(map.next_value()?),
                "effect" if self.review.is_some() => {
                    if let Some(review) = self.review.as_deref_mut() {
                        review.effect = Some(map.next_value()?);
                    }
                }
                "connection_trust" => {
                    let notes: Vec<SourceTrust> = map.next_value()?;
                    if let Some(review) = self.review.as_deref_mut() {
                        review.connection_trust = notes;
                        continue;
                    }
                    if let Some(unread) = notes
                        .iter()
                        .find(|note| note.reading == TrustedReading::NotRead)
                    {
                        return Err(de::Error::custom(format!(
                            "this plan was made for review and did not read source {} (its \
                             connection settings were not trusted yet); plan again after \
                             merge to apply",
                            unread.source
                        )));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !handed_over && held.is_none() {
            return Err(de::Error::missing_field("changes"));
        }
        let plan = Plan {
            format_version: format_version
                .ok_or_else(|| de::Error::missing_field("format_version"))?,
            revision,
            state_serial: state_serial.ok_or_else(|| de::Error::missing_field("state_serial"))?,
            inputs_digest: inputs_digest.unwrap_or_default(),
            config_digest: config_digest.unwrap_or_default(),
            summary: summary.ok_or_else(|| de::Error::missing_field("summary"))?,
            changes: Vec::new(),
            warnings: warnings.ok_or_else(|| de::Error::missing_field("warnings"))?,
            skipped: skipped.unwrap_or_default(),
            group_skipped: group_skipped.unwrap_or_default(),
            imports: imports.unwrap_or_default(),
            sources: sources.unwrap_or_default(),
        };
        let dirty = dirty.unwrap_or(false);
        if let Some(changes) = held {
            if !self.sink.head(&plan, dirty) || !self.sink.changes(changes) {
                return Err(stop(self.stopped));
            }
        }
        Ok((plan, dirty))
    }
}

/// The `changes` array, its strings shared: handed to `sink` a batch at a time (noted in
/// `stopped` when it stops the reading), or without one, held whole.
struct ChangesSeed<'s> {
    sink: Option<&'s mut dyn PlanSink>,
    stopped: &'s mut bool,
}

impl<'de> DeserializeSeed<'de> for ChangesSeed<'_> {
    type Value = Vec<Change>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ChangesSeed<'_> {
    type Value = Vec<Change>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of changes")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut strings = Interner::default();
        let mut batch = Vec::with_capacity(CHANGES_PER_BATCH);
        while let Some(change) = seq.next_element_seed(ChangeSeed {
            strings: &mut strings,
        })? {
            batch.push(change);
            if let Some(sink) = self
                .sink
                .as_mut()
                .filter(|_| batch.len() == CHANGES_PER_BATCH)
            {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(CHANGES_PER_BATCH));
                if !sink.changes(full) {
                    *self.stopped = true;
                    return Err(de::Error::custom("stopped"));
                }
            }
        }
        let Some(sink) = self.sink else {
            return Ok(batch);
        };
        if !batch.is_empty() && !sink.changes(batch) {
            *self.stopped = true;
            return Err(de::Error::custom("stopped"));
        }
        Ok(Vec::new())
    }
}

/// One change, its repeated strings taken from `strings`.
struct ChangeSeed<'s> {
    strings: &'s mut Interner,
}

impl<'de> DeserializeSeed<'de> for ChangeSeed<'_> {
    type Value = Change;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChangeSeed<'_> {
    type Value = Change;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a change object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut action = None;
        let mut kind = None;
        let mut change = Change::new(Action::Add, Kind::Account);
        while let Some(field) = map.next_key::<Field>()? {
            let shared = |map: &mut A, strings: &mut Interner| {
                map.next_value_seed(Text {
                    strings: Some(strings),
                })
            };
            match field {
                Field::Action => action = Some(map.next_value()?),
                Field::Kind => kind = Some(map.next_value()?),
                // Unique per change: not worth a place among the shared strings. So,
                // in effect, are an account's anchor and DN: they recur in its changes,
                // but far apart in a plan (accounts first, then each protocol's names
                // in name order), so sharing them would cost a lookup each in a table of
                // a million and keep every one alive to the end of the reading, where a
                // copy goes with its change once the change is written.
                Field::ImName => change.im_name = map.next_value_seed(Text { strings: None })?,
                Field::ImNameKey => {
                    change.detail_mut().name_key = map.next_value_seed(Text { strings: None })?
                }
                Field::Account => change.account = map.next_value_seed(Text { strings: None })?,
                Field::Dn => change.dn = map.next_value_seed(Text { strings: None })?,
                Field::Protocol => change.protocol = shared(&mut map, self.strings)?,
                Field::Mapping => change.mapping = shared(&mut map, self.strings)?,
                Field::Reason => change.reason = shared(&mut map, self.strings)?,
                Field::Source => change.detail_mut().source = shared(&mut map, self.strings)?,
                Field::Group => change.group = shared(&mut map, self.strings)?,
                Field::Member => change.member = shared(&mut map, self.strings)?,
                Field::GroupRule => {
                    change.detail_mut().group_rule = shared(&mut map, self.strings)?
                }
                Field::Fields => change.detail_mut().fields = map.next_value()?,
                Field::Profile => change.detail_mut().profile = map.next_value()?,
                Field::GroupKind => change.detail_mut().group_kind = map.next_value()?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        change.action = action.ok_or_else(|| de::Error::missing_field("action"))?;
        change.kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
        // A rare field given as `null` leaves no empty box behind.
        Ok(match change.detail.take() {
            Some(detail) => change.with_detail(*detail),
            None => change,
        })
    }
}

/// A key of a change object (`Other`: one this build does not know, skipped), read
/// without an allocation.
enum Field {
    Action,
    Kind,
    Protocol,
    ImName,
    ImNameKey,
    Account,
    Mapping,
    Reason,
    Fields,
    Dn,
    Source,
    Profile,
    Group,
    Member,
    GroupRule,
    GroupKind,
    Other,
}

impl<'de> de::Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a change field")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
        Ok(match key {
            "action" => Field::Action,
            "kind" => Field::Kind,
            "protocol" => Field::Protocol,
            "im_name" => Field::ImName,
            "im_name_key" => Field::ImNameKey,
            "account" => Field::Account,
            "mapping" => Field::Mapping,
            "reason" => Field::Reason,
            "fields" => Field::Fields,
            "dn" => Field::Dn,
            "source" => Field::Source,
            "profile" => Field::Profile,
            "group" => Field::Group,
            "member" => Field::Member,
            "group_rule" => Field::GroupRule,
            "group_kind" => Field::GroupKind,
            _ => Field::Other,
        })
    }
}

/// An optional string value, shared through `strings` when given.
struct Text<'s> {
    strings: Option<&'s mut Interner>,
}

impl<'de> DeserializeSeed<'de> for Text<'_> {
    type Value = Option<ArcStr>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Text<'_> {
    type Value = Option<ArcStr>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(match self.strings {
            Some(strings) => strings.get(text),
            None => text.into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{
  "format_version": 1,
  "revision": "abc",
  "state_serial": 3,
  "inputs_digest": "sha256:00",
  "summary": {"add": 3, "update": 1, "remove": 0, "deactivate": 0, "reactivate": 0,
              "conflicts": 0, "excluded": 0, "blocked": false},
  "changes": [
    {"action": "add", "kind": "account", "account": "u1", "dn": "uid=a,dc=x",
     "source": "corp", "profile": {"display_name": "A", "mail": "a@x"}},
    {"action": "add", "kind": "registration", "protocol": "aol", "im_name": "A\u00e9",
     "account": "u1", "mapping": "m", "dn": "uid=a,dc=x", "future": [1, {"x": null}]},
    {"action": "update", "kind": "account", "account": "u1", "reason": null,
     "fields": {"dn": ["uid=a,dc=x", "uid=b,dc=x"]}},
    {"action": "add", "kind": "group", "group": "staff", "group_rule": "r",
     "group_kind": "distribution_list", "source": "corp"}
  ],
  "warnings": [],
  "skipped": {},
  "imports": [{"source": "corp", "content": {"path": "d.ldif", "digest": "sha256:01"}}],
  "revision_dirty": true,
  "effect": {"anything": [1, 2]}
}"#;

    /// Collects what the reading hands over, checking the order.
    #[derive(Default)]
    struct Collect {
        head: Option<(Plan, bool)>,
        changes: Vec<Change>,
        batches: usize,
    }

    impl PlanSink for Collect {
        fn head(&mut self, head: &Plan, dirty: bool) -> bool {
            assert!(self.head.is_none() && self.changes.is_empty());
            self.head = Some((head.clone(), dirty));
            true
        }

        fn changes(&mut self, batch: Vec<Change>) -> bool {
            assert!(self.head.is_some());
            self.batches += 1;
            self.changes.extend(batch);
            true
        }
    }

    /// The plan `text` read back whole, its header as the sink heard it, and how many
    /// batches its changes came in.
    fn read_text(text: &str) -> Result<(Plan, bool), AppError> {
        read_collected(text).map(|(plan, dirty, _, _)| (plan, dirty))
    }

    fn read_collected(text: &str) -> Result<(Plan, bool, Plan, usize), AppError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, text).unwrap();
        let mut sink = Collect::default();
        let (mut plan, dirty) = read_plan(&path, &mut sink)?.expect("not stopped");
        let (head, head_dirty) = sink.head.expect("a header");
        assert_eq!(dirty, head_dirty);
        plan.changes = sink.changes;
        Ok((plan, dirty, head, sink.batches))
    }

    #[test]
    fn reads_what_serde_reads_and_shares_repeated_strings() {
        let (plan, dirty) = read_text(PLAN).unwrap();
        assert!(dirty);
        assert_eq!(plan, serde_json::from_str::<Plan>(PLAN).unwrap());
        // Names from the config (sources, protocols, mappings) are shared.
        let (account, group) = (&plan.changes[0], &plan.changes[3]);
        assert!(ArcStr::ptr_eq(
            account.source().unwrap(),
            group.source().unwrap()
        ));
    }

    /// `PLAN` laid out as `plan --out` writes it: the header, then `count` changes.
    fn header_first(count: usize) -> String {
        let change = r#"{"action": "add", "kind": "account", "account": "u", "dn": "uid=a,dc=x"}"#;
        let changes = vec![change; count].join(",\n    ");
        format!(
            r#"{{"format_version": 1, "revision": "abc", "state_serial": 3,
  "summary": {{"add": {count}, "update": 0, "remove": 0, "deactivate": 0, "reactivate": 0,
              "conflicts": 0, "excluded": 0, "blocked": false}},
  "imports": [{{"source": "corp", "content": {{"path": "d.ldif", "digest": "sha256:01"}}}}],
  "revision_dirty": false,
  "changes": [
    {changes}
  ],
  "warnings": [],
  "skipped": {{"m": {{"missing_attribute": 2, "invalid_name": 0}}}}
}}"#
        )
    }

    #[test]
    fn a_header_first_plan_hands_its_changes_over_in_batches_after_the_header() {
        let count = 2 * CHANGES_PER_BATCH + 5;
        let (plan, dirty, head, batches) = read_collected(&header_first(count)).unwrap();
        assert!(!dirty);
        assert_eq!(batches, 3);
        assert_eq!(plan.changes.len(), count);
        // The header heard before the changes: no changes, warnings yet; the rest whole.
        assert!(head.changes.is_empty() && head.warnings.is_empty());
        assert_eq!(head.imports, plan.imports);
        assert_eq!((head.state_serial, head.summary.add), (3, count as u64));
        assert!(head.skipped.is_empty());
        assert_eq!(plan.skipped.len(), 1);
        let text = header_first(count);
        assert_eq!(plan, serde_json::from_str::<Plan>(&text).unwrap());
    }

    #[test]
    fn a_plan_with_its_header_after_the_changes_is_read_whole_then_handed_over() {
        // `PLAN` has `imports` and `revision_dirty` after `changes`.
        let (plan, dirty, head, batches) = read_collected(PLAN).unwrap();
        assert!(dirty);
        assert_eq!(batches, 1);
        assert_eq!(head.imports.len(), 1);
        assert_eq!(plan.changes.len(), 4);
    }

    /// Stops the reading at the header, or at the first changes.
    struct Stop {
        at_head: bool,
        batches: usize,
    }

    impl PlanSink for Stop {
        fn head(&mut self, _: &Plan, _: bool) -> bool {
            !self.at_head
        }

        fn changes(&mut self, _: Vec<Change>) -> bool {
            self.batches += 1;
            false
        }
    }

    #[test]
    fn a_sink_that_stops_ends_the_reading_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, header_first(3 * CHANGES_PER_BATCH)).unwrap();
        for at_head in [true, false] {
            let mut sink = Stop {
                at_head,
                batches: 0,
            };
            assert!(read_plan(&path, &mut sink).unwrap().is_none());
            assert_eq!(sink.batches, usize::from(!at_head));
        }
    }

    #[test]
    fn a_header_field_after_streamed_changes_is_refused() {
        let text = header_first(3);
        let moved = text
            .replace(
                r#""imports": [{"source": "corp", "content": {"path": "d.ldif", "digest": "sha256:01"}}],"#,
                "",
            )
            .replace(
                r#""skipped": {"#,
                r#""imports": [], "skipped": {"#,
            );
        assert_ne!(moved, text);
        let error = read_text(&moved).unwrap_err().to_string();
        assert!(error.contains("`imports` comes after `changes`"), "{error}");
        assert_eq!(error.lines().count(), 1);
    }

    #[test]
    fn refuses_another_format_version_and_what_is_no_plan() {
        let newer = PLAN.replace("\"format_version\": 1", "\"format_version\": 9");
        let error = read_text(&newer).unwrap_err().to_string();
        assert!(
            error.contains("plan format_version 9 is not supported"),
            "{error}"
        );
        for broken in [
            "{",
            "[]",
            "{\"format_version\": 1}",
            &PLAN.replace("\"add\", \"kind\"", "\"add\", \"kind\": 3, \"x\""),
        ] {
            let error = read_text(broken).unwrap_err().to_string();
            assert!(error.contains("not a registrar plan"), "{broken}: {error}");
            assert_eq!(error.lines().count(), 1);
        }
    }
}
