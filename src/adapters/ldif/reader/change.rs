//! The body of a change record, after its `changetype:` line: `add`'s attributes,
//! `delete`, `modrdn`/`moddn` and `modify`'s mod-specs, and the `control:` lines before
//! `changetype:`. It checks their shape, not what applying them would do.

use super::assemble::{check_attribute_name, push_value};
use super::decode::Decoder;
use super::line::{is_dash, is_valid_description, keyword, split, split_value_spec, Line};
use super::scan::Block;
use super::unfold::{LogicalLines, Span};
use crate::adapters::ldif::error::LdifError;
use crate::adapters::ldif::record::{Change, Control, ModOp, ModRdn, Modification, RenameKeyword};
use registrar_core::entry::Entry;
use registrar_core::quote::quote_for_message;

/// What a `changetype:` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChangeType {
    Add,
    Delete,
    Rename(RenameKeyword),
    Modify,
}

/// The change type of a `changetype:` line (any case); an unknown one is an error.
pub(super) fn change_type(block: &Block, span: Span, line: &Line) -> Result<ChangeType, LdifError> {
    let changetype = keyword(block, span, line)?;
    let known = [
        ("add", ChangeType::Add),
        ("delete", ChangeType::Delete),
        ("modrdn", ChangeType::Rename(RenameKeyword::ModRdn)),
        ("moddn", ChangeType::Rename(RenameKeyword::ModDn)),
        ("modify", ChangeType::Modify),
    ];
    match known
        .into_iter()
        .find(|(name, _)| changetype.eq_ignore_ascii_case(name))
    {
        Some((_, change_type)) => Ok(change_type),
        None => Err(block.error(
            span,
            format!(
                "unknown changetype {}: expected add, delete, modify, modrdn or moddn",
                quote_for_message(changetype)
            ),
        )),
    }
}

/// The change of a record, from the lines after its `changetype:` line (at
/// `changetype_span`).
pub(super) fn parse_change(
    block: &Block,
    lines: &mut LogicalLines,
    decoder: &mut Decoder,
    changetype_span: Span,
    change_type: ChangeType,
) -> Result<Change, LdifError> {
    match change_type {
        ChangeType::Add => parse_add(block, lines, decoder, changetype_span),
        ChangeType::Delete => match lines.next_line()? {
            Some((span, line)) => Err(block.error(
                span,
                format!(
                    "unexpected \"{}:\" line: a \"changetype: delete\" record ends after its \
                     \"changetype:\" line",
                    line.description()
                ),
            )),
            None => Ok(Change::Delete),
        },
        ChangeType::Rename(keyword) => {
            parse_rename(block, lines, decoder, changetype_span, keyword).map(Change::ModRdn)
        }
        ChangeType::Modify => parse_modifications(block, lines, decoder).map(Change::Modify),
    }
}

/// The attributes of an add record.
fn parse_add(
    block: &Block,
    lines: &mut LogicalLines,
    decoder: &mut Decoder,
    changetype_span: Span,
) -> Result<Change, LdifError> {
    let mut entry = Entry::default();
    while let Some((span, line)) = lines.next_line()? {
        check_attribute_name(block, span, &line)?;
        let value = decoder.value(block, span, &line)?;
        push_value(&mut entry, line.description(), value);
    }
    if entry.attributes.is_empty() {
        return Err(block.error(
            changetype_span,
            "\"changetype: add\" record has no attributes",
        ));
    }
    Ok(Change::Add(entry.attributes))
}

/// A modrdn or moddn record: `newrdn:`, `deleteoldrdn:`, then `newsuperior:` if any.
fn parse_rename(
    block: &Block,
    lines: &mut LogicalLines,
    decoder: &mut Decoder,
    changetype_span: Span,
    keyword_used: RenameKeyword,
) -> Result<ModRdn, LdifError> {
    let name = keyword_used.keyword();
    let Some((span, line)) = lines.next_line()? else {
        return Err(block.error(
            changetype_span,
            format!("\"changetype: {name}\" record has no \"newrdn:\" line"),
        ));
    };
    if !line.is("newrdn") {
        return Err(block.error(
            span,
            format!("expected \"newrdn:\", found \"{}:\"", line.description()),
        ));
    }
    let new_rdn = decoder.text(block, span, &line, "\"newrdn:\"")?;
    if new_rdn.is_empty() {
        return Err(block.error(span, "\"newrdn:\" is empty"));
    }
    let Some((span, line)) = lines.next_line()? else {
        return Err(block.error(
            span,
            format!("\"changetype: {name}\" record has no \"deleteoldrdn:\" line"),
        ));
    };
    let delete_old_rdn = delete_old_rdn(block, span, &line)?;
    let mut new_superior = None;
    if let Some((span, line)) = lines.next_line()? {
        if !line.is("newsuperior") {
            return Err(block.error(
                span,
                format!(
                    "unexpected \"{}:\" line: after \"deleteoldrdn:\" only \
                     \"newsuperior:\" may follow",
                    line.description()
                ),
            ));
        }
        new_superior = Some(decoder.text(block, span, &line, "\"newsuperior:\"")?);
        if let Some((span, line)) = lines.next_line()? {
            return Err(block.error(
                span,
                format!(
                    "unexpected \"{}:\" line: a \"changetype: {name}\" record ends after \
                     \"newsuperior:\"",
                    line.description()
                ),
            ));
        }
    }
    Ok(ModRdn {
        keyword: keyword_used,
        new_rdn,
        delete_old_rdn,
        new_superior,
    })
}

/// The flag of a `deleteoldrdn:` line: 0 or 1.
fn delete_old_rdn(block: &Block, span: Span, line: &Line) -> Result<bool, LdifError> {
    if !line.is("deleteoldrdn") {
        return Err(block.error(
            span,
            format!(
                "expected \"deleteoldrdn:\", found \"{}:\"",
                line.description()
            ),
        ));
    }
    match keyword(block, span, line)? {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(block.error(
            span,
            format!(
                "\"deleteoldrdn:\" must be 0 or 1, found {}",
                quote_for_message(other)
            ),
        )),
    }
}

/// The mod-specs of a modify record, after its `changetype:` line.
fn parse_modifications(
    block: &Block,
    lines: &mut LogicalLines,
    decoder: &mut Decoder,
) -> Result<Vec<Modification>, LdifError> {
    let mut modifications = Vec::new();
    loop {
        let Some((span, text)) = lines.next_text()? else {
            return Ok(modifications);
        };
        if is_dash(text) {
            return Err(block.error(
                span,
                "\"-\" with no mod-spec before it: expected \"add:\", \"delete:\", \
                 \"replace:\" or \"increment:\"",
            ));
        }
        let line = split(text).map_err(|p| block.problem(span, p))?;
        let (op, attribute) = mod_spec_start(block, span, &line)?;
        let (values, ended) = mod_spec_values(block, lines, decoder, &attribute)?;
        modifications.push(Modification {
            op,
            attribute,
            values,
        });
        if ended {
            return Ok(modifications);
        }
    }
}

/// The operation and attribute of the line starting a mod-spec (`replace: mail`).
fn mod_spec_start(block: &Block, span: Span, line: &Line) -> Result<(ModOp, String), LdifError> {
    let op = match line.description().to_ascii_lowercase().as_str() {
        "add" => ModOp::Add,
        "delete" => ModOp::Delete,
        "replace" => ModOp::Replace,
        "increment" => ModOp::Increment,
        _ => {
            return Err(block.error(
                span,
                format!(
                    "expected \"add:\", \"delete:\", \"replace:\" or \"increment:\" to \
                     start a mod-spec, found \"{}:\"",
                    line.description()
                ),
            ))
        }
    };
    let attribute = keyword(block, span, line)?;
    if !is_valid_description(attribute) {
        return Err(block.error_at(
            span,
            line.value.start,
            format!(
                "\"{}:\" needs an attribute description, found {}",
                op.keyword(),
                quote_for_message(attribute)
            ),
        ));
    }
    Ok((op, attribute.to_string()))
}

/// The values of a mod-spec for `attribute`, up to its `-` line; true with them when
/// the record ended instead (the last `-` may be left out).
fn mod_spec_values(
    block: &Block,
    lines: &mut LogicalLines,
    decoder: &mut Decoder,
    attribute: &str,
) -> Result<(Vec<Vec<u8>>, bool), LdifError> {
    let mut values = Vec::new();
    loop {
        let Some((span, text)) = lines.next_text()? else {
            return Ok((values, true));
        };
        if is_dash(text) {
            return Ok((values, false));
        }
        let line = split(text).map_err(|p| block.problem(span, p))?;
        if !line.is(attribute) {
            return Err(block.error(
                span,
                format!(
                    "\"{}:\" inside the mod-spec for \"{attribute}\": a mod-spec holds only \
                     \"{attribute}:\" values; end it with a \"-\" line",
                    line.description()
                ),
            ));
        }
        values.push(decoder.value(block, span, &line)?);
    }
}

/// `control: oid [true|false] [: value | :: base64 | :< url]`.
pub(super) fn parse_control(
    block: &Block,
    span: Span,
    line: &Line,
    decoder: &mut Decoder,
) -> Result<Control, LdifError> {
    let text = keyword(block, span, line)?.as_bytes();
    let start = line.value.start;
    let oid_end = text
        .iter()
        .position(|&b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(text.len());
    let oid = std::str::from_utf8(&text[..oid_end]).unwrap_or_default();
    let well_formed = !oid.is_empty() && oid.split('.').all(|arc| !arc.is_empty());
    if !well_formed || !matches!(text.get(oid_end), None | Some(b' ' | b':')) {
        return Err(block.error_at(
            span,
            start,
            format!(
                "\"control:\" needs a numeric OID, found {}",
                quote_for_message(text)
            ),
        ));
    }
    let mut i = oid_end;
    while text.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut criticality = false;
    for (word, critical) in [("true", true), ("false", false)] {
        let end = i + word.len();
        if i > oid_end
            && text
                .get(i..end)
                .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
            && matches!(text.get(end), None | Some(b' ' | b':'))
        {
            criticality = critical;
            i = end;
            while text.get(i) == Some(&b' ') {
                i += 1;
            }
            break;
        }
    }
    let value = match text.get(i) {
        None => None,
        Some(b':') => {
            // Reuse the value grammar on the rest of the line: ": x", ":: b64", ":< url".
            let rest = &line.text[start + i..];
            let spec = split_value_spec(rest, start + i);
            let value_line = Line {
                text: line.text,
                description: line.description,
                kind: spec.0,
                value: spec.1,
            };
            Some(decoder.value(block, span, &value_line)?)
        }
        Some(_) => {
            return Err(block.error_at(
                span,
                start + i,
                format!(
                    "unexpected \"{}\" in \"control:\": expected \"true\", \"false\" or a \
                     \":\" value",
                    String::from_utf8_lossy(&text[i..])
                ),
            ))
        }
    };
    Ok(Control {
        oid: oid.to_string(),
        criticality,
        value,
    })
}
