//! The config loader (`config::load_texts`), YAML text in: any text is a config or a list
//! of located problems, never a panic. Data files the config names are refused.

use std::path::{Path, PathBuf};

use registrar::config::{load_texts, ConfigText, UnreadableFile};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = registrar_fuzz::text(data) else {
            return;
        };
        let files = vec![ConfigText {
            path: PathBuf::from("registrar.yaml"),
            text: text.to_string(),
        }];
        let refuse = |_: &Path| {
            Err(UnreadableFile {
                reason: "not read while fuzzing".to_string(),
            })
        };
        if let Err(e) = load_texts(files, &refuse) {
            assert!(!e.to_string().is_empty());
        }
    });
}
