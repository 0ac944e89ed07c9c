//! `registrar plan`: a reconcile pass printed as text, JSON, Markdown or LDIF, and with
//! `--out` saved as the plan JSON that `apply --plan` and `show` read back.
//!
//! The plan file is written through `output.rs`, so an existing file changes only once
//! the new one is complete.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::context::{Context, Outcome};
use super::error::AppError;
use super::output::{print_stdout, OutputFile};
use super::reconcile::{reconcile, Reconciled, Review};
use super::threads::{join, spawn_scoped};
use crate::adapters::render;
use crate::adapters::store::Store;
use crate::config::raw::ImportMode;

/// Output formats of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
    /// LDIF change records for ldapmodify: the store mirrored under --ldif-base.
    Ldif,
}

/// `registrar plan`. `ldif_base` is the base DN of `--format ldif` (`--ldif-base`).
pub fn plan_command(
    context: &Context,
    format: PlanFormat,
    out: Option<&Path>,
    detailed_exitcode: bool,
    review: Option<&Review>,
    ldif_base: &str,
    mode: ImportMode,
) -> Result<Outcome, AppError> {
    // A bad base is a usage error: refuse it before reading anything.
    let ldif_base = render::LdifBase::parse(ldif_base)?;
    let no_store = !Store::exists(&context.state)?;
    let reconciled = reconcile(context, review, mode)?;
    let computed = &reconciled.plan;
    // With `--out`, stdout keeps the plan for people: JSON goes to the file only.
    let shown = match (format, out) {
        (PlanFormat::Json, Some(_)) => PlanFormat::Text,
        _ => format,
    };
    match shown {
        // With `--out`, the plan file is written on a second core while the text prints.
        // It is created first, so a path that cannot be written fails before any output;
        // an error later in the writing still fails the command, after the text.
        PlanFormat::Text => std::thread::scope(|scope| {
            let saving = match out {
                Some(out) => {
                    let file = create_plan_file(out)?;
                    Some(spawn_scoped(scope, || {
                        save_plan_to(&reconciled, out, file)
                    })?)
                }
                None => None,
            };
            let mut stdout = BufWriter::new(std::io::stdout().lock());
            let _ = render::write_trust_text(&reconciled.connection_trust, &mut stdout)
                .and_then(|_| {
                    reconciled.effect.as_ref().map_or(Ok(()), |effect| {
                        render::write_effect_text(effect, context.color, &mut stdout)
                            .and_then(|_| writeln!(stdout))
                    })
                })
                .and_then(|_| {
                    render::write_text(
                        computed,
                        reconciled.revision_dirty,
                        context.color,
                        &mut stdout,
                    )
                })
                .and_then(|_| stdout.flush());
            saving.map_or(Ok(()), join)
        })?,
        PlanFormat::Json => {
            let mut stdout = BufWriter::new(std::io::stdout().lock());
            // A closed pipe (`registrar plan | head`) is not an error.
            let _ = render::write_json(&reconciled.document(), &mut stdout)
                .and_then(|_| stdout.flush());
        }
        PlanFormat::Markdown => {
            if let Some(out) = out {
                save_plan(&reconciled, out)?;
            }
            print_stdout(&render::markdown(
                computed,
                reconciled.effect.as_ref(),
                &reconciled.connection_trust,
            ))
        }
        // The plan against the store only: the effect of `--base` has no LDIF form.
        PlanFormat::Ldif => {
            if let Some(out) = out {
                save_plan(&reconciled, out)?;
            }
            let mut stdout = BufWriter::new(std::io::stdout().lock());
            let written =
                render::write_ldif(computed, &ldif_base, &mut stdout).and_then(|_| stdout.flush());
            match written {
                // A closed pipe (`registrar plan | head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(AppError::PlanOutput(e))
                }
                _ => {}
            }
        }
    }
    if no_store {
        // A mistyped --state would otherwise plan against nothing without a word.
        eprintln!(
            "note: {} does not exist: planning against an empty store",
            context.state
        );
    }
    Ok(if detailed_exitcode && !computed.changes.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// Writes the plan JSON of `reconciled` to the file `out` (`plan --out`).
fn save_plan(reconciled: &Reconciled, out: &Path) -> Result<(), AppError> {
    save_plan_to(reconciled, out, create_plan_file(out)?)
}

/// Opens the plan file `out` (`output.rs`: nothing that exists changes before it is
/// finished).
fn create_plan_file(out: &Path) -> Result<OutputFile, AppError> {
    OutputFile::create(out).map_err(|e| cannot_write_plan(out, e))
}

/// Writes the plan JSON of `reconciled` to `file`, opened at `out`, and finishes it.
fn save_plan_to(reconciled: &Reconciled, out: &Path, file: OutputFile) -> Result<(), AppError> {
    // Large plans run to many megabytes: fewer, larger writes.
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    render::write_json(&reconciled.document(), &mut writer)
        .and_then(|_| writer.flush())
        .map_err(|e| cannot_write_plan(out, e))?;
    finish_plan_file(out, writer)
}

/// Finishes the plan file `out` written through `writer` (already flushed).
fn finish_plan_file(out: &Path, writer: BufWriter<OutputFile>) -> Result<(), AppError> {
    writer
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(OutputFile::finish)
        .map_err(|e| cannot_write_plan(out, e))
}

fn cannot_write_plan(out: &Path, error: std::io::Error) -> AppError {
    AppError::File {
        path: out.to_path_buf(),
        action: "cannot write plan",
        error,
    }
}
