//! What every request of `registrar serve` shares: the config it started with, the store,
//! the directory people sign in against, the sessions, the sign-in throttle, the API's
//! tokens, and the counters `/metrics` shows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::api::Tokens;
use super::sessions::Sessions;
use super::throttle::Throttle;
use crate::adapters::ldap::Credentials;
use crate::adapters::store::Store;

impl Site {
    /// Runs `work` on the store on a blocking thread (a store call blocks, and a
    /// PostgreSQL session blocks on a runtime of its own), one call at a time; `None` when
    /// that thread failed.
    pub async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> T + Send + 'static,
    ) -> Option<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut store)
        })
        .await
        .ok()
    }
}
use crate::config::{Config, LdapSettings, SelfService};

/// The LDAP source people sign in against, with its credentials.
pub struct Directory {
    pub settings: LdapSettings,
    pub credentials: Credentials,
}

/// The shared state of one `serve` (cheap to clone: every part is shared).
#[derive(Clone)]
pub struct Site {
    pub config: Arc<Config>,
    pub self_service: Arc<SelfService>,
    pub directory: Arc<Directory>,
    /// One connection, one request at a time (lookups take microseconds).
    pub store: Arc<Mutex<Store>>,
    pub sessions: Arc<Sessions>,
    pub throttle: Arc<Throttle>,
    /// `None`: no `api_tokens_file`, the lookup API is off.
    pub tokens: Option<Arc<Tokens>>,
    pub counters: Arc<Counters>,
    /// The listener serves TLS: cookies are `Secure`.
    pub tls: bool,
}

/// What `serve` has done since it started, for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub sign_ins: AtomicU64,
    pub sign_ins_failed: AtomicU64,
    pub lockouts: AtomicU64,
    pub registrations: AtomicU64,
    pub removals: AtomicU64,
    pub refusals: AtomicU64,
    pub lookups_found: AtomicU64,
    pub lookups_missing: AtomicU64,
    pub api_refused: AtomicU64,
}

impl Counters {
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::from(
            "# HELP registrar_serve_sign_ins_total Sign-ins, by outcome.\n\
             # TYPE registrar_serve_sign_ins_total counter\n",
        );
        for (outcome, value) in [
            ("ok", get(&self.sign_ins)),
            ("failed", get(&self.sign_ins_failed)),
            ("locked", get(&self.lockouts)),
        ] {
            out.push_str(&format!(
                "registrar_serve_sign_ins_total{{outcome=\"{outcome}\"}} {value}\n"
            ));
        }
        out.push_str(
            "# HELP registrar_serve_changes_total Self registrations made and removed, and refused.\n\
             # TYPE registrar_serve_changes_total counter\n",
        );
        for (change, value) in [
            ("registered", get(&self.registrations)),
            ("removed", get(&self.removals)),
            ("refused", get(&self.refusals)),
        ] {
            out.push_str(&format!(
                "registrar_serve_changes_total{{change=\"{change}\"}} {value}\n"
            ));
        }
        out.push_str(
            "# HELP registrar_serve_lookups_total Lookup API requests, by answer.\n\
             # TYPE registrar_serve_lookups_total counter\n",
        );
        for (answer, value) in [
            ("found", get(&self.lookups_found)),
            ("not_found", get(&self.lookups_missing)),
            ("unauthorized", get(&self.api_refused)),
        ] {
            out.push_str(&format!(
                "registrar_serve_lookups_total{{answer=\"{answer}\"}} {value}\n"
            ));
        }
        out
    }
}
