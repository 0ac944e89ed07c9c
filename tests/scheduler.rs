//! The controller's scheduler on paused tokio time: the loop (`drive`) with a clock that
//! follows tokio's, and jobs that take virtual time, so an hour of schedule runs in
//! milliseconds and every fire can be checked to the millisecond. Covers 5- and
//! 6-field crons, one run at a time with overlapping fires coalesced, the backoff after
//! failures (and its reset), a stop waiting for the run in flight, and schedules
//! replaced by a newly read config.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::watch;

use registrar::app::run::scheduler::{drive, Backoff, Clock, Hooks, Ran, Scheduler};
use registrar::config::raw::{parse_cron, ImportMode, ScheduleAction};
use registrar::config::Schedule;

fn schedule(name: &str, cron: &str) -> Schedule {
    Schedule {
        name: name.to_string(),
        cron_text: cron.to_string(),
        cron: parse_cron(cron).unwrap(),
        action: ScheduleAction::Apply,
        mode: ImportMode::Full,
    }
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, h, m, s).unwrap()
}

/// Wall time that moves with tokio's paused clock, starting at `wall`.
struct PausedClock {
    wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl PausedClock {
    fn new(wall: DateTime<Utc>) -> Self {
        PausedClock {
            wall,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for PausedClock {
    fn now(&self) -> DateTime<Utc> {
        self.wall + chrono::Duration::from_std(self.start.elapsed()).unwrap()
    }
}

/// What the jobs and hooks saw.
#[derive(Debug, Default)]
struct Log {
    /// (schedule, start, end) of every run.
    runs: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    in_flight: usize,
    max_in_flight: usize,
    coalesced: usize,
    /// (schedule, retry_at) after each failure.
    retries: Vec<(String, DateTime<Utc>)>,
}

struct Recorder(Arc<Mutex<Log>>);

impl Hooks<()> for Recorder {
    fn coalesced(&mut self, _schedule: &str) {
        self.0.lock().unwrap().coalesced += 1;
    }

    fn finished(
        &mut self,
        schedule: &Schedule,
        _report: Result<(), String>,
        retry_at: Option<DateTime<Utc>>,
    ) {
        if let Some(retry_at) = retry_at {
            self.0
                .lock()
                .unwrap()
                .retries
                .push((schedule.name.clone(), retry_at));
        }
    }
}

/// How a test job behaves on its `n`th run (0-based) of a schedule.
type Behaviour = Arc<dyn Fn(&str, usize) -> (Duration, bool, Option<Vec<Schedule>>) + Send + Sync>;

/// Drives `schedules` from `start` for `run_for` of virtual time, then asks to stop and
/// waits for the loop to return. Returns the log and when the loop returned.
async fn simulate(
    schedules: Vec<Schedule>,
    start: DateTime<Utc>,
    run_for: Duration,
    behaviour: Behaviour,
) -> (Log, DateTime<Utc>) {
    let clock = Arc::new(PausedClock::new(start));
    let log = Arc::new(Mutex::new(Log::default()));
    let mut scheduler = Scheduler::new(&schedules, Backoff::DEFAULT, start);
    let (stop_sender, stop) = watch::channel(false);
    let counts = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
    let job = {
        let (clock, log) = (clock.clone(), log.clone());
        move |schedule: Schedule| {
            let (clock, log, counts, behaviour) = (
                clock.clone(),
                log.clone(),
                counts.clone(),
                behaviour.clone(),
            );
            async move {
                let begun = clock.now();
                let n = {
                    let mut counts = counts.lock().unwrap();
                    let n = counts.entry(schedule.name.clone()).or_insert(0);
                    *n += 1;
                    *n - 1
                };
                {
                    let mut log = log.lock().unwrap();
                    log.in_flight += 1;
                    log.max_in_flight = log.max_in_flight.max(log.in_flight);
                }
                let (takes, failed, schedules) = behaviour(&schedule.name, n);
                tokio::time::sleep(takes).await;
                let mut log = log.lock().unwrap();
                log.in_flight -= 1;
                log.runs.push((schedule.name.clone(), begun, clock.now()));
                Ran {
                    failed,
                    schedules,
                    report: (),
                }
            }
        }
    };
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(run_for).await;
        stop_sender.send(true).unwrap();
        // Keep the sender alive until the loop is done.
        std::future::pending::<()>().await;
    });
    let mut hooks = Recorder(log.clone());
    drive(&mut scheduler, clock.as_ref(), job, &mut hooks, stop).await;
    let ended = clock.now();
    stopper.abort();
    let log = std::mem::take(&mut *log.lock().unwrap());
    (log, ended)
}

fn quick(ok: bool) -> Behaviour {
    Arc::new(move |_, _| (Duration::ZERO, !ok, None))
}

fn starts(log: &Log, name: &str) -> Vec<DateTime<Utc>> {
    log.runs
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, start, _)| *start)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_five_field_cron_fires_at_second_zero_of_its_minutes() {
    let (log, _) = simulate(
        vec![schedule("quarter", "*/15 * * * *")],
        at(0, 7, 30),
        Duration::from_secs(3600),
        quick(true),
    )
    .await;
    assert_eq!(
        starts(&log, "quarter"),
        [at(0, 15, 0), at(0, 30, 0), at(0, 45, 0), at(1, 0, 0)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_six_field_cron_fires_on_its_seconds() {
    let (log, _) = simulate(
        vec![
            schedule("ten-seconds", "*/10 * * * * *"),
            schedule("second-5", "5 * * * * *"),
        ],
        at(12, 0, 0),
        Duration::from_millis(60_500),
        quick(true),
    )
    .await;
    assert_eq!(
        starts(&log, "ten-seconds"),
        [
            at(12, 0, 10),
            at(12, 0, 20),
            at(12, 0, 30),
            at(12, 0, 40),
            at(12, 0, 50),
            at(12, 1, 0)
        ]
    );
    assert_eq!(starts(&log, "second-5"), [at(12, 0, 5)]);
    assert_eq!(log.coalesced, 0);
}

#[tokio::test(start_paused = true)]
async fn runs_never_overlap_and_fires_during_a_run_are_coalesced() {
    // Every second, each run taking 2.6 s: a run starts as soon as the previous one
    // ends, and the fires in between collapse into that one.
    let slow: Behaviour = Arc::new(|_, _| (Duration::from_millis(2600), false, None));
    let (log, _) = simulate(
        vec![schedule("every-second", "* * * * * *")],
        at(0, 0, 0),
        Duration::from_millis(11_000),
        slow,
    )
    .await;
    assert_eq!(log.max_in_flight, 1);
    let ms = |s: DateTime<Utc>| (s - at(0, 0, 0)).num_milliseconds();
    let starts: Vec<i64> = starts(&log, "every-second").into_iter().map(ms).collect();
    // 1.0 → fires at 2 (waits) and 3 (coalesced); 3.6 → 4 waits, 5 and 6 coalesced;
    // 6.2 → 7 waits, 8 coalesced; 8.8 → 9 waits, 10 and 11 coalesced; then the stop.
    assert_eq!(starts, [1000, 3600, 6200, 8800]);
    assert_eq!(log.coalesced, 1 + 2 + 1 + 2);
    for pair in log.runs.windows(2) {
        assert!(pair[1].1 >= pair[0].2, "overlap: {pair:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn two_schedules_firing_together_run_one_after_the_other() {
    let slow: Behaviour = Arc::new(|_, _| (Duration::from_secs(4), false, None));
    let (log, _) = simulate(
        vec![
            schedule("b-apply", "0 * * * * *"),
            schedule("a-plan", "0 * * * * *"),
        ],
        at(0, 0, 30),
        Duration::from_secs(45),
        slow,
    )
    .await;
    assert_eq!(log.max_in_flight, 1);
    assert_eq!(starts(&log, "a-plan"), [at(0, 1, 0)]);
    assert_eq!(starts(&log, "b-apply"), [at(0, 1, 4)]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_schedule_backs_off_doubling_to_the_cap_then_resets() {
    // Fails its first 8 runs, then succeeds.
    let flaky: Behaviour = Arc::new(|_, n| (Duration::ZERO, n < 8, None));
    let (log, _) = simulate(
        vec![schedule("every-second", "* * * * * *")],
        at(0, 0, 0),
        Duration::from_secs(1835),
        flaky,
    )
    .await;
    let secs: Vec<i64> = starts(&log, "every-second")
        .into_iter()
        .map(|s| (s - at(0, 0, 0)).num_seconds())
        .collect();
    // 10, 20, 40, 80, 160, 320, 600 (capped), 600; then every second again.
    assert_eq!(
        &secs[..11],
        [1, 11, 31, 71, 151, 311, 631, 1231, 1831, 1832, 1833]
    );
    assert_eq!(log.retries.len(), 8);
    assert_eq!(log.retries[0], ("every-second".to_string(), at(0, 0, 11)));
}

#[tokio::test(start_paused = true)]
async fn a_failed_nightly_run_is_retried_after_the_backoff_not_the_next_night() {
    let fail_twice: Behaviour = Arc::new(|_, n| (Duration::from_secs(5), n < 2, None));
    let (log, _) = simulate(
        vec![schedule("nightly", "0 3 * * *")],
        at(2, 59, 0),
        Duration::from_secs(3600),
        fail_twice,
    )
    .await;
    // Fails at 03:00:05 → 03:00:15; fails at 03:00:20 → 03:00:40; then succeeds, and
    // waits for the next night.
    assert_eq!(
        starts(&log, "nightly"),
        [at(3, 0, 0), at(3, 0, 15), at(3, 0, 40)]
    );
}

#[tokio::test(start_paused = true)]
async fn while_failing_the_backoff_decides_not_the_cron() {
    let always: Behaviour = Arc::new(|_, _| (Duration::ZERO, true, None));
    let (log, _) = simulate(
        vec![schedule("quarter", "*/15 * * * *")],
        at(0, 0, 1),
        Duration::from_secs(3600),
        always,
    )
    .await;
    // 10 s, 20 s, 40 s, 80 s, 160 s, 320 s, then every 600 s.
    assert_eq!(
        starts(&log, "quarter"),
        [
            at(0, 15, 0),
            at(0, 15, 10),
            at(0, 15, 30),
            at(0, 16, 10),
            at(0, 17, 30),
            at(0, 20, 10),
            at(0, 25, 30),
            at(0, 35, 30),
            at(0, 45, 30),
            at(0, 55, 30)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_waits_for_the_run_in_flight_and_starts_nothing_new() {
    let slow: Behaviour = Arc::new(|_, _| (Duration::from_secs(5), false, None));
    let (log, ended) = simulate(
        vec![schedule("every-second", "* * * * * *")],
        at(0, 0, 0),
        Duration::from_millis(2500),
        slow,
    )
    .await;
    assert_eq!(log.runs.len(), 1, "{:?}", log.runs);
    assert_eq!(log.runs[0].2, at(0, 0, 6));
    assert_eq!(ended, at(0, 0, 6));
}

#[tokio::test(start_paused = true)]
async fn a_run_that_reads_new_schedules_reschedules() {
    // The first run reads a config where the schedule fires every 7 s instead of 10 s,
    // and a new one appears.
    let behaviour: Behaviour = Arc::new(|_, n| {
        let schedules = (n == 0).then(|| {
            vec![
                schedule("main", "*/7 * * * * *"),
                schedule("new", "30 * * * * *"),
            ]
        });
        (Duration::ZERO, false, schedules)
    });
    let (log, _) = simulate(
        vec![schedule("main", "*/10 * * * * *")],
        at(0, 0, 0),
        Duration::from_millis(35_500),
        behaviour,
    )
    .await;
    assert_eq!(
        starts(&log, "main"),
        [
            at(0, 0, 10),
            at(0, 0, 14),
            at(0, 0, 21),
            at(0, 0, 28),
            at(0, 0, 35)
        ]
    );
    assert_eq!(starts(&log, "new"), [at(0, 0, 30)]);
}

#[test]
fn the_pure_scheduler_coalesces_and_orders_waiting_fires() {
    let mut scheduler = Scheduler::new(
        &[schedule("b", "* * * * * *"), schedule("a", "*/2 * * * * *")],
        Backoff::DEFAULT,
        at(0, 0, 0),
    );
    assert_eq!(scheduler.next_fire(), Some(at(0, 0, 1)));
    scheduler.tick(at(0, 0, 1));
    scheduler.tick(at(0, 0, 2));
    let names: Vec<String> = std::iter::from_fn(|| scheduler.take().map(|s| s.name)).collect();
    // b waited since 00:00:01 (its second fire coalesced), a since 00:00:02.
    assert_eq!(names, ["b", "a"]);
    assert!(!scheduler.has_waiting());
    let retry = scheduler.finished("b", true, at(0, 0, 3));
    assert_eq!(retry, Some(at(0, 0, 13)));
    assert_eq!(scheduler.finished("b", false, at(0, 0, 14)), None);
    assert_eq!(Backoff::DEFAULT.delay(1), Duration::from_secs(10));
    assert_eq!(Backoff::DEFAULT.delay(7), Duration::from_secs(600));
    assert_eq!(Backoff::DEFAULT.delay(u32::MAX), Duration::from_secs(600));
}

#[test]
fn a_wall_clock_set_back_does_not_delay_the_next_fire() {
    let mut scheduler = Scheduler::new(
        &[schedule("hourly", "0 * * * *")],
        Backoff::DEFAULT,
        at(12, 0, 30),
    );
    assert_eq!(scheduler.next_fire(), Some(at(13, 0, 0)));
    // The clock jumps back 90 minutes: the next fire is the cron's, not 2.5 h away.
    assert!(scheduler.tick(at(10, 59, 0)).is_empty());
    assert_eq!(scheduler.next_fire(), Some(at(11, 0, 0)));
}
