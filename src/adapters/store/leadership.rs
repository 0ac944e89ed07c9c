//! Which of several controllers on one PostgreSQL store leads: the one whose session holds
//! the session advisory lock [`LEADER_LOCK`]. [`Store::try_lead`] takes it without
//! waiting, [`Store::still_leads`] asks the server whether this session still holds it,
//! and every apply on a leading store confirms it inside its own transaction, on the same
//! session, before it writes anything (`apply.rs`): a controller whose session lost the
//! lock cannot commit, and one whose session is gone cannot commit at all.
//!
//! The server releases the lock when the session ends however it ends: a killed process
//! closes its socket at once; for a host that vanished or a cut network, the leading
//! session asks the server for short TCP keepalives ([`SERVER_KEEPALIVES`]), so that the
//! server drops it, and frees the lock, within about ten seconds.
//!
//! A SQLite store always leads: its controller keeps the lock file beside it
//! (`app/run/lock.rs`), one controller per file. This file takes no other lock and
//! decides nothing about schedules: the controller does (`app/run/lead.rs`).

use super::database::{params, Backend, Database};
use super::error::{store_error, StoreError};
use super::open::Store;

/// The key of the session advisory lock the leading controller holds ("rgstlead" in
/// ASCII; both 32-bit halves are below 2^31, so pg_locks shows them as they are).
pub const LEADER_LOCK: i64 = 0x7267_7374_6c65_6164;

/// The server-side TCP settings of a leading session: a first keepalive after 4 s idle,
/// then every 2 s, 3 unanswered end it; data left unacknowledged for 10 s ends it too. The
/// server thus frees the lock of a leader that vanished within about 10 s.
const SERVER_KEEPALIVES: &str = "SET tcp_keepalives_idle = 4; SET tcp_keepalives_interval = 2; \
     SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000;";

/// Whether this session holds [`LEADER_LOCK`], as `pg_locks` says.
const HOLDS_THE_LOCK: &str = "SELECT EXISTS (SELECT 1 FROM pg_locks \
     WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
     AND ((classid::bigint << 32) | objid::bigint) = ?1)";

impl Store {
    /// Tries to become the store's leading controller, without waiting: `true` when this
    /// session now holds the leader lock (or already did), `false` when another session
    /// does. A SQLite store always leads.
    pub fn try_lead(&mut self) -> Result<bool, StoreError> {
        if self.connection.backend() == Backend::Sqlite || self.leads {
            self.leads = true;
            return Ok(true);
        }
        let fail = |e| store_error(&self.location, e);
        self.connection
            .execute_batch(SERVER_KEEPALIVES)
            .map_err(fail)?;
        let took = self
            .connection
            .query_row(
                "SELECT pg_try_advisory_lock(?1)",
                params![LEADER_LOCK],
                |row| row.get::<bool>(0),
            )
            .map_err(fail)?;
        self.leads = took;
        Ok(took)
    }

    /// Whether this store leads: it took the lead with [`Store::try_lead`] (a SQLite store
    /// once asked). Only what this value knows; [`Store::still_leads`] asks the server.
    pub fn leads(&self) -> bool {
        self.leads
    }

    /// Whether this session still holds the leader lock, asked of the server (an error
    /// when the session is gone). A SQLite store that took the lead still does.
    pub fn still_leads(&self) -> Result<bool, StoreError> {
        if !self.leads {
            return Ok(false);
        }
        holds_the_lock(&self.connection).map_err(|e| store_error(&self.location, e))
    }

    /// Inside an apply's transaction on `transaction` (this store's connection): a store
    /// that took the lead refuses to go on unless its session still holds the lock.
    pub(super) fn confirm_lead(&self, transaction: &Database) -> Result<(), StoreError> {
        if !self.leads {
            return Ok(());
        }
        let holds = holds_the_lock(transaction).map_err(|e| store_error(&self.location, e))?;
        if holds {
            Ok(())
        } else {
            Err(StoreError::LeadLost {
                store: self.location.clone(),
            })
        }
    }
}

/// Whether `connection`'s session holds [`LEADER_LOCK`]; always on SQLite.
fn holds_the_lock(connection: &Database) -> Result<bool, super::database::SqlError> {
    if connection.backend() == Backend::Sqlite {
        return Ok(true);
    }
    connection.query_row(HOLDS_THE_LOCK, params![LEADER_LOCK], |row| {
        row.get::<bool>(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::history::RunRecord;
    use crate::adapters::store::test_support::{fresh_store, location};
    use registrar_core::desired::{Desired, DesiredAccount};
    use registrar_core::model::Rules;
    use registrar_core::state::State;

    fn one_account_plan(serial: i64) -> registrar_core::plan::Plan {
        let mut desired = Desired::default();
        desired.insert_account(DesiredAccount::new("a", "cn=a,dc=x", "hr"));
        let state = State {
            serial,
            ..State::default()
        };
        registrar_core::plan::plan(&Rules::default(), desired, &state).unwrap()
    }

    #[test]
    fn one_session_leads_and_the_next_takes_over_when_it_ends() {
        let (test_store, mut first) = fresh_store();
        assert!(!first.leads());
        assert!(first.try_lead().unwrap());
        assert!(first.still_leads().unwrap());
        let mut second = Store::open(location(&test_store)).unwrap();
        if second.connection.backend() == Backend::Sqlite {
            // One controller per file is the lock file's job: every SQLite store leads.
            assert!(second.try_lead().unwrap());
            return;
        }
        assert!(!second.try_lead().unwrap(), "two leaders");
        assert!(!second.still_leads().unwrap());
        // A standby applies nothing special: it is not a leader, and applies by hand
        // (`registrar apply`) go through as before.
        drop(first);
        // The server frees the lock once it has seen the session end, a moment after the
        // client closed it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !second.try_lead().unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock outlived its session"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(second.still_leads().unwrap());
        assert!(second.try_lead().unwrap(), "taking it again is a no-op");
    }

    #[test]
    fn a_leader_whose_session_lost_the_lock_cannot_apply() {
        let (_test_store, mut store) = fresh_store();
        assert!(store.try_lead().unwrap());
        if store.connection.backend() == Backend::Sqlite {
            store
                .apply(&one_account_plan(0), RunRecord::new("test", "t"))
                .unwrap();
            return;
        }
        // The lock released behind the leader's back (as a broken session would lose it).
        store
            .connection
            .execute_batch(&format!("SELECT pg_advisory_unlock({LEADER_LOCK})"))
            .unwrap();
        assert!(!store.still_leads().unwrap());
        let error = store
            .apply(&one_account_plan(0), RunRecord::new("test", "t"))
            .unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, StoreError::LeadLost { .. }), "{text}");
        assert!(text.contains("no longer holds the lead"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        assert_eq!(store.serial().unwrap(), 0, "nothing was applied");
        assert!(store.runs(10).unwrap().is_empty(), "no run recorded");
    }
}
