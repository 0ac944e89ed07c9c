//! The app's threads: the core's two-halves steps on two threads ([`Threads`]), and
//! [`spawn_scoped`], which makes a thread the system cannot start an error rather than a
//! panic.
//!
//! A panic on a thread is not caught here: joining re-raises it on the caller's.

use std::thread::{Scope, ScopedJoinHandle};

use super::error::AppError;
use registrar_core::join::Join;

/// `work` on a scoped thread of its own.
pub(super) fn spawn_scoped<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    work: impl FnOnce() -> T + Send + 'scope,
) -> Result<ScopedJoinHandle<'scope, T>, AppError> {
    std::thread::Builder::new()
        .spawn_scoped(scope, work)
        .map_err(AppError::Thread)
}

/// The result of the thread `handle`, its panic raised again on this one.
pub(super) fn join<T>(handle: ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The core's two-halves steps ([`Join`]) on two threads: the second half on a scoped
/// thread of its own, the first on the caller's.
pub(super) struct Threads;

impl Join for Threads {
    fn join<A: Send, B: Send>(
        &self,
        first: impl FnOnce() -> A + Send,
        second: impl FnOnce() -> B + Send,
    ) -> (A, B) {
        // `Join` has no room for an error: a thread the system cannot start panics here,
        // as `Scope::spawn` does, and the panic reaches `main` like any other.
        std::thread::scope(|scope| {
            let second = scope.spawn(second);
            let first = first();
            let second = second
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (first, second)
        })
    }
}
