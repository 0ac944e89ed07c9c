//! The plan JSON, written by hand. A first import of a million users is a plan of
//! millions of changes and over a gigabyte of JSON, and serde's generic printer spends
//! most of a run on it.
//!
//! The layout is serde_json's pretty form (two spaces a level, `"key": value`), except:
//! - each change (the plan's and the effect's) and each warning is one line:
//!   `{"action": "add", "kind": "account", …, "profile": {"title": "…"}}`, `": "` after a
//!   key and `", "` between members, nested objects and arrays inline. `grep`, `wc -l` and
//!   line diffs then work per change, and the file is smaller (a first import of a
//!   million users: 0.99 GB, against 1.2 GB with one field a line);
//! - the header comes first: `format_version`, `revision`, `state_serial`, the digests,
//!   `summary`, `imports` and `revision_dirty`, then `changes`, then `warnings`, `skipped`,
//!   `group_skipped`, `sources`, `connection_trust` and `effect`; a reader streaming the file knows
//!   the header before the first change. (Key order is not part of the JSON contract: readers must not depend
//!   on it, and `app/saved_plan.rs` does not.)
//!
//! The value is serde's: the text parses to exactly `serde_json::to_value` of the
//! [`PlanDocument`] (the tests hold the two together), and strings are escaped as
//! serde_json escapes them. Only the changes, the bulk, are written field by field here;
//! the few other values (summary, warnings, skip counts, changed files) go through
//! serde, indented to their place or on one line. Reading a plan back is serde's
//! business alone.

use std::io::{self, Write};

use serde::Serialize;

use super::document::PlanDocument;
use registrar_core::effect::Effect;
use registrar_core::plan::{Action, Change, Kind};

/// Bytes gathered before a write: large pieces, few calls.
const PIECE: usize = 1 << 16;

/// Writes `document` as the plan JSON, without the final newline.
pub(super) fn write_document(document: &PlanDocument<'_>, out: &mut dyn Write) -> io::Result<()> {
    let plan = document.plan;
    let mut json = Json::new(out);
    json.open_object();
    json.key(1, "format_version")?;
    json.serde(1, &plan.format_version)?;
    json.key(1, "revision")?;
    json.serde(1, &plan.revision)?;
    json.key(1, "state_serial")?;
    json.serde(1, &plan.state_serial)?;
    json.key(1, "inputs_digest")?;
    json.string(&plan.inputs_digest);
    if !plan.config_digest.is_empty() {
        json.key(1, "config_digest")?;
        json.string(&plan.config_digest);
    }
    json.key(1, "summary")?;
    json.serde(1, &plan.summary)?;
    if !plan.imports.is_empty() {
        json.key(1, "imports")?;
        json.serde(1, &plan.imports)?;
    }
    json.key(1, "revision_dirty")?;
    json.serde(1, &document.revision_dirty)?;
    json.key(1, "changes")?;
    json.changes(1, &plan.changes)?;
    json.key(1, "warnings")?;
    json.lines(1, &plan.warnings, |json, warning| json.one_line(warning))?;
    json.key(1, "skipped")?;
    json.serde(1, &plan.skipped)?;
    if !plan.group_skipped.is_empty() {
        json.key(1, "group_skipped")?;
        json.serde(1, &plan.group_skipped)?;
    }
    if !plan.sources.is_empty() {
        json.key(1, "sources")?;
        json.serde(1, &plan.sources)?;
    }
    if !document.connection_trust.is_empty() {
        json.key(1, "connection_trust")?;
        json.serde(1, &document.connection_trust)?;
    }
    if let Some(effect) = document.effect {
        json.key(1, "effect")?;
        json.effect(1, effect)?;
    }
    json.close_object(0);
    json.flush()
}

/// A JSON writer: pretty, two spaces per level, `"key": value`, one value a line, as
/// serde_json's `PrettyFormatter`, and single values on one line where asked (changes,
/// warnings). Objects and arrays remember whether they are still empty, so that an empty
/// one closes as `{}` or `[]`.
struct Json<'o> {
    out: &'o mut dyn Write,
    buffer: Vec<u8>,
    /// Per open pretty object or array: whether it has no member yet.
    empty: Vec<bool>,
}

impl<'o> Json<'o> {
    fn new(out: &'o mut dyn Write) -> Self {
        Json {
            out,
            buffer: Vec::with_capacity(PIECE + 4096),
            empty: Vec::new(),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the buffer out once it is large.
    fn spill(&mut self) -> io::Result<()> {
        if self.buffer.len() >= PIECE {
            self.flush()?;
        }
        Ok(())
    }

    fn indent(&mut self, level: usize) {
        const SPACES: &[u8; 32] = b"                                ";
        let mut width = 2 * level;
        while width > 0 {
            let step = width.min(SPACES.len());
            self.buffer.extend_from_slice(&SPACES[..step]);
            width -= step;
        }
    }

    fn open_object(&mut self) {
        self.buffer.push(b'{');
        self.empty.push(true);
    }

    fn open_array(&mut self) {
        self.buffer.push(b'[');
        self.empty.push(true);
    }

    /// Closes the object or array opened at `level`.
    fn close(&mut self, level: usize, bracket: u8) {
        if !self.empty.pop().expect("an open object or array") {
            self.buffer.push(b'\n');
            self.indent(level);
        }
        self.buffer.push(bracket);
    }

    fn close_object(&mut self, level: usize) {
        self.close(level, b'}');
    }

    fn close_array(&mut self, level: usize) {
        self.close(level, b']');
    }

    /// Starts the next member of the innermost object or array, at `level`.
    fn next_member(&mut self, level: usize) {
        let empty = self.empty.last_mut().expect("an open object or array");
        if *empty {
            *empty = false;
            self.buffer.push(b'\n');
        } else {
            self.buffer.extend_from_slice(b",\n");
        }
        self.indent(level);
    }

    /// Starts the member `name` of the innermost object, at `level`.
    fn key(&mut self, level: usize, name: &str) -> io::Result<()> {
        self.spill()?;
        self.next_member(level);
        self.string(name);
        self.buffer.extend_from_slice(b": ");
        Ok(())
    }

    /// A string, escaped as serde_json escapes: `"`, `\` and control characters.
    fn string(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let buffer = &mut self.buffer;
        if !needs_escape(bytes) {
            buffer.reserve(bytes.len() + 2);
            buffer.push(b'"');
            buffer.extend_from_slice(bytes);
            buffer.push(b'"');
            return;
        }
        buffer.push(b'"');
        let mut start = 0;
        for (at, &byte) in bytes.iter().enumerate() {
            let escape: &[u8] = match byte {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                0x08 => b"\\b",
                0x0c => b"\\f",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x00..=0x1f => b"",
                _ => continue,
            };
            buffer.extend_from_slice(&bytes[start..at]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buffer.extend_from_slice(b"\\u00");
                buffer.push(HEX[usize::from(byte >> 4)]);
                buffer.push(HEX[usize::from(byte & 0xf)]);
            } else {
                buffer.extend_from_slice(escape);
            }
            start = at + 1;
        }
        buffer.extend_from_slice(&bytes[start..]);
        buffer.push(b'"');
    }

    fn optional_string(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.string(text),
            None => self.buffer.extend_from_slice(b"null"),
        }
    }

    /// Any value through serde_json, indented to `level`.
    fn serde<T: Serialize + ?Sized>(&mut self, level: usize, value: &T) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(value)?;
        // serde_json escapes newlines inside strings: every raw one is between lines.
        for (index, line) in text.split(|&b| b == b'\n').enumerate() {
            if index > 0 {
                self.buffer.push(b'\n');
                self.indent(level);
            }
            self.buffer.extend_from_slice(line);
            self.spill()?;
        }
        Ok(())
    }

    /// Any value through serde_json on one line (`{"key": value, "list": [a, b]}`), as
    /// serde_json escapes its strings.
    fn one_line<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        let mut serializer = serde_json::Serializer::with_formatter(&mut self.buffer, OneLine);
        value.serialize(&mut serializer)?;
        Ok(())
    }

    /// An array of `items`, each written on its own line by `write`, indented to
    /// `level + 1`; `[]` when there are none.
    fn lines<T>(
        &mut self,
        level: usize,
        items: &[T],
        mut write: impl FnMut(&mut Self, &T) -> io::Result<()>,
    ) -> io::Result<()> {
        self.open_array();
        for item in items {
            self.spill()?;
            self.next_member(level + 1);
            write(self, item)?;
        }
        self.close_array(level);
        Ok(())
    }

    fn changes(&mut self, level: usize, changes: &[Change]) -> io::Result<()> {
        self.lines(level, changes, |json, change| {
            json.change(change);
            Ok(())
        })
    }

    /// One change on one line, its fields in declaration order, absent ones left out (as
    /// the `skip_serializing_if` attributes on [`Change`] say).
    fn change(&mut self, change: &Change) {
        self.buffer.extend_from_slice(b"{\"action\": \"");
        self.buffer
            .extend_from_slice(action_name(change.action).as_bytes());
        self.buffer.extend_from_slice(b"\", \"kind\": \"");
        self.buffer
            .extend_from_slice(kind_name(change.kind).as_bytes());
        self.buffer.push(b'"');
        let texts = [
            ("protocol", change.protocol.as_ref()),
            ("im_name", change.im_name.as_ref()),
            ("im_name_key", change.stored_name_key()),
            ("account", change.account.as_ref()),
            ("mapping", change.mapping.as_ref()),
            ("reason", change.reason.as_ref()),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                self.inline_key(name);
                self.string(value);
            }
        }
        if let Some(fields) = change.fields() {
            self.inline_key("fields");
            self.buffer.push(b'{');
            for (index, (field, (old, new))) in fields.iter().enumerate() {
                if index > 0 {
                    self.buffer.extend_from_slice(b", ");
                }
                self.string(field);
                self.buffer.extend_from_slice(b": [");
                self.optional_string(old.as_deref());
                self.buffer.extend_from_slice(b", ");
                self.optional_string(new.as_deref());
                self.buffer.push(b']');
            }
            self.buffer.push(b'}');
        }
        for (name, value) in [("dn", change.dn.as_ref()), ("source", change.source())] {
            if let Some(value) = value {
                self.inline_key(name);
                self.string(value);
            }
        }
        if let Some(profile) = change.profile() {
            self.inline_key("profile");
            self.buffer.push(b'{');
            for (index, (field, value)) in profile.iter().enumerate() {
                if index > 0 {
                    self.buffer.extend_from_slice(b", ");
                }
                self.string(field.name());
                self.buffer.extend_from_slice(b": ");
                self.string(value);
            }
            self.buffer.push(b'}');
        }
        let texts = [
            ("group", change.group.as_ref()),
            ("member", change.member.as_ref()),
            ("group_rule", change.group_rule()),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                self.inline_key(name);
                self.string(value);
            }
        }
        if let Some(kind) = change.group_kind() {
            self.inline_key("group_kind");
            self.string(kind.name());
        }
        self.buffer.push(b'}');
    }

    /// `, "name": `: the next member of a one-line object that has one already. `name`
    /// is one of ours, and needs no escape.
    fn inline_key(&mut self, name: &'static str) {
        debug_assert!(!needs_escape(name.as_bytes()));
        self.buffer.extend_from_slice(b", \"");
        self.buffer.extend_from_slice(name.as_bytes());
        self.buffer.extend_from_slice(b"\": ");
    }

    fn effect(&mut self, level: usize, effect: &Effect) -> io::Result<()> {
        let inner = level + 1;
        self.open_object();
        self.key(inner, "base")?;
        self.string(&effect.base);
        self.key(inner, "head")?;
        self.optional_string(effect.head.as_deref());
        self.key(inner, "head_dirty")?;
        self.serde(inner, &effect.head_dirty)?;
        self.key(inner, "summary")?;
        self.serde(inner, &effect.summary)?;
        self.key(inner, "changes")?;
        self.changes(inner, &effect.changes)?;
        self.key(inner, "files")?;
        self.serde(inner, &effect.files)?;
        self.close_object(level);
        Ok(())
    }
}

/// `, ` before every member of a one-line array or object but the first.
fn one_line_separator<W: ?Sized + Write>(writer: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

/// serde_json's compact form with the pretty form's spacing: `{"key": value, "list":
/// [a, b]}` on one line. (serde_json escapes newlines in strings, so no value breaks the
/// line.)
struct OneLine;

impl serde_json::ser::Formatter for OneLine {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        one_line_separator(writer, first)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        one_line_separator(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

/// Whether any byte of `bytes` is one JSON escapes (`"`, `\\`, below 0x20). Written
/// without an early exit, so that it compiles to vector instructions: names and values
/// mostly need no escape at all, and are short.
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Add => "add",
        Action::Update => "update",
        Action::Remove => "remove",
        Action::Deactivate => "deactivate",
        Action::Reactivate => "reactivate",
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Account => "account",
        Kind::Registration => "registration",
        Kind::Group => "group",
        Kind::GroupMember => "group_member",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use registrar_core::desired::{GroupSkipCounts, SkipCounts, Warning, WarningKind};
    use registrar_core::effect::{FileDiff, FileStatus, SourceTrust, TrustedReading};
    use registrar_core::matched::Matched;
    use registrar_core::model::{GroupKind, Profile};
    use registrar_core::plan::{
        Detail, FieldChange, ImportedFile, Plan, SourceImport, Summary, PLAN_FORMAT_VERSION,
        PLAN_HEADER,
    };
    use registrar_core::ArcStr;

    /// Strings that need every kind of escape, and some that need none (JSON leaves DEL,
    /// U+2028 and U+2029 as they are).
    const TEXTS: [&str; 7] = [
        "plain",
        "quote \" backslash \\ slash /",
        "tab\tnew\nline\rcr\u{8}bs\u{c}ff",
        "nul \u{0} unit \u{1f} del \u{7f}",
        "ünïcödé → 名前 😀",
        "line \u{2028} paragraph \u{2029} separators",
        "",
    ];

    /// The top-level keys after the header, in the order they are written.
    const AFTER_HEADER: [&str; 7] = [
        "changes",
        "warnings",
        "skipped",
        "group_skipped",
        "sources",
        "connection_trust",
        "effect",
    ];

    /// Changes of every kind and action, with each optional field present or not, over
    /// `texts`.
    fn changes_of(texts: &[&str]) -> Vec<Change> {
        let mut changes = Vec::new();
        let actions = [
            Action::Add,
            Action::Update,
            Action::Remove,
            Action::Deactivate,
            Action::Reactivate,
        ];
        let kinds = [
            Kind::Account,
            Kind::Registration,
            Kind::Group,
            Kind::GroupMember,
        ];
        for (i, text) in texts.iter().enumerate() {
            let some = |n: usize| (i % n == 0).then(|| (*text).into());
            let mut fields = BTreeMap::new();
            fields.insert(
                format!("field {text}"),
                (
                    Some(text.to_string()),
                    (i % 2 == 0).then(|| "new".to_string()),
                ),
            );
            fields.insert("dn".to_string(), (None, None));
            changes.push(
                Change {
                    protocol: some(1),
                    im_name: some(2),
                    account: some(1),
                    mapping: some(3),
                    reason: some(2),
                    dn: some(1),
                    group: some(3),
                    member: some(2),
                    ..Change::new(actions[i % actions.len()], kinds[i % kinds.len()])
                }
                .with_detail(Detail {
                    name_key: some(3),
                    fields: (i % 2 == 1).then_some(fields),
                    source: some(2),
                    profile: Some(Profile::from_values([
                        Some(*text),
                        None,
                        (i % 2 == 0).then_some("x"),
                        None,
                        None,
                        Some("mail"),
                    ])),
                    group_rule: some(1),
                    group_kind: [
                        None,
                        Some(GroupKind::OrgUnit),
                        Some(GroupKind::DistributionList),
                    ][i % 3],
                }),
            );
        }
        changes
    }

    fn text(value: &str) -> Option<ArcStr> {
        Some(value.into())
    }

    fn field(name: &str, old: Option<&str>, new: Option<&str>) -> BTreeMap<String, FieldChange> {
        let mut fields = BTreeMap::new();
        fields.insert(
            name.to_string(),
            (old.map(String::from), new.map(String::from)),
        );
        fields
    }

    /// Changes shaped as the planner makes them, one of each, then the odd cases and
    /// every combination of fields over [`TEXTS`].
    fn changes() -> Vec<Change> {
        let anchor = text("00000001-0000-4000-8000-000000001eef");
        let dn = text("uid=user1,ou=People,dc=example,dc=com");
        let registration = |action, im_name: &str| Change {
            protocol: text("xmpp"),
            im_name: text(im_name),
            account: anchor.clone(),
            mapping: text("xmpp-uid"),
            dn: dn.clone(),
            ..Change::new(action, Kind::Registration)
        };
        let mut changes = vec![
            Change {
                account: anchor.clone(),
                dn: dn.clone(),
                ..Change::new(Action::Add, Kind::Account)
            }
            .with_detail(Detail {
                source: text("corp"),
                profile: Some(Profile::from_values([
                    Some("Barry \"BJ\" Johnson"),
                    Some("Accounting"),
                    Some("Engineer"),
                    Some("+1 408 555 0001"),
                    Some("Zürich"),
                    Some("bj@example.com"),
                ])),
                ..Detail::default()
            }),
            Change {
                account: anchor.clone(),
                ..Change::new(Action::Update, Kind::Account)
            }
            .with_detail(Detail {
                fields: Some(field("department", Some("Accounting"), Some("Finance"))),
                ..Detail::default()
            }),
            Change {
                account: anchor.clone(),
                reason: text("disabled"),
                ..Change::new(Action::Deactivate, Kind::Account)
            },
            Change {
                account: anchor.clone(),
                reason: text("enabled in the directory"),
                ..Change::new(Action::Reactivate, Kind::Account)
            },
            registration(Action::Add, "user1@im.example.com"),
            Change {
                protocol: text("irc"),
                ..registration(Action::Add, " BJohnson")
            }
            .with_detail(Detail {
                name_key: text("BJohnson"),
                ..Detail::default()
            }),
            Change {
                reason: text("mapping removed"),
                ..registration(Action::Remove, "barry")
            },
            Change {
                mapping: text("xmpp-mail"),
                reason: text("mapping renamed"),
                ..registration(Action::Update, "user1@im.example.com")
            }
            .with_detail(Detail {
                fields: Some(field("mapping", Some("xmpp-uid"), Some("xmpp-mail"))),
                ..Detail::default()
            }),
            Change {
                group: text("sales"),
                ..Change::new(Action::Add, Kind::Group)
            }
            .with_detail(Detail {
                source: text("corp"),
                group_rule: text("departments"),
                group_kind: Some(GroupKind::DistributionList),
                ..Detail::default()
            }),
            Change {
                group: text("sales"),
                reason: text("now produced by another group rule"),
                ..Change::new(Action::Update, Kind::Group)
            }
            .with_detail(Detail {
                group_rule: text("departments"),
                fields: Some(field("source", None, Some("corp"))),
                ..Detail::default()
            }),
            Change {
                group: text("sales"),
                member: anchor.clone(),
                dn: dn.clone(),
                ..Change::new(Action::Add, Kind::GroupMember)
            },
            Change {
                group: text("sales"),
                member: anchor.clone(),
                reason: text("no longer a member"),
                ..Change::new(Action::Remove, Kind::GroupMember)
            },
            Change {
                ..Change::new(Action::Update, Kind::Account)
            }
            .with_detail(Detail {
                fields: Some(Default::default()),
                profile: Some(Default::default()),
                ..Detail::default()
            }),
            Change::new(Action::Remove, Kind::GroupMember),
        ];
        changes.extend(changes_of(&TEXTS));
        changes
    }

    fn warnings_of(texts: &[&str]) -> Vec<Warning> {
        let mut warnings = vec![
            Warning {
                protocol: Some("xmpp".to_string()),
                im_name: Some("bj".to_string()),
                account: Some("a2".to_string()),
                held_by: Some("a1".to_string()),
                mapping: Some("xmpp-uid".to_string()),
                ..Warning::new(WarningKind::Conflict, "xmpp name bj is held".to_string())
            },
            Warning {
                group: Some("sales".to_string()),
                ..Warning::new(WarningKind::GroupCollision, "two rules".to_string())
            },
        ];
        warnings.extend(texts.iter().map(|text| Warning {
            im_name: Some(text.to_string()),
            ..Warning::new(WarningKind::InvalidName, text.to_string())
        }));
        warnings
    }

    fn plan(changes: Vec<Change>) -> Plan {
        let mut skipped = BTreeMap::new();
        skipped.insert(
            "aol".to_string(),
            SkipCounts {
                missing_attribute: 2,
                invalid_name: 1,
                disabled: 3,
            },
        );
        let mut group_skipped = BTreeMap::new();
        group_skipped.insert(
            "sta\"ff".to_string(),
            GroupSkipCounts {
                unknown_members: 3,
                ..Default::default()
            },
        );
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            revision: Some("abc\"def".to_string()),
            state_serial: 7,
            inputs_digest: "sha256:00".to_string(),
            config_digest: "sha256:0c".to_string(),
            summary: Summary {
                add: 4,
                conflicts: 1,
                blocked: true,
                blocked_reason: Some("too many".to_string()),
                ..Summary::default()
            },
            changes,
            warnings: warnings_of(&TEXTS),
            skipped,
            group_skipped,
            imports: vec![SourceImport {
                source: "hr".to_string(),
                content: ImportedFile {
                    path: "hr.ldif".to_string(),
                    digest: "sha256:01".to_string(),
                },
                changes: vec![ImportedFile {
                    path: "changes/1.ldif".to_string(),
                    digest: "sha256:02".to_string(),
                }],
            }],
            sources: matched(),
        }
    }

    /// A `sources` block with every part filled, names needing escapes.
    fn matched() -> Matched {
        let counts = |names: &[&str]| -> BTreeMap<String, u64> {
            names
                .iter()
                .enumerate()
                .map(|(count, name)| (name.to_string(), count as u64))
                .collect()
        };
        Matched {
            entries_read: counts(&["hr", "co\rp"]),
            mappings: counts(&["aol", "ma\"il", "x"]),
            group_rules: counts(&["{cn}"]),
            exclusions: counts(&["vip\tpeople"]),
            disabled_when: Some(3),
            attribute_holders: [
                ("hr".to_string(), counts(&["mail", "objectClas"])),
                ("co\rp".to_string(), BTreeMap::new()),
            ]
            .into_iter()
            .collect(),
        }
    }

    /// A plan with nothing in its lists: no changes, warnings or skips.
    fn bare() -> Plan {
        let mut plan = plan(Vec::new());
        plan.warnings.clear();
        plan.skipped.clear();
        plan.group_skipped.clear();
        plan.sources = Matched::default();
        plan.revision = None;
        plan.imports.clear();
        plan.config_digest.clear();
        plan
    }

    fn effect(changes: Vec<Change>) -> Effect {
        Effect {
            base: "base".to_string(),
            head: None,
            head_dirty: true,
            summary: Summary::default(),
            changes,
            files: vec![FileDiff {
                path: "x.yaml".to_string(),
                status: FileStatus::Modified,
                diff: "-a\n+b\n".to_string(),
            }],
        }
    }

    fn write(document: &PlanDocument<'_>) -> String {
        let mut bytes = Vec::new();
        write_document(document, &mut bytes).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    /// Checks the JSON of `document`: it parses to exactly serde's value of it; the
    /// header keys come before `changes`; each change (also the effect's) and each
    /// warning is one line, as it serialises on one line, and the rest is serde's pretty
    /// form.
    fn check(document: &PlanDocument<'_>) {
        let text = write(document);
        let value: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e} in:\n{text}"));
        let expected = serde_json::to_value(document).unwrap();
        assert_eq!(value, expected, "in:\n{text}");

        let lines: Vec<&str> = text.split('\n').collect();
        let keys: Vec<&str> = lines
            .iter()
            .filter_map(|line| line.strip_prefix("  \""))
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect();
        let order: Vec<&str> = PLAN_HEADER
            .into_iter()
            .chain(AFTER_HEADER)
            .filter(|key| expected.get(key).is_some())
            .collect();
        assert_eq!(keys, order, "in:\n{text}");

        let plan = document.plan;
        one_a_line(&lines, 1, "changes", &plan.changes);
        one_a_line(&lines, 1, "warnings", &plan.warnings);
        if let Some(effect) = document.effect {
            one_a_line(&lines, 2, "changes", &effect.changes);
        }
        // The rest is serde_json's pretty form, indented to its place.
        let mut blocks = vec![("summary", serde_json::to_string_pretty(&plan.summary))];
        blocks.push(("skipped", serde_json::to_string_pretty(&plan.skipped)));
        if !plan.group_skipped.is_empty() {
            let block = serde_json::to_string_pretty(&plan.group_skipped);
            blocks.push(("group_skipped", block));
        }
        if !plan.sources.is_empty() {
            blocks.push(("sources", serde_json::to_string_pretty(&plan.sources)));
        }
        if !plan.imports.is_empty() {
            blocks.push(("imports", serde_json::to_string_pretty(&plan.imports)));
        }
        for (key, block) in blocks {
            let block = block.unwrap().replace('\n', "\n  ");
            assert!(
                text.contains(&format!("\n  \"{key}\": {block}")),
                "{key} is not pretty in:\n{text}"
            );
        }
    }

    /// Checks that the array `key` of the object at `level` holds `items` one a line,
    /// each as it serialises on one line (fields in declaration order, `": "` and `", "`),
    /// or is `[]`.
    fn one_a_line<T: Serialize>(lines: &[&str], level: usize, key: &str, items: &[T]) {
        let indent = "  ".repeat(level);
        let open = format!("{indent}\"{key}\": [");
        let at = lines
            .iter()
            .position(|line| line.starts_with(&open))
            .unwrap_or_else(|| panic!("no {open}"));
        if items.is_empty() {
            assert!(
                [format!("{open}]"), format!("{open}],")].contains(&lines[at].to_string()),
                "{}",
                lines[at]
            );
            return;
        }
        assert_eq!(lines[at], open);
        for (index, item) in items.iter().enumerate() {
            let mut line = Vec::new();
            let mut serializer = serde_json::Serializer::with_formatter(&mut line, OneLine);
            item.serialize(&mut serializer).unwrap();
            let line = String::from_utf8(line).unwrap();
            let comma = if index + 1 < items.len() { "," } else { "" };
            assert_eq!(lines[at + 1 + index], format!("{indent}  {line}{comma}"));
            let parsed: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(parsed, serde_json::to_value(item).unwrap());
        }
        let close = lines[at + 1 + items.len()];
        assert!(close == format!("{indent}]") || close == format!("{indent}],"));
    }

    #[test]
    fn needs_escape_finds_every_byte_json_escapes() {
        for byte in 0..=255u8 {
            let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
            for at in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = byte;
                assert_eq!(needs_escape(&bytes), expected, "byte {byte:#x} at {at}");
            }
        }
        assert!(!needs_escape("ünïcödé → 名前 😀 \u{7f}".as_bytes()));
    }

    #[test]
    fn the_json_is_serdes_value_one_change_and_one_warning_a_line() {
        let full = plan(changes());
        let with_effect = effect(changes());
        let empty_effect = effect(Vec::new());
        let bare = bare();
        let trust = [
            SourceTrust {
                source: "corp".into(),
                reading: TrustedReading::TrustedSettings,
            },
            SourceTrust {
                source: "new".into(),
                reading: TrustedReading::NotRead,
            },
        ];
        for document in [
            PlanDocument::of(&full),
            PlanDocument {
                plan: &full,
                revision_dirty: true,
                effect: Some(&with_effect),
                connection_trust: &trust,
            },
            PlanDocument {
                plan: &bare,
                revision_dirty: false,
                effect: Some(&empty_effect),
                connection_trust: &[],
            },
            PlanDocument::of(&bare),
        ] {
            check(&document);
        }
    }

    #[test]
    fn a_change_reads_as_designmd_shows_it() {
        let account = text("cn=barry johnson,ou=people,dc=example,dc=com");
        let mut plan = bare();
        plan.changes = vec![
            Change {
                protocol: text("aol"),
                im_name: text("bjohnson"),
                account: account.clone(),
                mapping: text("aol-from-mail"),
                ..Change::new(Action::Add, Kind::Registration)
            },
            Change {
                account,
                ..Change::new(Action::Update, Kind::Account)
            }
            .with_detail(Detail {
                fields: Some(field("department", Some("Accounting"), Some("Finance"))),
                ..Detail::default()
            }),
        ];
        plan.warnings = vec![Warning {
            protocol: Some("aol".to_string()),
            im_name: Some("bj".to_string()),
            held_by: Some("...".to_string()),
            ..Warning::new(WarningKind::Conflict, "taken".to_string())
        }];
        let text = write(&PlanDocument::of(&plan));
        let expected = r#"
  "revision_dirty": false,
  "changes": [
    {"action": "add", "kind": "registration", "protocol": "aol", "im_name": "bjohnson", "account": "cn=barry johnson,ou=people,dc=example,dc=com", "mapping": "aol-from-mail"},
    {"action": "update", "kind": "account", "account": "cn=barry johnson,ou=people,dc=example,dc=com", "fields": {"department": ["Accounting", "Finance"]}}
  ],
  "warnings": [
    {"kind": "conflict", "protocol": "aol", "im_name": "bj", "held_by": "...", "message": "taken"}
  ],
  "skipped": {}
}"#;
        assert!(text.ends_with(expected), "{text}");
    }

    /// Any characters.
    fn any_text() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 0..10).prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn any_strings_keep_their_value_one_change_a_line(
            texts in prop::collection::vec(any_text(), 1..8),
        ) {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let mut plan = plan(changes_of(&texts));
            plan.warnings = warnings_of(&texts);
            plan.revision = Some(texts[0].to_string());
            let effect = effect(changes_of(&texts));
            check(&PlanDocument {
                plan: &plan,
                revision_dirty: true,
                effect: Some(&effect),
                connection_trust: &[],
            });
        }
    }
}
