//! The config's own commands: `registrar validate` (the config checked and every source
//! read, each failure told) and `registrar schema` (the JSON Schema of the config files).

use super::context::{Context, Outcome};
use super::error::AppError;
use super::output::print_stdout;
use super::reading::{at_revision, head_files, read_config};
use super::sources::{self, InputsDigest};
use crate::config::{self, SourceLocation};

/// `registrar validate`.
pub fn validate(context: &Context, read_ldap: &[String]) -> Result<Outcome, AppError> {
    let files = head_files(context)?;
    let config = read_config(context, &files, "")?;
    for name in read_ldap {
        sources::find_source(&config, name)?;
    }
    let at = files
        .label()
        .map(|label| format!(" at revision {label}"))
        .unwrap_or_default();
    // The sources in the repository are read too (an LDAP server only when asked):
    // syntax, change files that apply, entry counts. Every source is read, whatever
    // the others give, and every failure is told.
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for source in &config.sources {
        let is_ldap = matches!(source.location, SourceLocation::Ldap(_));
        if is_ldap && !read_ldap.contains(&source.name) {
            lines.push(format!(
                "source {}: LDAP, not read (validate --sources {} reads it)",
                source.name, source.name
            ));
            continue;
        }
        let mut entries = 0u64;
        let mut digest = InputsDigest::unused();
        let read = sources::read_source(
            source,
            &files,
            &context.config_dir,
            &mut digest,
            &mut |_| entries += 1,
        );
        match at_revision(&files, "", read) {
            Ok(import) => {
                let changes = import.map_or(0, |import| import.changes.len());
                let changes = match changes {
                    0 => String::new(),
                    1 => " (with 1 change file)".to_string(),
                    n => format!(" (with {n} change files)"),
                };
                lines.push(format!(
                    "source {}: {entries} entries read{changes}",
                    source.name
                ));
            }
            Err(error) => problems.push(error),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::SourcesUnreadable { problems });
    }
    println!(
        "{}{at}: valid ({} files, {} sources, {} mappings, {} exclusions)",
        context.config_dir.display(),
        config.files.len(),
        config.rules.sources.len(),
        config.rules.mappings.len(),
        config.rules.exclusions.len()
    );
    for line in lines {
        println!("  {line}");
    }
    Ok(Outcome::Success)
}

/// `registrar schema`.
pub fn schema() -> Result<Outcome, AppError> {
    print_stdout(&config::raw::json_schema());
    Ok(Outcome::Success)
}
