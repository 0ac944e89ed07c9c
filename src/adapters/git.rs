//! The git adapter: find the repository that holds the config directory, resolve a
//! commit-ish (`main`, `HEAD~1`, a tag, a sha) to a commit, read files and list
//! directories in that commit's tree without a checkout, and tell whether working-tree
//! files differ from HEAD.
//!
//! Paths here are repository-relative (`registrar/people.ldif`); turning the paths the
//! user and the config files wrote into those, and refusing the ones that leave the
//! repository, is [`crate::adapters::tree`]'s job (with [`normalize_within`]). This module
//! never writes to the repository, never fetches, and never touches the network: it
//! only tells which remote a branch follows ([`Repo::upstream`]); the controller fetches
//! through the system `git`.

use std::path::{Component, Path, PathBuf};

use git2::{ObjectType, Oid, Repository, Status, StatusOptions};

/// Why a git operation failed. Every message names the repository or the revision.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("revision {rev}: {} is not inside a git repository", path.display())]
    NotARepository { rev: String, path: PathBuf },
    #[error("{} is a bare git repository; registrar reads config from a repository with a working tree", path.display())]
    Bare { path: PathBuf },
    #[error("unknown revision {rev:?} in git repository {}", repo.display())]
    UnknownRevision { rev: String, repo: PathBuf },
    #[error("git repository {}: {message}", repo.display())]
    Other { repo: PathBuf, message: String },
}

/// Where a branch's commits come from: the remote to fetch and the remote-tracking ref
/// (`refs/remotes/origin/main`) that holds them once fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub remote: String,
    pub tracking_ref: String,
}

/// A repository with a working tree.
pub struct Repo {
    repo: Repository,
    /// The working tree's root, canonical.
    root: PathBuf,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("root", &self.root).finish()
    }
}

impl Repo {
    /// The repository containing `start` (which need not exist: its nearest existing
    /// ancestor is searched from, upwards), or `None` outside any repository.
    pub fn discover(start: &Path) -> Result<Option<Repo>, GitError> {
        let from = existing_ancestor(start);
        let repo = match Repository::discover(&from) {
            Ok(repo) => repo,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => {
                return Err(GitError::Other {
                    repo: from,
                    message: e.message().to_string(),
                })
            }
        };
        let Some(workdir) = repo.workdir() else {
            return Err(GitError::Bare {
                path: repo.path().to_path_buf(),
            });
        };
        let root = workdir
            .canonicalize()
            .unwrap_or_else(|_| workdir.to_path_buf());
        Ok(Some(Repo { repo, root }))
    }

    /// The working tree's root (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn error(&self, e: git2::Error) -> GitError {
        GitError::Other {
            repo: self.root.clone(),
            message: e.message().to_string(),
        }
    }

    /// The commit `rev` names: anything `git rev-parse` accepts, peeled to a commit.
    pub fn resolve(&self, rev: &str) -> Result<Oid, GitError> {
        let unknown = || GitError::UnknownRevision {
            rev: rev.to_string(),
            repo: self.root.clone(),
        };
        if rev.trim().is_empty() {
            return Err(unknown());
        }
        let object = self.repo.revparse_single(rev).map_err(|_| unknown())?;
        let commit = object.peel_to_commit().map_err(|_| unknown())?;
        Ok(commit.id())
    }

    /// HEAD's commit, or `None` before the first commit.
    pub fn head(&self) -> Option<Oid> {
        self.repo
            .head()
            .ok()
            .and_then(|head| head.peel_to_commit().ok())
            .map(|commit| commit.id())
    }

    /// The object at repository-relative `path` in `commit`'s tree, if any.
    fn entry(&self, commit: Oid, path: &Path) -> Result<Option<git2::Object<'_>>, GitError> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| self.error(e))?;
        if path.as_os_str().is_empty() {
            return Ok(Some(tree.into_object()));
        }
        match tree.get_path(path) {
            Ok(entry) => entry
                .to_object(&self.repo)
                .map(Some)
                .map_err(|e| self.error(e)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The bytes of the file at `path` in `commit`, or `None` when there is no file
    /// there (absent, or a directory).
    pub fn read(&self, commit: Oid, path: &Path) -> Result<Option<Vec<u8>>, GitError> {
        Ok(self
            .entry(commit, path)?
            .and_then(|object| object.into_blob().ok())
            .map(|blob| blob.content().to_vec()))
    }

    /// Whether `path` names a file in `commit`.
    pub fn is_file(&self, commit: Oid, path: &Path) -> Result<bool, GitError> {
        Ok(self
            .entry(commit, path)?
            .is_some_and(|o| o.kind() == Some(ObjectType::Blob)))
    }

    /// The names of the files directly in directory `path` of `commit`, sorted, or
    /// `None` when there is no directory there.
    pub fn list_files(&self, commit: Oid, path: &Path) -> Result<Option<Vec<String>>, GitError> {
        let Some(object) = self.entry(commit, path)? else {
            return Ok(None);
        };
        let Ok(tree) = object.into_tree() else {
            return Ok(None);
        };
        let mut names: Vec<String> = tree
            .iter()
            .filter(|entry| entry.kind() == Some(ObjectType::Blob))
            .filter_map(|entry| entry.name().map(str::to_string))
            .collect();
        names.sort();
        Ok(Some(names))
    }

    /// The remote a `rev` follows, for the controller: a local branch with an upstream
    /// on a remote (`branch.<name>.remote`), or a remote-tracking branch (`origin/main`).
    /// `None` for anything else (a branch without upstream, a tag, a sha, `HEAD~1`).
    /// This only reads the repository's configuration; fetching is the caller's.
    pub fn upstream(&self, rev: &str) -> Result<Option<Upstream>, GitError> {
        let short = rev.strip_prefix("refs/heads/").unwrap_or(rev);
        if let Ok(branch) = self.repo.find_branch(short, git2::BranchType::Local) {
            let Some(local) = branch.get().name().map(str::to_string) else {
                return Ok(None);
            };
            let (Ok(remote), Ok(tracking)) = (
                self.repo.branch_upstream_remote(&local),
                self.repo.branch_upstream_name(&local),
            ) else {
                return Ok(None);
            };
            let (Some(remote), Some(tracking)) = (remote.as_str(), tracking.as_str()) else {
                return Ok(None);
            };
            // `branch.<name>.remote = .` is an upstream in this repository: nothing to fetch.
            if remote == "." {
                return Ok(None);
            }
            return Ok(Some(Upstream {
                remote: remote.to_string(),
                tracking_ref: tracking.to_string(),
            }));
        }
        let short = rev.strip_prefix("refs/remotes/").unwrap_or(rev);
        if let Ok(branch) = self.repo.find_branch(short, git2::BranchType::Remote) {
            let Some(tracking) = branch.get().name().map(str::to_string) else {
                return Ok(None);
            };
            let remote = self
                .repo
                .branch_remote_name(&tracking)
                .map_err(|e| self.error(e))?;
            if let Some(remote) = remote.as_str() {
                return Ok(Some(Upstream {
                    remote: remote.to_string(),
                    tracking_ref: tracking,
                }));
            }
        }
        Ok(None)
    }

    /// The repository-relative paths of working-tree files that differ from HEAD:
    /// modified, staged, deleted, renamed or untracked (ignored files do not count).
    pub fn changed_paths(&self) -> Result<Vec<PathBuf>, GitError> {
        let mut options = StatusOptions::new();
        options
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .exclude_submodules(true);
        let statuses = self
            .repo
            .statuses(Some(&mut options))
            .map_err(|e| self.error(e))?;
        let mut paths = Vec::new();
        for entry in statuses.iter() {
            if entry.status() == Status::CURRENT || entry.status().contains(Status::IGNORED) {
                continue;
            }
            for delta in [entry.head_to_index(), entry.index_to_workdir()]
                .into_iter()
                .flatten()
            {
                for file in [delta.old_file(), delta.new_file()] {
                    if let Some(path) = file.path() {
                        paths.push(path.to_path_buf());
                    }
                }
            }
            if let Some(path) = entry.path() {
                paths.push(PathBuf::from(path));
            }
        }
        paths.sort();
        paths.dedup();
        Ok(paths)
    }
}

/// `path` itself if it exists, else its nearest existing ancestor (the current
/// directory for a relative path with none).
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut candidate = path;
    loop {
        if candidate.exists() {
            return candidate.to_path_buf();
        }
        match candidate.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => candidate = parent,
            _ => return PathBuf::from("."),
        }
    }
}

/// The absolute, canonical form of `path` as far as it exists, with the rest (which
/// does not exist yet) appended as written.
pub fn absolute(path: &Path) -> PathBuf {
    let existing = existing_ancestor(path);
    let base = existing
        .canonicalize()
        .unwrap_or_else(|_| existing.to_path_buf());
    let rest = if existing == Path::new(".") && !path.starts_with(".") {
        path
    } else {
        path.strip_prefix(&existing).unwrap_or(Path::new(""))
    };
    base.join(rest)
}

/// `base` joined with `rest`, with `.` and `..` resolved lexically, as a path that
/// stays inside the root `base` is relative to. `None` when it would leave that root
/// (more `..` than there are directories above) or when `rest` is absolute.
///
/// `normalize_within("registrar", "../snapshots/hr.ldif")` is `snapshots/hr.ldif`;
/// `normalize_within("registrar", "../../etc/passwd")` is `None`.
pub fn normalize_within(base: &Path, rest: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in base.components().chain(rest.components()) {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            // An absolute path is not a path inside the root.
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(base: &str, rest: &str) -> Option<String> {
        normalize_within(Path::new(base), Path::new(rest)).map(|p| p.display().to_string())
    }

    #[test]
    fn normalize_within_resolves_dots_lexically() {
        assert_eq!(
            within("registrar", "../snapshots/hr.ldif").as_deref(),
            Some("snapshots/hr.ldif")
        );
        assert_eq!(
            within("registrar", "./people.ldif").as_deref(),
            Some("registrar/people.ldif")
        );
        assert_eq!(
            within("a/b", "c/../../d/./e.ldif").as_deref(),
            Some("a/d/e.ldif")
        );
        assert_eq!(within("", "x.yaml").as_deref(), Some("x.yaml"));
        assert_eq!(within("registrar", "..").as_deref(), Some(""));
    }

    #[test]
    fn normalize_within_refuses_escapes_and_absolute_paths() {
        assert_eq!(within("registrar", "../../etc/passwd"), None);
        assert_eq!(within("", "../x"), None);
        assert_eq!(within("a", "b/../../../x"), None);
        assert_eq!(within("registrar", "/etc/passwd"), None);
        assert_eq!(within("/abs", "x"), None);
    }

    #[test]
    fn absolute_keeps_the_missing_tail() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().canonicalize().unwrap();
        let missing = temp.path().join("not/there.yaml");
        assert_eq!(absolute(&missing), root.join("not/there.yaml"));
        assert_eq!(absolute(temp.path()), root);
    }
}
