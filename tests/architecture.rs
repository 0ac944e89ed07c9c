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

/// The folders holding Rust modules: the core crate's, the test cluster crate's and the app's.
const SOURCE_ROOTS: [&str; 3] = [
    "crates/registrar-core/src",
    "crates/throwaway-postgres/src",
    "src",
];

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

/// The dependency keys of every table of a Cargo.toml that links into the crate:
/// `[dependencies]`, `[build-dependencies]` and `[target.….dependencies]` (not
/// `[dev-dependencies]`), in the plain form this repository writes: one `name = …` line
/// each.
fn dependency_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line.ends_with("dependencies]") && line != "[dev-dependencies]";
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
    const PURE: [&str; 7] = [
        "arcstr",
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

/// The names a top-level `use super::…;` statement starts from: `use super::a::b;` gives
/// `a`, `use super::{a, b::c};` gives `a` and `b`.
fn first_segments_after_super(statement: &str) -> Vec<String> {
    let rest = statement
        .trim_start_matches("pub(crate) ")
        .trim_start_matches("pub(super) ")
        .trim_start_matches("pub ")
        .trim_start_matches("use super::")
        .trim_end_matches(';')
        .trim();
    let parts: Vec<String> = match rest.strip_prefix('{') {
        Some(inner) => {
            let inner = inner.strip_suffix('}').unwrap_or(inner);
            let mut parts = Vec::new();
            let (mut depth, mut start) = (0usize, 0usize);
            for (index, character) in inner.char_indices() {
                match character {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(inner[start..index].to_string());
                        start = index + 1;
                    }
                    _ => {}
                }
            }
            parts.push(inner[start..].to_string());
            parts
        }
        None => vec![rest.to_string()],
    };
    parts
        .iter()
        .map(|part| part.trim().split("::").next().unwrap())
        .map(|segment| segment.split_whitespace().next().unwrap_or("").to_string())
        .filter(|segment| !segment.is_empty())
        .collect()
}

/// No child module imports an item of its parent: a file's top-level `use super::…`
/// names a sibling module (`use super::error::AppError`), never something the parent
/// declares or re-exports (`use super::AppError`). The `tests.rs` of a folder, which tests
/// the folder through its parent's paths, is the exception.
#[test]
fn no_child_imports_from_its_parent() {
    let mut found = Vec::new();
    for file in all_rust_files() {
        let name = file.file_name().unwrap().to_str().unwrap();
        let folder = root().join(file.parent().unwrap());
        if matches!(name, "mod.rs" | "lib.rs" | "main.rs" | "tests.rs")
            || !(folder.join("mod.rs").exists() || folder.join("lib.rs").exists())
        {
            continue;
        }
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        let mut lines = text.lines().enumerate();
        while let Some((number, line)) = lines.next() {
            let visible = line
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub(super) ")
                .trim_start_matches("pub ");
            if !visible.starts_with("use super::") {
                continue;
            }
            let mut statement = line.to_string();
            while !statement.trim_end().ends_with(';') {
                let Some((_, next)) = lines.next() else { break };
                statement.push_str(next.trim());
            }
            for segment in first_segments_after_super(&statement) {
                let sibling = segment == "super"
                    || folder.join(format!("{segment}.rs")).exists()
                    || folder.join(&segment).join("mod.rs").exists();
                if !sibling {
                    found.push(format!("{}:{}: `{segment}`", file.display(), number + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a child imports from its parent (import from the sibling that defines it):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_first_segments_of_a_use_statement_are_found() {
    assert_eq!(
        first_segments_after_super("use super::error::AppError;"),
        ["error"]
    );
    assert_eq!(
        first_segments_after_super("use super::{open::Store, error::{store_error, StoreError}};"),
        ["open", "error"]
    );
    assert_eq!(
        first_segments_after_super("pub use super::AppError;"),
        ["AppError"]
    );
}
