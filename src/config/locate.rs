//! Finding where a checked item stands in its file, for the problems found after parsing
//! (serde_yaml keeps no positions for values).

use std::collections::BTreeMap;

use super::problem::Location;
use super::settings::ConfigText;

/// Finds where things are in a config file, for problems found after parsing (serde_yaml
/// keeps no positions for values).
pub(super) struct Locator<'a> {
    pub(super) file: &'a ConfigText,
    /// Where each item read of a list stands in the file's list (see
    /// [`ParsedFile`](super::parse::ParsedFile)).
    pub(super) kept: &'a BTreeMap<&'static str, Vec<usize>>,
}

impl Locator<'_> {
    /// The line of the top-level key `section:` (0-based index), if the file has one.
    pub(super) fn section_line(&self, section: &str) -> Option<usize> {
        self.file.text.lines().position(|line| {
            line.strip_prefix(section)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
    }

    /// The position of the top-level key `section:`; the file start if absent.
    pub(super) fn section(&self, section: &str) -> Location {
        match self.section_line(section) {
            Some(index) => self.at(index + 1, 1),
            None => self.at(1, 1),
        }
    }

    /// The position of the `index`-th item of the top-level list `section` (where its
    /// first key starts, after `- `). Falls back to the section's position for lists
    /// written in flow style.
    pub(super) fn list_item(&self, section: &str, index: usize) -> Location {
        let index = self
            .kept
            .get(section)
            .and_then(|kept| kept.get(index))
            .copied()
            .unwrap_or(index);
        let Some(start) = self.section_line(section) else {
            return self.at(1, 1);
        };
        let mut item_indent = None;
        let mut seen = 0;
        for (number, line) in self.file.text.lines().enumerate().skip(start + 1) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if indent == 0 && !trimmed.starts_with('-') {
                break; // the next top-level key
            }
            if !(trimmed == "-" || trimmed.starts_with("- ")) {
                continue;
            }
            if *item_indent.get_or_insert(indent) != indent {
                continue; // a list nested inside an item
            }
            if seen == index {
                let after_dash = trimmed[1..].len() - trimmed[1..].trim_start().len();
                return self.at(number + 1, indent + after_dash + 2);
            }
            seen += 1;
        }
        self.section(section)
    }

    /// The position of `token` at or after `from`, e.g. a source name in a list.
    pub(super) fn token_after(&self, from: &Location, token: &str) -> Location {
        let start = from.line.saturating_sub(1);
        let found = self.find(start, |line| line.find(token));
        if found.line >= from.line {
            found
        } else {
            from.clone()
        }
    }

    fn find(&self, skip_lines: usize, matcher: impl Fn(&str) -> Option<usize>) -> Location {
        for (index, line) in self.file.text.lines().enumerate().skip(skip_lines) {
            if line.trim_start().starts_with('#') {
                continue;
            }
            if let Some(column) = matcher(line) {
                return self.at(index + 1, column + 1);
            }
        }
        self.at(1, 1)
    }

    fn at(&self, line: usize, column: usize) -> Location {
        Location {
            file: self.file.path.clone(),
            line,
            column,
        }
    }
}
