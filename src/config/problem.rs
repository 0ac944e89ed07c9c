//! What a config problem is and where it stands: [`Location`] (`file:line:col`),
//! [`ConfigProblem`], and [`ConfigError`], the one error of loading a config.

use std::fmt;
use std::path::PathBuf;

use crate::adapters::tree::TreeError;

/// A place in a config file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in the configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigProblem {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The directory or a file could not be read (working tree or git revision).
    #[error(transparent)]
    Files(#[from] TreeError),
    #[error("no *.yaml files in config directory {} (use --config DIR)", dir.display())]
    NoFiles { dir: PathBuf },
    /// One or more problems, each on its own line.
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<ConfigProblem> },
}

/// Why a data file the config names cannot be read, as the files it was read from tell
/// (the working tree, or a git revision); it reads after the path, e.g. `not found
/// (looked for …)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct UnreadableFile {
    pub reason: String,
}
