//! Data-driven reconciliation cases: one folder per case under `tests/cases/`, run by
//! one helper against a real store: a SQLite file, or a PostgreSQL database under
//! `REGISTRAR_TEST_STORE=postgres`.
//!
//! A case folder holds:
//! - `before/`, `before-2/`, … (optional): config directories planned and applied first,
//!   in name order, to build the starting state the way earlier revisions would have;
//! - `registrations.txt` (optional): manual or self registrations recorded next, one per
//!   line: `manual|self PROTOCOL IM_NAME ACCOUNT_DN`;
//! - `config/`: the config directory under test;
//! - `expected.txt`: the plan in text form, or `error: …` when planning must fail.
//!
//! The plan must also be what `--mode delta` gives, whenever delta mode can read the
//! sources from the snapshots the `before` applies kept (it refuses when, say, a source's
//! content file is another one). After comparing, the helper applies the plan and plans
//! again: the second plan must be empty (convergence in one run). `SNAPSHOTS=overwrite cargo test --test cases` rewrites
//! the expected files.

use std::path::{Path, PathBuf};

use registrar::app::{self, Context, ImportMode};
use registrar::core::region::StandingFacts;
use registrar::core::state::RegistrationSource;
use registrar::render::{self, Color};
use registrar::store::{RunRecord, Store, StoreLocation};
use registrar::tree::Tree;

mod common;

use common::store::{self, TestStore};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn context(config_dir: PathBuf, state: &StoreLocation) -> Context {
    Context {
        config_dir,
        state: state.clone(),
        color: Color::Off,
        rev: None,
    }
}

fn run_record() -> RunRecord {
    RunRecord::new("test", "test")
}

/// Runs one case; returns a description of the mismatch, if any.
fn run_case(case: &Path) -> Result<(), String> {
    let test_store = TestStore::fresh();
    let state = store::location(&test_store);

    let mut befores: Vec<PathBuf> = std::fs::read_dir(case)
        .map_err(|e| e.to_string())?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    befores.retain(|path| {
        path.is_dir()
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("before"))
    });
    befores.sort();
    for before in befores {
        let name = before.display().to_string();
        let before = context(before, &state);
        let plan = app::reconcile(&before, None, ImportMode::Full)
            .map_err(|e| format!("planning {name} failed: {e}"))?
            .plan;
        app::apply_plan(&before, &plan, "test", "test".to_string())
            .map_err(|e| format!("applying {name} failed: {e}"))?;
    }
    let registrations = case.join("registrations.txt");
    if registrations.is_file() {
        let mut store = Store::open(&state).map_err(|e| e.to_string())?;
        // Names are kept under the keys the case's config gives them.
        let config_dir = case.join("config");
        let config = registrar::config::load(&Tree::working_tree(&config_dir), &config_dir)
            .map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(&registrations).map_err(|e| e.to_string())?;
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let mut parts = line.splitn(4, ' ');
            let (Some(source), Some(protocol), Some(name), Some(dn)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("bad line in registrations.txt: {line}"));
            };
            let source = RegistrationSource::from_name(source)
                .ok_or_else(|| format!("bad source in registrations.txt: {source}"))?;
            store
                .register(
                    (protocol, &config.rules.protocol(protocol).name_key(name)),
                    name,
                    dn,
                    (source, None),
                    run_record(),
                )
                .map_err(|e| e.to_string())?;
        }
    }

    let under_test = context(case.join("config"), &state);
    let full = app::reconcile(&under_test, None, ImportMode::Full);
    match (&full, app::reconcile(&under_test, None, ImportMode::Delta)) {
        (Ok(full), Ok(delta)) if full.plan != delta.plan => {
            return Err(format!(
                "--mode delta plans otherwise than --mode full:\n{}\n--- delta\n{}",
                render::text(&full.plan, Color::Off),
                render::text(&delta.plan, Color::Off)
            ))
        }
        (Err(full), Ok(_)) => return Err(format!("--mode delta plans where full fails: {full}")),
        _ => {}
    }
    let (actual, plan) = match full {
        Ok(reconciled) => {
            // The case folders live in registrar's own repository: the plan's revision
            // would change with every commit, so the expected text leaves it out.
            let mut plan = reconciled.plan;
            plan.revision = None;
            (render::text(&plan, Color::Off), Some(plan))
        }
        // Paths in errors are shown relative to the case folder, so that the expected
        // text does not depend on where the repository is checked out.
        Err(error) => (
            format!("error: {error}\n").replace(&format!("{}/", case.display()), ""),
            None,
        ),
    };
    let expected_path = case.join("expected.txt");
    if std::env::var("SNAPSHOTS").as_deref() == Ok("overwrite") {
        std::fs::write(&expected_path, &actual).map_err(|e| e.to_string())?;
    } else {
        let expected = std::fs::read_to_string(&expected_path)
            .map_err(|e| format!("cannot read {}: {e}", expected_path.display()))?;
        if expected != actual {
            return Err(format!(
                "plan differs from expected.txt\n--- expected\n{expected}\n--- actual\n{actual}"
            ));
        }
    }

    let Some(plan) = plan else {
        return Ok(());
    };
    if plan.summary.blocked {
        let refused = app::apply_command(
            &under_test,
            None,
            false,
            ImportMode::Full,
            app::Approval::Auto,
        );
        if refused.is_ok() {
            return Err("a blocked plan was applied without --allow-deletes".to_string());
        }
    }
    app::apply_plan(&under_test, &plan, "test", "test".to_string())
        .map_err(|e| format!("applying the plan failed: {e}"))?;
    let store = Store::open(&state).map_err(|e| e.to_string())?;
    let kept = store.managed_hashes().map_err(|e| e.to_string())?;
    let rows = store.load().map_err(|e| e.to_string())?;
    if kept != registrar::core::drift::managed_hashes(&rows) {
        return Err("the hashes kept at apply differ from the rows' hashes".to_string());
    }
    for mode in [ImportMode::Full, ImportMode::Delta] {
        let again = app::reconcile(&under_test, None, mode)
            .map_err(|e| format!("second plan ({mode:?}) failed: {e}"))?
            .plan;
        if !again.changes.is_empty() {
            return Err(format!(
                "plan after apply ({mode:?}) is not empty:\n{}",
                render::text(&again, Color::Off)
            ));
        }
        // What a delta plan by region starts from: an apply leaves the totals it applied
        // standing.
        if StandingFacts::of(&again) != StandingFacts::of(&plan) {
            return Err(format!(
                "plan after apply ({mode:?}) has other warnings, skip counts or exclusions:\n{}",
                render::text(&again, Color::Off)
            ));
        }
    }
    Ok(())
}

#[test]
fn every_case_folder_matches_its_expected_plan() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/cases exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the case folders, found {}",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            run_case(case).err().map(|problem| {
                format!(
                    "case {}: {problem}",
                    case.file_name().unwrap().to_string_lossy()
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
