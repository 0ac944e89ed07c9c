//! A character cursor over a string, shared by the hand-written parsers of the core
//! (DNs, filters, templates).
//!
//! It only walks the text: it looks at and steps over characters, hands back slices of
//! what it passed, and turns a byte offset into the 1-based character column that the
//! parsers' errors report. It must not know any grammar or build any error: what a
//! character means, and what to say about it, stays in each parser. Like the rest of
//! the core it is pure: no I/O, no global state, and it never panics on any input (it
//! only moves by whole characters).

/// A position in `src`: the byte offset of the next character, always on a character
/// boundary.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor on the first character of `src`.
    pub(crate) fn new(src: &'a str) -> Self {
        Cursor { src, pos: 0 }
    }

    /// The byte offset of the next character.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The text not read yet.
    pub(crate) fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    /// The text from byte offset `start` (an earlier [`Cursor::pos`]) up to here.
    pub(crate) fn since(&self, start: usize) -> &'a str {
        &self.src[start..self.pos]
    }

    /// Whether every character has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.src.len()
    }

    /// The next character, without moving.
    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// The character `n` places after the next one (`peek_nth(0)` is [`Cursor::peek`]).
    pub(crate) fn peek_nth(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    /// Moves over the next character and returns it.
    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Moves over the next character if it is `expected`; says whether it did.
    pub(crate) fn eat(&mut self, expected: char) -> bool {
        let found = self.peek() == Some(expected);
        if found {
            self.pos += expected.len_utf8();
        }
        found
    }

    /// Moves over characters while `keep` holds for them; returns the text passed.
    pub(crate) fn skip_while(&mut self, mut keep: impl FnMut(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&mut keep) {
            self.bump();
        }
        self.since(start)
    }

    /// The 1-based character (not byte) column of byte offset `pos` (this or an earlier
    /// [`Cursor::pos`]), as the parsers' errors report it.
    pub(crate) fn column(&self, pos: usize) -> usize {
        self.src[..pos].chars().count() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_by_characters_and_counts_columns_in_characters() {
        let mut cursor = Cursor::new("é=b c");
        assert_eq!((cursor.peek(), cursor.peek_nth(1)), (Some('é'), Some('=')));
        assert_eq!(cursor.skip_while(|c| c != '='), "é");
        assert_eq!((cursor.pos(), cursor.column(cursor.pos())), (2, 2));
        assert!(!cursor.eat('x'));
        assert!(cursor.eat('='));
        assert_eq!(cursor.rest(), "b c");
        assert_eq!(cursor.bump(), Some('b'));
        assert_eq!(cursor.skip_while(char::is_whitespace), " ");
        assert_eq!(cursor.since(2), "=b ");
        assert_eq!(cursor.column(0), 1);
        assert_eq!(cursor.bump(), Some('c'));
        assert!(cursor.at_end());
        assert_eq!((cursor.peek(), cursor.bump()), (None, None));
        assert_eq!(cursor.column(cursor.pos()), 6);
    }
}
