//! `registrar show PLANFILE`: a saved plan (`plan --out`) rendered for people, as
//! `terraform show` does: the text plan, or the Markdown of a pull-request comment, with
//! the effect and the review's notes when the plan has them. It reads the file only: no
//! config, no source, no store.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::context::{Context, Outcome};
use super::error::AppError;
use super::saved_plan::{self, SavedPlanError};
use crate::adapters::render;

/// Output formats of `show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    Text,
    Markdown,
}

/// `registrar show PLANFILE`.
pub fn show_plan(context: &Context, path: &Path, format: ShowFormat) -> Result<Outcome, AppError> {
    let error = |error: SavedPlanError| AppError::SavedPlan {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(|e| error(SavedPlanError::Open(e)))?;
    let (plan, dirty, review) =
        saved_plan::read_whole_plan(std::io::BufReader::with_capacity(1 << 20, file))
            .map_err(error)?;
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let written = match format {
        ShowFormat::Text => render::write_trust_text(&review.connection_trust, &mut stdout)
            .and_then(|_| match &review.effect {
                Some(effect) => render::write_effect_text(effect, context.color, &mut stdout)
                    .and_then(|_| writeln!(stdout)),
                None => Ok(()),
            })
            .and_then(|_| render::write_text(&plan, dirty, context.color, &mut stdout)),
        ShowFormat::Markdown => stdout.write_all(
            render::markdown(&plan, review.effect.as_ref(), &review.connection_trust).as_bytes(),
        ),
    };
    // A closed pipe (`registrar show plan.json | head`) is not an error.
    let _ = written.and_then(|_| stdout.flush());
    Ok(Outcome::Success)
}
