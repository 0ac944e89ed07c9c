//! `AppError`: everything that can stop a command, each variant printing the one message
//! `main` shows (one `error:` line per line of it). The refusals name what was refused.
//!
//! It holds no logic beyond formatting: whoever refuses decides, this file only says it.

use std::path::PathBuf;

use crate::adapters::git::GitError;
use crate::adapters::render;
use crate::adapters::store::StoreError;
use crate::adapters::tree::TreeError;
use crate::config::ConfigError;
use registrar_core::plan::PlanError;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Files(#[from] TreeError),
    #[error(transparent)]
    Git(#[from] GitError),
    /// An error reading config or sources at a git revision: each line says which.
    #[error("{}", prefix_lines(at, inner))]
    AtRevision { at: String, inner: Box<AppError> },
    #[error("source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Refused(String),
    /// Rule 9: a protected principal never receives a registration.
    #[error(
        "{dn} is a protected principal ({rule}): protected principals never hold a \
         registration; nothing was recorded (state register --allow-protected records it \
         anyway, and says so in the run history)"
    )]
    ProtectedPrincipal { dn: String, rule: String },
    #[error(transparent)]
    LdifBase(#[from] render::LdifBaseError),
}

/// `at: ` before every line of `error`'s message.
fn prefix_lines(at: &str, error: &AppError) -> String {
    error
        .to_string()
        .lines()
        .map(|line| format!("{at}: {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
