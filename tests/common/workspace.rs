//! A workspace for binary-level tests: a temp dir with a copy of the quickstart config
//! (so a test may edit it), and a fresh store on the backend of the run
//! ([`TestStore::fresh`](super::store::TestStore::fresh)).

use std::path::{Path, PathBuf};
use std::process::Output;

use super::stderr;
use super::store::{self, Backend, TestStore};

pub fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart")
}

/// A temp dir holding a copy of the quickstart config (so tests may edit it), and a
/// store.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub store: TestStore,
}

impl Workspace {
    /// A workspace whose store is on the backend of the run.
    pub fn new() -> Self {
        Workspace::on(Backend::of_this_run())
    }

    /// A workspace whose store is on `backend`, for the tests that are about one
    /// backend's own storage.
    pub fn on(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        for entry in std::fs::read_dir(quickstart()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, config.join(path.file_name().unwrap())).unwrap();
        }
        Workspace {
            dir,
            store: TestStore::on(backend),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// What `--state` takes: the SQLite file's path or the PostgreSQL database's URL.
    pub fn state(&self) -> String {
        self.store.argument()
    }

    /// How the binary names the store in its messages.
    pub fn state_named(&self) -> String {
        store::named(&self.store)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        super::registrar(&self.config(), &self.state())
            .args(args)
            .output()
            .unwrap()
    }

    pub fn write_config(&self, name: &str, text: &str) {
        std::fs::write(self.config().join(name), text).unwrap();
    }

    /// What the store holds ([`store::fingerprint`]), None when there is none.
    pub fn fingerprint(&self) -> Option<Vec<u8>> {
        store::fingerprint(&self.store)
    }

    pub fn state_json(&self) -> serde_json::Value {
        let output = self.run(&["state", "show", "--format", "json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}
