//! Record assembly: one block's logical lines into a [`Record`]: the `version:` line, the
//! `dn:`, controls, then a content record's attributes (filled into a recycled entry)
//! or, after `changetype:`, a change record (see [`super::change`]). It also keeps the
//! rule that a file holds content records or change records, not both.

use super::change::{change_type, parse_change, parse_control};
use super::decode::Decoder;
use super::line::{keyword, Line};
use super::pool::{refill, spare_entry};
use super::scan::Block;
use super::unfold::{LogicalLines, Span};
use crate::adapters::ldif::error::LdifError;
use crate::adapters::ldif::record::{ChangeRecord, Record};
use registrar_core::entry::Entry;
use registrar_core::quote::quote_for_message;

/// What the reader remembers between records.
#[derive(Default)]
pub(super) struct State {
    /// Whether the first non-comment line of the input (where `version:` may be) is past.
    pub(super) started: bool,
    /// The kind of the first record; every other record must be of the same kind.
    pub(super) kind: Option<Kind>,
    pub(super) record_line: usize,
    /// How many attributes the last content record had: files tend to hold alike
    /// entries, so this sizes a new entry's attribute list.
    pub(super) attributes_hint: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Content,
    Change,
}

/// Refuses `dn:` and `changetype:` as attributes of an entry: they mean a blank line is
/// missing between two records.
pub(super) fn check_attribute_name(
    block: &Block,
    span: Span,
    line: &Line,
) -> Result<(), LdifError> {
    if line.is("dn") || line.is("changetype") {
        return Err(block.error(
            span,
            format!(
                "\"{}:\" inside a record; is the blank line before it missing?",
                line.description()
            ),
        ));
    }
    Ok(())
}

/// Appends a value to `entry`, with a fast path for runs of the same attribute.
pub(super) fn push_value(entry: &mut Entry, description: &str, value: Vec<u8>) {
    if let Some(last) = entry.attributes.last_mut() {
        if last.description.eq_ignore_ascii_case(description) {
            last.values.push(value);
            return;
        }
    }
    entry.push_value(description, value);
}

/// Parses one block: `Ok(None)` when it holds only comments (or only `version:`).
pub(super) fn parse_block(
    block: &Block,
    scratch: &mut Vec<u8>,
    decoder: &mut Decoder,
    state: &mut State,
) -> Result<Option<Record>, LdifError> {
    let mut lines = LogicalLines::new(block, scratch);
    skip_version(block, &mut lines, state)?;
    let Some((dn_span, line)) = lines.next_line()? else {
        return Ok(None);
    };
    if !line.is("dn") {
        return Err(block.error(
            dn_span,
            format!(
                "record has no \"dn:\" line: it starts with \"{}:\"; every record starts \
                 with \"dn:\", and a blank line ends a record",
                line.description()
            ),
        ));
    }
    let mut entry = spare_entry(state.attributes_hint);
    decoder.text_into(block, dn_span, &line, "a DN", &mut entry.dn)?;
    state.record_line = block.line_of(dn_span);

    let mut controls = Vec::new();
    let mut next = lines.next_line()?;
    while let Some((span, line)) = &next {
        if !line.is("control") {
            break;
        }
        controls.push(parse_control(block, *span, line, decoder)?);
        next = lines.next_line()?;
    }

    match next {
        Some((span, line)) if line.is("changetype") => {
            if state.kind == Some(Kind::Content) {
                return Err(block.error(
                    span,
                    "change record in a file of content records; a file holds either \
                     entries or changes, not both",
                ));
            }
            state.kind = Some(Kind::Change);
            let dn = std::mem::take(&mut entry.dn);
            drop(entry);
            let changetype = change_type(block, span, &line)?;
            let change = parse_change(block, &mut lines, decoder, span, changetype)?;
            Ok(Some(Record::Change(ChangeRecord {
                dn,
                controls,
                change,
            })))
        }
        mut current => {
            let span = current.as_ref().map_or(dn_span, |(span, _)| *span);
            if state.kind == Some(Kind::Change) {
                return Err(block.error(
                    span,
                    "content record (no \"changetype:\" after \"dn:\") in a file of \
                     change records; a file holds either entries or changes, not both",
                ));
            }
            if !controls.is_empty() {
                return Err(block.error(
                    span,
                    "\"control:\" lines must be followed by \"changetype:\"; content \
                     records cannot carry controls",
                ));
            }
            state.kind = Some(Kind::Content);
            let mut filling = Filling::new(entry);
            while let Some((span, line)) = current {
                filling.add(block, span, &line, decoder)?;
                current = lines.next_line()?;
            }
            let entry = filling.finish(decoder);
            state.attributes_hint = entry.attributes.len().min(256);
            Ok(Some(Record::Content(entry)))
        }
    }
}

/// Before the first record of the input: checks and skips its `version:` line, if it
/// has one. A block of comments alone leaves the first record still to come.
fn skip_version(
    block: &Block,
    lines: &mut LogicalLines,
    state: &mut State,
) -> Result<(), LdifError> {
    if state.started {
        return Ok(());
    }
    let start = lines.position();
    let Some((span, line)) = lines.next_line()? else {
        return Ok(());
    };
    state.started = true;
    if !line.is("version") {
        lines.rewind(start);
        return Ok(());
    }
    let version = keyword(block, span, &line)?;
    if version != "1" {
        return Err(block.error(
            span,
            format!(
                "unsupported LDIF version {}: only version 1 exists",
                quote_for_message(version)
            ),
        ));
    }
    Ok(())
}

/// A content record being filled into an entry. A new entry is filled by
/// [`push_value`]; a recycled one by [`refill`], reusing its attributes' and values'
/// buffers.
struct Filling {
    entry: Entry,
    /// For a recycled entry, how many of its attributes are this record's so far; the
    /// rest are left from an older record. `None` for a new entry.
    used: Option<usize>,
}

impl Filling {
    #[inline]
    fn new(entry: Entry) -> Self {
        let used = (!entry.attributes.is_empty()).then_some(0);
        Filling { entry, used }
    }

    /// Adds the value of one `attr: value` line.
    #[inline]
    fn add(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
        decoder: &mut Decoder,
    ) -> Result<(), LdifError> {
        check_attribute_name(block, span, line)?;
        match &mut self.used {
            None => {
                let value = decoder.value(block, span, line)?;
                push_value(&mut self.entry, line.description(), value);
            }
            Some(used) => {
                let mut value = decoder.spare_value();
                decoder.value_into(block, span, line, &mut value)?;
                refill(
                    &mut self.entry.attributes,
                    used,
                    line.description(),
                    value,
                    decoder,
                );
            }
        }
        Ok(())
    }

    /// The filled entry; a recycled entry's attributes left from an older record give
    /// their value buffers back to `decoder`.
    #[inline]
    fn finish(mut self, decoder: &mut Decoder) -> Entry {
        if let Some(used) = self.used {
            for stale in self.entry.attributes.drain(used..) {
                decoder.keep_values(stale.values.into_iter());
            }
        }
        self.entry
    }
}
