//! The controller's live numbers and health, as plain data: the controller writes them
//! as runs start and end, the HTTP listener reads them and renders `/metrics`
//! (Prometheus text exposition format 0.0.4) and `/healthz`. Nothing here reads a
//! clock or does I/O; times come in as arguments.
//!
//! Counters count since the process started, as Prometheus expects (it handles the
//! reset at a restart); the run history in the store is the durable record.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::report::{RunOutcome, RunReport};
use super::scheduler::Scheduler;
use crate::adapters::store::ManagedCounts;
use crate::app::clock::rfc3339;

/// One schedule's health.
#[derive(Debug, Clone, Default)]
struct ScheduleHealth {
    action: &'static str,
    next: Option<DateTime<Utc>>,
    failures: u32,
    /// The last run's outcome, when it ended, and its message.
    last: Option<(RunOutcome, DateTime<Utc>, Option<String>)>,
}

/// Everything `/metrics` and `/healthz` show.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    stopping: bool,
    /// Whether this controller leads (always on SQLite); a standby runs nothing.
    leader: bool,
    /// Why a standby could not even try to lead (the store unreachable), if so.
    standby_problem: Option<String>,
    /// The remote fetched before each run, if any.
    remote: Option<String>,
    runs: BTreeMap<(&'static str, &'static str), u64>,
    changes: BTreeMap<&'static str, u64>,
    last_success: Option<DateTime<Utc>>,
    last_run: Option<DateTime<Utc>>,
    last_duration: Option<Duration>,
    managed: Option<ManagedCounts>,
    serial: Option<i64>,
    in_flight: Option<(String, DateTime<Utc>)>,
    coalesced: u64,
    fetch_failures: u64,
    last_fetch_success: Option<DateTime<Utc>>,
    /// Since when fetching fails, and the last failure's message.
    fetch_failing: Option<(DateTime<Utc>, String)>,
    schedules: BTreeMap<String, ScheduleHealth>,
}

/// The change actions, as `registrar_changes_applied_total` labels them.
const CHANGE_ACTIONS: [&str; 5] = ["add", "update", "remove", "deactivate", "reactivate"];

impl Telemetry {
    /// Fresh numbers; `remote` is the remote fetched before each run, if any.
    pub fn new(remote: Option<String>) -> Telemetry {
        Telemetry {
            remote,
            leader: true,
            changes: CHANGE_ACTIONS.iter().map(|action| (*action, 0)).collect(),
            ..Telemetry::default()
        }
    }

    /// The schedules and their next fires, as the scheduler now has them. Every action
    /// a schedule has gets its success and failure counters at zero, so that rates
    /// exist from the start.
    pub fn set_schedules(&mut self, scheduler: &Scheduler) {
        let mut schedules = BTreeMap::new();
        for slot in scheduler.slots() {
            let action = slot.schedule.action_name();
            let last = self
                .schedules
                .get(&slot.schedule.name)
                .and_then(|health| health.last.clone());
            schedules.insert(
                slot.schedule.name.clone(),
                ScheduleHealth {
                    action,
                    next: slot.next,
                    failures: slot.failures,
                    last,
                },
            );
            let success = match slot.schedule.action {
                crate::config::raw::ScheduleAction::Plan => RunOutcome::Planned,
                crate::config::raw::ScheduleAction::Apply => RunOutcome::Applied,
                crate::config::raw::ScheduleAction::Drift => RunOutcome::NoDrift,
            };
            for outcome in [success, RunOutcome::Failed] {
                self.runs.entry((action, outcome.name())).or_insert(0);
            }
        }
        self.schedules = schedules;
    }

    /// The store's managed rows and serial, as last read.
    pub fn set_store(&mut self, managed: ManagedCounts, serial: i64) {
        self.managed = Some(managed);
        self.serial = Some(serial);
    }

    /// A run of `schedule` started at `at`.
    pub fn run_started(&mut self, schedule: &str, at: DateTime<Utc>) {
        self.in_flight = Some((schedule.to_string(), at));
    }

    /// A fire was coalesced into one already waiting.
    pub fn coalesced(&mut self) {
        self.coalesced += 1;
    }

    /// A fetch before a run succeeded (`Ok`) or failed with this message, at `at`.
    pub fn fetched(&mut self, result: Result<(), &str>, at: DateTime<Utc>) {
        match result {
            Ok(()) => {
                self.last_fetch_success = Some(at);
                self.fetch_failing = None;
            }
            Err(message) => {
                self.fetch_failures += 1;
                let since = self.fetch_failing.as_ref().map_or(at, |(since, _)| *since);
                self.fetch_failing = Some((since, message.to_string()));
            }
        }
    }

    /// A run ended as `report` says.
    pub fn run_finished(&mut self, report: &RunReport) {
        self.in_flight = None;
        *self
            .runs
            .entry((report.action, report.outcome.name()))
            .or_insert(0) += 1;
        if report.outcome == RunOutcome::Applied {
            let c = &report.counts;
            for (action, count) in
                CHANGE_ACTIONS
                    .iter()
                    .zip([c.add, c.update, c.remove, c.deactivate, c.reactivate])
            {
                *self.changes.entry(action).or_insert(0) += count;
            }
        }
        if report.outcome.is_success() {
            self.last_success = Some(report.finished_at);
        }
        self.last_run = Some(report.finished_at);
        self.last_duration = Some(report.duration);
        if let Some(managed) = report.managed {
            self.managed = Some(managed);
        }
        if report.state_serial.is_some() {
            self.serial = report.state_serial;
        }
        if let Some(health) = self.schedules.get_mut(&report.schedule) {
            health.last = Some((report.outcome, report.finished_at, report.message.clone()));
        }
    }

    /// A run ended without a report (the job panicked).
    pub fn run_lost(
        &mut self,
        schedule: &str,
        action: &'static str,
        message: &str,
        at: DateTime<Utc>,
    ) {
        self.in_flight = None;
        *self
            .runs
            .entry((action, RunOutcome::Failed.name()))
            .or_insert(0) += 1;
        self.last_run = Some(at);
        if let Some(health) = self.schedules.get_mut(schedule) {
            health.last = Some((RunOutcome::Failed, at, Some(message.to_string())));
        }
    }

    /// The controller is stopping: no new run starts.
    pub fn stopping(&mut self) {
        self.stopping = true;
    }

    /// Whether this controller leads; a standby that could not even try says why.
    pub fn set_leader(&mut self, leader: bool, problem: Option<String>) {
        self.leader = leader;
        self.standby_problem = if leader { None } else { problem };
    }

    /// `/healthz`: healthy, and the text to answer. Unhealthy while stopping, when a
    /// schedule's last run failed or was blocked, or while fetching fails. A standby is
    /// healthy and says `standby` (it runs nothing, so has nothing else to tell), unless
    /// it cannot reach the store to take over.
    pub fn health(&self) -> (bool, String) {
        if self.stopping {
            return (false, "stopping\n".to_string());
        }
        if !self.leader {
            return match &self.standby_problem {
                None => (true, "standby\n".to_string()),
                Some(problem) => (false, format!("standby: {problem}\n")),
            };
        }
        let mut problems = String::new();
        for (name, health) in &self.schedules {
            let Some((outcome, at, message)) = &health.last else {
                continue;
            };
            let message = message.as_deref().unwrap_or("");
            match outcome {
                RunOutcome::Failed => {
                    let _ = write!(
                        problems,
                        "schedule {name}: {} failed at {} ({} in a row",
                        health.action,
                        rfc3339(*at),
                        health.failures.max(1)
                    );
                    if let Some(next) = health.next {
                        let _ = write!(problems, ", retry at {}", rfc3339(next));
                    }
                    let _ = writeln!(problems, "): {message}");
                }
                RunOutcome::Blocked => {
                    let _ = writeln!(
                        problems,
                        "schedule {name}: {} blocked at {}: {message}",
                        health.action,
                        rfc3339(*at)
                    );
                }
                _ => {}
            }
        }
        if let Some((since, message)) = &self.fetch_failing {
            let _ = writeln!(
                problems,
                "fetching {} fails since {}: {message}",
                self.remote.as_deref().unwrap_or("the remote"),
                rfc3339(*since)
            );
        }
        if problems.is_empty() {
            (true, "ok\n".to_string())
        } else {
            (false, problems)
        }
    }

    /// `/metrics`, in the Prometheus text format, at `now`.
    pub fn prometheus(&self, now: DateTime<Utc>) -> String {
        let mut out = Metrics::default();
        self.process_metrics(&mut out);
        self.run_metrics(&mut out, now);
        self.store_metrics(&mut out);
        self.schedule_metrics(&mut out);
        self.fetch_metrics(&mut out);
        out.text
    }

    /// The controller itself: up, leading, and its version.
    fn process_metrics(&self, out: &mut Metrics) {
        out.metric(
            "registrar_up",
            "gauge",
            "1 while the controller runs, 0 once it is stopping.",
            &plain(u8::from(!self.stopping).to_string()),
        );
        out.metric(
            "registrar_leader",
            "gauge",
            "1 while this controller leads and runs the schedules (always on SQLite), 0 while it stands by.",
            &plain(u8::from(self.leader).to_string()),
        );
        out.metric(
            "registrar_build_info",
            "gauge",
            "The running version, as a label.",
            &[(
                labels(&[("version", env!("CARGO_PKG_VERSION"))]),
                "1".to_string(),
            )],
        );
    }

    /// The runs: counts by action and outcome, changes applied, when and how long.
    fn run_metrics(&self, out: &mut Metrics, now: DateTime<Utc>) {
        let runs: Vec<_> = self
            .runs
            .iter()
            .map(|((action, outcome), count)| {
                (
                    labels(&[("action", action), ("outcome", outcome)]),
                    count.to_string(),
                )
            })
            .collect();
        out.metric(
            "registrar_runs_total",
            "counter",
            "Runs by action (plan, apply, drift) and outcome (applied, planned, blocked, failed, skipped, cancelled).",
            &runs,
        );
        let changes: Vec<_> = self
            .changes
            .iter()
            .map(|(action, count)| (labels(&[("action", action)]), count.to_string()))
            .collect();
        out.metric(
            "registrar_changes_applied_total",
            "counter",
            "Changes applied to the store, by change action.",
            &changes,
        );
        out.metric(
            "registrar_last_success_timestamp_seconds",
            "gauge",
            "When the last run that succeeded (applied or planned) ended, in Unix seconds; 0 before any.",
            &plain(seconds(self.last_success)),
        );
        out.metric(
            "registrar_last_run_timestamp_seconds",
            "gauge",
            "When the last run ended, whatever its outcome, in Unix seconds; 0 before any.",
            &plain(seconds(self.last_run)),
        );
        out.metric(
            "registrar_last_run_duration_seconds",
            "gauge",
            "How long the last run took.",
            &plain(
                self.last_duration
                    .map_or("0".to_string(), |d| d.as_secs_f64().to_string()),
            ),
        );
        out.metric(
            "registrar_run_in_progress_seconds",
            "gauge",
            "How long the run in flight has been going; 0 when none is.",
            &plain(
                self.in_flight
                    .as_ref()
                    .map_or("0".to_string(), |(_, since)| {
                        ((now - *since).num_milliseconds().max(0) as f64 / 1000.0).to_string()
                    }),
            ),
        );
    }

    /// The store, once a run has read it: managed rows by kind, and the serial.
    fn store_metrics(&self, out: &mut Metrics) {
        if let Some(managed) = &self.managed {
            let kinds = [
                ("account", managed.accounts),
                ("registration", managed.registrations),
                ("group", managed.groups),
                ("group_member", managed.group_members),
            ];
            let samples: Vec<_> = kinds
                .iter()
                .map(|(kind, count)| (labels(&[("kind", kind)]), count.to_string()))
                .collect();
            out.metric(
                "registrar_managed_objects",
                "gauge",
                "Rows of the store that registrar manages, by kind.",
                &samples,
            );
        }
        if let Some(serial) = self.serial {
            out.metric(
                "registrar_state_serial",
                "gauge",
                "The store's serial: it goes up by one with every apply that changes something.",
                &plain(serial.to_string()),
            );
        }
    }

    /// The schedules: fires coalesced, each one's next fire and failures in a row.
    fn schedule_metrics(&self, out: &mut Metrics) {
        out.metric(
            "registrar_ticks_coalesced_total",
            "counter",
            "Schedule fires merged into one already waiting, because a run was in flight.",
            &plain(self.coalesced.to_string()),
        );
        let by_schedule = |value: &dyn Fn(&ScheduleHealth) -> String| -> Vec<_> {
            self.schedules
                .iter()
                .map(|(name, health)| {
                    (
                        labels(&[("schedule", name), ("action", health.action)]),
                        value(health),
                    )
                })
                .collect()
        };
        out.metric(
            "registrar_schedule_next_run_timestamp_seconds",
            "gauge",
            "When each schedule fires next (a retry after a failure counts), in Unix seconds; 0 for never.",
            &by_schedule(&|health| seconds(health.next)),
        );
        out.metric(
            "registrar_schedule_consecutive_failures",
            "gauge",
            "Failed runs in a row, by schedule; 0 after a run that did not fail.",
            &by_schedule(&|health| health.failures.to_string()),
        );
    }

    /// Fetching the followed branch's remote, when there is one.
    fn fetch_metrics(&self, out: &mut Metrics) {
        if self.remote.is_some() {
            out.metric(
                "registrar_git_fetch_failures_total",
                "counter",
                "Fetches of the followed branch's remote that failed (the run then reads the last fetched commit).",
                &plain(self.fetch_failures.to_string()),
            );
            out.metric(
                "registrar_last_git_fetch_success_timestamp_seconds",
                "gauge",
                "When a fetch last succeeded, in Unix seconds; 0 before any.",
                &plain(seconds(self.last_fetch_success)),
            );
        }
    }
}

/// The text of `/metrics` as it is written, one metric at a time.
#[derive(Default)]
struct Metrics {
    text: String,
}

impl Metrics {
    /// One metric: its help and type lines, then a line per sample (labels, value).
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
        let out = &mut self.text;
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
}

/// The one sample of a metric without labels.
fn plain(value: String) -> Vec<(String, String)> {
    vec![(String::new(), value)]
}

/// `{a="x",b="y"}` with the values escaped as the text format wants.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Unix seconds with milliseconds, or 0.
fn seconds(at: Option<DateTime<Utc>>) -> String {
    at.map_or("0".to_string(), |at| {
        (at.timestamp_millis() as f64 / 1000.0).to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::run::report::Counts;

    fn report(outcome: RunOutcome, message: Option<&str>) -> RunReport {
        RunReport {
            schedule: "every-minute".to_string(),
            action: "apply",
            revision: Some("3f2a1c9d0b1e".to_string()),
            outcome,
            message: message.map(str::to_string),
            counts: Counts {
                add: 3,
                remove: 1,
                ..Counts::default()
            },
            serial: Some((4, 5)),
            duration: Duration::from_millis(1500),
            finished_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            managed: Some(ManagedCounts {
                accounts: 7,
                registrations: 12,
                groups: 1,
                group_members: 2,
            }),
            state_serial: Some(5),
        }
    }

    fn with_schedule() -> Telemetry {
        let mut telemetry = Telemetry::new(None);
        let schedule = crate::config::Schedule {
            name: "every-minute".to_string(),
            cron_text: "* * * * *".to_string(),
            cron: crate::config::raw::parse_cron("* * * * *").unwrap(),
            action: crate::config::raw::ScheduleAction::Apply,
            mode: crate::config::raw::ImportMode::Full,
        };
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let scheduler = Scheduler::new(&[schedule], Default::default(), now);
        telemetry.set_schedules(&scheduler);
        telemetry
    }

    #[test]
    fn metrics_count_runs_and_changes_in_the_text_format() {
        let mut telemetry = with_schedule();
        telemetry.run_finished(&report(RunOutcome::Applied, None));
        let text = telemetry.prometheus(DateTime::from_timestamp(1_800_000_001, 0).unwrap());
        for line in [
            "# TYPE registrar_runs_total counter",
            "registrar_runs_total{action=\"apply\",outcome=\"applied\"} 1",
            "registrar_runs_total{action=\"apply\",outcome=\"failed\"} 0",
            "registrar_changes_applied_total{action=\"add\"} 3",
            "registrar_changes_applied_total{action=\"remove\"} 1",
            "registrar_last_success_timestamp_seconds 1800000000",
            "registrar_last_run_duration_seconds 1.5",
            "registrar_managed_objects{kind=\"registration\"} 12",
            "registrar_state_serial 5",
            "registrar_up 1",
            "registrar_leader 1",
            "registrar_schedule_next_run_timestamp_seconds{schedule=\"every-minute\",action=\"apply\"} 1800000060",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing in:\n{text}");
        }
        assert!(!text.contains("git_fetch"), "{text}");
    }

    #[test]
    fn metrics_come_in_one_order_each_with_help_and_type_first() {
        let mut telemetry = with_schedule();
        telemetry.remote = Some("origin".to_string());
        telemetry.run_finished(&report(RunOutcome::Applied, None));
        let text = telemetry.prometheus(DateTime::from_timestamp(1_800_000_001, 0).unwrap());
        let types: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            types,
            [
                "registrar_up gauge",
                "registrar_leader gauge",
                "registrar_build_info gauge",
                "registrar_runs_total counter",
                "registrar_changes_applied_total counter",
                "registrar_last_success_timestamp_seconds gauge",
                "registrar_last_run_timestamp_seconds gauge",
                "registrar_last_run_duration_seconds gauge",
                "registrar_run_in_progress_seconds gauge",
                "registrar_managed_objects gauge",
                "registrar_state_serial gauge",
                "registrar_ticks_coalesced_total counter",
                "registrar_schedule_next_run_timestamp_seconds gauge",
                "registrar_schedule_consecutive_failures gauge",
                "registrar_git_fetch_failures_total counter",
                "registrar_last_git_fetch_success_timestamp_seconds gauge",
            ]
        );
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if let Some(name) = line.strip_prefix("# TYPE ") {
                let name = name.split(' ').next().unwrap_or_default();
                assert!(lines[index - 1].starts_with(&format!("# HELP {name} ")));
            }
        }
        assert!(lines.contains(
            &"registrar_schedule_consecutive_failures{schedule=\"every-minute\",action=\"apply\"} 0"
        ));
    }

    #[test]
    fn health_fails_on_a_failed_or_blocked_run_and_recovers() {
        let mut telemetry = with_schedule();
        assert_eq!(telemetry.health(), (true, "ok\n".to_string()));
        telemetry.run_finished(&report(RunOutcome::Failed, Some("source corp: gone")));
        let (healthy, text) = telemetry.health();
        assert!(!healthy);
        assert!(
            text.contains("schedule every-minute: apply failed at 2027-01-15T08:00:00Z"),
            "{text}"
        );
        assert!(text.contains("source corp: gone"), "{text}");
        telemetry.run_finished(&report(RunOutcome::Blocked, Some("plan is blocked")));
        assert!(!telemetry.health().0);
        telemetry.run_finished(&report(RunOutcome::Applied, None));
        assert!(telemetry.health().0);
        telemetry.fetched(Err("git fetch origin failed: no route"), Utc::now());
        assert!(telemetry
            .health()
            .1
            .contains("git fetch origin failed: no route"));
        telemetry.fetched(Ok(()), Utc::now());
        telemetry.stopping();
        assert_eq!(telemetry.health(), (false, "stopping\n".to_string()));
    }

    #[test]
    fn a_standby_is_healthy_and_says_so_unless_it_cannot_reach_the_store() {
        let mut telemetry = with_schedule();
        telemetry.set_leader(false, None);
        assert_eq!(telemetry.health(), (true, "standby\n".to_string()));
        let now = DateTime::from_timestamp(1_800_000_001, 0).unwrap();
        let text = telemetry.prometheus(now);
        assert!(text.lines().any(|l| l == "registrar_leader 0"), "{text}");
        telemetry.set_leader(false, Some("cannot connect to PostgreSQL".to_string()));
        assert_eq!(
            telemetry.health(),
            (false, "standby: cannot connect to PostgreSQL\n".to_string())
        );
        telemetry.set_leader(true, Some("ignored".to_string()));
        assert_eq!(telemetry.health(), (true, "ok\n".to_string()));
        assert!(telemetry
            .prometheus(now)
            .lines()
            .any(|l| l == "registrar_leader 1"));
        telemetry.set_leader(false, None);
        telemetry.stopping();
        assert_eq!(telemetry.health(), (false, "stopping\n".to_string()));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\n")]), "{a=\"x\\\"y\\\\z\\n\"}");
    }
}
