//! Value decoding: a line's value as bytes, checked UTF-8 text, base64 (padding
//! optional) or read through the [`UrlResolver`] (`attr:< url`), within the value limit.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use super::line::{describe_char, Line, ValueKind};
use super::pool::{MAX_RECYCLED_VALUE, MAX_SPARE_VALUES};
use super::scan::Block;
use super::unfold::Span;
use crate::adapters::ldif::error::LdifError;
use crate::adapters::ldif::url::UrlResolver;
use registrar_core::quote::quote_for_message;

/// Base64 as LDIF writers produce it; padding may be missing and trailing bits set, as
/// python-ldap and OpenLDAP accept.
pub(super) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The message for a value of `description` larger than `max_value_bytes`.
pub(super) fn value_too_large(description: &str, max_value_bytes: usize) -> String {
    format!(
        "value of \"{description}\" is larger than the limit of {max_value_bytes} bytes \
         (max_value_bytes of the source)"
    )
}

/// Turns the value part of a line into bytes: checks UTF-8, decodes base64, resolves URLs.
pub(super) struct Decoder {
    base64_text: Vec<u8>,
    pub(super) resolver: Box<dyn UrlResolver>,
    /// Value buffers of recycled entries, to decode values into.
    spare_values: Vec<Vec<u8>>,
    /// The largest value accepted, decoded.
    pub(super) max_value_bytes: usize,
}

impl Decoder {
    /// A decoder reading URL values with `resolver`, refusing values larger than
    /// `max_value_bytes`.
    pub(super) fn new(resolver: Box<dyn UrlResolver>, max_value_bytes: usize) -> Self {
        Decoder {
            base64_text: Vec::new(),
            resolver,
            spare_values: Vec::new(),
            max_value_bytes,
        }
    }

    #[inline]
    pub(super) fn value(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
    ) -> Result<Vec<u8>, LdifError> {
        let mut out = Vec::new();
        self.value_into(block, span, line, &mut out)?;
        Ok(out)
    }

    /// Appends the value of `line` to `out`.
    #[inline]
    pub(super) fn value_into(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
        out: &mut Vec<u8>,
    ) -> Result<(), LdifError> {
        let raw = line.raw_value();
        if line.kind == ValueKind::Text && raw.len() > self.max_value_bytes {
            return Err(block.error_at(
                span,
                line.value.start,
                value_too_large(line.description(), self.max_value_bytes),
            ));
        }
        match line.kind {
            ValueKind::Text if block.ascii => {
                out.extend_from_slice(raw);
                Ok(())
            }
            ValueKind::Text => match std::str::from_utf8(raw) {
                Ok(_) => {
                    out.extend_from_slice(raw);
                    Ok(())
                }
                Err(e) => Err(block.error_at(
                    span,
                    line.value.start + e.valid_up_to(),
                    format!(
                        "value of \"{0}\" is not valid UTF-8; write binary values in base64 \
                         (\"{0}:: ...\")",
                        line.description()
                    ),
                )),
            },
            ValueKind::Base64 => self.base64(block, span, line, out),
            ValueKind::Url => {
                let url = match std::str::from_utf8(raw) {
                    Ok("") => {
                        return Err(block.error(
                            span,
                            format!("empty URL in value of \"{}\"", line.description()),
                        ))
                    }
                    Ok(url) => url,
                    Err(_) => {
                        return Err(block.error(
                            span,
                            format!("URL in value of \"{}\" is not UTF-8", line.description()),
                        ))
                    }
                };
                let value = self
                    .resolver
                    .resolve(url, self.max_value_bytes)
                    .map_err(|reason| {
                        block.error_at(
                            span,
                            line.value.start,
                            format!(
                                "cannot read the value of \"{}\" from {}: {reason}",
                                line.description(),
                                quote_for_message(url)
                            ),
                        )
                    })?;
                out.extend_from_slice(&value);
                Ok(())
            }
        }
    }

    /// An empty buffer for a value: a recycled one when there is one.
    #[inline]
    pub(super) fn spare_value(&mut self) -> Vec<u8> {
        self.spare_values.pop().unwrap_or_default()
    }

    /// Keeps `values`' buffers for later values, as many as are worth keeping.
    #[inline]
    pub(super) fn keep_values(&mut self, values: impl Iterator<Item = Vec<u8>>) {
        for mut value in values {
            if self.spare_values.len() >= MAX_SPARE_VALUES {
                break;
            }
            if value.capacity() <= MAX_RECYCLED_VALUE {
                value.clear();
                self.spare_values.push(value);
            }
        }
    }

    pub(super) fn base64(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
        out: &mut Vec<u8>,
    ) -> Result<(), LdifError> {
        let raw = line.raw_value();
        // A fold may keep spaces inside base64 text (a continuation with two spaces);
        // they carry no data, so drop them as python-ldap and OpenLDAP do.
        let filtered = raw.contains(&b' ');
        let input: &[u8] = if filtered {
            self.base64_text.clear();
            self.base64_text
                .extend(raw.iter().copied().filter(|&b| b != b' '));
            &self.base64_text
        } else {
            raw
        };
        // Valid base64 decodes to 3 bytes per 4 characters, padding aside.
        let padding = input.iter().rev().take(2).filter(|&&b| b == b'=').count();
        if (input.len() - padding) * 3 / 4 > self.max_value_bytes {
            return Err(block.error_at(
                span,
                line.value.start,
                value_too_large(line.description(), self.max_value_bytes),
            ));
        }
        out.reserve(input.len() / 4 * 3 + 3);
        match BASE64.decode_vec(input, out) {
            Ok(()) => Ok(()),
            Err(e) => {
                let what = format!("invalid base64 in value of \"{}\"", line.description());
                match e {
                    base64::DecodeError::InvalidByte(at, byte) => {
                        let message = format!(
                            "{what}: {} is not a base64 character",
                            describe_char(&[byte])
                        );
                        if filtered {
                            Err(block.error(span, message))
                        } else {
                            Err(block.error_at(span, line.value.start + at, message))
                        }
                    }
                    base64::DecodeError::InvalidLength(_) => Err(block.error(
                        span,
                        format!("{what}: the text is cut short (its length is not valid)"),
                    )),
                    _ => Err(block.error(span, format!("{what}: bad padding or last character"))),
                }
            }
        }
    }

    /// A value that must be text (a DN, `newrdn:`, `newsuperior:`); `what` names it.
    pub(super) fn text(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
        what: &str,
    ) -> Result<String, LdifError> {
        let mut text = String::new();
        self.text_into(block, span, line, what, &mut text)?;
        Ok(text)
    }

    /// [`Decoder::text`] into `out`, reusing its buffer.
    #[inline]
    pub(super) fn text_into(
        &mut self,
        block: &Block,
        span: Span,
        line: &Line,
        what: &str,
        out: &mut String,
    ) -> Result<(), LdifError> {
        if line.kind == ValueKind::Url {
            return Err(block.error(span, format!("{what} cannot be given as a URL")));
        }
        let mut bytes = std::mem::take(out).into_bytes();
        bytes.clear();
        self.value_into(block, span, line, &mut bytes)?;
        *out = String::from_utf8(bytes).map_err(|_| {
            block.error(
                span,
                format!("{what} is not valid UTF-8 after base64 decoding"),
            )
        })?;
        Ok(())
    }
}
