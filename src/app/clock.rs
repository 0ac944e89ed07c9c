//! Times as the app writes them: RFC 3339 UTC in whole seconds, e.g.
//! `2026-11-22T01:39:10Z` ([`rfc3339`], [`now`]), for the run history, `status`, the
//! controller's log and `/healthz`; and when a command started ([`Started`]), for the
//! history and a run's duration.
//!
//! Invariant: this is the app's one RFC 3339 formatter (on chrono); nothing else formats
//! a time.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::adapters::store::RunRecord;

/// When a command started, on the wall clock (for the history) and the monotonic one
/// (for its duration).
#[derive(Debug, Clone)]
pub(crate) struct Started {
    at: String,
    clock: std::time::Instant,
}

impl Started {
    pub(crate) fn now() -> Self {
        Started {
            at: now(),
            clock: std::time::Instant::now(),
        }
    }

    /// When the command started, as RFC 3339 UTC.
    pub(crate) fn at(&self) -> &str {
        &self.at
    }

    pub(crate) fn elapsed(&self) -> std::time::Duration {
        self.clock.elapsed()
    }

    pub(crate) fn millis(&self) -> u64 {
        self.elapsed().as_millis().min(u128::from(u64::MAX)) as u64
    }

    /// A run of `command` from this start, finished now, with its duration.
    pub(crate) fn record(&self, command: impl Into<String>) -> RunRecord {
        RunRecord {
            finished_at: now(),
            duration_ms: Some(self.millis()),
            ..RunRecord::new(command, self.at.clone())
        }
    }
}

/// The current time as RFC 3339 UTC, e.g. `2026-11-22T01:39:10Z`.
pub(crate) fn now() -> String {
    rfc3339(Utc::now())
}

/// `at` as RFC 3339 UTC in whole seconds, e.g. `2026-11-22T01:39:10Z`.
pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use chrono::DateTime;

    fn at(seconds: i64, nanos: u32) -> String {
        rfc3339(DateTime::from_timestamp(seconds, nanos).unwrap())
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_311_550, 0), "2026-11-22T01:39:10Z");
    }

    #[test]
    fn rfc3339_drops_fractions_of_a_second() {
        assert_eq!(at(1_795_311_550, 999_999_999), "2026-11-22T01:39:10Z");
    }
}
