//! Errors of the LDIF reader, each pointing at a physical line (and column) of the input.
//!
//! This module only describes errors; it must not decide what is an error. Messages say
//! what was found and, where the user can fix it, how.

use std::fmt;
use std::path::PathBuf;

/// A problem in LDIF input: where it is and what it is.
///
/// Displays as `line L:C: message`, or `line L: message` when no column is meaningful.
/// The caller prefixes the file path (see [`LdifFileError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {message}", column.map(|c| format!(":{c}")).unwrap_or_default())]
pub struct LdifError {
    /// 1-based physical line of the input.
    pub line: usize,
    /// 1-based column on that line, counted in characters, when meaningful.
    pub column: Option<usize>,
    /// What is wrong, in one sentence.
    pub message: String,
}

impl LdifError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        LdifError {
            line,
            column: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(line: usize, column: usize, message: impl Into<String>) -> Self {
        LdifError {
            line,
            column: Some(column),
            message: message.into(),
        }
    }
}

/// A problem reading an LDIF file: it cannot be read, or its content is wrong.
#[derive(Debug, thiserror::Error)]
pub enum LdifFileError {
    /// The file cannot be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's content is not valid LDIF, or not what the caller needs.
    #[error("{}", ParseDisplay(path, error))]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        error: LdifError,
    },
}

/// `path:line:col: message` or `path:line: message`.
struct ParseDisplay<'a>(&'a PathBuf, &'a LdifError);

impl fmt::Display for ParseDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ParseDisplay(path, error) = self;
        write!(f, "{}:{}", path.display(), error.line)?;
        if let Some(column) = error.column {
            write!(f, ":{column}")?;
        }
        write!(f, ": {}", error.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_column() {
        assert_eq!(LdifError::new(40, "boom").to_string(), "line 40: boom");
        assert_eq!(LdifError::at(12, 3, "boom").to_string(), "line 12:3: boom");
        let file = LdifFileError::Parse {
            path: PathBuf::from("dir/a.ldif"),
            error: LdifError::at(12, 3, "boom"),
        };
        assert_eq!(file.to_string(), "dir/a.ldif:12:3: boom");
        let file = LdifFileError::Parse {
            path: PathBuf::from("a.ldif"),
            error: LdifError::new(9, "boom"),
        };
        assert_eq!(file.to_string(), "a.ldif:9: boom");
    }
}
