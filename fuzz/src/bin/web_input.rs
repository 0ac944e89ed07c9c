//! What `registrar serve` reads from a request or a file before any route trusts it
//! (`app::serve`): the first line is a `Cookie` header, the rest an `api_tokens_file`.
//! Any input: no panic; no cookie value resumes a session or matches a sign-in form's
//! token of a key it was not signed with; a tokens file either lists digests or names
//! its first bad line by number.

use std::time::{Duration, Instant};

use registrar::app::serve::{cookie_value, Sessions, Tokens};

fn main() {
    let sessions = Sessions::new(Duration::from_secs(60));
    afl::fuzz!(|data: &[u8]| {
        let (first, rest) = match data.iter().position(|&b| b == b'\n') {
            Some(at) => (&data[..at], &data[at + 1..]),
            None => (data, &[][..]),
        };
        let header = String::from_utf8_lossy(first);
        for name in ["registrar_session", "registrar_sign_in"] {
            if let Some(value) = cookie_value(&header, name) {
                assert!(sessions.resume(value, Instant::now()).is_none());
                sessions.end(value);
                let token = String::from_utf8_lossy(rest);
                assert!(!sessions.sign_in_token_matches(value, &token, Instant::now()));
            }
        }
        match Tokens::parse(rest) {
            Ok(_) => {}
            Err(Some(line)) => assert!(line >= 1 && line <= rest.split(|&b| b == b'\n').count()),
            Err(None) => {}
        }
    });
}
