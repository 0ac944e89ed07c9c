//! Progress of long reads and applies on stderr, only when stderr is a terminal: one
//! line, rewritten in place at most every half second once the work has taken a second,
//! and cleared when done. Logs and pipes see nothing of it.
//!
//! With a known total (the changes of an apply) the line is a bar with a percentage;
//! without one (the entries of a source being read) it counts and gives the rate.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How many steps go by between two looks at the clock.
const STEPS_BETWEEN_CHECKS: u64 = 256;
/// Width of the bar, in characters.
const BAR: usize = 30;

/// A progress line for one piece of work.
pub(crate) struct Progress {
    label: String,
    /// What is counted ("entries", "changes").
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    next_check: u64,
    started: Instant,
    last_shown: Option<Instant>,
    terminal: bool,
}

impl Progress {
    /// Progress of `label`, counting `unit`s out of `total` when it is known.
    pub(crate) fn new(label: impl Into<String>, unit: &'static str, total: Option<u64>) -> Self {
        Progress {
            label: label.into(),
            unit,
            total,
            done: 0,
            next_check: STEPS_BETWEEN_CHECKS,
            started: Instant::now(),
            last_shown: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// One more step done.
    pub(crate) fn tick(&mut self) {
        self.advance_to(self.done + 1);
    }

    /// `done` steps done in all.
    pub(crate) fn advance_to(&mut self, done: u64) {
        self.done = done;
        if !self.terminal || done < self.next_check {
            return;
        }
        self.next_check = done + STEPS_BETWEEN_CHECKS;
        let now = Instant::now();
        let due = match self.last_shown {
            None => now - self.started >= Duration::from_secs(1),
            Some(shown) => now - shown >= Duration::from_millis(500),
        };
        if due {
            self.last_shown = Some(now);
            let line = self.line(now);
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{line}\x1b[K");
            let _ = stderr.flush();
        }
    }

    /// The line as it shows at `now`.
    fn line(&self, now: Instant) -> String {
        let rate = self.done as f64 / (now - self.started).as_secs_f64().max(1e-3);
        match self.total {
            Some(total) if total > 0 => {
                let share = (self.done.min(total) as f64 / total as f64).clamp(0.0, 1.0);
                let filled = (share * BAR as f64) as usize;
                format!(
                    "{} [{}{}] {:>3.0}% {}/{} {} ({:.0}/s)",
                    self.label,
                    "#".repeat(filled),
                    " ".repeat(BAR - filled),
                    share * 100.0,
                    self.done,
                    total,
                    self.unit,
                    rate
                )
            }
            _ => format!(
                "{}: {} {} ({:.0}/s)",
                self.label, self.done, self.unit, rate
            ),
        }
    }
}

impl Drop for Progress {
    /// Clears the line, so that what follows (a plan, an error) starts clean.
    fn drop(&mut self) {
        if self.last_shown.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_a_bar_with_a_total_and_a_count_without() {
        let started = Instant::now();
        let mut progress = Progress::new("apply", "changes", Some(200));
        progress.started = started;
        progress.done = 50;
        let line = progress.line(started + Duration::from_secs(2));
        assert_eq!(
            line,
            format!(
                "apply [{}{}]  25% 50/200 changes (25/s)",
                "#".repeat(7),
                " ".repeat(23)
            )
        );
        let mut reading = Progress::new("source corp", "entries", None);
        reading.started = started;
        reading.done = 3000;
        assert_eq!(
            reading.line(started + Duration::from_secs(3)),
            "source corp: 3000 entries (1000/s)"
        );
    }

    #[test]
    fn nothing_shows_when_stderr_is_not_a_terminal() {
        let mut progress = Progress::new("apply", "changes", Some(10));
        progress.terminal = false;
        progress.started = Instant::now() - Duration::from_secs(5);
        for _ in 0..10_000 {
            progress.tick();
        }
        assert!(progress.last_shown.is_none());
    }
}
