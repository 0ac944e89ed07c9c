//! The house's shape, checked: ARCHITECTURE.md names every module where it lives, the core
//! crate admits no I/O crate and no I/O module of `std`, and a `mod.rs` only declares and
//! re-exports. Each test fails with the list of what breaks the rule.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository root (this package's manifest directory).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folders holding Rust modules: the core crate's and the app's.
const SOURCE_ROOTS: [&str; 2] = ["crates/registrar-core/src", "src"];

/// Every `.rs` file under `dir`, as paths relative to the repository root, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    common::files_under(dir, "rs")
        .into_iter()
        .map(|path| path.strip_prefix(root()).unwrap().to_path_buf())
        .collect()
}

fn all_rust_files() -> Vec<PathBuf> {
    SOURCE_ROOTS
        .iter()
        .flat_map(|dir| rust_files(&root().join(dir)))
        .collect()
}

/// ARCHITECTURE.md's code map as sections: each `### `folder/`` heading with the text
/// below it, up to the next heading.
fn code_map_sections(doc: &str) -> BTreeMap<String, String> {
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        if line.starts_with('#') {
            if let Some((folder, text)) = current.take() {
                sections.insert(folder, text);
            }
            let heading = line.trim_start_matches('#').trim();
            if let Some(folder) = heading
                .strip_prefix('`')
                .and_then(|h| h.split('`').next())
                .filter(|folder| folder.ends_with('/'))
            {
                current = Some((folder.to_string(), String::new()));
            }
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some((folder, text)) = current {
        sections.insert(folder, text);
    }
    sections
}

/// Every folder of modules has a `### `folder/`` section in ARCHITECTURE.md, and every
/// module file in it (but the `lib.rs` or `mod.rs` the heading stands for) is named in
/// that section as `` `file.rs` ``. A module added or moved without a word in the map
/// fails here.
#[test]
fn architecture_md_names_every_module_in_its_folders_section() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let sections = code_map_sections(&doc);
    let mut missing = Vec::new();
    for file in all_rust_files() {
        let folder = format!("{}/", file.parent().unwrap().display());
        let name = file.file_name().unwrap().to_str().unwrap();
        let Some(section) = sections.get(&folder) else {
            missing.push(format!(
                "no section `### `{folder}`` (for {})",
                file.display()
            ));
            continue;
        };
        if name != "mod.rs" && name != "lib.rs" && !section.contains(&format!("`{name}`")) {
            missing.push(format!("`{name}` is not named under `### `{folder}``"));
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map is not true:\n{}",
        missing.join("\n")
    );
}

/// The dependency keys of a Cargo.toml's `[dependencies]` table (the plain form this
/// repository writes: one `name = …` line each).
fn dependency_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
        } else if in_dependencies && !line.is_empty() && !line.starts_with('#') {
            names.push(line.split('=').next().unwrap().trim().to_string());
        }
    }
    names
}

/// The core's manifest admits only pure crates: no tokio, SQLite, git, LDAP, HTTP, clock
/// or file crate can be named by core code, because the core cannot link one.
#[test]
fn the_core_crate_admits_no_io_crate() {
    const PURE: [&str; 6] = [
        "foldhash",
        "regex",
        "schemars",
        "serde",
        "sha2",
        "thiserror",
    ];
    let manifest =
        std::fs::read_to_string(root().join("crates/registrar-core/Cargo.toml")).unwrap();
    let names = dependency_names(&manifest);
    assert!(names.contains(&"serde".to_string()), "{names:?}");
    let admitted: Vec<&String> = names
        .iter()
        .filter(|n| !PURE.contains(&n.as_str()))
        .collect();
    assert!(
        admitted.is_empty(),
        "registrar-core depends on {admitted:?}: the core is pure; an I/O crate belongs to an \
         adapter in src/adapters (extend this list only for a crate that does no I/O)"
    );
    let lib = std::fs::read_to_string(root().join("crates/registrar-core/src/lib.rs")).unwrap();
    assert!(lib.contains("#![forbid(unsafe_code)]"));
}

/// The parts of `std` that reach outside the process or read the clock are not named in
/// the core either (the manifest cannot keep `std` out).
#[test]
fn the_core_names_no_io_part_of_std() {
    const IMPURE: [&str; 9] = [
        "std::fs",
        "std::net",
        "std::process",
        "std::env",
        "std::thread",
        "std::io::std",
        "SystemTime",
        "Instant::now",
        "std::os",
    ];
    let mut found = Vec::new();
    for file in rust_files(&root().join("crates/registrar-core/src")) {
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        for (number, line) in text.lines().enumerate() {
            for word in IMPURE.iter().filter(|word| line.contains(*word)) {
                found.push(format!("{}:{}: {word}", file.display(), number + 1));
            }
        }
    }
    assert!(found.is_empty(), "the core does I/O:\n{}", found.join("\n"));
}

/// A `mod.rs` (and the core's `lib.rs`) declares modules and re-exports: no function,
/// type, impl or constant at its top level, so that no child imports up from its parent.
#[test]
fn a_mod_rs_only_declares_and_re_exports() {
    const ITEM_KEYWORDS: [&str; 9] = [
        "fn ",
        "struct ",
        "enum ",
        "impl",
        "const ",
        "static ",
        "type ",
        "trait ",
        "macro_rules!",
    ];
    let mut found = Vec::new();
    for file in all_rust_files() {
        let name = file.file_name().unwrap().to_str().unwrap();
        let is_core_lib = file.starts_with("crates/registrar-core/src") && name == "lib.rs";
        if name != "mod.rs" && !is_core_lib {
            continue;
        }
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        for (number, line) in text.lines().enumerate() {
            // Top-level lines only: an item inside a `mod tests { … }` is indented.
            let item = line
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub(super) ")
                .trim_start_matches("pub ")
                .trim_start_matches("async ")
                .trim_start_matches("unsafe ");
            if ITEM_KEYWORDS
                .iter()
                .any(|keyword| item.starts_with(keyword))
            {
                found.push(format!("{}:{}: {line}", file.display(), number + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a mod.rs holds items (move them to a file of their own):\n{}",
        found.join("\n")
    );
}
