//! Sign-in attempts, counted per login and per client address: past the limit within the
//! window, sign-in is locked for that login or address until the window has passed, and
//! the page says so (429, never a silent delay).
//!
//! An attempt is counted when it starts, before the directory is asked, under one lock
//! with the check: sign-ins sent at once cannot all pass the check before the first
//! failure is counted. A successful one is taken back (the login's count cleared, one
//! taken off the address's); so is one that proved nothing either way (the directory
//! down). An IPv6 address counts by its /64, which one client typically holds whole;
//! an IPv4-mapped one as the IPv4 address. The counts live in memory, at most
//! [`MAX_TRACKED`] keys of each kind (past that, windows that ended are dropped, then
//! the oldest half).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
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

/// Attempts since `since`.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

type Counts<K> = HashMap<K, Failures>;

/// The sign-in attempts of every login and address.
#[derive(Default)]
pub struct Throttle {
    logins: Mutex<Counts<String>>,
    addresses: Mutex<Counts<IpAddr>>,
}

impl Throttle {
    /// Counts an attempt to sign `login` in from `address`; or, when either is locked, how
    /// long it stays locked (and nothing is counted).
    pub fn attempt(&self, login: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let (login, address) = (login_key(login), address_key(address));
        let (mut logins, mut addresses) = (lock(&self.logins), lock(&self.addresses));
        let locked = remaining(&logins, &login, FAILURES_PER_LOGIN, now).max(remaining(
            &addresses,
            &address,
            FAILURES_PER_ADDRESS,
            now,
        ));
        if let Some(left) = locked {
            return Err(left);
        }
        count(&mut logins, login, now);
        count(&mut addresses, address, now);
        Ok(())
    }

    /// The attempt signed in: the login's count is cleared, and the attempt is taken off
    /// the address's.
    pub fn succeeded(&self, login: &str, address: IpAddr) {
        lock(&self.logins).remove(&login_key(login));
        take_back(&mut lock(&self.addresses), &address_key(address));
    }

    /// The attempt proved nothing either way (the directory could not be asked): taken
    /// off both counts.
    pub fn withdrawn(&self, login: &str, address: IpAddr) {
        take_back(&mut lock(&self.logins), &login_key(login));
        take_back(&mut lock(&self.addresses), &address_key(address));
    }
}

/// Logins differing in case or surrounding space are one login (directories compare
/// them so).
fn login_key(login: &str) -> String {
    login.trim().to_lowercase()
}

/// What an address counts as: an IPv4 address (mapped or not) itself, an IPv6 address
/// its /64.
fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

fn lock<K>(map: &Mutex<Counts<K>>) -> MutexGuard<'_, Counts<K>> {
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn remaining<K: std::hash::Hash + Eq>(
    map: &Counts<K>,
    key: &K,
    limit: u32,
    now: Instant,
) -> Option<Duration> {
    let failures = map.get(key)?;
    let elapsed = now.duration_since(failures.since);
    (failures.count >= limit && elapsed < WINDOW).then(|| WINDOW - elapsed)
}

fn count<K: std::hash::Hash + Eq>(map: &mut Counts<K>, key: K, now: Instant) {
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

fn take_back<K: std::hash::Hash + Eq>(map: &mut Counts<K>, key: &K) {
    if let Some(failures) = map.get_mut(key) {
        failures.count = failures.count.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_login_locks_after_its_limit_for_the_rest_of_the_window() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for login in ["Alice", " alice ", "ALICE", "alice", "alice"] {
            assert_eq!(throttle.attempt(login, HERE, start), Ok(()));
        }
        // Five attempts in flight, none answered yet: the sixth is refused already.
        assert_eq!(throttle.attempt("alice", HERE, start), Err(WINDOW));
        // Another login from the same address is not locked (the address's limit is
        // higher), and the lock ends with the window.
        assert_eq!(throttle.attempt("bob", HERE, start), Ok(()));
        assert_eq!(throttle.attempt("alice", HERE, start + WINDOW), Ok(()));
    }

    #[test]
    fn an_address_locks_after_its_limit_and_ipv6_counts_by_its_64() {
        let throttle = Throttle::default();
        let now = Instant::now();
        let there: IpAddr = "2001:db8:1:2::10".parse().unwrap();
        for n in 0..FAILURES_PER_ADDRESS {
            let address: IpAddr = format!("2001:db8:1:2::{n:x}").parse().unwrap();
            assert_eq!(throttle.attempt(&format!("user{n}"), address, now), Ok(()));
        }
        assert!(throttle.attempt("someone-else", there, now).is_err());
        let next_door: IpAddr = "2001:db8:1:3::10".parse().unwrap();
        assert!(throttle.attempt("someone-else", next_door, now).is_ok());
        // An IPv4-mapped address is its IPv4 address.
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        for n in 0..FAILURES_PER_ADDRESS {
            assert!(throttle.attempt(&format!("v4-{n}"), mapped, now).is_ok());
        }
        assert!(throttle
            .attempt("x", "10.0.0.9".parse().unwrap(), now)
            .is_err());
    }

    #[test]
    fn success_and_withdrawal_take_the_attempt_back() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..FAILURES_PER_LOGIN - 1 {
            throttle.attempt("alice", HERE, now).unwrap();
        }
        throttle.attempt("alice", HERE, now).unwrap();
        throttle.succeeded("alice", HERE);
        // The login starts again; the address keeps the four failures.
        assert_eq!(lock(&throttle.logins).get("alice").map(|f| f.count), None);
        assert_eq!(
            lock(&throttle.addresses)[&HERE].count,
            FAILURES_PER_LOGIN - 1
        );
        throttle.attempt("carol", HERE, now).unwrap();
        throttle.withdrawn("carol", HERE);
        assert_eq!(lock(&throttle.logins)["carol"].count, 0);
        assert_eq!(
            lock(&throttle.addresses)[&HERE].count,
            FAILURES_PER_LOGIN - 1
        );
    }
}
