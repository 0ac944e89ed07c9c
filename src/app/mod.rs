//! The commands: each one wires the adapters (config, LDIF, store, renderers) around the
//! pure core. `plan` and `apply` share one reconcile pass, `reconcile()`.
//!
//! This is the only layer that reads the clock or the environment. It returns errors to
//! `main`, which prints them as one line each and exits 1.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::config::{self, Config, ConfigError, SourceLocation};
use crate::core::desired::{Desired, DesiredBuilder};
use crate::core::plan::{plan, Plan, PlanError, PLAN_FORMAT_VERSION};
use crate::core::state::{RegistrationSource, State};
use crate::ldif::{self, FileUrls, LdifReader};
use crate::render::{self, Color};
use crate::store::{RunRecord, Store, StoreError};

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Refused(String),
}

/// Output formats of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

/// What a finished command asks `main` to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 2: `--detailed-exitcode` and there are changes.
    Changes,
}

/// The settings every command shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub config_dir: PathBuf,
    pub state_path: PathBuf,
    pub color: Color,
}

/// A reader that feeds every byte it passes on into a digest.
struct DigestingReader<'d, R> {
    inner: R,
    digest: &'d mut Sha256,
}

impl<R: Read> Read for DigestingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.digest.update(&buf[..read]);
        Ok(read)
    }
}

/// Streams every source's entries through the desired-state builder, digesting the
/// inputs (config files and source data) on the way. No directory is held in memory.
fn read_desired(config: &Config) -> Result<(Desired, String), AppError> {
    let mut digest = Sha256::new();
    for file in &config.files {
        digest.update(file.path.to_string_lossy().as_bytes());
        digest.update([0]);
        digest.update(file.text.as_bytes());
        digest.update([0]);
    }
    let mut builder = DesiredBuilder::new(&config.rules);
    for source in &config.sources {
        builder.begin_source(&source.name);
        let source_error = |message: String| AppError::Source {
            source_name: source.name.clone(),
            message,
        };
        match &source.location {
            SourceLocation::Ldif { path, changes } => {
                if changes.is_some() {
                    return Err(source_error(
                        "ldif change files (changes:) are not supported by this version; remove the key".to_string(),
                    ));
                }
                let file = File::open(path)
                    .map_err(|e| source_error(format!("cannot read {}: {e}", path.display())))?;
                digest.update(path.to_string_lossy().as_bytes());
                digest.update([0]);
                let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                let input = BufReader::with_capacity(
                    1 << 16,
                    DigestingReader {
                        inner: file,
                        digest: &mut digest,
                    },
                );
                let reader = LdifReader::new(input).with_resolver(FileUrls::relative_to(base_dir));
                ldif::for_each_entry(reader, |entry| builder.add_entry(&source.name, &entry))
                    .map_err(|e| source_error(format!("{}:{e}", path.display())))?;
            }
            SourceLocation::Ldap(ldap) => {
                return Err(source_error(format!(
                    "ldap sources ({}) are not supported by this version; export the directory to LDIF and use an ldif source",
                    ldap.url
                )))
            }
        }
    }
    let digest = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((builder.finish(), format!("sha256:{digest}")))
}

/// Loads the state, or an empty one at serial 0 when the file does not exist yet.
fn load_state(path: &Path) -> Result<State, AppError> {
    match Store::open_if_exists(path)? {
        Some(store) => Ok(store.load()?),
        None => Ok(State::default()),
    }
}

/// One reconcile pass: config + sources + state → plan. Shared by `plan` and `apply`.
pub fn reconcile(context: &Context) -> Result<Plan, AppError> {
    let config = config::load_dir(&context.config_dir)?;
    // The store loads on a second core while the sources stream through the builder.
    let (read, state) = std::thread::scope(|scope| {
        let loader = scope.spawn(|| load_state(&context.state_path));
        let read = read_desired(&config);
        let state = loader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, state)
    });
    let (wanted, inputs_digest) = read?;
    let state = state?;
    let mut computed = plan(&config.rules, wanted, &state)?;
    computed.inputs_digest = inputs_digest;
    // Freeing a large directory's worth of values takes as long as building them; let
    // another thread do it while the caller renders the plan.
    std::thread::spawn(move || drop((state, config)));
    Ok(computed)
}

/// `registrar validate`.
pub fn validate(context: &Context) -> Result<Outcome, AppError> {
    let config = config::load_dir(&context.config_dir)?;
    println!(
        "{}: valid ({} files, {} sources, {} mappings, {} exclusions)",
        context.config_dir.display(),
        config.files.len(),
        config.rules.sources.len(),
        config.rules.mappings.len(),
        config.rules.exclusions.len()
    );
    Ok(Outcome::Success)
}

/// `registrar plan`.
pub fn plan_command(
    context: &Context,
    format: PlanFormat,
    out: Option<&Path>,
    detailed_exitcode: bool,
) -> Result<Outcome, AppError> {
    let computed = reconcile(context)?;
    if let Some(out) = out {
        let written = File::create(out).and_then(|file| {
            let mut writer = BufWriter::new(file);
            render::write_json(&computed, &mut writer)?;
            writer.flush()
        });
        written.map_err(|e| AppError::File {
            path: out.to_path_buf(),
            message: format!("cannot write plan: {e}"),
        })?;
    }
    match format {
        PlanFormat::Text => {
            let mut stdout = BufWriter::new(std::io::stdout().lock());
            let _ = render::write_text(&computed, context.color, &mut stdout)
                .and_then(|_| stdout.flush());
        }
        PlanFormat::Json => {
            let mut stdout = BufWriter::new(std::io::stdout().lock());
            // A closed pipe (`registrar plan | head`) is not an error.
            let _ = match out {
                // Already serialised once: copy the file rather than serialise again.
                Some(out) => File::open(out)
                    .and_then(|mut saved| std::io::copy(&mut saved, &mut stdout))
                    .map(drop),
                None => render::write_json(&computed, &mut stdout),
            }
            .and_then(|_| stdout.flush());
        }
        PlanFormat::Markdown => print_stdout(&render::markdown(&computed)),
    }
    Ok(if detailed_exitcode && !computed.changes.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// `registrar apply`.
pub fn apply_command(
    context: &Context,
    saved_plan: Option<&Path>,
    allow_deletes: bool,
) -> Result<Outcome, AppError> {
    let started_at = now();
    let (to_apply, command) = match saved_plan {
        Some(path) => (read_plan(path)?, format!("apply --plan {}", path.display())),
        None => (reconcile(context)?, "apply".to_string()),
    };
    if saved_plan.is_none() {
        print_stdout(&render::text(&to_apply, context.color));
    }
    if let Some(reason) = &to_apply.summary.blocked_reason {
        if !allow_deletes {
            return Err(AppError::Refused(format!(
                "plan is blocked: {reason}; nothing was applied (rerun with --allow-deletes if this is intended)"
            )));
        }
    }
    let serial = apply_plan(&context.state_path, &to_apply, &command, started_at)?;
    let s = &to_apply.summary;
    println!(
        "Apply complete: {} added, {} updated, {} removed, {} deactivated, {} reactivated. State serial {serial}.",
        s.add, s.update, s.remove, s.deactivate, s.reactivate
    );
    Ok(Outcome::Success)
}

/// Applies `plan` to the store at `state_path` in one transaction and records the run.
/// Returns the new state serial.
pub fn apply_plan(
    state_path: &Path,
    plan: &Plan,
    command: &str,
    started_at: String,
) -> Result<i64, AppError> {
    let mut store = Store::open(state_path)?;
    let s = &plan.summary;
    let run = RunRecord {
        finished_at: now(),
        revision: plan.revision.clone(),
        added: s.add,
        updated: s.update,
        removed: s.remove,
        deactivated: s.deactivate,
        reactivated: s.reactivate,
        ..RunRecord::new(command, started_at)
    };
    Ok(store.apply(plan, run)?)
}

/// Reads a saved plan.
fn read_plan(path: &Path) -> Result<Plan, AppError> {
    let text = std::fs::read_to_string(path).map_err(|e| AppError::File {
        path: path.to_path_buf(),
        message: format!("cannot read plan: {e}"),
    })?;
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format_version").and_then(|v| v.as_u64()));
    if let Some(version) = version {
        if version != u64::from(PLAN_FORMAT_VERSION) {
            return Err(AppError::File {
                path: path.to_path_buf(),
                message: format!(
                    "plan format_version {version} is not supported (this build reads {PLAN_FORMAT_VERSION})"
                ),
            });
        }
    }
    serde_json::from_str(&text).map_err(|e| AppError::File {
        path: path.to_path_buf(),
        message: format!("not a registrar plan: {e}"),
    })
}

/// Output formats of `state show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateFormat {
    Text,
    Json,
}

/// `registrar state show`.
pub fn state_show(context: &Context, format: StateFormat) -> Result<Outcome, AppError> {
    let store = Store::open_if_exists(&context.state_path)?;
    let state = match &store {
        Some(store) => store.load()?,
        None => State::default(),
    };
    let groups = match &store {
        Some(store) => store.groups()?,
        None => Vec::new(),
    };
    match format {
        StateFormat::Json => {
            let accounts: Vec<_> = state
                .accounts
                .values()
                .map(|a| {
                    serde_json::json!({
                        "anchor": a.anchor,
                        "dn": a.dn,
                        "source": a.source,
                        "managed": a.source.is_some(),
                        "status": a.status,
                        "profile": a.profile,
                    })
                })
                .collect();
            let registrations: Vec<_> = state
                .registrations
                .values()
                .map(|r| {
                    serde_json::json!({
                        "protocol": r.protocol,
                        "im_name": r.im_name,
                        "account": r.account,
                        "source": r.source,
                        "owner": r.owner,
                    })
                })
                .collect();
            let document = serde_json::json!({
                "serial": state.serial,
                "accounts": accounts,
                "registrations": registrations,
                "groups": groups,
            });
            let mut text = serde_json::to_string_pretty(&document).expect("serialisable");
            text.push('\n');
            print_stdout(&text);
        }
        StateFormat::Text => {
            let mut out = format!("state serial {}\n", state.serial);
            out.push_str(&format!("\naccounts ({})\n", state.accounts.len()));
            for a in state.accounts.values() {
                let source = a.source.as_deref().unwrap_or("unmanaged");
                let name = a
                    .profile
                    .get(crate::core::model::ProfileField::DisplayName)
                    .map(|n| format!(" {n:?}"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  {} [{}, {}]{name}\n",
                    a.anchor,
                    source,
                    a.status.name()
                ));
            }
            out.push_str(&format!(
                "\nregistrations ({})\n",
                state.registrations.len()
            ));
            for r in state.registrations.values() {
                let owner = r.owner.as_deref().unwrap_or("unmanaged");
                out.push_str(&format!(
                    "  {} {:?} → {} [{}, {owner}]\n",
                    r.protocol,
                    r.im_name,
                    r.account,
                    r.source.name()
                ));
            }
            out.push_str(&format!("\ngroups ({})\n", groups.len()));
            for g in &groups {
                out.push_str(&format!(
                    "  {} [{}] {} members\n",
                    g.name,
                    g.kind,
                    g.members.len()
                ));
            }
            print_stdout(&out);
        }
    }
    Ok(Outcome::Success)
}

/// `registrar state register`.
pub fn state_register(
    context: &Context,
    protocol: &str,
    im_name: &str,
    account: &str,
    source: RegistrationSource,
) -> Result<Outcome, AppError> {
    if source == RegistrationSource::Ldap {
        return Err(AppError::Refused(
            "--source must be manual or self: ldap registrations are made by mappings".to_string(),
        ));
    }
    if im_name.trim().is_empty() || account.trim().is_empty() {
        return Err(AppError::Refused(
            "--im-name and --account must not be empty".to_string(),
        ));
    }
    let protocol = protocol.to_ascii_lowercase();
    let started_at = now();
    let mut store = Store::open(&context.state_path)?;
    let run = RunRecord {
        finished_at: now(),
        added: 1,
        ..RunRecord::new(
            format!("state register --source {}", source.name()),
            started_at,
        )
    };
    let anchor = store.register(&protocol, im_name.trim(), account.trim(), source, run)?;
    println!(
        "Registered {protocol} name {:?} to {anchor} ({}).",
        im_name.trim(),
        source.name()
    );
    Ok(Outcome::Success)
}

/// `registrar schema`.
pub fn schema() -> Result<Outcome, AppError> {
    print_stdout(&config::raw::json_schema());
    Ok(Outcome::Success)
}

/// Writes to stdout, ignoring a closed pipe (`registrar plan | head`).
fn print_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The current time as RFC 3339 UTC, e.g. `2026-11-22T01:39:10Z`.
pub fn now() -> String {
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(seconds)
}

/// Formats Unix seconds as RFC 3339 UTC (civil-from-days, proleptic Gregorian).
fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_311_550), "2026-11-22T01:39:10Z");
    }
}
