//! What one run of the controller did ([`RunReport`]): how it ended ([`RunOutcome`]),
//! the plan's [`Counts`], and the three views of it the controller gives: the log line,
//! the history record and (through `telemetry.rs`) the metrics.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::adapters::store::{ManagedCounts, RunRecord};
use crate::app::apply::{recorded_revision, short_revision};
use crate::app::clock::{rfc3339, Started};
use crate::app::reconcile::Reconciled;
use crate::config::Schedule;

/// How a run ended, as the run history and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// `apply`: the plan was applied (possibly with no changes).
    Applied,
    /// `plan`: the plan was computed and its counts recorded.
    Planned,
    /// `apply`: the plan passed the deletion threshold; nothing was applied.
    Blocked,
    /// The run could not complete (config, source, git or store error).
    Failed,
    /// `drift`: the store departs from the last applied configuration.
    Drift,
    /// `drift`: the store is as the last apply left it.
    NoDrift,
    /// Nothing to do (the schedule is gone from the config).
    Skipped,
    /// A stop was requested before the run could apply anything.
    Cancelled,
}

impl RunOutcome {
    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Applied => "applied",
            RunOutcome::Planned => "planned",
            RunOutcome::Blocked => "blocked",
            RunOutcome::Failed => "failed",
            RunOutcome::Drift => "drift",
            RunOutcome::NoDrift => "no_drift",
            RunOutcome::Skipped => "skipped",
            RunOutcome::Cancelled => "cancelled",
        }
    }

    /// Whether the run did what its schedule asked.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            RunOutcome::Applied | RunOutcome::Planned | RunOutcome::Drift | RunOutcome::NoDrift
        )
    }
}

/// A plan's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub add: u64,
    pub update: u64,
    pub remove: u64,
    pub deactivate: u64,
    pub reactivate: u64,
}

/// What one run did: the log line, the metrics and the history record come from it.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub schedule: String,
    pub action: &'static str,
    /// The commit read (`-dirty` for a changed working tree), when it got that far.
    pub revision: Option<String>,
    pub outcome: RunOutcome,
    /// One line: why it failed, was blocked or skipped, and any warning.
    pub message: Option<String>,
    /// The plan's counts (applied for `applied`; what it would do otherwise).
    pub counts: Counts,
    /// The state serial before and after, for `applied`.
    pub serial: Option<(i64, i64)>,
    pub duration: Duration,
    pub finished_at: DateTime<Utc>,
    /// The store's managed rows and serial after the run, when it could be read.
    pub managed: Option<ManagedCounts>,
    pub state_serial: Option<i64>,
}

impl RunReport {
    pub(super) fn new(schedule: &Schedule) -> RunReport {
        RunReport {
            schedule: schedule.name.clone(),
            action: schedule.action_name(),
            revision: None,
            outcome: RunOutcome::Failed,
            message: None,
            counts: Counts::default(),
            serial: None,
            duration: Duration::ZERO,
            finished_at: Utc::now(),
            managed: None,
            state_serial: None,
        }
    }

    /// Adds `note` to the message.
    pub(super) fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        self.message = Some(match self.message.take() {
            Some(message) => format!("{message}; {note}"),
            None => note,
        });
    }

    pub(super) fn set_plan(&mut self, reconciled: &Reconciled) {
        let s = &reconciled.plan.summary;
        self.revision = recorded_revision(&reconciled.plan, reconciled.revision_dirty);
        self.counts = Counts {
            add: s.add,
            update: s.update,
            remove: s.remove,
            deactivate: s.deactivate,
            reactivate: s.reactivate,
        };
    }

    /// The history record of this run, ended as the report says (an apply sets the
    /// end again when it commits).
    pub(super) fn record(&self, started: &Started) -> RunRecord {
        let c = &self.counts;
        RunRecord {
            finished_at: rfc3339(self.finished_at),
            duration_ms: Some(self.duration.as_millis().min(u128::from(u64::MAX)) as u64),
            revision: self.revision.clone(),
            added: c.add,
            updated: c.update,
            removed: c.remove,
            deactivated: c.deactivate,
            reactivated: c.reactivate,
            outcome: self.outcome.name().to_string(),
            message: self.message.clone(),
            ..RunRecord::new(
                format!("run {}: {}", self.schedule, self.action),
                started.at().to_string(),
            )
        }
    }

    /// The log line of this run; `retry_at` after a failure.
    pub fn line(&self, retry_at: Option<DateTime<Utc>>) -> String {
        let mut line = format!(
            "{} {} {}",
            rfc3339(self.finished_at),
            self.schedule,
            self.action
        );
        if let Some(revision) = &self.revision {
            let short = match revision.strip_suffix("-dirty") {
                Some(commit) => format!("{}-dirty", short_revision(commit)),
                None => short_revision(revision).to_string(),
            };
            line.push_str(&format!(" at {short}"));
        }
        line.push_str(&format!(": {}", self.outcome.name()));
        if matches!(
            self.outcome,
            RunOutcome::Applied | RunOutcome::Planned | RunOutcome::Blocked
        ) {
            let c = &self.counts;
            line.push_str(&format!(
                " +{} ~{} -{} (deactivated {}, reactivated {})",
                c.add, c.update, c.remove, c.deactivate, c.reactivate
            ));
        }
        if let Some((before, after)) = self.serial {
            line.push_str(&format!(", serial {before}→{after}"));
        }
        line.push_str(&format!(" in {:.2}s", self.duration.as_secs_f64()));
        if let Some(message) = &self.message {
            line.push_str(&format!(": {message}"));
        }
        if let Some(retry_at) = retry_at {
            let wait = (retry_at - self.finished_at).num_seconds().max(0);
            line.push_str(&format!(
                "; next attempt at {} (in {wait}s)",
                rfc3339(retry_at)
            ));
        }
        line
    }
}
