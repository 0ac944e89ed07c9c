//! A pass over a config file's YAML events before serde_yaml reads it, refusing what
//! would make that read unbounded in time or memory:
//! - aliases (`*name`): serde_yaml expands every alias in full, so a 25 KB file of
//!   aliases to one anchor grows to gigabytes. Config files never need them; anchors
//!   alone (`&name`) are harmless and pass.
//! - nesting deeper than [`MAX_DEPTH`]: libyaml's scanner spends time proportional to
//!   the depth on every token of a flow collection (`[[[[…`), quadratic in all.
//!
//! The events come from libyaml itself (unsafe-libyaml, the parser serde_yaml is built
//! on), so this pass sees exactly what serde_yaml would. It stops at the first refusal,
//! holds one event at a time, and leaves syntax errors for serde_yaml to report.

use std::mem::MaybeUninit;

/// The deepest nesting of mappings and sequences a config file may have. Real configs
/// reach 5; serde_yaml itself stops at 128.
pub const MAX_DEPTH: usize = 64;

/// Why a file was refused, at the event that crossed the limit (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reads the YAML events of `text` and refuses the first alias, or the first collection
/// nested deeper than [`MAX_DEPTH`].
pub fn check(text: &str) -> Result<(), Refusal> {
    let mut parser = Parser::new(text.as_bytes());
    let mut depth = 0usize;
    while let Some(event) = parser.next() {
        match event.kind {
            EventKind::Alias => {
                // libyaml takes only `[0-9A-Za-z_-]` into an anchor name.
                return Err(event.refuse(format!(
                    "YAML aliases (*{}) are not allowed in registrar config; write the value \
                     out in full",
                    event.anchor
                )));
            }
            EventKind::Open => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(event.refuse(format!("YAML nested deeper than {MAX_DEPTH} levels")));
                }
            }
            EventKind::Close => depth = depth.saturating_sub(1),
            EventKind::End => break,
            EventKind::Other => {}
        }
    }
    Ok(())
}

enum EventKind {
    /// `*name`.
    Alias,
    /// The start of a mapping or sequence.
    Open,
    /// The end of a mapping or sequence.
    Close,
    /// The end of the stream.
    End,
    Other,
}

struct Event {
    kind: EventKind,
    /// The alias's anchor name (empty for other events).
    anchor: String,
    /// 0-based, as libyaml counts.
    line: u64,
    column: u64,
}

impl Event {
    fn refuse(&self, message: String) -> Refusal {
        Refusal {
            line: usize::try_from(self.line).unwrap_or(usize::MAX - 1) + 1,
            column: usize::try_from(self.column).unwrap_or(usize::MAX - 1) + 1,
            message,
        }
    }
}

/// A libyaml event parser over borrowed input. Boxed, because libyaml keeps pointers
/// into the parser struct; it must not move once initialised.
struct Parser<'input> {
    sys: Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>>,
    /// Set when initialisation or an earlier call failed: libyaml must not be asked again.
    failed: bool,
    _input: &'input [u8],
}

impl<'input> Parser<'input> {
    fn new(input: &'input [u8]) -> Self {
        let mut sys = Box::new(MaybeUninit::<unsafe_libyaml::yaml_parser_t>::uninit());
        // SAFETY: `yaml_parser_initialize` zeroes and sets up the struct it is given (it
        // reports failure when malloc fails, and then `next` reports no events; the
        // zeroed struct is safe to delete). The input outlives the parser: both are tied
        // to `'input`.
        let failed = unsafe {
            let parser = sys.as_mut_ptr();
            let failed = unsafe_libyaml::yaml_parser_initialize(parser).fail;
            if !failed {
                unsafe_libyaml::yaml_parser_set_encoding(
                    parser,
                    unsafe_libyaml::YAML_UTF8_ENCODING,
                );
                unsafe_libyaml::yaml_parser_set_input_string(
                    parser,
                    input.as_ptr(),
                    input.len() as u64,
                );
            }
            failed
        };
        Parser {
            sys,
            failed,
            _input: input,
        }
    }

    /// The next event, or `None` at a syntax error (serde_yaml reports it).
    fn next(&mut self) -> Option<Event> {
        if self.failed {
            return None;
        }
        let mut event = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser was initialised in `new` and has not failed since.
        // `yaml_parser_parse` fills `event` when it succeeds; it is read, then freed with
        // `yaml_event_delete`.
        unsafe {
            let parser = self.sys.as_mut_ptr();
            let event = event.as_mut_ptr();
            if unsafe_libyaml::yaml_parser_parse(parser, event).fail {
                self.failed = true;
                return None;
            }
            let kind = match (*event).type_ {
                unsafe_libyaml::YAML_ALIAS_EVENT => EventKind::Alias,
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT
                | unsafe_libyaml::YAML_MAPPING_START_EVENT => EventKind::Open,
                unsafe_libyaml::YAML_SEQUENCE_END_EVENT
                | unsafe_libyaml::YAML_MAPPING_END_EVENT => EventKind::Close,
                unsafe_libyaml::YAML_STREAM_END_EVENT | unsafe_libyaml::YAML_NO_EVENT => {
                    EventKind::End
                }
                _ => EventKind::Other,
            };
            let anchor = match kind {
                EventKind::Alias if !(*event).data.alias.anchor.is_null() => {
                    std::ffi::CStr::from_ptr((*event).data.alias.anchor as *const std::ffi::c_char)
                        .to_string_lossy()
                        .into_owned()
                }
                _ => String::new(),
            };
            let mark = (*event).start_mark;
            unsafe_libyaml::yaml_event_delete(event);
            Some(Event {
                kind,
                anchor,
                line: mark.line,
                column: mark.column,
            })
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` (zeroed even when initialisation failed, and
        // `yaml_parser_delete` frees only non-null buffers).
        unsafe { unsafe_libyaml::yaml_parser_delete(self.sys.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_configs_pass_and_anchors_alone_are_allowed() {
        let text = "sources:\n  - name: corp\n    anchor: entryUUID\n    ldif: {path: a.ldif}\n\
                    mappings:\n  - &first {name: a, protocol: aol, value: \"{mail}\"}\n";
        assert_eq!(check(text), Ok(()));
        assert_eq!(check(""), Ok(()));
        assert_eq!(check("filter: (cn=*)\nvalue: a*b\n"), Ok(()));
    }

    #[test]
    fn an_alias_is_refused_where_it_is() {
        let refusal = check("a: &x [1, 2]\nb:\n  - *x\n").unwrap_err();
        assert_eq!((refusal.line, refusal.column), (3, 5));
        assert_eq!(
            refusal.message,
            "YAML aliases (*x) are not allowed in registrar config; write the value out in full"
        );
    }

    #[test]
    fn nesting_past_the_limit_is_refused_at_the_first_level_too_deep() {
        let ok = format!(
            "a: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(check(&ok), Ok(()));
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let refusal = check(&deep).unwrap_err();
        assert_eq!((refusal.line, refusal.column), (1, 3 + MAX_DEPTH));
        assert_eq!(refusal.message, "YAML nested deeper than 64 levels");
        let block = format!("a:\n{}x\n", "- ".repeat(1000));
        assert_eq!(check(&block).unwrap_err().line, 2);
    }

    #[test]
    fn syntax_errors_are_left_to_serde_yaml() {
        assert_eq!(check("a: [1, 2\n"), Ok(()));
    }
}
