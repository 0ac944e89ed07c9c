//! Failed sign-ins, counted per login and per client address: past the limit within the
//! window, sign-in is locked for that login or address until the window has passed, and
//! the page says so (429, never a silent delay). A successful sign-in clears its login's
//! count, not its address's. The counts live in memory, at most [`MAX_TRACKED`] keys of
//! each kind (past that the oldest windows are dropped first).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins one login may have within [`WINDOW`].
pub const FAILURES_PER_LOGIN: u32 = 5;
/// Failed sign-ins one address may have within [`WINDOW`] (several people may share an
/// address behind a NAT).
pub const FAILURES_PER_ADDRESS: u32 = 20;
/// How long failures count, and so the longest lockout.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The most logins (and addresses) whose failures are kept.
pub const MAX_TRACKED: usize = 100_000;

/// Failures since `since`.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// The failed sign-ins of every login and address.
#[derive(Default)]
pub struct Throttle {
    logins: Mutex<HashMap<String, Failures>>,
    addresses: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    /// How long sign-in stays locked for `login` or `address`, if it is locked.
    pub fn locked(&self, login: &str, address: IpAddr, now: Instant) -> Option<Duration> {
        let by_login = remaining(&self.logins, &login_key(login), FAILURES_PER_LOGIN, now);
        let by_address = remaining(&self.addresses, &address, FAILURES_PER_ADDRESS, now);
        by_login.max(by_address)
    }

    /// Counts a failed sign-in of `login` from `address`.
    pub fn failed(&self, login: &str, address: IpAddr, now: Instant) {
        count(&self.logins, login_key(login), now);
        count(&self.addresses, address, now);
    }

    /// Clears `login`'s failures after it signed in.
    pub fn succeeded(&self, login: &str) {
        lock(&self.logins).remove(&login_key(login));
    }
}

/// Logins differing in case or surrounding space are one login (directories compare
/// them so).
fn login_key(login: &str) -> String {
    login.trim().to_lowercase()
}

fn lock<K>(map: &Mutex<HashMap<K, Failures>>) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn remaining<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Failures>>,
    key: &K,
    limit: u32,
    now: Instant,
) -> Option<Duration> {
    let failures = *lock(map).get(key)?;
    let elapsed = now.duration_since(failures.since);
    (failures.count >= limit && elapsed < WINDOW).then(|| WINDOW - elapsed)
}

fn count<K: std::hash::Hash + Eq + Clone>(map: &Mutex<HashMap<K, Failures>>, key: K, now: Instant) {
    let mut map = lock(map);
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        map.retain(|_, failures| now.duration_since(failures.since) < WINDOW);
        if map.len() >= MAX_TRACKED {
            // Still full of live windows: drop the oldest half.
            let mut starts: Vec<Instant> = map.values().map(|f| f.since).collect();
            starts.sort_unstable();
            let cut = starts[starts.len() / 2];
            map.retain(|_, failures| failures.since > cut);
        }
    }
    let failures = map.entry(key).or_insert(Failures {
        count: 0,
        since: now,
    });
    if now.duration_since(failures.since) >= WINDOW {
        *failures = Failures {
            count: 0,
            since: now,
        };
    }
    failures.count = failures.count.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_locks_after_its_limit_for_the_rest_of_the_window() {
        let throttle = Throttle::default();
        let (start, here) = (Instant::now(), IpAddr::from([127, 0, 0, 1]));
        for _ in 0..FAILURES_PER_LOGIN - 1 {
            throttle.failed("Alice", here, start);
        }
        assert_eq!(throttle.locked("alice", here, start), None);
        throttle.failed(" alice ", here, start);
        let left = throttle.locked("ALICE", here, start).unwrap();
        assert_eq!(left, WINDOW);
        // Another login from the same address is not locked (the address's limit is
        // higher), and the lock ends with the window.
        assert_eq!(throttle.locked("bob", here, start), None);
        assert_eq!(throttle.locked("alice", here, start + WINDOW), None);
    }

    #[test]
    fn an_address_locks_after_its_limit_whatever_the_logins() {
        let throttle = Throttle::default();
        let (now, there) = (Instant::now(), IpAddr::from([10, 0, 0, 9]));
        for n in 0..FAILURES_PER_ADDRESS {
            throttle.failed(&format!("user{n}"), there, now);
        }
        assert!(throttle.locked("someone-else", there, now).is_some());
        assert!(throttle
            .locked("someone-else", IpAddr::from([10, 0, 0, 8]), now)
            .is_none());
    }

    #[test]
    fn success_clears_the_login_but_not_the_address() {
        let throttle = Throttle::default();
        let (now, here) = (Instant::now(), IpAddr::from([127, 0, 0, 1]));
        for _ in 0..FAILURES_PER_LOGIN - 1 {
            throttle.failed("alice", here, now);
        }
        throttle.succeeded("alice");
        throttle.failed("alice", here, now);
        assert_eq!(throttle.locked("alice", here, now), None);
        assert_eq!(lock(&throttle.addresses)[&here].count, FAILURES_PER_LOGIN);
    }
}
