//! Making text from the directory or the config safe to echo: [`printable`] escapes
//! what a terminal or a review page would act on (control characters, line separators,
//! bidirectional overrides, zero-width characters), and [`quote_for_message`] quotes a
//! value for a warning or an error, cut to [`QUOTE_CHARS`] characters so that a huge
//! value neither floods the output nor is copied whole while the message is built.
//!
//! Pure functions of their input; nothing here knows where the text goes.

use std::fmt::Write as _;

/// The most characters of a value a message quotes.
pub const QUOTE_CHARS: usize = 200;

/// `text` with control characters, line and paragraph separators and invisible format
/// characters (bidirectional overrides and isolates, zero-width characters, BOM) escaped,
/// so that it prints on one line as what it is, inside a table or a YAML comment.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_printable_str(&mut out, text);
    out
}

/// Appends [`printable`]`(text)` to `into`; printable ASCII, what DNs and names mostly
/// are, is copied as it is.
pub fn push_printable_str(into: &mut String, text: &str) {
    if text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        into.push_str(text);
    } else {
        for c in text.chars() {
            push_printable(into, c);
        }
    }
}

/// Whether `c` would act on a terminal or a page rather than show: C0 and C1 controls,
/// DEL, line and paragraph separators, bidirectional embeddings, overrides and isolates
/// (U+202A–U+202E, U+2066–U+2069), zero-width characters and the BOM.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fn push_printable(out: &mut String, c: char) {
    if is_invisible(c) {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

/// `value` in double quotes, as `{:?}` would print a string (`"`, `\` and control
/// characters escaped), with invisible characters escaped too (see [`printable`]) and
/// bytes that are not UTF-8 as `\xNN`. Past [`QUOTE_CHARS`] characters the quote stops
/// and says how long the value was: `"abc…"… (1073741824 bytes)`. Reads only what it
/// quotes, so its cost does not grow with the value.
pub fn quote_for_message(value: impl AsRef<[u8]>) -> String {
    shown(value.as_ref(), true)
}

/// [`quote_for_message`] without the quotes, for what messages print bare (a DN, an
/// anchor): invisible characters escaped, `"` and `\` as they are, cut the same way.
pub fn shown_for_message(value: impl AsRef<[u8]>) -> String {
    shown(value.as_ref(), false)
}

fn shown(bytes: &[u8], quoted: bool) -> String {
    // Enough for QUOTE_CHARS characters of up to four bytes each; a character cut at the
    // end of the prefix is never reached.
    let prefix = &bytes[..bytes.len().min(4 * QUOTE_CHARS + 4)];
    let mut out = String::with_capacity(prefix.len() + 2);
    if quoted {
        out.push('"');
    }
    let mut shown = 0;
    let mut consumed = 0;
    'chunks: for chunk in prefix.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == QUOTE_CHARS {
                break 'chunks;
            }
            match c {
                '"' | '\\' if quoted => {
                    out.push('\\');
                    out.push(c);
                }
                _ => push_printable(&mut out, c),
            }
            shown += 1;
            consumed += c.len_utf8();
        }
        for byte in chunk.invalid() {
            if shown == QUOTE_CHARS {
                break 'chunks;
            }
            let _ = write!(out, "\\x{byte:02x}");
            shown += 1;
            consumed += 1;
        }
    }
    if quoted {
        out.push('"');
    }
    if consumed < bytes.len() {
        let _ = write!(out, "… ({} bytes)", bytes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_values_quote_as_debug_does() {
        for value in [
            "alice",
            "a \"b\" \\ c",
            "é, 中文",
            "tab\there",
            "new\nline",
            "",
        ] {
            assert_eq!(quote_for_message(value), format!("{value:?}"));
        }
    }

    #[test]
    fn controls_and_bidi_characters_are_escaped() {
        assert_eq!(
            quote_for_message("objectCla\x1bss"),
            r#""objectCla\u{1b}ss""#
        );
        assert_eq!(quote_for_message("a\u{7f}b\u{85}c"), r#""a\u{7f}b\u{85}c""#);
        assert_eq!(
            quote_for_message("x\u{202e}y\u{2066}z\u{2069}\r"),
            r#""x\u{202e}y\u{2066}z\u{2069}\r""#
        );
        assert_eq!(quote_for_message(b"a\xff\xfeb"), r#""a\xff\xfeb""#);
    }

    #[test]
    fn long_values_are_cut_at_200_characters_with_their_length() {
        let long = "é".repeat(1000);
        let quoted = quote_for_message(&long);
        assert_eq!(quoted, format!("\"{}\"… (2000 bytes)", "é".repeat(200)));
        let exactly = "a".repeat(QUOTE_CHARS);
        assert_eq!(quote_for_message(&exactly), format!("\"{exactly}\""));
        let escaped = "\x1b".repeat(300);
        assert_eq!(
            quote_for_message(&escaped),
            format!("\"{}\"… (300 bytes)", r"\u{1b}".repeat(200))
        );
    }

    #[test]
    fn shown_is_the_quote_without_quotes() {
        assert_eq!(shown_for_message(r#"cn=a\, "b""#), r#"cn=a\, "b""#);
        assert_eq!(shown_for_message("cn=\x1b[2J"), r"cn=\u{1b}[2J");
        assert_eq!(
            shown_for_message("x".repeat(201)),
            format!("{}… (201 bytes)", "x".repeat(200))
        );
    }

    #[test]
    fn printable_keeps_quotes_and_escapes_invisible_characters() {
        assert_eq!(printable("a\"b\u{200b}\n"), "a\"b\\u{200b}\\n");
    }
}
