//! The registration batches on their way from the store's loader to the planner's walk:
//! a queue of at most [`AHEAD_WHILE_READING`] batches while the sources are read (both
//! cores parse and prepare entries then, and a batch read ahead would only take a core
//! from them), widened to [`AHEAD_ONCE_READ`] once they are read ([`BatchQueue::widen`]).
//! From then until the walk starts, one core finishes the desired state and the other
//! would idle: the loader reads ahead on it, so that the walk finds part of the rows
//! read. The bound keeps what is held ahead to about 120 MB, never the whole store.
//!
//! Either end going away ends the queue: a loader that stops (done, or failed) ends the
//! batches after those queued; a planner that stops makes the loader's next push answer
//! `false`, and the loader stops reading.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::adapters::store::RegistrationBatch;

/// Batches held ahead of the walk at most while the sources are read.
pub(super) const AHEAD_WHILE_READING: usize = 8;

/// Batches held ahead at most once the sources are read: 256 of 4096 rows, about a
/// million rows and 120 MB.
pub(super) const AHEAD_ONCE_READ: usize = 256;

/// The queue both ends share.
#[derive(Default)]
pub(super) struct BatchQueue {
    queued: Mutex<Queued>,
    changed: Condvar,
}

#[derive(Default)]
struct Queued {
    batches: VecDeque<RegistrationBatch>,
    /// How many batches may wait at once.
    bound: usize,
    /// The loader has stopped: no batch will follow those queued.
    loader_gone: bool,
    /// The planner has stopped: no batch will be taken.
    planner_gone: bool,
}

impl BatchQueue {
    /// A queue of [`AHEAD_WHILE_READING`] batches: its loader's end and its planner's.
    pub(super) fn open() -> (Arc<BatchQueue>, LoaderEnd, PlannerEnd) {
        let queue = Arc::new(BatchQueue {
            queued: Mutex::new(Queued {
                bound: AHEAD_WHILE_READING,
                ..Queued::default()
            }),
            changed: Condvar::new(),
        });
        (queue.clone(), LoaderEnd(queue.clone()), PlannerEnd(queue))
    }

    /// Lets the loader read up to [`AHEAD_ONCE_READ`] batches ahead: the sources are read.
    pub(super) fn widen(&self) {
        self.lock().bound = AHEAD_ONCE_READ;
        self.changed.notify_all();
    }

    // A thread that panicked holding the lock left plain data: carry on with it.
    fn lock(&self) -> MutexGuard<'_, Queued> {
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The loader's end: it pushes batches in key order.
pub(super) struct LoaderEnd(Arc<BatchQueue>);

impl LoaderEnd {
    /// Queues `batch`, once there is room. `false` when the planner has stopped.
    pub(super) fn push(&self, batch: RegistrationBatch) -> bool {
        let queue = &self.0;
        let mut queued = queue.lock();
        while queued.batches.len() >= queued.bound && !queued.planner_gone {
            queued = queue
                .changed
                .wait(queued)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if queued.planner_gone {
            return false;
        }
        queued.batches.push_back(batch);
        queue.changed.notify_all();
        true
    }
}

impl Drop for LoaderEnd {
    fn drop(&mut self) {
        self.0.lock().loader_gone = true;
        self.0.changed.notify_all();
    }
}

/// The planner's end: the batches in the order pushed, until the loader stops.
pub(super) struct PlannerEnd(Arc<BatchQueue>);

impl Iterator for PlannerEnd {
    type Item = RegistrationBatch;

    fn next(&mut self) -> Option<RegistrationBatch> {
        let queue = &self.0;
        let mut queued = queue.lock();
        loop {
            if let Some(batch) = queued.batches.pop_front() {
                queue.changed.notify_all();
                return Some(batch);
            }
            if queued.loader_gone {
                return None;
            }
            queued = queue
                .changed
                .wait(queued)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl Drop for PlannerEnd {
    fn drop(&mut self) {
        let mut queued = self.0.lock();
        queued.planner_gone = true;
        // What was read ahead is not needed any more.
        queued.batches.clear();
        drop(queued);
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use registrar_core::state::{RegistrationRow, RegistrationSource};

    use super::*;

    /// A batch of one row, named `n`.
    fn batch(n: usize) -> RegistrationBatch {
        let name = format!("n{n:04}");
        let mut batch = RegistrationBatch::default();
        batch.push(RegistrationRow {
            protocol: "aim",
            name_key: &name,
            im_name: &name,
            account: "a",
            source: RegistrationSource::Manual,
            owner: None,
        });
        batch
    }

    fn name_of(batch: &RegistrationBatch) -> String {
        batch.get(0).unwrap().name_key.to_string()
    }

    /// Waits (yielding) until `queue` holds `count` batches.
    fn until_queued(queue: &BatchQueue, count: usize) {
        while queue.lock().batches.len() != count {
            std::thread::yield_now();
        }
    }

    #[test]
    fn the_loader_reads_eight_ahead_then_more_once_widened_and_every_batch_arrives_in_order() {
        let (queue, loader, planner) = BatchQueue::open();
        let total = AHEAD_ONCE_READ + 50;
        let pushing = std::thread::spawn(move || (0..total).all(|n| loader.push(batch(n))));
        until_queued(&queue, AHEAD_WHILE_READING);
        for _ in 0..1000 {
            assert!(queue.lock().batches.len() <= AHEAD_WHILE_READING);
            std::thread::yield_now();
        }
        queue.widen();
        until_queued(&queue, AHEAD_ONCE_READ);
        let names: Vec<String> = planner.map(|batch| name_of(&batch)).collect();
        assert!(pushing.join().unwrap(), "a push was refused");
        let expected: Vec<String> = (0..total).map(|n| name_of(&batch(n))).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_planner_that_stops_stops_the_loader_and_frees_what_was_read_ahead() {
        let (queue, loader, mut planner) = BatchQueue::open();
        queue.widen();
        assert!(loader.push(batch(0)) && loader.push(batch(1)));
        assert_eq!(
            planner.next().map(|b| name_of(&b)),
            Some("n0000".to_string())
        );
        drop(planner);
        assert_eq!(queue.lock().batches.len(), 0);
        assert!(!loader.push(batch(2)));
    }

    #[test]
    fn a_loader_that_stops_ends_the_batches_after_those_queued() {
        let (_queue, loader, planner) = BatchQueue::open();
        assert!(loader.push(batch(0)));
        drop(loader);
        let names: Vec<String> = planner.map(|batch| name_of(&batch)).collect();
        assert_eq!(names, ["n0000"]);
    }
}
