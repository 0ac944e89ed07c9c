//! Who is signed in: sessions kept in memory, named by a random id that travels in a
//! signed cookie, and the CSRF tokens that every form carries.
//!
//! - **The cookie** is `<id>.<mac>`: 32 random bytes and their HMAC-SHA256 under a key
//!   drawn when `serve` starts, both base64url. A cookie whose MAC does not verify is
//!   never looked up. Sessions do not outlive the process (a restart signs everyone out).
//! - **Idle timeout.** A session unused for `idle` ends; each request it makes renews it.
//! - **CSRF.** A session's forms carry a token drawn with it, compared in constant time.
//!   The sign-in form, before any session, carries the HMAC of a random nonce that its
//!   own signed cookie holds (a signed double submit), so that another site cannot sign a
//!   visitor in as someone else.
//!   The nonce carries the time it was drawn: a form older than [`SIGN_IN_FORM_LIFE`] is
//!   refused.
//! - **Bounded.** One person holds at most [`SESSIONS_PER_PERSON`] sessions (a new one
//!   ends their oldest), and at most [`MAX_SESSIONS`] live at once; past that, idle ones
//!   are swept and, if still full, the new sign-in is refused rather than someone else's
//!   session dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "registrar_session";
/// The sign-in form's nonce cookie's name.
pub const SIGN_IN_COOKIE: &str = "registrar_sign_in";
/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 100_000;
/// The most sessions one person (one DN) holds at once.
pub const SESSIONS_PER_PERSON: usize = 8;
/// How long a sign-in form may be posted after it was served.
pub const SIGN_IN_FORM_LIFE: Duration = Duration::from_secs(3600);

/// A person proven by a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// What they signed in as (the login attribute's value).
    pub login: String,
    /// Their directory entry's DN.
    pub dn: String,
    /// Their display name (the store's, else the directory's, else the DN).
    pub display_name: String,
    /// Why the account is a protected principal, when it is one: it may see its page
    /// and register nothing.
    pub protected: Option<String>,
}

/// One live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// The token every form of this session carries.
    pub csrf: String,
    last_used: Instant,
}

/// Every live session, and the key their cookies are signed with.
pub struct Sessions {
    key: hmac::Key,
    /// When the sessions began: sign-in nonces carry their age from it.
    epoch: Instant,
    random: SystemRandom,
    idle: Duration,
    live: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// No sessions yet, a fresh signing key, sessions ending after `idle` unused.
    pub fn new(idle: Duration) -> Sessions {
        let random = SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &random)
            .expect("the system's random source works");
        Sessions {
            key,
            epoch: Instant::now(),
            random,
            idle,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a session for `principal`: its cookie value, or `None` when
    /// [`MAX_SESSIONS`] are live and none is idle.
    pub fn start(&self, principal: Principal, now: Instant) -> Option<String> {
        let id: [u8; 32] = self.random_bytes();
        let session = Session {
            principal,
            csrf: URL_SAFE_NO_PAD.encode(self.random_bytes::<32>()),
            last_used: now,
        };
        let mut live = self.lock();
        let mut own: Vec<([u8; 32], Instant)> = live
            .iter()
            .filter(|(_, other)| other.principal.dn == session.principal.dn)
            .map(|(id, other)| (*id, other.last_used))
            .collect();
        if own.len() >= SESSIONS_PER_PERSON {
            own.sort_by_key(|(_, last_used)| *last_used);
            for (id, _) in &own[..=own.len() - SESSIONS_PER_PERSON] {
                live.remove(id);
            }
        }
        if live.len() >= MAX_SESSIONS {
            let idle = self.idle;
            live.retain(|_, session| now.duration_since(session.last_used) < idle);
            if live.len() >= MAX_SESSIONS {
                return None;
            }
        }
        live.insert(id, session);
        Some(self.signed(&id))
    }

    /// The session a cookie value names, renewed, if its signature verifies and it has
    /// not been idle too long (an idle one ends here).
    pub fn resume(&self, cookie: &str, now: Instant) -> Option<Session> {
        let id = self.verified(cookie)?;
        let mut live = self.lock();
        let session = live.get_mut(&id)?;
        if now.duration_since(session.last_used) >= self.idle {
            live.remove(&id);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends the session a cookie value names, if any.
    pub fn end(&self, cookie: &str) {
        if let Some(id) = self.verified(cookie) {
            self.lock().remove(&id);
        }
    }

    /// A fresh sign-in form's nonce cookie value and the token its form carries, for a
    /// form served at `now`. The nonce is the form's age in seconds since the sessions
    /// began, then random bytes.
    pub fn sign_in_form(&self, now: Instant) -> (String, String) {
        let mut nonce: [u8; 32] = self.random_bytes();
        let served = now.saturating_duration_since(self.epoch).as_secs();
        nonce[..8].copy_from_slice(&served.to_be_bytes());
        (self.signed(&nonce), self.sign_in_token(&nonce))
    }

    /// Whether `token` is the sign-in form token for the nonce cookie `cookie`, posted at
    /// `now` within [`SIGN_IN_FORM_LIFE`] of the form.
    pub fn sign_in_token_matches(&self, cookie: &str, token: &str, now: Instant) -> bool {
        let Some(nonce) = self.verified(cookie) else {
            return false;
        };
        let served = u64::from_be_bytes(nonce[..8].try_into().expect("8 bytes"));
        let age = now
            .saturating_duration_since(self.epoch)
            .as_secs()
            .saturating_sub(served);
        age <= SIGN_IN_FORM_LIFE.as_secs() && same(&self.sign_in_token(&nonce), token)
    }

    fn sign_in_token(&self, nonce: &[u8; 32]) -> String {
        let mut message = b"sign-in form ".to_vec();
        message.extend_from_slice(nonce);
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, &message))
    }

    fn signed(&self, id: &[u8; 32]) -> String {
        let tag = hmac::sign(&self.key, id);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(id),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The 32 bytes a cookie value carries, if its MAC verifies.
    fn verified(&self, cookie: &str) -> Option<[u8; 32]> {
        let (id, tag) = cookie.split_once('.')?;
        if id.len() > 64 || tag.len() > 64 {
            return None;
        }
        let id: [u8; 32] = URL_SAFE_NO_PAD.decode(id).ok()?.try_into().ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.key, &id, &tag).ok()?;
        Some(id)
    }

    fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.random
            .fill(&mut bytes)
            .expect("the system's random source works");
        bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
pub fn same(expected: &str, given: &str) -> bool {
    let differences = expected
        .bytes()
        .zip(given.bytes())
        .fold(0u8, |seen, (a, b)| seen | std::hint::black_box(a ^ b));
    expected.len() == given.len() && differences == 0
}

/// The value of the cookie `name` in a `Cookie` header, if it is there.
pub fn cookie_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal {
            login: "alice".to_string(),
            dn: "uid=alice,dc=x".to_string(),
            display_name: "Alice".to_string(),
            protected: None,
        }
    }

    #[test]
    fn a_session_resumes_only_with_its_signed_cookie_and_ends_when_idle() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let start = Instant::now();
        let cookie = sessions.start(principal(), start).unwrap();
        let session = sessions.resume(&cookie, start).unwrap();
        assert_eq!(session.principal, principal());
        // Another id with the same MAC, a cut MAC, junk: none resumes.
        let (id, tag) = cookie.split_once('.').unwrap();
        let mut other = URL_SAFE_NO_PAD.decode(id).unwrap();
        other[0] ^= 1;
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&other));
        assert!(sessions.resume(&forged, start).is_none());
        assert!(sessions
            .resume(&format!("{id}.{}", &tag[1..]), start)
            .is_none());
        assert!(sessions.resume("x.y", start).is_none());
        // Used within the idle time, it lives on; idle past it, it ends for good.
        let later = start + Duration::from_secs(50);
        assert!(sessions.resume(&cookie, later).is_some());
        assert!(sessions
            .resume(&cookie, later + Duration::from_secs(60))
            .is_none());
        assert!(sessions.resume(&cookie, later).is_none());
    }

    #[test]
    fn another_key_verifies_no_cookie_and_sign_out_ends_the_session() {
        let (one, two) = (
            Sessions::new(Duration::from_secs(60)),
            Sessions::new(Duration::from_secs(60)),
        );
        let now = Instant::now();
        let cookie = one.start(principal(), now).unwrap();
        assert!(two.resume(&cookie, now).is_none());
        one.end(&cookie);
        assert!(one.resume(&cookie, now).is_none());
    }

    #[test]
    fn the_sign_in_token_goes_with_its_own_fresh_nonce_only() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let now = Instant::now();
        let (cookie, token) = sessions.sign_in_form(now);
        let (other_cookie, other_token) = sessions.sign_in_form(now);
        assert!(sessions.sign_in_token_matches(&cookie, &token, now));
        assert!(!sessions.sign_in_token_matches(&cookie, &other_token, now));
        assert!(!sessions.sign_in_token_matches(&other_cookie, &token, now));
        assert!(!sessions.sign_in_token_matches("", "", now));
        let late = now + SIGN_IN_FORM_LIFE + Duration::from_secs(2);
        assert!(!sessions.sign_in_token_matches(&cookie, &token, late));
    }

    #[test]
    fn one_person_holds_a_few_sessions_and_a_new_one_ends_the_oldest() {
        let sessions = Sessions::new(Duration::from_secs(600));
        let start = Instant::now();
        let cookies: Vec<String> = (0..SESSIONS_PER_PERSON as u64 + 2)
            .map(|n| {
                sessions
                    .start(principal(), start + Duration::from_secs(n))
                    .unwrap()
            })
            .collect();
        let later = start + Duration::from_secs(60);
        let live: Vec<bool> = cookies
            .iter()
            .map(|cookie| sessions.resume(cookie, later).is_some())
            .collect();
        assert_eq!(
            live.iter().filter(|live| **live).count(),
            SESSIONS_PER_PERSON
        );
        assert!(!live[0] && !live[1] && live[2] && live[SESSIONS_PER_PERSON + 1]);
        // Someone else's session is not touched by it.
        let other = Principal {
            dn: "uid=bob,dc=x".to_string(),
            ..principal()
        };
        let bob = sessions.start(other, start).unwrap();
        sessions.start(principal(), later).unwrap();
        assert!(sessions.resume(&bob, later).is_some());
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "a=1; registrar_session=abc.def;registrar_sign_in=x";
        assert_eq!(cookie_value(header, SESSION_COOKIE), Some("abc.def"));
        assert_eq!(cookie_value(header, SIGN_IN_COOKIE), Some("x"));
        assert_eq!(cookie_value(header, "registrar"), None);
    }
}
