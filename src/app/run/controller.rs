//! The controller itself (`registrar run`): it takes the lock (SQLite) or its seat
//! (`lead.rs`, PostgreSQL), follows the branch, drives the scheduler while it leads, runs
//! each pass through the same `reconcile` and apply as the commands (in `spawn_blocking`),
//! records it, logs it, and stops cleanly on SIGTERM or SIGINT. A leader's writes go
//! through its own leading session; a standby runs nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::follow::{FetchError, Follow};
use super::lead::Lead;
use super::report::{RunOutcome, RunReport};
use super::scheduler::{Backoff, Hooks, Ran, Scheduler, SystemClock};
use super::telemetry::Telemetry;
use super::{lock, scheduler};
use crate::adapters::store::Store;
use crate::app::apply::{apply_recorded, Imported};
use crate::app::clock::{rfc3339, Started};
use crate::app::context::{Context, Outcome};
use crate::app::drift::drift_report;
use crate::app::error::AppError;
use crate::app::reading::read_config;
use crate::app::reconcile::{reconcile_with, Purpose};
use crate::app::web::health::health_routes;
use crate::app::web::{guards, listener};
use crate::config::raw::ScheduleAction;
use crate::config::Schedule;

/// What the health listener allows: a few connections, each quick.
const HEALTH_LIMITS: listener::Limits = listener::Limits {
    connections: 16,
    head_timeout: Duration::from_secs(5),
    request_timeout: Duration::from_secs(10),
};

/// Runs that changed nothing stay in the history until this many newer runs exist;
/// runs that changed the store stay for good.
pub const RUNS_KEPT: usize = 10_000;

/// `registrar run`'s own flags.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Serve `/healthz`, `/livez` and `/metrics` here.
    pub listen: Option<SocketAddr>,
    /// Run every schedule's action once, now, in name order, and exit.
    pub once: bool,
}

/// `registrar run`: takes the controller lock, then runs the schedules until SIGTERM or
/// SIGINT (exit 0), or with `--once` runs each schedule's action once.
pub fn run_command(context: &Context, options: RunOptions) -> Result<Outcome, AppError> {
    // One controller per SQLite file: its lock file beside it. (On PostgreSQL, several
    // controllers share the store and one leads.)
    let lock = context.state.file().map(lock::acquire).transpose()?;
    let follow = Follow::new(&context.config_dir, context.rev.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AppError::ControllerStart)?;
    let telemetry = Arc::new(Mutex::new(Telemetry::new(
        follow.remote().map(str::to_string),
    )));
    let controller = Arc::new(Controller {
        lead: Arc::new(Lead::new(&context.state, telemetry.clone())),
        telemetry,
        context: context.clone(),
        follow,
    });
    let result = runtime.block_on(async {
        let result = controller
            .clone()
            .main(options, lock.as_ref().map(|l| l.path()))
            .await;
        // A PostgreSQL session closes blocking: on a blocking thread, not the runtime's.
        let lead = controller.lead.clone();
        let _ = tokio::task::spawn_blocking(move || lead.release()).await;
        result
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(lock);
    result
}

/// What every run shares.
struct Controller {
    context: Context,
    follow: Follow,
    telemetry: Arc<Mutex<Telemetry>>,
    /// Leading or standing by, and the leader's session (PostgreSQL).
    lead: Arc<Lead>,
}

impl Controller {
    fn telemetry(&self) -> MutexGuard<'_, Telemetry> {
        self.telemetry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn main(
        self: Arc<Self>,
        options: RunOptions,
        lock: Option<&Path>,
    ) -> Result<Outcome, AppError> {
        let (stop_sender, stop) = watch::channel(false);
        watch_signals(stop_sender, self.telemetry.clone())?;

        // The first config: its schedules start the scheduler. A bad config, or none,
        // stops the controller here, before it listens or runs anything.
        match self.follow.fetch(&mut stop.clone()).await {
            Ok(()) if self.follow.remote().is_some() => {
                self.telemetry().fetched(Ok(()), Utc::now());
            }
            Err(error @ FetchError::Failed { .. }) => {
                let message = error.to_string();
                log(&format!("{message}; starting from the last fetched commit"));
                self.telemetry().fetched(Err(&message), Utc::now());
            }
            _ => {}
        }
        let files = self.follow.files()?;
        let config = read_config(&self.context, &files, "")?;
        if config.schedules.is_empty() {
            let at = files
                .label()
                .map(|label| format!(" at revision {label}"))
                .unwrap_or_default();
            return Err(AppError::NoSchedules {
                config_dir: self.context.config_dir.clone(),
                at,
            });
        }
        // On PostgreSQL: the controller's own session, leading or not; a store that cannot
        // be opened stops the controller here. The store is used on blocking threads only
        // (a PostgreSQL session blocks on a runtime of its own).
        let this = self.clone();
        let leads = blocking(move || {
            let leads = this.lead.start()?;
            if let Ok(Some(store)) = Store::open_if_exists(&this.context.state) {
                if let (Ok(managed), Ok(serial)) = (store.managed_counts(), store.serial()) {
                    this.telemetry().set_store(managed, serial);
                }
            }
            Ok::<_, AppError>(leads)
        })
        .await?;
        if options.once && !leads {
            return Err(AppError::OnceStandby {
                store: self.context.state.clone(),
            });
        }
        log(&format!(
            "registrar run {}: {}{}, following {}",
            env!("CARGO_PKG_VERSION"),
            self.context.state,
            lock.map(|lock| format!(" (lock {})", lock.display()))
                .unwrap_or_default(),
            self.follow.describe()
        ));
        self.lead.announce(leads);
        if options.once {
            return self.once(config.schedules, stop).await;
        }
        tokio::spawn(self.lead.clone().keep(stop.clone()));

        let mut scheduler = Scheduler::new(&config.schedules, Backoff::DEFAULT, Utc::now());
        log_schedules(&scheduler);
        if let Some(address) = options.listen {
            let listener = listener::bind(address).await?;
            let bound = listener.local_addr().unwrap_or(address);
            log(&format!(
                "listening on http://{bound} (/healthz, /livez, /metrics)"
            ));
            let routes = guards::guarded(health_routes(self.telemetry.clone()), false, 0);
            tokio::spawn(listener::serve(
                listener,
                None,
                routes,
                HEALTH_LIMITS,
                std::future::pending(),
            ));
        }
        let mut hooks = LogHooks {
            telemetry: self.telemetry.clone(),
        };
        let (mut leading, mut stopping) = (self.lead.leading(), stop.clone());
        // The scheduler runs while this controller leads (on SQLite, always). A standby
        // does not tick it: fires it missed while standing by collapse into one run as
        // soon as it takes over.
        loop {
            tokio::select! {
                biased;
                _ = became(&mut stopping, true) => break,
                _ = became(&mut leading, true) => {}
            }
            let (pause, paused) = watch::channel(false);
            let (mut stopped, mut lost) = (stop.clone(), leading.clone());
            let pausing = tokio::spawn(async move {
                tokio::select! {
                    _ = became(&mut stopped, true) => {}
                    _ = became(&mut lost, false) => {}
                }
                let _ = pause.send(true);
            });
            let jobs = self.clone();
            let job_stop = stop.clone();
            scheduler::drive(
                &mut scheduler,
                &SystemClock,
                move |schedule| jobs.clone().job(schedule, job_stop.clone()),
                &mut hooks,
                paused,
            )
            .await;
            pausing.abort();
            if *stop.borrow() {
                break;
            }
        }
        log("stopped");
        Ok(Outcome::Success)
    }

    /// `--once`: every schedule's action, now, in name order. Fails when one failed or
    /// was blocked.
    async fn once(
        self: Arc<Self>,
        schedules: Vec<Schedule>,
        stop: watch::Receiver<bool>,
    ) -> Result<Outcome, AppError> {
        let mut bad = 0;
        for schedule in &schedules {
            if *stop.borrow() {
                break;
            }
            let ran = self.clone().job(schedule.clone(), stop.clone()).await;
            log(&ran.report.line(None));
            if matches!(ran.report.outcome, RunOutcome::Failed | RunOutcome::Blocked) {
                bad += 1;
            }
        }
        if bad > 0 {
            return Err(AppError::SchedulesFailed {
                failed: bad,
                total: schedules.len(),
            });
        }
        Ok(Outcome::Success)
    }

    /// One run of `schedule`: fetch, then the rest on a blocking thread.
    async fn job(
        self: Arc<Self>,
        schedule: Schedule,
        mut stop: watch::Receiver<bool>,
    ) -> Ran<RunReport> {
        let started = Started::now();
        let fetch_note = match self.follow.fetch(&mut stop).await {
            Ok(()) => {
                if self.follow.remote().is_some() {
                    self.telemetry().fetched(Ok(()), Utc::now());
                }
                None
            }
            // The blocking part sees the stop and records the run as cancelled.
            Err(FetchError::Stopped) => None,
            Err(error @ FetchError::Failed { .. }) => {
                let message = error.to_string();
                self.telemetry().fetched(Err(&message), Utc::now());
                Some(format!("{message}; read the last fetched commit"))
            }
        };
        let this = self.clone();
        let (fired, begun) = (schedule.clone(), started.clone());
        let pass =
            tokio::task::spawn_blocking(move || this.execute(&fired, &begun, &stop, fetch_note));
        match pass.await {
            Ok(ran) => ran,
            Err(error) => {
                let mut report = RunReport::new(&schedule);
                report.note(format!("the run ended abnormally: {error}"));
                report.duration = started.elapsed();
                report.finished_at = Utc::now();
                let (this, record, begun) = (self.clone(), report.clone(), started.clone());
                let _ = blocking(move || this.record(&record, &begun)).await;
                Ran {
                    failed: true,
                    schedules: None,
                    report,
                }
            }
        }
    }

    /// The blocking part of a run: read the config at the followed commit, do the
    /// schedule's action, record the run.
    fn execute(
        &self,
        fired: &Schedule,
        started: &Started,
        stop: &watch::Receiver<bool>,
        fetch_note: Option<String>,
    ) -> Ran<RunReport> {
        let mut pass = Pass {
            report: RunReport::new(fired),
            schedules: None,
            recorded: false,
        };
        if let Some(note) = fetch_note {
            pass.report.note(note);
        }
        if let Err(error) = self.attempt(fired, started, stop, &mut pass) {
            let report = &mut pass.report;
            report.outcome = RunOutcome::Failed;
            let error = one_line(&error.to_string());
            report.message = Some(match report.message.take() {
                Some(notes) => format!("{error}; {notes}"),
                None => error,
            });
        }
        let mut report = pass.report;
        report.duration = started.elapsed();
        report.finished_at = Utc::now();
        if !pass.recorded {
            if let Err(error) = self.record(&report, started) {
                report.note(format!(
                    "not recorded in the run history: {}",
                    one_line(&error.to_string())
                ));
            }
        }
        let mut tidy = |store: &mut Store| {
            let _ = store.prune_runs(RUNS_KEPT);
            report.managed = store.managed_counts().ok();
            report.state_serial = store.serial().ok();
        };
        let _ = self.lead.write(|held| {
            match held {
                Some(store) => tidy(store),
                None => {
                    if let Some(mut store) = Store::open_if_exists(&self.context.state)? {
                        tidy(&mut store);
                    }
                }
            }
            Ok(())
        });
        Ran {
            failed: report.outcome == RunOutcome::Failed,
            schedules: pass.schedules,
            report,
        }
    }

    /// The run itself; an error fails it.
    fn attempt(
        &self,
        fired: &Schedule,
        started: &Started,
        stop: &watch::Receiver<bool>,
        pass: &mut Pass,
    ) -> Result<(), AppError> {
        let report = &mut pass.report;
        if *stop.borrow() {
            report.outcome = RunOutcome::Cancelled;
            report.note("stopped before the run began");
            return Ok(());
        }
        let files = self.follow.files()?;
        report.revision = files.commit();
        let config = read_config(&self.context, &files, "")?;
        let at = files
            .label()
            .map(|label| format!(" at revision {label}"))
            .unwrap_or_default();
        if config.schedules.is_empty() {
            report.note(format!(
                "the config{at} has no schedules; the controller keeps the ones it had"
            ));
        } else {
            pass.schedules = Some(config.schedules.clone());
        }
        let Some(schedule) = config
            .schedules
            .iter()
            .find(|s| s.name == fired.name)
            .cloned()
        else {
            report.outcome = RunOutcome::Skipped;
            report.note(format!(
                "schedule {} is no longer in the config{at}",
                fired.name
            ));
            return Ok(());
        };
        report.action = schedule.action_name();
        match schedule.action {
            // Against the last applied revision, whatever the followed branch holds now.
            ScheduleAction::Drift => {
                let last_applied = Context {
                    rev: None,
                    ..self.context.clone()
                };
                let drift = drift_report(&last_applied)?;
                report.outcome = if drift.has_drift() {
                    RunOutcome::Drift
                } else {
                    RunOutcome::NoDrift
                };
                report.note(crate::adapters::render::drift_summary_line(&drift));
            }
            ScheduleAction::Plan => {
                let reconciled = reconcile_with(
                    &self.context,
                    &files,
                    config,
                    None,
                    (schedule.mode, Purpose::Plan),
                )?;
                report.set_plan(&reconciled);
                report.outcome = RunOutcome::Planned;
                if let Some(reason) = &reconciled.plan.summary.blocked_reason {
                    report.note(format!("plan is blocked: {reason}"));
                }
            }
            ScheduleAction::Apply => {
                let mut reconciled = reconcile_with(
                    &self.context,
                    &files,
                    config,
                    None,
                    (schedule.mode, Purpose::Apply),
                )?;
                report.set_plan(&reconciled);
                if let Some(reason) = &reconciled.plan.summary.blocked_reason {
                    report.outcome = RunOutcome::Blocked;
                    report.note(format!(
                        "plan is blocked: {reason}; nothing was applied (review it with `registrar plan`, and apply it with `registrar apply --allow-deletes` if it is intended)"
                    ));
                    return Ok(());
                }
                if *stop.borrow() {
                    report.outcome = RunOutcome::Cancelled;
                    report.note("stopped before applying: nothing was applied");
                    return Ok(());
                }
                report.outcome = RunOutcome::Applied;
                let plan = &reconciled.plan;
                let imported = Imported {
                    files: &files,
                    plan_name: "the plan",
                    feeds: std::mem::take(&mut reconciled.feeds),
                };
                let record = report.record(started);
                let serial = self.lead.write(|held| {
                    apply_recorded(&self.context, held, plan, imported, record, Some(started))
                })?;
                report.serial = Some((plan.state_serial, serial));
                pass.recorded = true;
            }
        }
        Ok(())
    }

    /// Records a run that wrote nothing else.
    fn record(&self, report: &RunReport, started: &Started) -> Result<(), AppError> {
        self.lead.write(|held| {
            let record = report.record(started);
            match held {
                Some(store) => Ok(store.record_run(record)?),
                None => Ok(Store::open(&self.context.state)?.record_run(record)?),
            }
        })
    }
}

/// A run as it goes.
struct Pass {
    report: RunReport,
    /// The schedules of the config read, when it has any.
    schedules: Option<Vec<Schedule>>,
    /// The run is in the history already (an apply records it in its transaction).
    recorded: bool,
}

/// Logs runs and keeps the telemetry.
struct LogHooks {
    telemetry: Arc<Mutex<Telemetry>>,
}

impl LogHooks {
    fn telemetry(&self) -> MutexGuard<'_, Telemetry> {
        self.telemetry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Hooks<RunReport> for LogHooks {
    fn started(&mut self, schedule: &Schedule) {
        self.telemetry().run_started(&schedule.name, Utc::now());
    }

    fn coalesced(&mut self, _schedule: &str) {
        self.telemetry().coalesced();
    }

    fn finished(
        &mut self,
        schedule: &Schedule,
        report: Result<RunReport, String>,
        retry_at: Option<DateTime<Utc>>,
    ) {
        match report {
            Ok(report) => {
                log_line(&report.line(retry_at));
                self.telemetry().run_finished(&report);
            }
            Err(message) => {
                let now = Utc::now();
                log(&format!(
                    "{} {}: failed: {message}",
                    schedule.name,
                    schedule.action_name()
                ));
                self.telemetry()
                    .run_lost(&schedule.name, schedule.action_name(), &message, now);
            }
        }
    }

    fn rescheduled(&mut self, scheduler: &Scheduler, changed: bool) {
        self.telemetry().set_schedules(scheduler);
        if changed {
            log("the schedules changed in the config:");
            log_schedules(scheduler);
        }
    }
}

/// `work` on a blocking thread; its panic goes on here.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
}

/// Resolves when `value` is `wanted` (at once if it is), or its sender is gone.
async fn became(value: &mut watch::Receiver<bool>, wanted: bool) {
    if value.wait_for(|value| *value == wanted).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// SIGTERM or SIGINT: stop scheduling, let the run in flight finish, exit 0. A second
/// one exits at once (a transaction in flight then rolls back, as SQLite guarantees).
fn watch_signals(
    stop: watch::Sender<bool>,
    telemetry: Arc<Mutex<Telemetry>>,
) -> Result<(), AppError> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind| signal(kind).map_err(AppError::SignalsUnwatched);
    let mut terminate = listen(SignalKind::terminate())?;
    let mut interrupt = listen(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let (first, _) = next_signal(&mut terminate, &mut interrupt).await;
        log(&format!(
            "{first}: stopping; no new run starts, the run in flight finishes (send it again to exit at once)"
        ));
        telemetry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .stopping();
        let _ = stop.send(true);
        let (second, code) = next_signal(&mut terminate, &mut interrupt).await;
        log(&format!(
            "{second} again: exiting now; a transaction in flight rolls back"
        ));
        std::process::exit(code);
    });
    Ok(())
}

/// The next SIGTERM or SIGINT: its name and the exit code of a death by it.
async fn next_signal(
    terminate: &mut tokio::signal::unix::Signal,
    interrupt: &mut tokio::signal::unix::Signal,
) -> (&'static str, i32) {
    tokio::select! {
        _ = terminate.recv() => ("SIGTERM", 143),
        _ = interrupt.recv() => ("SIGINT", 130),
    }
}

fn log_schedules(scheduler: &Scheduler) {
    for slot in scheduler.slots() {
        let next = slot.next.map_or("never".to_string(), rfc3339);
        log(&format!(
            "schedule {} \"{}\" {}: next {next}",
            slot.schedule.name,
            slot.schedule.cron_text,
            slot.schedule.action_name()
        ));
    }
}

/// One line on stderr, after the time.
pub(super) fn log(message: &str) {
    log_line(&format!("{} {message}", rfc3339(Utc::now())));
}

fn log_line(line: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// A message of several lines as one.
pub(super) fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
