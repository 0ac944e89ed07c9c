//! Where the config and source files come from: the working tree, or one git revision
//! read without a checkout. Config loading (`config::load`) and source reading
//! (`app`) both go through a [`Tree`], so a plan made `--rev REV` reads exactly that
//! commit's files, and the inputs digest covers the same bytes either way.
//!
//! Paths are the ones the user and the config wrote (`registrar/../snapshots/hr.ldif`):
//! relative to the current directory, or absolute. At a revision they are mapped onto
//! the commit's tree through the config directory's place in the repository, resolved
//! lexically, and refused when they leave the repository. In the working tree they are
//! confined the same way: every file read (YAML, LDIF, change files, `attr:<` URLs,
//! `ca_file`) must resolve, symlinks followed, to a regular file inside the root (the
//! repository holding the config directory, or the config directory itself outside
//! git); anything else, `/proc`, devices and FIFOs included, is refused before it is
//! opened. A pull request's config is untrusted input (DESIGN.md, "Trust"): it may not
//! carry a local file out into a plan.

use std::io::Read;
use std::path::{Path, PathBuf};

use git2::Oid;

use crate::adapters::git::{absolute, normalize_within, GitError, Repo};
use crate::adapters::ldif::{read_bounded, FileUrls, UrlError, UrlResolver};

/// Why a file could not be had from the tree (the working tree or a revision).
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("config directory {} does not exist at revision {label}", dir.display())]
    MissingDir {
        dir: PathBuf,
        label: String,
        /// The revision's commit, full hex.
        commit: String,
    },
    #[error("path {} escapes the git repository {}", path.display(), repo.display())]
    Escapes { path: PathBuf, repo: PathBuf },
    /// A working-tree path that resolves (symlinks followed) outside the root.
    #[error("{} resolves to {}, outside {} (the config may only name files inside it)", path.display(), resolved.display(), root.display())]
    Outside {
        path: PathBuf,
        resolved: PathBuf,
        root: PathBuf,
    },
    /// A working-tree path that is not a regular file (a device, FIFO, socket or
    /// directory), or lies in `/proc` or `/sys`.
    #[error("{} is {what}, not a regular file; it is never read", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("{} not found (looked for {} in the commit)", path.display(), in_repo.display())]
    NotFound { path: PathBuf, in_repo: PathBuf },
    #[error("cannot read config directory {}: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a file the config names cannot be read, as [`Tree::check_file`] finds it. It
/// reads after the path: `not found (looked for …)`.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// No such file in the working tree.
    #[error("not found (looked for {})", path.display())]
    NotFound {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A working-tree path that resolves (symlinks followed) outside the root.
    #[error("resolves to {}, outside {} (the config may only name files inside it)", resolved.display(), root.display())]
    Outside { resolved: PathBuf, root: PathBuf },
    /// Not a regular file (see [`TreeError::NotAFile`]).
    #[error("is {what}, not a regular file; it is never read")]
    NotAFile { what: &'static str },
    /// Any other reason the working-tree file cannot be had.
    #[error(transparent)]
    Unreadable(Box<TreeError>),
    /// A path outside the repository, at a revision.
    #[error("escapes the git repository {} (looked for {})", repo.display(), path.display())]
    Escapes {
        repo: PathBuf,
        path: PathBuf,
        source: Box<TreeError>,
    },
    /// No such file in the revision's commit.
    #[error("not found (looked for {} in the commit)", in_repo.display())]
    NotInCommit { in_repo: PathBuf },
    /// The repository could not be read.
    #[error(transparent)]
    Git(GitError),
}

/// One git revision's files.
#[derive(Debug)]
pub struct Revision {
    repo: Repo,
    commit: Oid,
    /// `REV (sha12)`, for messages.
    label: String,
    /// The config directory as the user gave it.
    config_dir: PathBuf,
    /// The same directory, relative to the repository root.
    config_in_repo: PathBuf,
}

/// A set of files to read config and sources from.
#[derive(Debug)]
pub enum Tree {
    /// Files on disk. `repo` is the git repository holding the config directory, if
    /// any: the plan records its HEAD and whether the files read differ from it. Every
    /// file read resolves inside `root` (canonical): the repository's root, or the
    /// config directory outside git.
    WorkingTree { repo: Option<Repo>, root: PathBuf },
    /// Files of one commit, read from the object database.
    Revision(Box<Revision>),
}

impl Tree {
    /// The working tree around `config_dir`. Not being in a git repository (or in one
    /// that cannot be opened) is fine here: the plan then has no revision.
    pub fn working_tree(config_dir: &Path) -> Tree {
        let repo = Repo::discover(config_dir).ok().flatten();
        let root = match &repo {
            Some(repo) => repo.root().to_path_buf(),
            None => absolute(config_dir),
        };
        Tree::WorkingTree { repo, root }
    }

    /// The commit `rev` names in the repository holding `config_dir`, which must have
    /// the config directory.
    pub fn at_revision(config_dir: &Path, rev: &str) -> Result<Tree, TreeError> {
        let repo = Repo::discover(config_dir)?.ok_or_else(|| GitError::NotARepository {
            rev: rev.to_string(),
            path: config_dir.to_path_buf(),
        })?;
        let commit = repo.resolve(rev)?;
        let label = format!("{rev} ({})", &commit.to_string()[..12]);
        let config_in_repo = absolute(config_dir)
            .strip_prefix(repo.root())
            .ok()
            .and_then(|inside| normalize_within(Path::new(""), inside))
            .ok_or_else(|| TreeError::Escapes {
                path: config_dir.to_path_buf(),
                repo: repo.root().to_path_buf(),
            })?;
        if repo.list_files(commit, &config_in_repo)?.is_none() {
            return Err(TreeError::MissingDir {
                dir: config_dir.to_path_buf(),
                label,
                commit: commit.to_string(),
            });
        }
        Ok(Tree::Revision(Box::new(Revision {
            repo,
            commit,
            label,
            config_dir: config_dir.to_path_buf(),
            config_in_repo,
        })))
    }

    /// The files of `commit` (full hex), which `rev` resolved to earlier; messages name
    /// `rev (sha12)`. The controller resolves a branch once per run and reads that commit
    /// throughout, whatever the branch does meanwhile.
    pub fn at_commit_of(config_dir: &Path, rev: &str, commit: &str) -> Result<Tree, TreeError> {
        let label = format!("{rev} ({})", &commit[..commit.len().min(12)]);
        let mut tree = Tree::at_revision(config_dir, commit).map_err(|error| match error {
            TreeError::MissingDir { dir, commit, .. } => TreeError::MissingDir {
                dir,
                label: label.clone(),
                commit,
            },
            other => other,
        })?;
        if let Tree::Revision(revision) = &mut tree {
            revision.label = label;
        }
        Ok(tree)
    }

    /// The commit these files are (HEAD for the working tree), as a full hex sha.
    pub fn commit(&self) -> Option<String> {
        match self {
            Tree::WorkingTree { repo, .. } => repo.as_ref()?.head().map(|id| id.to_string()),
            Tree::Revision(revision) => Some(revision.commit.to_string()),
        }
    }

    /// `REV (sha12)` at a revision, for messages; `None` for the working tree.
    pub fn label(&self) -> Option<&str> {
        match self {
            Tree::WorkingTree { .. } => None,
            Tree::Revision(revision) => Some(&revision.label),
        }
    }

    /// The `*.yaml` and `*.yml` files directly in `dir`, in name order.
    pub fn list_yaml(&self, dir: &Path) -> Result<Vec<PathBuf>, TreeError> {
        self.list(dir, |name| {
            Path::new(name)
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
    }

    /// The files matching `pattern`, in name order: a directory path, then a file name
    /// in which `*` stands for any run of characters and `?` for one
    /// (`../snapshots/hr-changes/*.ldif`). A directory that does not exist matches
    /// nothing: git keeps no empty directory, so a commit before the first change file
    /// has none.
    pub fn matching(&self, pattern: &Path) -> Result<Vec<PathBuf>, TreeError> {
        let dir = pattern.parent().unwrap_or(Path::new("."));
        let name_pattern = pattern
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match self.list(dir, |name| wildcard_match(&name_pattern, name)) {
            Err(TreeError::MissingDir { .. }) => Ok(Vec::new()),
            Err(TreeError::ReadDir { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(Vec::new())
            }
            listed => listed,
        }
    }

    /// The files directly in `dir` whose name `keep` accepts, in name order.
    fn list(&self, dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, TreeError> {
        let keep_path = |path: &Path| {
            path.file_name()
                .is_some_and(|name| keep(&name.to_string_lossy()))
        };
        let mut paths: Vec<PathBuf> = match self {
            Tree::WorkingTree { root, .. } => std::fs::read_dir(confine_dir(root, dir)?)
                .map_err(|source| TreeError::ReadDir {
                    dir: dir.to_path_buf(),
                    source,
                })?
                .filter_map(|entry| entry.ok().map(|e| dir.join(e.file_name())))
                .filter(|path| keep_path(path) && path.is_file())
                .collect(),
            Tree::Revision(revision) => {
                let in_repo = revision.locate(dir)?;
                revision
                    .repo
                    .list_files(revision.commit, &in_repo)?
                    .ok_or_else(|| TreeError::MissingDir {
                        dir: dir.to_path_buf(),
                        label: revision.label.clone(),
                        commit: revision.commit.to_string(),
                    })?
                    .into_iter()
                    .map(|name| dir.join(name))
                    .filter(|path| keep_path(path))
                    .collect()
            }
        };
        paths.sort();
        Ok(paths)
    }

    /// The whole content of the file at `path`.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, TreeError> {
        match self {
            Tree::WorkingTree { root, .. } => {
                std::fs::read(confine(root, path)?).map_err(|source| TreeError::ReadFile {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Tree::Revision(revision) => revision.read(path),
        }
    }

    /// A reader over the file at `path`: streamed from disk in the working tree, from
    /// the blob's bytes at a revision.
    pub fn open(&self, path: &Path) -> Result<Box<dyn Read + Send>, TreeError> {
        match self {
            Tree::WorkingTree { root, .. } => {
                open_confined(root, path).map(|file| Box::new(file) as Box<dyn Read + Send>)
            }
            Tree::Revision(revision) => Ok(Box::new(std::io::Cursor::new(revision.read(path)?))),
        }
    }

    /// The working-tree file at `path` (confined as every read), for reading in parts
    /// from several threads at once, with the resolver of the `attr:< URL` values of an
    /// LDIF file there (see [`Tree::url_resolver`]). `None` at a revision, whose files
    /// are blobs read whole.
    pub fn working_file(&self, path: &Path) -> Option<Result<WorkingFile, TreeError>> {
        let Tree::WorkingTree { root, .. } = self else {
            return None;
        };
        let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Some(open_confined(root, path).map(|file| WorkingFile {
            file,
            urls: WorkingTreeUrls {
                root: root.clone(),
                urls: FileUrls::relative_to(base_dir),
            },
        }))
    }

    /// What resolves the `attr:< URL` values of an LDIF file in `base_dir`: files of
    /// this same tree (the policy of [`FileUrls`]: local paths and `file:` URLs),
    /// confined as every other file read.
    pub fn url_resolver(&self, base_dir: PathBuf) -> Result<Box<dyn UrlResolver>, TreeError> {
        let urls = FileUrls::relative_to(base_dir);
        Ok(match self {
            Tree::WorkingTree { root, .. } => Box::new(WorkingTreeUrls {
                root: root.clone(),
                urls,
            }),
            // The reader owns its resolver: give it its own handle on the repository.
            Tree::Revision(revision) => Box::new(RevisionUrls {
                revision: revision.reopen()?,
                urls,
            }),
        })
    }

    /// Why `path` cannot be read as a file, if it cannot: the config checks use this
    /// for the files the YAML names. The reason reads after the path, e.g.
    /// `not found (looked for …)`.
    pub fn check_file(&self, path: &Path) -> Result<(), FileProblem> {
        match self {
            Tree::WorkingTree { root, .. } => match confine(root, path) {
                Ok(_) => Ok(()),
                Err(TreeError::ReadFile { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Err(FileProblem::NotFound {
                        path: path.to_path_buf(),
                        source,
                    })
                }
                Err(TreeError::Outside { resolved, root, .. }) => {
                    Err(FileProblem::Outside { resolved, root })
                }
                Err(TreeError::NotAFile { what, .. }) => Err(FileProblem::NotAFile { what }),
                Err(other) => Err(FileProblem::Unreadable(Box::new(other))),
            },
            Tree::Revision(revision) => {
                let in_repo = revision
                    .locate(path)
                    .map_err(|source| FileProblem::Escapes {
                        repo: revision.repo.root().to_path_buf(),
                        path: path.to_path_buf(),
                        source: Box::new(source),
                    })?;
                match revision.repo.is_file(revision.commit, &in_repo) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(FileProblem::NotInCommit { in_repo }),
                    Err(e) => Err(FileProblem::Git(e)),
                }
            }
        }
    }

    /// Whether the working-tree files differ from HEAD where it matters: any of `read`
    /// (the files a plan read) modified, staged, deleted or untracked, or outside the
    /// repository; or any `*.yaml`/`*.yml` directly in `config_dir` changed (an added,
    /// deleted or untracked config file). Other files of the repository do not count.
    /// Always `false` at a revision, and outside git.
    pub fn is_dirty(&self, config_dir: &Path, read: &[&Path]) -> bool {
        let Tree::WorkingTree {
            repo: Some(repo), ..
        } = self
        else {
            return false;
        };
        let in_repo = |path: &Path| {
            absolute(path)
                .strip_prefix(repo.root())
                .ok()
                .and_then(|inside| normalize_within(Path::new(""), inside))
        };
        let mut relevant = Vec::new();
        for path in read {
            match in_repo(path) {
                Some(path) => relevant.push(path),
                None => return true,
            }
        }
        let Ok(changed) = repo.changed_paths() else {
            return true;
        };
        let config_in_repo = in_repo(config_dir);
        changed.iter().any(|path| {
            relevant.contains(path)
                || (path.parent() == config_in_repo.as_deref()
                    && path
                        .extension()
                        .is_some_and(|ext| ext == "yaml" || ext == "yml"))
        })
    }
}

impl Revision {
    /// The same revision through a new handle on the repository.
    fn reopen(&self) -> Result<Revision, TreeError> {
        let repo = Repo::discover(self.repo.root())?.ok_or_else(|| GitError::Other {
            repo: self.repo.root().to_path_buf(),
            message: "the repository disappeared while reading it".to_string(),
        })?;
        Ok(Revision {
            repo,
            commit: self.commit,
            label: self.label.clone(),
            config_dir: self.config_dir.clone(),
            config_in_repo: self.config_in_repo.clone(),
        })
    }

    /// The repository-relative path of `path` (as the user or the config wrote it).
    fn locate(&self, path: &Path) -> Result<PathBuf, TreeError> {
        let escapes = || TreeError::Escapes {
            path: path.to_path_buf(),
            repo: self.repo.root().to_path_buf(),
        };
        if let Ok(rest) = path.strip_prefix(&self.config_dir) {
            return normalize_within(&self.config_in_repo, rest).ok_or_else(escapes);
        }
        // Not under the config directory as written: an absolute path from the YAML, or
        // a path relative to the current directory.
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .and_then(|cwd| cwd.canonicalize())
                .map_err(|source| TreeError::ReadFile {
                    path: path.to_path_buf(),
                    source,
                })?
                .join(path)
        };
        let lexical = absolute
            .strip_prefix("/")
            .ok()
            .and_then(|rest| normalize_within(Path::new(""), rest))
            .ok_or_else(escapes)?;
        let root = self
            .repo
            .root()
            .strip_prefix("/")
            .unwrap_or(self.repo.root());
        lexical
            .strip_prefix(root)
            .map(Path::to_path_buf)
            .map_err(|_| escapes())
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, TreeError> {
        let in_repo = self.locate(path)?;
        self.repo
            .read(self.commit, &in_repo)?
            .ok_or_else(|| TreeError::NotFound {
                path: path.to_path_buf(),
                in_repo,
            })
    }
}

/// The working-tree file at `path`, confined under `root`, opened for reading.
fn open_confined(root: &Path, path: &Path) -> Result<std::fs::File, TreeError> {
    std::fs::File::open(confine(root, path)?).map_err(|source| TreeError::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

/// `path` resolved (symlinks followed) to the regular file it names inside `root`, or
/// why it may not be read: it resolves outside `root`, into `/proc` or `/sys`, or to
/// something that is not a regular file (a device, FIFO, socket or directory). Checked
/// before the file is opened, so nothing outside is ever touched beyond its metadata.
fn confine(root: &Path, path: &Path) -> Result<PathBuf, TreeError> {
    let resolved = confine_resolved(root, path)?;
    let metadata = std::fs::metadata(&resolved).map_err(|source| TreeError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if metadata.is_file() {
        Ok(resolved)
    } else {
        Err(TreeError::NotAFile {
            path: path.to_path_buf(),
            what: file_kind(&metadata.file_type()),
        })
    }
}

/// The directory `dir` resolved inside `root`, as [`confine`] does for files.
fn confine_dir(root: &Path, dir: &Path) -> Result<PathBuf, TreeError> {
    confine_resolved(root, dir).map_err(|error| match error {
        TreeError::ReadFile { source, .. } => TreeError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        },
        other => other,
    })
}

/// `path` canonicalised and held inside `root`, never in `/proc` or `/sys`.
fn confine_resolved(root: &Path, path: &Path) -> Result<PathBuf, TreeError> {
    let resolved = path.canonicalize().map_err(|source| TreeError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if resolved.starts_with("/proc") || resolved.starts_with("/sys") {
        return Err(TreeError::NotAFile {
            path: path.to_path_buf(),
            what: "a kernel interface file (/proc or /sys)",
        });
    }
    if !resolved.starts_with(root) {
        return Err(TreeError::Outside {
            path: path.to_path_buf(),
            resolved,
            root: root.to_path_buf(),
        });
    }
    Ok(resolved)
}

/// What a non-regular file is, for messages.
fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and `?` is one.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer matching with backtracking to the last `*`.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// A working-tree file open for reading, and what resolves the URL values of an LDIF
/// file there ([`Tree::working_file`]). Both may be used from any thread.
pub struct WorkingFile {
    pub file: std::fs::File,
    pub urls: WorkingTreeUrls,
}

/// The URL values of a working-tree LDIF file: files under `root`, confined as every
/// other file read.
#[derive(Clone)]
pub struct WorkingTreeUrls {
    root: PathBuf,
    urls: FileUrls,
}

impl UrlResolver for WorkingTreeUrls {
    fn resolve(&mut self, url: &str, max_bytes: usize) -> Result<Vec<u8>, UrlError> {
        let path = confine(&self.root, &self.urls.path_of(url)?)
            .map_err(|e| UrlError::Refused(Box::new(e)))?;
        read_bounded(&path, max_bytes)
    }
}

/// The URL values of an LDIF file at a revision: blobs of the same commit.
struct RevisionUrls {
    revision: Revision,
    urls: FileUrls,
}

impl UrlResolver for RevisionUrls {
    fn resolve(&mut self, url: &str, max_bytes: usize) -> Result<Vec<u8>, UrlError> {
        let path = self.urls.path_of(url)?;
        let value = self
            .revision
            .read(&path)
            .map_err(|e| UrlError::Refused(Box::new(e)))?;
        if value.len() > max_bytes {
            return Err(UrlError::TooLarge {
                size: value.len() as u64,
                max_bytes,
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod wildcard_tests {
    use super::{wildcard_match, Tree};

    #[test]
    fn a_missing_directory_matches_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = Tree::working_tree(dir.path());
        let pattern = dir.path().join("changes/*.ldif");
        assert_eq!(
            files.matching(&pattern).unwrap(),
            Vec::<std::path::PathBuf>::new()
        );
        std::fs::create_dir(dir.path().join("changes")).unwrap();
        std::fs::write(dir.path().join("changes/0001.ldif"), "").unwrap();
        assert_eq!(files.matching(&pattern).unwrap().len(), 1);
    }

    #[test]
    fn stars_and_question_marks_match_file_names() {
        assert!(wildcard_match("*.ldif", "0001-hire.ldif"));
        assert!(wildcard_match("hr-??.ldif", "hr-07.ldif"));
        assert!(wildcard_match("*", "anything"));
        assert!(!wildcard_match("*.ldif", "notes.txt"));
        assert!(!wildcard_match("hr-??.ldif", "hr-7.ldif"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
    }
}
