//! A workspace for binary-level tests: a temp dir with a copy of the quickstart config
//! (so a test may edit it) and a state path beside it.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::stderr;

pub fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart")
}

/// A temp dir holding a copy of the quickstart config (so tests may edit it) and a
/// state path.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        for entry in std::fs::read_dir(quickstart()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, config.join(path.file_name().unwrap())).unwrap();
        }
        Workspace { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state.db")
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

    /// The state file's bytes, or None when there is none.
    pub fn state_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.state()).ok()
    }

    pub fn state_json(&self) -> serde_json::Value {
        let output = self.run(&["state", "show", "--format", "json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}
