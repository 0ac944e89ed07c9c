//! The controller's scheduler: when each schedule fires, which run goes next, and how
//! long a failing schedule waits before it is tried again.
//!
//! [`Scheduler`] is plain data moved forward by the times given to it: it never reads a
//! clock and does no I/O, so its rules can be checked instant by instant. [`drive`] is
//! the loop that runs it on tokio: it sleeps until the next fire, starts one run at a
//! time, and on a stop request lets the run in flight finish and returns. It never runs
//! two jobs at once, and it does not know what a run does: the job it is given does the
//! work, and [`Hooks`] hear about it.
//!
//! The rules:
//! - A schedule fires at its cron times (UTC, whole seconds). A fire that comes while a
//!   run is in flight waits for it; fires of a schedule that is already waiting are
//!   coalesced into that one (and counted). Waiting schedules run in the order they
//!   fired, ties in name order.
//! - After a failed run the schedule is tried again after the backoff: 10 s, doubling
//!   with each consecutive failure up to 10 min, whatever its cron says. So a schedule
//!   that fires every second does not hammer a directory that is down (it is tried
//!   every 10 min at most), and a nightly one is retried within minutes rather than
//!   the next night. Its cron fires are ignored meanwhile, including those that came
//!   during the failed run. A run that does not fail resets the backoff, and the
//!   schedule follows its cron again.
//! - When a run reads new schedules from the config, they replace the old ones; a
//!   schedule whose name and cron are unchanged keeps its backoff and its waiting fire.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};

use crate::config::Schedule;

/// How long a failing schedule waits: `initial` after the first failure, doubling with
/// each consecutive one, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// 10 s doubling up to 10 min.
    pub const DEFAULT: Backoff = Backoff {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(600),
    };

    /// The wait after `failures` consecutive failures (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

/// One schedule's timing.
#[derive(Debug, Clone)]
struct Slot {
    schedule: Schedule,
    /// When it fires next (a cron time, or a retry after a failure); `None`: never.
    next: Option<DateTime<Utc>>,
    /// The fire waiting to run (the first of those coalesced into it).
    waiting: Option<DateTime<Utc>>,
    /// Consecutive failed runs.
    failures: u32,
}

/// What a tick did to one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// The schedule fired and now waits to run.
    Queued(String),
    /// The schedule fired while already waiting: the fire is merged into that one.
    Coalesced(String),
}

/// The schedules' timing: which fires are due, which one runs next, and the backoff.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// In name order.
    slots: Vec<Slot>,
    backoff: Backoff,
}

/// A schedule as the scheduler sees it, for status lines and metrics.
#[derive(Debug, Clone, Copy)]
pub struct SlotView<'a> {
    pub schedule: &'a Schedule,
    /// When it fires next (a retry after a failure counts); `None`: never.
    pub next: Option<DateTime<Utc>>,
    /// Whether a fire waits to run.
    pub waiting: bool,
    /// Consecutive failed runs.
    pub failures: u32,
}

impl Scheduler {
    /// `schedules` from `now` on: each fires first at its next cron time after `now`.
    pub fn new(schedules: &[Schedule], backoff: Backoff, now: DateTime<Utc>) -> Scheduler {
        let mut scheduler = Scheduler {
            slots: Vec::new(),
            backoff,
        };
        scheduler.replace(schedules, now);
        scheduler
    }

    /// Every schedule, in name order.
    pub fn slots(&self) -> impl Iterator<Item = SlotView<'_>> {
        self.slots.iter().map(|slot| SlotView {
            schedule: &slot.schedule,
            next: slot.next,
            waiting: slot.waiting.is_some(),
            failures: slot.failures,
        })
    }

    /// The earliest time a schedule fires, if any ever does.
    pub fn next_fire(&self) -> Option<DateTime<Utc>> {
        self.slots.iter().filter_map(|slot| slot.next).min()
    }

    /// Fires every schedule whose time has come by `now`: it waits to run (or, already
    /// waiting, the fire is coalesced), and its next fire is its next cron time after
    /// `now` (fires missed while the process slept collapse into this one).
    ///
    /// A schedule that is not backing off and whose next fire is later than its cron
    /// now says (the wall clock was set back) takes the cron's time.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Fired> {
        let mut fired = Vec::new();
        for slot in &mut self.slots {
            let Some(due) = slot.next.filter(|due| *due <= now) else {
                if slot.failures == 0 {
                    if let Some(cron) = slot.schedule.next_after(now) {
                        if slot.next.is_none_or(|next| cron < next) {
                            slot.next = Some(cron);
                        }
                    }
                }
                continue;
            };
            let name = slot.schedule.name.clone();
            if slot.waiting.is_some() {
                fired.push(Fired::Coalesced(name));
            } else {
                slot.waiting = Some(due);
                fired.push(Fired::Queued(name));
            }
            slot.next = slot.schedule.next_after(now);
        }
        fired
    }

    /// Whether a fire waits to run.
    pub fn has_waiting(&self) -> bool {
        self.slots.iter().any(|slot| slot.waiting.is_some())
    }

    /// The schedule to run next: the one whose waiting fire is oldest (ties in name
    /// order). It stops waiting.
    pub fn take(&mut self) -> Option<Schedule> {
        let slot = self
            .slots
            .iter_mut()
            .filter(|slot| slot.waiting.is_some())
            .min_by_key(|slot| slot.waiting)?;
        slot.waiting = None;
        Some(slot.schedule.clone())
    }

    /// A run of `name` ended at `now`. After a failure, returns when it is tried again.
    pub fn finished(
        &mut self,
        name: &str,
        failed: bool,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let backoff = self.backoff;
        let slot = self
            .slots
            .iter_mut()
            .find(|slot| slot.schedule.name == name)?;
        if !failed {
            slot.failures = 0;
            return None;
        }
        slot.failures = slot.failures.saturating_add(1);
        slot.waiting = None;
        let retry = now + chrono_duration(backoff.delay(slot.failures));
        slot.next = Some(retry);
        Some(retry)
    }

    /// Takes the schedules of a newly read config. A schedule whose name and cron text
    /// are unchanged keeps its timing (next fire, waiting fire, failures), with its new
    /// action; any other starts afresh from `now`. Returns whether the set of names or
    /// crons changed.
    pub fn replace(&mut self, schedules: &[Schedule], now: DateTime<Utc>) -> bool {
        let mut slots: Vec<Slot> = schedules
            .iter()
            .map(|schedule| {
                match self.slots.iter().find(|old| {
                    old.schedule.name == schedule.name
                        && old.schedule.cron_text == schedule.cron_text
                }) {
                    Some(old) => Slot {
                        schedule: schedule.clone(),
                        ..old.clone()
                    },
                    None => Slot {
                        schedule: schedule.clone(),
                        next: schedule.next_after(now),
                        waiting: None,
                        failures: 0,
                    },
                }
            })
            .collect();
        slots.sort_by(|a, b| a.schedule.name.cmp(&b.schedule.name));
        let key = |slots: &[Slot]| -> Vec<(String, String)> {
            slots
                .iter()
                .map(|s| (s.schedule.name.clone(), s.schedule.cron_text.clone()))
                .collect()
        };
        let changed = key(&slots) != key(&self.slots);
        self.slots = slots;
        changed
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Where the scheduler's "now" comes from.
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What a finished job tells the loop.
#[derive(Debug)]
pub struct Ran<R> {
    /// The run failed: back off.
    pub failed: bool,
    /// The schedules of the config the run read, when it read one with schedules.
    pub schedules: Option<Vec<Schedule>>,
    /// The job's own account of the run, for the hooks.
    pub report: R,
}

/// What the loop tells the rest of the controller. Every method has a default that
/// does nothing.
pub trait Hooks<R> {
    /// A run of `schedule` starts.
    fn started(&mut self, _schedule: &Schedule) {}
    /// `schedule` fired while already waiting to run.
    fn coalesced(&mut self, _schedule: &str) {}
    /// The run of `schedule` ended (`Err` if the job panicked); after a failure,
    /// `retry_at` is when it is tried again.
    fn finished(
        &mut self,
        _schedule: &Schedule,
        _report: Result<R, String>,
        _retry_at: Option<DateTime<Utc>>,
    ) {
    }
    /// The schedules or their next fires changed (after every run, and at the start).
    fn rescheduled(&mut self, _scheduler: &Scheduler, _changed: bool) {}
}

/// The longest the loop sleeps before looking at the clock again, so a wall clock
/// stepped by NTP or a suspended machine is noticed within this.
pub const MAX_NAP: Duration = Duration::from_secs(60);

/// Runs `scheduler` until `stop` turns true (or its sender goes away): sleeps until the
/// next fire, starts `job` for one waiting schedule at a time on its own task, and
/// feeds the outcome back into the scheduler. On stop no new run starts; the run in
/// flight is awaited and reported, then this returns.
pub async fn drive<C, R, J, F, H>(
    scheduler: &mut Scheduler,
    clock: &C,
    mut job: J,
    hooks: &mut H,
    mut stop: watch::Receiver<bool>,
) where
    C: Clock,
    J: FnMut(Schedule) -> F,
    F: Future<Output = Ran<R>> + Send + 'static,
    R: Send + 'static,
    H: Hooks<R>,
{
    let mut running: Option<(Schedule, JoinHandle<Ran<R>>)> = None;
    let mut stopping = *stop.borrow();
    hooks.rescheduled(scheduler, false);
    loop {
        if running.is_none() {
            if stopping {
                return;
            }
            if let Some(schedule) = scheduler.take() {
                hooks.started(&schedule);
                let handle = tokio::spawn(job(schedule.clone()));
                running = Some((schedule, handle));
            }
        }
        let nap = if stopping {
            None
        } else {
            scheduler.next_fire().map(|at| {
                (at - clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_NAP)
            })
        };
        let event = tokio::select! {
            biased;
            _ = stop_requested(&mut stop), if !stopping => Event::Stop,
            joined = join(&mut running) => Event::Finished(joined),
            _ = sleep(nap) => Event::Wake,
        };
        match event {
            Event::Stop => stopping = true,
            Event::Wake => {
                for fired in scheduler.tick(clock.now()) {
                    if let Fired::Coalesced(name) = fired {
                        hooks.coalesced(&name);
                    }
                }
            }
            Event::Finished(joined) => {
                let Some((schedule, _)) = running.take() else {
                    continue;
                };
                let now = clock.now();
                let (failed, schedules, report) = match joined {
                    Ok(ran) => (ran.failed, ran.schedules, Ok(ran.report)),
                    Err(error) => (true, None, Err(panic_message(error))),
                };
                let retry_at = scheduler.finished(&schedule.name, failed, now);
                hooks.finished(&schedule, report, retry_at);
                let changed = match schedules {
                    Some(schedules) => scheduler.replace(&schedules, now),
                    None => false,
                };
                hooks.rescheduled(scheduler, changed);
            }
        }
    }
}

enum Event<R> {
    Stop,
    Wake,
    Finished(Result<Ran<R>, JoinError>),
}

/// Resolves when `stop` is true or its sender is gone.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The run in flight's result; never resolves when there is none.
async fn join<T>(running: &mut Option<(Schedule, JoinHandle<T>)>) -> Result<T, JoinError> {
    match running {
        Some((_, handle)) => handle.await,
        None => std::future::pending().await,
    }
}

/// Sleeps `nap`; never wakes for `None`.
async fn sleep(nap: Option<Duration>) {
    match nap {
        Some(nap) => tokio::time::sleep(nap).await,
        None => std::future::pending().await,
    }
}

fn panic_message(error: JoinError) -> String {
    match error.try_into_panic() {
        Ok(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            format!("the run panicked: {text}")
        }
        Err(_) => "the run was cancelled".to_string(),
    }
}
