//! Fixtures the store's unit tests share: a real store holding one registration, and
//! the hand edit (plain SQL, CHECK constraints set aside) the row readers' tests corrupt
//! it with.

use registrar_core::state::RegistrationSource;

use super::history::RunRecord;
use super::open::Store;

/// A store in a temp dir holding one manual registration, made by [`Store::register`]:
/// `xmpp` name `bob` on the account `cn=bob,dc=x` (anchor `cn=bob,dc=x`), at serial 1 with
/// one run. The tests of the row readers corrupt it with plain SQL.
pub(super) fn store_with_one_registration() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("s.db")).unwrap();
    store
        .register(
            ("xmpp", "bob"),
            "bob",
            "cn=bob,dc=x",
            RegistrationSource::Manual,
            RunRecord::new("register", "t"),
        )
        .unwrap();
    (dir, store)
}

/// Edits the store as a hand with sqlite3 could, its CHECK constraints set aside.
pub(super) fn corrupt(store: &Store, sql: &str) {
    store
        .connection
        .execute_batch(&format!("PRAGMA ignore_check_constraints = ON; {sql}"))
        .unwrap();
}
