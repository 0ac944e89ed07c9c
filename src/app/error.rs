//! `AppError`: everything that can stop a command, each variant printing the one message
//! `main` shows (one `error:` line per line of it). The refusals name what was refused.
//!
//! It holds no logic beyond formatting: whoever refuses decides, this file only says it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::saved_plan::SavedPlanError;
use super::snapshots::RereadError;
use super::sources::SourceError;

use crate::adapters::git::GitError;
use crate::adapters::render;
use crate::adapters::store::{CopyError, StoreError, StoreLocation};
use crate::adapters::tree::TreeError;
use crate::config::trust::TrustedFileError;
use crate::config::ConfigError;
use registrar_core::plan::PlanError;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `state migrate`: the copy failed or was refused; the target is as it was. Boxed:
    /// it names two stores, and `AppError` stays the size it was.
    #[error(transparent)]
    Copy(Box<CopyError>),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Files(#[from] TreeError),
    #[error(transparent)]
    Git(#[from] GitError),
    /// An error reading config or sources at a git revision: each line says which.
    #[error("{}", prefix_lines(at, inner))]
    AtRevision {
        at: String,
        #[source]
        inner: Box<AppError>,
    },
    /// Reading one source failed.
    #[error("source {source_name}: {error}")]
    Source {
        source_name: String,
        #[source]
        error: Box<SourceError>,
    },
    /// The store's kept snapshot holds an entry of a source the config lacks: the state
    /// file was edited by hand (a kept snapshot is forgotten when its source goes).
    #[error(
        "source {source_name}: the kept snapshot holds an entry of a source the config does \
         not have; the store was changed outside registrar"
    )]
    KeptSourceUnknown { source_name: String },
    /// A file a command writes (or the controller's lock file): `action` says what it
    /// was doing, e.g. "cannot write plan".
    #[error("{}: {action}: {error}", path.display())]
    File {
        path: PathBuf,
        action: &'static str,
        #[source]
        error: io::Error,
    },
    /// Writing `export`'s output (a file, or `<stdout>`).
    #[error("{}: {error}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    /// A saved plan (`apply --plan`, `show`) that cannot be read.
    #[error("{}: {error}", path.display())]
    SavedPlan {
        path: PathBuf,
        #[source]
        error: SavedPlanError,
    },
    /// Rule 9: a protected principal never receives a registration.
    #[error(
        "{dn} is a protected principal ({rule}): protected principals never hold a \
         registration; nothing was recorded (state register --allow-protected records it \
         anyway, and says so in the run history)"
    )]
    ProtectedPrincipal { dn: String, rule: String },
    #[error(transparent)]
    LdifBase(#[from] render::LdifBaseError),

    // Refusals: the command would not go ahead, and says why.
    /// `--source NAME` names no source of the config.
    #[error("no source named {name:?} (sources: {})", name_list(known))]
    NoSuchSource { name: String, known: Vec<String> },
    /// `validate`: sources that could not be read, one message each.
    #[error("{}", lines(problems))]
    SourcesUnreadable { problems: Vec<AppError> },
    /// `drift` without a store.
    #[error("{state} does not exist: nothing was applied, so nothing can drift (run plan)")]
    NoStateToDrift { state: StoreLocation },
    /// `state migrate` without a store to copy.
    #[error("{state} does not exist: there is no store to migrate")]
    NoStateToMigrate { state: StoreLocation },
    /// `state migrate --to` naming the `--state` store itself.
    #[error("--to names {state}, the store being migrated: give another file or URL")]
    MigrateOntoItself { state: StoreLocation },
    /// `state register --source ldap`.
    #[error("--source must be manual or self: ldap registrations are made by mappings")]
    RegistrationFromLdap,
    /// `state register` with an empty name or account.
    #[error("--im-name and --account must not be empty")]
    EmptyRegistration,
    /// A review's trusted revision cannot lend the head its connection settings
    /// (`config::trust` says why).
    #[error(transparent)]
    UntrustedConnections(TrustedFileError),
    /// The kept snapshots changed while a delta plan read them.
    #[error(
        "the kept snapshots changed while this plan read them (another apply ran); plan again"
    )]
    KeptSnapshotsChanged,
    /// The store changed while a delta plan by region read it.
    #[error("the store changed while this plan read it (another apply ran); plan again")]
    StoreChangedWhilePlanning,
    /// Another writer moved the store between `apply`'s plan and its write.
    #[error(
        "the store changed while this apply was planning (another apply or registration \
         moved it from serial {planned} to {actual}); nothing was applied: run apply again \
         to plan against it"
    )]
    StoreChangedWhileApplying { planned: i64, actual: i64 },
    /// `apply` without `--auto-approve` and without a terminal to ask on.
    #[error(
        "apply asks before it changes the store, and standard input is not a terminal: \
         rerun with --auto-approve to apply the plan above, or apply a reviewed plan \
         with `apply --plan FILE`; nothing was applied"
    )]
    NoTerminalToAsk,
    /// The approval question's answer could not be read.
    #[error("cannot read the answer: {0}; nothing was applied")]
    AnswerUnreadable(#[source] io::Error),
    /// The answer to the approval question was not `yes`.
    #[error("apply cancelled: only 'yes' approves the plan; nothing was applied")]
    ApplyCancelled,
    /// The plan passed the deletion threshold and `--allow-deletes` was not given.
    #[error(
        "plan is blocked: {reason}; nothing was applied (rerun with --allow-deletes if this \
         is intended)"
    )]
    PlanBlocked { reason: String },
    /// `apply --rev REV --plan FILE` with a plan not made at REV's commit from a clean tree.
    #[error(
        "plan {} {why}, not at --rev {rev} ({commit}); nothing was applied (make the plan \
         with `plan --rev {rev} --out FILE`)",
        path.display()
    )]
    PlanNotAtRevision {
        path: PathBuf,
        why: String,
        rev: String,
        commit: String,
    },
    /// An apply cannot keep the snapshot its plan imported (`reason` says why).
    #[error(
        "cannot keep the snapshot {plan_name} imported from source {source_name}: {reason}; \
         nothing was applied (plan again from the files as they are now)"
    )]
    SnapshotNotKept {
        plan_name: String,
        source_name: String,
        #[source]
        reason: RereadError,
    },
    /// The saved plan being applied stopped before its end.
    #[error("{plan_name} was not read to the end; nothing was applied")]
    PlanNotReadToEnd { plan_name: String },
    /// `plan --format ldif` could not write to standard output.
    #[error("{0}")]
    PlanOutput(#[source] io::Error),
    /// Another controller holds the lock of this state file.
    #[error(
        "another registrar run holds {} ({holder}); only one controller may run per state \
         file: stop that one first, or give this one its own --state",
        path.display()
    )]
    ControllerRunning { path: PathBuf, holder: String },
    /// `run --once` on a shared store another controller leads.
    #[error(
        "another registrar run leads {store}; run --once runs only as the leader: stop that \
         one first, or let it run the schedules"
    )]
    OnceStandby { store: StoreLocation },
    /// The controller's runtime could not start.
    #[error("cannot start the controller: {0}")]
    ControllerStart(#[source] io::Error),
    /// `run` with a config that has no schedules (`at` names the revision, or is empty).
    #[error(
        "no schedules in {}{at}: add a `schedules:` entry (name, cron, action: plan, apply \
         or drift) for the controller to run",
        config_dir.display()
    )]
    NoSchedules { config_dir: PathBuf, at: String },
    /// `run --once`: some schedules' runs failed or were blocked.
    #[error("{failed} of {total} schedule runs failed or were blocked (see above)")]
    SchedulesFailed { failed: usize, total: usize },
    /// SIGTERM/SIGINT could not be watched.
    #[error("cannot watch signals: {0}")]
    SignalsUnwatched(#[source] io::Error),
    /// A `--format json` document that cannot be written as JSON.
    #[error("cannot write JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The system could not start a thread.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] io::Error),
    /// `serve` without a usable `self_service` section.
    #[error(
        "registrar serve needs a self_service section naming an LDAP source (see the README, \"registrar serve\")"
    )]
    NoSelfService,
    /// `serve`: the API's tokens file cannot be used.
    #[error(transparent)]
    TokensFile(#[from] super::serve::TokensFileError),
    /// `serve --tls-cert/--tls-key`: the certificate or key cannot be used.
    #[error("--tls-cert/--tls-key: {0}")]
    Tls(#[from] super::web::listener::TlsFileError),
    /// `run --listen` or `serve --listen ADDRESS` could not bind.
    #[error("cannot listen on {address}: {error}")]
    Listen {
        address: SocketAddr,
        #[source]
        error: io::Error,
    },
}

/// `names` joined with `, `, or `none`.
fn name_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Each error's message, one after the other on lines of their own.
fn lines(errors: &[AppError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `at: ` before every line of `error`'s message.
fn prefix_lines(at: &str, error: &AppError) -> String {
    error
        .to_string()
        .lines()
        .map(|line| format!("{at}: {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusals print what `AppError::Refused(String)` printed before they had
    /// variants of their own, word for word.
    #[test]
    fn refusals_print_their_messages_unchanged() {
        let cases: Vec<(AppError, &str)> = vec![
            (
                AppError::StoreChangedWhileApplying {
                    planned: 3,
                    actual: 4,
                },
                "the store changed while this apply was planning (another apply or \
                 registration moved it from serial 3 to 4); nothing was applied: run apply \
                 again to plan against it",
            ),
            (
                AppError::NoTerminalToAsk,
                "apply asks before it changes the store, and standard input is not a \
                 terminal: rerun with --auto-approve to apply the plan above, or apply a \
                 reviewed plan with `apply --plan FILE`; nothing was applied",
            ),
            (
                AppError::PlanBlocked {
                    reason: "7 deletions".to_string(),
                },
                "plan is blocked: 7 deletions; nothing was applied (rerun with \
                 --allow-deletes if this is intended)",
            ),
            (
                AppError::PlanNotAtRevision {
                    path: PathBuf::from("p.json"),
                    why: "records no revision".to_string(),
                    rev: "main".to_string(),
                    commit: "abc".to_string(),
                },
                "plan p.json records no revision, not at --rev main (abc); nothing was \
                 applied (make the plan with `plan --rev main --out FILE`)",
            ),
            (
                AppError::ControllerRunning {
                    path: PathBuf::from("s.lock"),
                    holder: "pid 12".to_string(),
                },
                "another registrar run holds s.lock (pid 12); only one controller may run \
                 per state file: stop that one first, or give this one its own --state",
            ),
            (
                AppError::NoSchedules {
                    config_dir: PathBuf::from("config"),
                    at: " at revision HEAD".to_string(),
                },
                "no schedules in config at revision HEAD: add a `schedules:` entry (name, \
                 cron, action: plan, apply or drift) for the controller to run",
            ),
            (
                AppError::SnapshotNotKept {
                    plan_name: "the plan".to_string(),
                    source_name: "hr".to_string(),
                    reason: RereadError::NotReadToEnd,
                },
                "cannot keep the snapshot the plan imported from source hr: it was not read \
                 to the end; \
                 nothing was applied (plan again from the files as they are now)",
            ),
            (
                AppError::NoSuchSource {
                    name: "x".to_string(),
                    known: Vec::new(),
                },
                "no source named \"x\" (sources: none)",
            ),
            (
                AppError::NoSuchSource {
                    name: "x".to_string(),
                    known: vec!["a".to_string(), "b".to_string()],
                },
                "no source named \"x\" (sources: a, b)",
            ),
            (
                AppError::SchedulesFailed {
                    failed: 1,
                    total: 2,
                },
                "1 of 2 schedule runs failed or were blocked (see above)",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn unreadable_sources_are_told_one_per_line() {
        let error = AppError::SourcesUnreadable {
            problems: vec![AppError::EmptyRegistration, AppError::ApplyCancelled],
        };
        assert_eq!(
            error.to_string(),
            "--im-name and --account must not be empty\n\
             apply cancelled: only 'yes' approves the plan; nothing was applied"
        );
    }

    #[test]
    fn an_error_at_a_revision_names_it_on_every_line_and_keeps_its_cause() {
        let error = AppError::AtRevision {
            at: "revision abc".to_string(),
            inner: Box::new(AppError::SourcesUnreadable {
                problems: vec![AppError::EmptyRegistration, AppError::KeptSnapshotsChanged],
            }),
        };
        let text = error.to_string();
        assert!(text.lines().all(|line| line.starts_with("revision abc: ")));
        assert_eq!(text.lines().count(), 2);
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(
            cause.as_deref(),
            Some(
                "--im-name and --account must not be empty\n\
                 the kept snapshots changed while this plan read them (another apply ran); \
                 plan again"
            )
        );
    }
}
