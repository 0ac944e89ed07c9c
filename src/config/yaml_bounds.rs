//! A pass over a config file's YAML events before serde_yaml reads it. It refuses what
//! would make that read unbounded in time or memory:
//! - aliases (`*name`): serde_yaml expands every alias in full, so a 25 KB file of
//!   aliases to one anchor grows to gigabytes. Config files never need them; anchors
//!   alone (`&name`) are harmless and pass.
//! - nesting deeper than [`MAX_DEPTH`]: libyaml's scanner spends time proportional to
//!   the depth on every token of a flow collection (`[[[[…`), quadratic in all.
//!
//! The same pass draws the file's [`Outline`]: where each top-level key and its value
//! lie, and each item of a value that is a list, so that the loader can read every part
//! on its own and one broken item does not hide the problems of the others.
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

/// A place in the text as libyaml counts it: a byte offset, and a line and a column
/// (in characters), both 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub index: usize,
    pub line: usize,
    pub column: usize,
}

/// Where a node lies in the text: from its first character (its anchor or tag, if it has
/// one) to just after its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Mark,
    pub end: Mark,
    /// The node is an item of a list in flow style (`[a, b]`): it may share its line
    /// with others, and reads alone without the indentation of its first line.
    pub in_flow: bool,
}

/// One key of the top-level mapping with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The key as text, when it is a scalar.
    pub key: Option<String>,
    /// Where the key starts.
    pub key_at: Mark,
    /// From the key's start to the value's end.
    pub span: Span,
    /// The items of the value, when it is a sequence.
    pub items: Option<Vec<Span>>,
}

/// The shape of a config file as far as the loader reads its parts one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outline {
    /// One document whose root is a mapping in block style: its pairs in file order.
    Pairs(Vec<Pair>),
    /// Anything else (a syntax error, an empty or scalar document, several documents,
    /// a root in flow style, directives): the file is read whole.
    Whole,
}

/// Reads the YAML events of `text`, refuses the first alias, or the first collection
/// nested deeper than [`MAX_DEPTH`], and returns the file's outline.
pub fn check(text: &str) -> Result<Outline, Refusal> {
    let mut parser = Parser::new(text.as_bytes());
    let mut outline = OutlineBuilder::default();
    // libyaml's offsets count from after a byte order mark.
    let mut whole = text.starts_with('\u{feff}');
    let mut depth = 0usize;
    loop {
        let Some(event) = parser.next() else {
            whole = true; // a syntax error: serde_yaml reports it
            break;
        };
        match event.kind {
            EventKind::Alias => {
                // libyaml takes only `[0-9A-Za-z_-]` into an anchor name.
                return Err(event.refuse(format!(
                    "YAML aliases (*{}) are not allowed in registrar config; write the value \
                     out in full",
                    event.anchor
                )));
            }
            EventKind::Open { .. } => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(event.refuse(format!("YAML nested deeper than {MAX_DEPTH} levels")));
                }
            }
            EventKind::Close => depth = depth.saturating_sub(1),
            EventKind::End => break,
            EventKind::Scalar | EventKind::Other => {}
        }
        outline.take(&event);
    }
    Ok(match outline.finish() {
        Some(pairs) if !whole => Outline::Pairs(pairs),
        _ => Outline::Whole,
    })
}

/// Follows the events of a file into an [`Outline`].
#[derive(Default)]
struct OutlineBuilder {
    /// Open collections before the current event.
    depth: usize,
    documents: usize,
    /// Set when the file cannot be read part by part.
    whole: bool,
    pairs: Vec<Pair>,
    /// The key being read or read (its text and start), while its value is not done.
    key: Option<(Option<String>, Mark)>,
    /// Whether the current top-level node is a key (the next one is its value).
    in_key: bool,
    /// The value being read is a sequence: its items so far.
    items: Option<Vec<Span>>,
    /// That sequence is in flow style.
    items_in_flow: bool,
    item_start: Option<Mark>,
}

impl OutlineBuilder {
    fn take(&mut self, event: &Event) {
        match event.kind {
            EventKind::Other => {
                if event.is_document_start {
                    self.documents += 1;
                    self.whole |= self.documents > 1 || event.has_directives;
                }
            }
            EventKind::Open { mapping, flow } => {
                if self.depth == 0 {
                    self.whole |= !mapping || flow;
                } else {
                    self.node_starts(event, !mapping);
                    if self.depth == 1 && !self.in_key {
                        self.items_in_flow = flow;
                    }
                }
                self.depth += 1;
            }
            EventKind::Close => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth > 0 {
                    self.node_ends(event.end);
                }
            }
            EventKind::Scalar | EventKind::Alias => {
                if self.depth == 0 {
                    self.whole = true; // a scalar document (empty, or not a mapping)
                } else {
                    self.node_starts(event, false);
                    self.node_ends(event.end);
                }
            }
            EventKind::End => {}
        }
    }

    /// A node starts at `self.depth` (1: a key or value of the root mapping, 2: perhaps
    /// an item of a value that is a sequence).
    fn node_starts(&mut self, event: &Event, is_sequence: bool) {
        match self.depth {
            1 if self.key.is_none() => {
                self.key = Some((event.scalar.clone(), event.start));
                self.in_key = true;
            }
            1 => {
                self.in_key = false;
                self.items = is_sequence.then(Vec::new);
            }
            2 if self.items.is_some() && !self.in_key => self.item_start = Some(event.start),
            _ => {}
        }
    }

    /// The node that started at `self.depth` ends at `end`.
    fn node_ends(&mut self, end: Mark) {
        match self.depth {
            1 if self.in_key => self.in_key = false,
            1 => {
                if let Some((key, key_at)) = self.key.take() {
                    self.pairs.push(Pair {
                        key,
                        key_at,
                        span: Span {
                            start: key_at,
                            end,
                            in_flow: false,
                        },
                        items: self.items.take(),
                    });
                }
            }
            2 => {
                if let (Some(items), Some(start)) = (&mut self.items, self.item_start.take()) {
                    items.push(Span {
                        start,
                        end,
                        in_flow: self.items_in_flow,
                    });
                }
            }
            _ => {}
        }
    }

    fn finish(self) -> Option<Vec<Pair>> {
        (!self.whole && self.documents == 1).then_some(self.pairs)
    }
}

enum EventKind {
    /// `*name`.
    Alias,
    /// The start of a mapping or sequence.
    Open {
        mapping: bool,
        flow: bool,
    },
    /// A scalar.
    Scalar,
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
    /// The scalar's text (`None` for other events).
    scalar: Option<String>,
    /// A document starts.
    is_document_start: bool,
    /// The document starts with `%YAML` or `%TAG` directives.
    has_directives: bool,
    start: Mark,
    end: Mark,
}

impl Event {
    fn refuse(&self, message: String) -> Refusal {
        Refusal {
            line: self.start.line.saturating_add(1),
            column: self.start.column.saturating_add(1),
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
                unsafe_libyaml::YAML_SCALAR_EVENT => EventKind::Scalar,
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT => EventKind::Open {
                    mapping: false,
                    flow: (*event).data.sequence_start.style
                        == unsafe_libyaml::YAML_FLOW_SEQUENCE_STYLE,
                },
                unsafe_libyaml::YAML_MAPPING_START_EVENT => EventKind::Open {
                    mapping: true,
                    flow: (*event).data.mapping_start.style
                        == unsafe_libyaml::YAML_FLOW_MAPPING_STYLE,
                },
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
            let scalar = match kind {
                EventKind::Scalar if !(*event).data.scalar.value.is_null() => {
                    let value = (*event).data.scalar.value as *const u8;
                    let length = usize::try_from((*event).data.scalar.length).unwrap_or(0);
                    Some(
                        String::from_utf8_lossy(std::slice::from_raw_parts(value, length))
                            .into_owned(),
                    )
                }
                _ => None,
            };
            let is_document_start = (*event).type_ == unsafe_libyaml::YAML_DOCUMENT_START_EVENT;
            let has_directives = is_document_start
                && (!(*event).data.document_start.version_directive.is_null()
                    || (*event).data.document_start.tag_directives.start
                        != (*event).data.document_start.tag_directives.end);
            let start = Mark::from((*event).start_mark);
            let end = Mark::from((*event).end_mark);
            unsafe_libyaml::yaml_event_delete(event);
            Some(Event {
                kind,
                anchor,
                scalar,
                is_document_start,
                has_directives,
                start,
                end,
            })
        }
    }
}

impl From<unsafe_libyaml::yaml_mark_t> for Mark {
    fn from(mark: unsafe_libyaml::yaml_mark_t) -> Self {
        let at = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Mark {
            index: at(mark.index),
            line: at(mark.line),
            column: at(mark.column),
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
        assert!(matches!(check(text), Ok(Outline::Pairs(_))));
        assert_eq!(check(""), Ok(Outline::Whole));
        assert!(matches!(
            check("filter: (cn=*)\nvalue: a*b\n"),
            Ok(Outline::Pairs(_))
        ));
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
        assert!(check(&ok).is_ok());
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let refusal = check(&deep).unwrap_err();
        assert_eq!((refusal.line, refusal.column), (1, 3 + MAX_DEPTH));
        assert_eq!(refusal.message, "YAML nested deeper than 64 levels");
        let block = format!("a:\n{}x\n", "- ".repeat(1000));
        assert_eq!(check(&block).unwrap_err().line, 2);
    }

    #[test]
    fn syntax_errors_are_left_to_serde_yaml() {
        assert_eq!(check("a: [1, 2\n"), Ok(Outline::Whole));
    }

    #[test]
    fn the_outline_finds_each_key_and_each_item_of_a_list() {
        let text = "# head\nsources:\n  - name: a\n    x: [1]\n  - {name: b}\n\
                    policy: {max_deletes: 3}\n\"quoted\": [c, \"d\"]\n";
        let Ok(Outline::Pairs(pairs)) = check(text) else {
            panic!("{:?}", check(text));
        };
        let slice = |span: &Span| &text[span.start.index..span.end.index];
        let keys: Vec<_> = pairs.iter().map(|p| p.key.as_deref()).collect();
        assert_eq!(keys, [Some("sources"), Some("policy"), Some("quoted")]);
        assert_eq!((pairs[0].key_at.line, pairs[0].key_at.column), (1, 0));
        let items = pairs[0].items.as_ref().unwrap();
        assert_eq!(slice(&items[0]).trim_end(), "name: a\n    x: [1]");
        assert_eq!((items[0].start.line, items[0].start.column), (2, 4));
        assert_eq!(slice(&items[1]), "{name: b}");
        assert!(!items[1].in_flow);
        assert_eq!(slice(&pairs[1].span), "policy: {max_deletes: 3}");
        assert_eq!(pairs[1].items, None);
        let quoted: Vec<_> = pairs[2].items.as_ref().unwrap().iter().map(slice).collect();
        assert_eq!(quoted, ["c", "\"d\""]);
        assert!(pairs[2].items.as_ref().unwrap()[1].in_flow);
    }

    #[test]
    fn files_not_shaped_as_one_block_mapping_are_read_whole() {
        for text in [
            "",
            "# only a comment\n",
            "- a\n",
            "{sources: []}\n",
            "a: 1\n---\nb: 2\n",
            "%YAML 1.1\n---\na: 1\n",
            "\u{feff}a: 1\n",
        ] {
            assert_eq!(check(text), Ok(Outline::Whole), "{text:?}");
        }
    }
}
