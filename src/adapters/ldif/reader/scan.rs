//! The byte scanner: cuts the input into blocks of non-blank physical lines (one record,
//! or a run of comments, each), scanning whole buffers for line ends and copying them at
//! once. It knows lines, not what they say; it must not unfold or split them.

use std::io::BufRead;

/// The physical lines of one record (or of a run of comments): no blank line inside.
#[derive(Default)]
pub(super) struct Block {
    pub(super) bytes: Vec<u8>,
    /// Byte ranges in `bytes` of each line, without its line ending. Never empty.
    pub(super) lines: Vec<(usize, usize)>,
    /// The 1-based line number of `lines[0]`; the others follow without gaps.
    pub(super) first_line: usize,
    /// Whether `bytes` is all ASCII, so text values need no UTF-8 check.
    pub(super) ascii: bool,
}

impl Block {
    /// Replaces the block with the next run of non-blank lines of `input`, skipping blank
    /// lines before it and consuming the blank line after it. `next_line` is the number of
    /// the next physical line of `input`. Returns false at the end of the input when no
    /// line was read.
    ///
    /// Whole buffers are scanned for line ends and copied at once, not line by line. A
    /// logical line (folds included) longer than `max_line` bytes is an error as soon as
    /// it is seen, before the rest of it is read.
    pub(super) fn read(
        &mut self,
        input: &mut impl BufRead,
        next_line: &mut usize,
        max_line: usize,
    ) -> Result<bool, ReadError> {
        self.bytes.clear();
        self.lines.clear();
        // Where, in `bytes`, the line being read starts.
        let mut line_start = 0;
        // The logical line being read: where it starts, its line number, its length.
        let mut logical = LogicalLine::default();
        loop {
            let chunk = match input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Io(e)),
            };
            if chunk.is_empty() {
                // The last line has no line feed.
                if self.bytes.len() > line_start {
                    let mut end = self.bytes.len();
                    if self.bytes[end - 1] == b'\r' {
                        end -= 1;
                    }
                    self.push_line(line_start, end, next_line);
                }
                return Ok(!self.lines.is_empty());
            }
            // chunk[copied..] is not in `bytes` yet; once appended, chunk[j] (j >= copied)
            // lands at `bytes.len() + j - copied`.
            let mut copied = 0;
            let mut begin = 0;
            let mut finished = false;
            while let Some(found) = find_newline(&chunk[begin..]) {
                let newline = begin + found;
                let mut end = self.bytes.len() + newline - copied;
                let carriage_return = if newline > copied {
                    chunk[newline - 1] == b'\r'
                } else {
                    self.bytes.last() == Some(&b'\r')
                };
                if carriage_return && end > line_start {
                    end -= 1;
                }
                if end > line_start {
                    let first = self.byte_at(chunk, copied, line_start);
                    logical.extend(first, line_start, end, *next_line, !self.lines.is_empty());
                    if logical.length > max_line {
                        return Err(logical.too_long(self, chunk, copied));
                    }
                    self.push_line(line_start, end, next_line);
                } else if self.lines.is_empty() {
                    // A blank line before the block: forget it.
                    *next_line += 1;
                    self.bytes.clear();
                    copied = newline + 1;
                } else {
                    // The blank line after the block.
                    *next_line += 1;
                    self.bytes.extend_from_slice(&chunk[copied..begin]);
                    begin = newline + 1;
                    finished = true;
                    break;
                }
                begin = newline + 1;
                line_start = self.bytes.len() + begin - copied;
            }
            if !finished {
                // The line still open at the end of the chunk: refuse it before holding
                // it when it is already too long.
                let open_end = self.bytes.len() + chunk.len() - copied;
                if open_end > line_start {
                    let first = self.byte_at(chunk, copied, line_start);
                    let mut open = logical.clone();
                    open.extend(
                        first,
                        line_start,
                        open_end,
                        *next_line,
                        !self.lines.is_empty(),
                    );
                    if open.length > max_line {
                        return Err(open.too_long(self, chunk, copied));
                    }
                }
                self.bytes.extend_from_slice(&chunk[copied..]);
                begin = chunk.len();
            }
            input.consume(begin);
            if finished {
                return Ok(true);
            }
        }
    }

    /// The byte at `position` of `bytes` as it will be once `chunk[copied..]` is
    /// appended to it.
    pub(super) fn byte_at(&self, chunk: &[u8], copied: usize, position: usize) -> u8 {
        match position.checked_sub(self.bytes.len()) {
            Some(in_chunk) => chunk[copied + in_chunk],
            None => self.bytes[position],
        }
    }

    pub(super) fn push_line(&mut self, start: usize, end: usize, next_line: &mut usize) {
        if self.lines.is_empty() {
            self.first_line = *next_line;
        }
        *next_line += 1;
        self.lines.push((start, end));
    }

    #[inline]
    pub(super) fn physical(&self, index: usize) -> &[u8] {
        let (start, end) = self.lines[index];
        &self.bytes[start..end]
    }
}

/// Why [`Block::read`] stopped.
pub(super) enum ReadError {
    Io(std::io::Error),
    /// The logical line starting at physical line `line` is too long; `head` is its
    /// start, for the message.
    LineTooLong {
        line: usize,
        head: Vec<u8>,
    },
}

/// The logical line [`Block::read`] is in, to bound its length.
#[derive(Clone, Default)]
pub(super) struct LogicalLine {
    /// Where it starts, in `Block::bytes` coordinates.
    pub(super) start: usize,
    /// Its first physical line's number.
    pub(super) line: usize,
    /// Its unfolded length so far.
    pub(super) length: usize,
}

impl LogicalLine {
    /// Takes in the physical line `start..end` (numbered `number`, starting with `first`):
    /// a continuation when it starts with a space after another line of the block.
    pub(super) fn extend(
        &mut self,
        first: u8,
        start: usize,
        end: usize,
        number: usize,
        after_line: bool,
    ) {
        if first == b' ' && after_line {
            self.length += end - start - 1;
        } else {
            *self = LogicalLine {
                start,
                line: number,
                length: end - start,
            };
        }
    }

    /// The error for this line, with its first bytes (up to a description's worth).
    pub(super) fn too_long(&self, block: &Block, chunk: &[u8], copied: usize) -> ReadError {
        const HEAD: usize = 256;
        let head = (self.start..)
            .take(HEAD)
            .take_while(|&position| position < block.bytes.len() + chunk.len() - copied)
            .map(|position| block.byte_at(chunk, copied, position))
            .take_while(|&b| b != b'\n' && b != b'\r')
            .collect();
        ReadError::LineTooLong {
            line: self.line,
            head,
        }
    }
}

/// The index of the first `\n` in `haystack`, eight bytes at a time.
pub(super) fn find_newline(haystack: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let x = u64::from_le_bytes(word) ^ NEWLINES;
        // The lowest set bit marks the first zero byte of x (later bits may be false).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(offset + (zeros.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::{find_newline, Block};
    use std::io::BufReader;

    #[test]
    fn find_newline_finds_the_first_line_feed_at_any_offset() {
        for length in 0..20 {
            for at in 0..=length {
                let mut haystack = vec![b'x'; length];
                if at < length {
                    haystack[at] = b'\n';
                    // A second one after it must not be the answer.
                    if at + 3 < length {
                        haystack[at + 3] = b'\n';
                    }
                }
                let naive = haystack.iter().position(|&b| b == b'\n');
                assert_eq!(find_newline(&haystack), naive, "{length} {at}");
            }
        }
    }

    /// The blocks of `input` read through a buffer of `capacity` bytes: each block's
    /// first line number and lines.
    fn blocks(input: &[u8], capacity: usize) -> Vec<(usize, Vec<Vec<u8>>)> {
        let mut reader = BufReader::with_capacity(capacity, input);
        let mut block = Block::default();
        let mut next_line = 1;
        let mut out = Vec::new();
        while block
            .read(&mut reader, &mut next_line, usize::MAX)
            .is_ok_and(|read| read)
        {
            let lines = (0..block.lines.len())
                .map(|i| block.physical(i).to_vec())
                .collect();
            out.push((block.first_line, lines));
        }
        out
    }

    #[test]
    fn blocks_are_the_same_whatever_the_buffer_size() {
        let input = b"\n\nversion: 1\r\n\r\ndn: cn=a\n cont\nsn: b\n\n\n# c\ndn: cn=b\r\nx: y";
        let whole = blocks(input, 1 << 16);
        assert_eq!(
            whole,
            vec![
                (3, vec![b"version: 1".to_vec()]),
                (
                    5,
                    vec![b"dn: cn=a".to_vec(), b" cont".to_vec(), b"sn: b".to_vec()]
                ),
                (
                    10,
                    vec![b"# c".to_vec(), b"dn: cn=b".to_vec(), b"x: y".to_vec()]
                ),
            ]
        );
        for capacity in 1..12 {
            assert_eq!(blocks(input, capacity), whole, "buffer of {capacity}");
        }
    }
}
