//! What the controller follows, and getting its newest commit before each run.
//!
//! - With `--rev BRANCH` on a branch that has an upstream on a remote (`git branch
//!   --set-upstream-to origin/main`, as `git clone` sets up), or with `--rev
//!   origin/main`: before each run the remote is fetched and the run reads the
//!   remote-tracking branch (`refs/remotes/origin/main`). Local commits that were not
//!   pushed are not applied: the remote is the source of truth.
//! - With `--rev` on anything else (a branch without upstream, a tag, a sha): the
//!   revision is resolved again before each run, nothing is fetched. Something else
//!   (a `git pull` from cron, a CI job) may move the branch.
//! - Without `--rev`: the working tree, read afresh each run, like `apply` does; runs
//!   record `<sha>-dirty` when it differs from HEAD.
//!
//! Fetching runs the system `git fetch` (this build's libgit2 has no network
//! transports), so the operator's credentials, ssh keys and config, and proxies apply.
//! It never prompts (`GIT_TERMINAL_PROMPT=0`, no stdin) and is killed after
//! [`FETCH_TIMEOUT`]. This module writes nothing in the repository beyond what `git
//! fetch` itself updates (remote-tracking refs, `FETCH_HEAD`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::watch;

use crate::adapters::git::{GitError, Repo, Upstream};
use crate::adapters::tree::Tree;
use crate::app::error::AppError;

/// How long one `git fetch` may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// What the controller reads its config from.
#[derive(Debug, Clone)]
pub struct Follow {
    config_dir: PathBuf,
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    WorkingTree,
    Revision {
        rev: String,
        /// The repository's working tree root, where `git fetch` runs.
        root: PathBuf,
        upstream: Option<Upstream>,
    },
}

/// Why a fetch did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A stop was requested while fetching.
    #[error("a stop was requested while fetching")]
    Stopped,
    /// `git fetch` failed; the message is one line.
    #[error("git fetch {remote} failed: {failure}")]
    Failed {
        remote: String,
        #[source]
        failure: FetchFailure,
    },
}

/// What went wrong with `git fetch`.
#[derive(Debug, thiserror::Error)]
pub enum FetchFailure {
    #[error("cannot run git ({0}); install git, or follow a branch without a remote")]
    NoGit(#[source] std::io::Error),
    #[error("no answer in {seconds}s")]
    NoAnswer { seconds: u64 },
    #[error("{0}")]
    Wait(#[source] std::io::Error),
    /// What git said on stderr, on one line, or its exit status when it said nothing.
    #[error("{0}")]
    Git(String),
}

impl Follow {
    /// What `--config DIR` and `--rev` name: the revision must resolve now.
    pub fn new(config_dir: &Path, rev: Option<&str>) -> Result<Follow, AppError> {
        let target = match rev {
            None => Target::WorkingTree,
            Some(rev) => {
                let repo = Repo::discover(config_dir)?.ok_or_else(|| GitError::NotARepository {
                    rev: rev.to_string(),
                    path: config_dir.to_path_buf(),
                })?;
                let upstream = repo.upstream(rev)?;
                if upstream.is_none() {
                    repo.resolve(rev)?;
                }
                Target::Revision {
                    rev: rev.to_string(),
                    root: repo.root().to_path_buf(),
                    upstream,
                }
            }
        };
        Ok(Follow {
            config_dir: config_dir.to_path_buf(),
            target,
        })
    }

    /// One line for the start-up message: what is followed and how.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::WorkingTree => format!(
                "the working tree of {} (no --rev: uncommitted edits are applied too; --rev BRANCH follows a branch)",
                self.config_dir.display()
            ),
            Target::Revision {
                rev,
                upstream: Some(upstream),
                ..
            } => format!(
                "{rev}: fetching {} with the system git before each run, then reading {}",
                upstream.remote,
                short_ref(&upstream.tracking_ref)
            ),
            Target::Revision { rev, .. } => {
                format!("{rev}, resolved before each run (no remote to fetch)")
            }
        }
    }

    /// The remote fetched before each run, if any.
    pub fn remote(&self) -> Option<&str> {
        match &self.target {
            Target::Revision {
                upstream: Some(upstream),
                ..
            } => Some(&upstream.remote),
            _ => None,
        }
    }

    /// Fetches the remote, when there is one to fetch. A stop request kills the fetch.
    pub async fn fetch(&self, stop: &mut watch::Receiver<bool>) -> Result<(), FetchError> {
        let Target::Revision {
            root,
            upstream: Some(upstream),
            ..
        } = &self.target
        else {
            return Ok(());
        };
        let remote = &upstream.remote;
        let mut command = tokio::process::Command::new("git");
        command
            .arg("-C")
            .arg(root)
            .args(["fetch", "--quiet", "--", remote])
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let failed = |failure| FetchError::Failed {
            remote: remote.clone(),
            failure,
        };
        let child = command
            .spawn()
            .map_err(|e| failed(FetchFailure::NoGit(e)))?;
        let output = tokio::select! {
            output = tokio::time::timeout(FETCH_TIMEOUT, child.wait_with_output()) => output,
            _ = stop.wait_for(|stop| *stop) => return Err(FetchError::Stopped),
        };
        let output = output
            .map_err(|_| {
                failed(FetchFailure::NoAnswer {
                    seconds: FETCH_TIMEOUT.as_secs(),
                })
            })?
            .map_err(|e| failed(FetchFailure::Wait(e)))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = stderr
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Err(failed(FetchFailure::Git(if why.is_empty() {
            output.status.to_string()
        } else {
            why
        })))
    }

    /// The files of this run: the followed revision's commit as it is now (the
    /// remote-tracking branch when there is an upstream), or the working tree.
    pub fn files(&self) -> Result<Tree, AppError> {
        match &self.target {
            Target::WorkingTree => Ok(Tree::working_tree(&self.config_dir)),
            Target::Revision { rev, upstream, .. } => {
                let (rev, read) = match upstream {
                    Some(upstream) => (
                        short_ref(&upstream.tracking_ref),
                        upstream.tracking_ref.as_str(),
                    ),
                    None => (rev.as_str(), rev.as_str()),
                };
                let repo =
                    Repo::discover(&self.config_dir)?.ok_or_else(|| GitError::NotARepository {
                        rev: rev.to_string(),
                        path: self.config_dir.clone(),
                    })?;
                let commit = repo.resolve(read)?.to_string();
                Ok(Tree::at_commit_of(&self.config_dir, rev, &commit)?)
            }
        }
    }
}

/// `refs/remotes/origin/main` → `origin/main`.
fn short_ref(name: &str) -> &str {
    name.strip_prefix("refs/remotes/")
        .or_else(|| name.strip_prefix("refs/heads/"))
        .unwrap_or(name)
}
