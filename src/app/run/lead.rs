//! Several controllers on one PostgreSQL store: which one leads, and the session it leads
//! on. [`Lead`] keeps the controller's one long-lived store session; the session that
//! holds the store's leader lock (`adapters/store/leadership.rs`) is the leader's, and
//! every write of the leader (the apply, the run history) goes through it, so a leader
//! that lost its session cannot commit. The others stand by: they run nothing, and every
//! [`POLL`] they try to take the lead, so that one takes over within a few seconds of the
//! leader's session ending (the server ends a vanished leader's session within about
//! 10 s). A leader checks every [`POLL`] that its session still holds the lock; if it
//! does not, or the session broke, or the server does not answer within
//! [`ANSWER_WITHIN`], it stands by and tries again with a new session.
//!
//! On SQLite there is nothing to decide: the lock file (`lock.rs`) keeps one controller
//! per file, it always leads, and each run opens the file as it always did.
//!
//! It must not start or stop runs itself: it says whether this controller leads
//! ([`Lead::leading`]), and the controller runs its scheduler only while it does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use tokio::sync::watch;

use super::controller::{log, one_line};
use super::telemetry::Telemetry;
use crate::adapters::store::{Store, StoreError, StoreLocation};
use crate::app::error::AppError;

/// How often a standby tries to take the lead, and a leader checks that it still has it.
pub const POLL: Duration = Duration::from_secs(2);

/// How long the server may take to answer a leader's check before the lead counts as
/// lost (a cut network leaves the question unanswered rather than failed).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The controller's seat: leading or standing by, and the session it holds.
pub(super) struct Lead {
    location: StoreLocation,
    /// Several controllers may share the store (PostgreSQL); on SQLite it always leads.
    shared: bool,
    /// The long-lived session (PostgreSQL): leading or trying to; `None` until the next
    /// attempt after a broken one.
    session: Mutex<Option<Store>>,
    /// The leader's check went unanswered: the session is dropped once it answers.
    abandoned: AtomicBool,
    leading: watch::Sender<bool>,
    telemetry: Arc<Mutex<Telemetry>>,
}

/// What one attempt or check found.
enum Seen {
    Leads,
    /// Another session leads.
    Another,
    /// The store could not be reached or asked; why.
    Failed(String),
    /// A run is writing through the session: the apply checks the lead itself.
    Busy,
}

impl Lead {
    /// The seat of a controller on the store at `location`.
    pub(super) fn new(location: &StoreLocation, telemetry: Arc<Mutex<Telemetry>>) -> Lead {
        let shared = location.file().is_none();
        telemetry_of(&telemetry).set_leader(!shared, None);
        Lead {
            location: location.clone(),
            shared,
            session: Mutex::new(None),
            abandoned: AtomicBool::new(false),
            leading: watch::Sender::new(!shared),
            telemetry,
        }
    }

    /// Whether this controller leads, as it changes.
    pub(super) fn leading(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    fn session(&self) -> MutexGuard<'_, Option<Store>> {
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The first attempt, at start: opens the session (a store that cannot be opened
    /// stops the controller) and tries to lead. Returns whether it leads; [`Lead::announce`]
    /// says it.
    pub(super) fn start(&self) -> Result<bool, AppError> {
        if !self.shared {
            return Ok(true);
        }
        let mut store = Store::open(&self.location)?;
        let leads = store.try_lead()?;
        *self.session() = Some(store);
        telemetry_of(&self.telemetry).set_leader(leads, None);
        self.leading.send_replace(leads);
        Ok(leads)
    }

    /// Logs whether this controller leads, as [`Lead::start`] found (nothing on SQLite).
    pub(super) fn announce(&self, leads: bool) {
        if !self.shared {
            return;
        }
        if leads {
            self.log_leading();
        } else {
            log(&format!(
                "standing by: another controller leads {}; trying to take over every {} s",
                self.location,
                POLL.as_secs()
            ));
        }
    }

    fn log_leading(&self) {
        log(&format!(
            "leading: this controller holds the leader lock of {}; it runs the schedules",
            self.location
        ));
    }

    /// Runs `write` with the leader's session (`Some`), or on SQLite with `None` (it opens
    /// the file as every command does). A standby refuses: it writes nothing.
    pub(super) fn write<T>(
        &self,
        write: impl FnOnce(Option<&mut Store>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        if !self.shared {
            return write(None);
        }
        let mut session = self.session();
        match session.as_mut() {
            Some(store) if store.leads() && !self.abandoned.load(Ordering::SeqCst) => {
                write(Some(store))
            }
            _ => Err(StoreError::LeadLost {
                store: self.location.clone(),
            }
            .into()),
        }
    }

    /// Closes the session (releasing the lead), on a blocking thread: the controller is
    /// done.
    pub(super) fn release(&self) {
        self.session().take();
    }

    /// Every [`POLL`] until `stop`: a standby tries to take the lead, a leader checks it
    /// still has it. Nothing to do on SQLite.
    pub(super) async fn keep(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if !self.shared {
            return;
        }
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            let this = self.clone();
            let check = tokio::task::spawn_blocking(move || this.attempt());
            let seen = match tokio::time::timeout(ANSWER_WITHIN, check).await {
                Ok(Ok(seen)) => seen,
                Ok(Err(error)) => Seen::Failed(format!("the check ended abnormally: {error}")),
                Err(_) if *self.leading.borrow() => {
                    // The check goes on; its session is dropped when it answers.
                    self.abandoned.store(true, Ordering::SeqCst);
                    Seen::Failed(format!(
                        "the server did not answer within {} s",
                        ANSWER_WITHIN.as_secs()
                    ))
                }
                Err(_) => Seen::Busy,
            };
            self.settle(seen);
        }
    }

    /// One attempt (standing by) or check (leading), on a blocking thread.
    fn attempt(&self) -> Seen {
        let mut session = match self.session.try_lock() {
            Ok(session) => session,
            Err(TryLockError::WouldBlock) => return Seen::Busy,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        if self.abandoned.swap(false, Ordering::SeqCst) {
            *session = None;
        }
        let result = match session.as_mut() {
            Some(store) if store.leads() => store.still_leads(),
            Some(store) => store.try_lead(),
            None => Store::open(&self.location).and_then(|store| session.insert(store).try_lead()),
        };
        match result {
            Ok(true) => Seen::Leads,
            Ok(false) => {
                if session.as_ref().is_some_and(Store::leads) {
                    // Led, and no longer holds the lock: a new session tries next time.
                    *session = None;
                    return Seen::Failed("its session no longer holds the leader lock".into());
                }
                Seen::Another
            }
            Err(error) => {
                // A broken session is not reused: the next attempt opens a new one.
                *session = None;
                Seen::Failed(one_line(&error.to_string()))
            }
        }
    }

    /// Takes in what an attempt or check found: the lead, the telemetry and the log.
    fn settle(&self, seen: Seen) {
        let was_leading = *self.leading.borrow();
        let (leads, problem) = match seen {
            Seen::Busy => return,
            Seen::Leads => (true, None),
            Seen::Another => (false, None),
            Seen::Failed(why) => (false, Some(why)),
        };
        telemetry_of(&self.telemetry).set_leader(leads, problem.clone());
        if leads == was_leading {
            return;
        }
        self.leading.send_replace(leads);
        if leads {
            self.log_leading();
        } else if was_leading {
            log(&format!(
                "lost the lead of {}: {}; standing by, trying again every {} s",
                self.location,
                problem.as_deref().unwrap_or("another controller leads"),
                POLL.as_secs()
            ));
        }
    }
}

fn telemetry_of(telemetry: &Mutex<Telemetry>) -> MutexGuard<'_, Telemetry> {
    telemetry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
