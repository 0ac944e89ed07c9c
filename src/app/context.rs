//! What every command is given and what it gives back: the shared settings
//! ([`Context`]) and the exit it asks `main` for ([`Outcome`]).

use std::path::PathBuf;

use crate::adapters::render::Color;
use crate::adapters::store::StoreLocation;

/// What a finished command asks `main` to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 2: `--detailed-exitcode` and there are changes.
    Changes,
}

/// The settings every command shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub config_dir: PathBuf,
    /// `--state`: where the store is.
    pub state: StoreLocation,
    pub color: Color,
    /// `--rev REV`: read config and sources from this git revision instead of the
    /// working tree.
    pub rev: Option<String>,
}
