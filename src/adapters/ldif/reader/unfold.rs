//! Line unfolding: the logical lines of a block (a line and its continuations), walked
//! with comments skipped, unfolded into a reused buffer only when folded, and the
//! positions (line, column) that errors point at.

use super::line::{split, Line, Problem};
use super::scan::Block;
use crate::adapters::ldif::error::LdifError;

/// A logical line: physical lines `first..first + count` of a block, unfolded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) first: usize,
    pub(super) count: usize,
}

impl Block {
    /// The unfolded text of `span`: borrowed when it is one physical line, else built
    /// in `scratch` (each continuation loses its one leading space).
    #[inline]
    pub(super) fn text<'a>(&'a self, span: Span, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        if span.count == 1 {
            return self.physical(span.first);
        }
        scratch.clear();
        scratch.extend_from_slice(self.physical(span.first));
        for index in span.first + 1..span.first + span.count {
            scratch.extend_from_slice(&self.physical(index)[1..]);
        }
        scratch
    }

    /// The physical line and character column of byte `offset` of `span`'s unfolded
    /// text.
    pub(super) fn locate(&self, span: Span, offset: usize) -> (usize, usize) {
        let mut remaining = offset;
        for k in 0..span.count {
            let physical = self.physical(span.first + k);
            let skip = usize::from(k > 0);
            let length = physical.len() - skip;
            if remaining < length || k + 1 == span.count {
                let byte = (skip + remaining).min(physical.len());
                let column = physical[..byte]
                    .iter()
                    .filter(|&&b| (b & 0xC0) != 0x80)
                    .count()
                    + 1;
                return (self.first_line + span.first + k, column);
            }
            remaining -= length;
        }
        (self.first_line + span.first, 1)
    }

    #[inline]
    pub(super) fn line_of(&self, span: Span) -> usize {
        self.first_line + span.first
    }

    pub(super) fn error(&self, span: Span, message: impl Into<String>) -> LdifError {
        LdifError::new(self.line_of(span), message)
    }

    pub(super) fn error_at(
        &self,
        span: Span,
        offset: usize,
        message: impl Into<String>,
    ) -> LdifError {
        let (line, column) = self.locate(span, offset);
        LdifError::at(line, column, message)
    }

    pub(super) fn problem(&self, span: Span, problem: Problem) -> LdifError {
        match problem.offset {
            Some(offset) => self.error_at(span, offset, problem.message),
            None => self.error(span, problem.message),
        }
    }
}

/// Walks the logical lines of a block, skipping comments: each one as its span, its
/// unfolded text, or split into `attr` and value. Text is borrowed from the block when
/// the line is not folded, else unfolded into `scratch`, which the caller reuses.
pub(super) struct LogicalLines<'b> {
    block: &'b Block,
    scratch: &'b mut Vec<u8>,
    /// The physical line the next logical line starts at.
    next: usize,
}

impl<'b> LogicalLines<'b> {
    pub(super) fn new(block: &'b Block, scratch: &'b mut Vec<u8>) -> Self {
        LogicalLines {
            block,
            scratch,
            next: 0,
        }
    }

    /// Where the walk is, to come back to with [`LogicalLines::rewind`].
    pub(super) fn position(&self) -> usize {
        self.next
    }

    /// Goes back to `position`, so that the lines after it are walked again.
    pub(super) fn rewind(&mut self, position: usize) {
        self.next = position;
    }

    /// The next logical line, split into `attr` and value. Always inlined, as the macro
    /// it replaced was: called once per line, its result is large to pass back.
    #[inline(always)]
    pub(super) fn next_line(&mut self) -> Result<Option<(Span, Line<'_>)>, LdifError> {
        let block = self.block;
        match self.next_text()? {
            Some((span, text)) => Ok(Some((
                span,
                split(text).map_err(|p| block.problem(span, p))?,
            ))),
            None => Ok(None),
        }
    }

    /// The next logical line, unfolded.
    #[inline(always)]
    pub(super) fn next_text(&mut self) -> Result<Option<(Span, &[u8])>, LdifError> {
        match self.next_span()? {
            Some(span) => Ok(Some((span, self.block.text(span, self.scratch)))),
            None => Ok(None),
        }
    }

    #[inline]
    fn next_span(&mut self) -> Result<Option<Span>, LdifError> {
        let block = self.block;
        while self.next < block.lines.len() {
            let first = self.next;
            self.next += 1;
            while self.next < block.lines.len() && block.physical(self.next).first() == Some(&b' ')
            {
                self.next += 1;
            }
            let span = Span {
                first,
                count: self.next - first,
            };
            match block.physical(first).first() {
                Some(b'#') => continue,
                // A line that was only a carriage return (a bare CR, not CRLF).
                None => {
                    return Err(block.error_at(
                        span,
                        0,
                        "empty line holding only a carriage return; lines end with LF or CRLF",
                    ))
                }
                Some(b' ') => {
                    return Err(block.error_at(
                        span,
                        0,
                        "line starts with a space, which continues the line before it, \
                         but there is none (a blank line ends a record)",
                    ))
                }
                Some(b'\t') => {
                    return Err(block.error_at(
                        span,
                        0,
                        "line starts with a tab; RFC 2849 continuation lines start with \
                         exactly one space",
                    ))
                }
                _ => return Ok(Some(span)),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::{Block, LogicalLines};

    fn block(input: &[u8]) -> Block {
        let mut block = Block::default();
        let mut next_line = 7;
        assert!(block
            .read(&mut &input[..], &mut next_line, usize::MAX)
            .is_ok_and(|read| read));
        block
    }

    #[test]
    fn folded_lines_unfold_and_positions_point_into_the_physical_lines() {
        let block = block(b"# note\n #  folded note\ncn: ab\n cd\n  e\nsn: x\n");
        let mut scratch = Vec::new();
        let mut lines = LogicalLines::new(&block, &mut scratch);
        let (span, text) = lines.next_text().unwrap().unwrap();
        assert_eq!(text, b"cn: abcd e");
        assert_eq!(
            block.line_of(span),
            9,
            "the comment and its fold are skipped"
        );
        // "d" (offset 7) is on the second physical line, " e" starts the third.
        assert_eq!(block.locate(span, 7), (10, 3));
        assert_eq!(block.locate(span, 8), (11, 2));
        let start = lines.position();
        let (_, line) = lines.next_line().unwrap().unwrap();
        assert!(line.is("SN"));
        lines.rewind(start);
        let (_, again) = lines.next_line().unwrap().unwrap();
        assert_eq!(again.raw_value(), b"x");
        assert!(lines.next_line().unwrap().is_none());
    }
}
