//! The plan JSON, written by hand: byte for byte what `serde_json::to_writer_pretty`
//! makes of a [`PlanDocument`] (a test holds the two together), at a fraction of the
//! cost. A first import of a million users is a plan of millions of changes and over a
//! gigabyte of JSON, and serde's generic pretty printer spends most of a run on it.
//!
//! Only the changes, the bulk, are written here; the few other values (summary,
//! warnings, skip counts, changed files) still go through serde, indented to their
//! place. Reading a plan back is serde's business alone.

use std::io::{self, Write};

use serde::Serialize;

use super::PlanDocument;
use crate::core::effect::Effect;
use crate::core::plan::{Action, Change, Kind};

/// Bytes gathered before a write: large pieces, few calls.
const PIECE: usize = 1 << 16;

/// Writes `document` as pretty JSON, without the final newline.
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
    json.key(1, "changes")?;
    json.changes(1, &plan.changes)?;
    json.key(1, "warnings")?;
    json.serde(1, &plan.warnings)?;
    json.key(1, "skipped")?;
    json.serde(1, &plan.skipped)?;
    if !plan.group_skipped.is_empty() {
        json.key(1, "group_skipped")?;
        json.serde(1, &plan.group_skipped)?;
    }
    if !plan.imports.is_empty() {
        json.key(1, "imports")?;
        json.serde(1, &plan.imports)?;
    }
    json.key(1, "revision_dirty")?;
    json.serde(1, &document.revision_dirty)?;
    if let Some(effect) = document.effect {
        json.key(1, "effect")?;
        json.effect(1, effect)?;
    }
    json.close_object(0);
    json.flush()
}

/// A pretty JSON writer: two spaces per level, `"key": value`, one value a line, as
/// serde_json's `PrettyFormatter`. Objects and arrays remember whether they are still
/// empty, so that an empty one closes as `{}` or `[]`.
struct Json<'o> {
    out: &'o mut dyn Write,
    buffer: Vec<u8>,
    /// Per open object or array: whether it has no member yet.
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

    fn changes(&mut self, level: usize, changes: &[Change]) -> io::Result<()> {
        self.open_array();
        for change in changes {
            self.spill()?;
            self.next_member(level + 1);
            self.change(level + 1, change)?;
        }
        self.close_array(level);
        Ok(())
    }

    /// One change, its fields in declaration order, absent ones left out (as the
    /// `skip_serializing_if` attributes on [`Change`] say).
    fn change(&mut self, level: usize, change: &Change) -> io::Result<()> {
        let inner = level + 1;
        self.open_object();
        self.key(inner, "action")?;
        self.string(action_name(change.action));
        self.key(inner, "kind")?;
        self.string(kind_name(change.kind));
        let texts = [
            ("protocol", &change.protocol),
            ("im_name", &change.im_name),
            ("im_name_key", &change.name_key),
            ("account", &change.account),
            ("mapping", &change.mapping),
            ("reason", &change.reason),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                self.key(inner, name)?;
                self.string(value);
            }
        }
        if let Some(fields) = &change.fields {
            self.key(inner, "fields")?;
            self.open_object();
            for (field, (old, new)) in fields.iter() {
                self.key(inner + 1, field)?;
                self.open_array();
                for value in [old, new] {
                    self.next_member(inner + 2);
                    self.optional_string(value.as_deref());
                }
                self.close_array(inner + 1);
            }
            self.close_object(inner);
        }
        for (name, value) in [("dn", &change.dn), ("source", &change.source)] {
            if let Some(value) = value {
                self.key(inner, name)?;
                self.string(value);
            }
        }
        if let Some(profile) = &change.profile {
            self.key(inner, "profile")?;
            self.open_object();
            for (field, value) in profile.iter() {
                self.key(inner + 1, field.name())?;
                self.string(value);
            }
            self.close_object(inner);
        }
        let texts = [
            ("group", &change.group),
            ("member", &change.member),
            ("group_rule", &change.group_rule),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                self.key(inner, name)?;
                self.string(value);
            }
        }
        if let Some(kind) = change.group_kind {
            self.key(inner, "group_kind")?;
            self.string(kind.name());
        }
        self.close_object(level);
        Ok(())
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

    use super::*;
    use crate::core::desired::{SkipCounts, Warning, WarningKind};
    use crate::core::effect::{FileDiff, FileStatus};
    use crate::core::model::{GroupKind, Profile};
    use crate::core::plan::{ImportedFile, Plan, SourceImport, Summary, PLAN_FORMAT_VERSION};

    /// Strings that need every kind of escape, and some that need none.
    const TEXTS: [&str; 6] = [
        "plain",
        "quote \" backslash \\ slash /",
        "tab\tnew\nline\rcr\u{8}bs\u{c}ff",
        "nul \u{0} unit \u{1f} del \u{7f}",
        "ünïcödé → 名前 😀",
        "",
    ];

    fn changes() -> Vec<Change> {
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
        for (i, text) in TEXTS.iter().enumerate() {
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
            changes.push(Change {
                protocol: some(1),
                im_name: some(2),
                account: some(1),
                mapping: some(3),
                reason: some(2),
                fields: (i % 2 == 1).then(|| Box::new(fields)),
                dn: some(1),
                source: some(2),
                profile: Some(Box::new(Profile::from_values([
                    Some(*text),
                    None,
                    (i % 2 == 0).then_some("x"),
                    None,
                    None,
                    Some("mail"),
                ]))),
                group: some(3),
                member: some(2),
                group_rule: some(1),
                group_kind: [
                    None,
                    Some(GroupKind::OrgUnit),
                    Some(GroupKind::DistributionList),
                ][i % 3],
                ..Change::new(actions[i % actions.len()], kinds[i % kinds.len()])
            });
        }
        changes.push(Change {
            fields: Some(Box::default()),
            profile: Some(Box::default()),
            ..Change::new(Action::Update, Kind::Account)
        });
        changes.push(Change::new(Action::Remove, Kind::GroupMember));
        changes
    }

    fn plan(changes: Vec<Change>) -> Plan {
        let mut skipped = BTreeMap::new();
        skipped.insert(
            "aol".to_string(),
            SkipCounts {
                missing_attribute: 2,
                invalid_name: 1,
            },
        );
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            revision: Some("abc\"def".to_string()),
            state_serial: 7,
            inputs_digest: "sha256:00".to_string(),
            config_digest: "sha256:0c".to_string(),
            summary: Summary {
                blocked_reason: Some("too many".to_string()),
                ..Summary::default()
            },
            changes,
            warnings: vec![Warning::new(WarningKind::Conflict, "a\nb".to_string())],
            skipped,
            group_skipped: BTreeMap::new(),
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
        }
    }

    fn both(document: &PlanDocument<'_>) -> (String, String) {
        let mut ours = Vec::new();
        write_document(document, &mut ours).unwrap();
        let theirs = serde_json::to_string_pretty(document).unwrap();
        (String::from_utf8(ours).unwrap(), theirs)
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
    fn the_hand_written_json_is_serde_json_pretty_byte_for_byte() {
        let full = plan(changes());
        let effect = Effect {
            base: "base".to_string(),
            head: None,
            head_dirty: true,
            summary: Summary::default(),
            changes: changes(),
            files: vec![FileDiff {
                path: "x.yaml".to_string(),
                status: FileStatus::Modified,
                diff: "-a\n+b\n".to_string(),
            }],
        };
        let empty_effect = Effect {
            changes: Vec::new(),
            files: Vec::new(),
            ..effect.clone()
        };
        let mut with_groups = plan(Vec::new());
        with_groups
            .group_skipped
            .insert("staff".to_string(), Default::default());
        with_groups.warnings.clear();
        with_groups.skipped.clear();
        with_groups.revision = None;
        with_groups.imports.clear();
        with_groups.config_digest.clear();
        for document in [
            PlanDocument::of(&full),
            PlanDocument {
                plan: &full,
                revision_dirty: true,
                effect: Some(&effect),
            },
            PlanDocument {
                plan: &with_groups,
                revision_dirty: false,
                effect: Some(&empty_effect),
            },
            PlanDocument::of(&with_groups),
        ] {
            let (ours, theirs) = both(&document);
            assert_eq!(ours, theirs);
        }
    }
}
