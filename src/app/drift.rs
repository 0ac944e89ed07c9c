//! `registrar drift`: where the store departs from the last applied configuration.
//! The report itself is `core::drift`; this reads what it needs: the store (rows and the
//! content hashes applies kept), the revision last applied (or `--rev`), its config and
//! the plan that revision gives today.

use std::io::Write;
use std::path::Path;

use super::context::{Context, Outcome};
use super::error::AppError;
use super::output::{pretty_json, print_stdout, OutputFile};
use super::reading::{head_files, read_config};
use super::reconcile::reconcile;
use crate::adapters::render;
use crate::adapters::store::Store;
use crate::config::raw::ImportMode;
use registrar_core::drift::{self, DriftReport, PendingChanges};

/// Output formats of `drift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriftFormat {
    Text,
    Json,
    Markdown,
    /// A self-contained HTML page.
    Html,
}

/// Computes the drift report: against `--rev` when given, otherwise against the
/// revision of the last apply that landed (the working tree when none was recorded).
pub fn drift_report(context: &Context) -> Result<DriftReport, AppError> {
    let Some(store) = Store::open_if_exists(&context.state)? else {
        return Err(AppError::NoStateToDrift {
            state: context.state.clone(),
        });
    };
    let revision = match &context.rev {
        Some(rev) => Some(rev.clone()),
        // A dirty apply recorded `COMMIT-dirty`: compare with the commit.
        None => store
            .applied_revision()?
            .map(|recorded| recorded.trim_end_matches("-dirty").to_string()),
    };
    let at = Context {
        rev: revision.clone(),
        ..context.clone()
    };
    let files = head_files(&at)?;
    let config = read_config(&at, &files, "")?;
    let pending = reconcile(&at, None, ImportMode::Full)?.plan;
    let state = store.load()?;
    let hashes = store.managed_hashes()?;
    let mut report = drift::drift(
        &config.rules,
        &state,
        Some(&hashes),
        PendingChanges {
            summary: pending.summary,
            changes: pending.changes,
        },
    );
    report.revision = files.commit().or(revision);
    Ok(report)
}

/// `registrar drift`.
pub fn drift_command(
    context: &Context,
    format: DriftFormat,
    out: Option<&Path>,
    detailed_exitcode: bool,
) -> Result<Outcome, AppError> {
    let report = drift_report(context)?;
    let text = match format {
        DriftFormat::Text => render::drift_text(&report, context.color),
        DriftFormat::Json => pretty_json(&report)?,
        DriftFormat::Markdown => render::drift_markdown(&report),
        DriftFormat::Html => render::drift_html(&report),
    };
    match out {
        Some(path) => OutputFile::create(path)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.finish()
            })
            .map_err(|error| AppError::File {
                path: path.to_path_buf(),
                action: "cannot write drift report",
                error,
            })?,
        None => print_stdout(&text),
    }
    Ok(if detailed_exitcode && report.has_drift() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}
