//! `registrar state migrate --to FILE|URL`: the `--state` store copied whole into an
//! empty store elsewhere (SQLite to PostgreSQL and back, or file to file), run history,
//! drift hashes and kept snapshots included, then a summary of each table's rows and
//! digest.
//!
//! The copy and its check are the store's ([`Store::copy_into`]): one transaction on the
//! target, committed only when every table read back matches the source. This side only
//! opens the two stores, refuses a missing source or a target that is the source, and
//! removes a target file it created for a copy that failed. It never writes the source.

use std::path::Path;

use super::context::{Context, Outcome};
use super::error::AppError;
use super::output::print_stdout;
use crate::adapters::store::{Store, StoreLocation, TableDigest};

/// Hex digits of each table's digest the summary shows.
const DIGEST_PREFIX: usize = 16;

/// `registrar state migrate --to TARGET`.
pub fn state_migrate(context: &Context, to: &StoreLocation) -> Result<Outcome, AppError> {
    let from = &context.state;
    if same_store(from, to) {
        return Err(AppError::MigrateOntoItself {
            state: from.clone(),
        });
    }
    let source = Store::open_if_exists(from)?.ok_or_else(|| AppError::NoStateToMigrate {
        state: from.clone(),
    })?;
    let created = to.file().filter(|path| !path.exists());
    let copied = Store::open(to).map_err(AppError::from).and_then(|target| {
        source
            .copy_into(&target)
            .map_err(|error| AppError::Copy(Box::new(error)))
    });
    let copied = match copied {
        Ok(copied) => copied,
        Err(error) => {
            if let Some(path) = created {
                remove_store_file(path);
            }
            return Err(error);
        }
    };
    print_stdout(&summary(from, to, &copied));
    Ok(Outcome::Success)
}

/// Whether `to` is `from`: the same URL, or the same file however it is spelt.
fn same_store(from: &StoreLocation, to: &StoreLocation) -> bool {
    match (from.file(), to.file()) {
        (Some(from), Some(to)) => match (from.canonicalize(), to.canonicalize()) {
            (Ok(from), Ok(to)) => from == to,
            _ => from == to,
        },
        _ => from == to,
    }
}

/// Removes the SQLite file (and a journal it left) that a failed copy created.
fn remove_store_file(path: &Path) {
    let _ = std::fs::remove_file(path);
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    let _ = std::fs::remove_file(journal);
}

/// One line per table (rows, the digest's first hex digits), then the totals.
fn summary(from: &StoreLocation, to: &StoreLocation, copied: &[TableDigest]) -> String {
    let mut out = format!("Copied {from} to {to}:\n");
    for table in copied {
        out.push_str(&format!(
            "  {:<22} {:>10} rows  sha256:{}\n",
            table.table,
            table.rows,
            &table.hex()[..DIGEST_PREFIX]
        ));
    }
    let rows: u64 = copied.iter().map(|table| table.rows).sum();
    out.push_str(&format!(
        "Migration complete: {rows} rows in {} tables, each verified on the target (rows and \
         SHA-256 digest) before one commit.\n",
        copied.len()
    ));
    out
}
