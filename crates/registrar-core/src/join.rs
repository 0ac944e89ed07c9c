//! Two pieces of work that may run at once. The core starts no thread: a step that can
//! split its work in two takes a [`Join`] from its caller and hands it both halves.
//! [`Sequential`] runs them one after the other on the calling thread; the app's
//! `Threads` runs them on two. The result is the same either way.

/// Runs two closures, possibly at once, and returns both results.
pub trait Join: Sync {
    /// Whether splitting work pays: false when the halves would only run in turn.
    const SPLITS: bool = true;

    fn join<A: Send, B: Send>(
        &self,
        first: impl FnOnce() -> A + Send,
        second: impl FnOnce() -> B + Send,
    ) -> (A, B);
}

/// Runs both halves on the calling thread, one after the other.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl Join for Sequential {
    const SPLITS: bool = false;

    fn join<A: Send, B: Send>(
        &self,
        first: impl FnOnce() -> A + Send,
        second: impl FnOnce() -> B + Send,
    ) -> (A, B) {
        (first(), second())
    }
}

/// Work smaller than this many items is done whole: a second thread would cost more than
/// it saves.
pub(crate) const WORTH_SPLITTING: usize = 1 << 16;

/// Sorts `items` by `compare` like `slice::sort_unstable_by` (equal items in any order),
/// its two halves at once through `join` when it is large and `join` splits: then one
/// stable sort merges the two sorted runs.
pub(crate) fn sort_unstable_by<T: Send, J: Join>(
    join: &J,
    items: &mut [T],
    compare: impl Fn(&T, &T) -> std::cmp::Ordering + Sync,
) {
    if !J::SPLITS || items.len() < WORTH_SPLITTING {
        items.sort_unstable_by(compare);
        return;
    }
    let (left, right) = items.split_at_mut(items.len() / 2);
    join.join(
        || left.sort_unstable_by(&compare),
        || right.sort_unstable_by(&compare),
    );
    // A stable sort finds the two runs and merges them.
    items.sort_by(compare);
}

/// A join that runs the second half first, for tests: a split must not depend on which
/// half is done first.
#[cfg(test)]
pub(crate) struct SecondFirst;

#[cfg(test)]
impl Join for SecondFirst {
    fn join<A: Send, B: Send>(
        &self,
        first: impl FnOnce() -> A + Send,
        second: impl FnOnce() -> B + Send,
    ) -> (A, B) {
        let second = second();
        (first(), second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_sort_orders_like_one_sort() {
        // Large enough to be split, with many equal keys.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let items: Vec<(u32, u32)> = (0..(WORTH_SPLITTING as u32 * 3 + 7))
            .map(|n| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state % 1000) as u32, n)
            })
            .collect();
        let by_key = |a: &(u32, u32), b: &(u32, u32)| a.0.cmp(&b.0);
        let mut expected = items.clone();
        expected.sort_by(by_key);
        let mut split = items.clone();
        sort_unstable_by(&SecondFirst, &mut split, by_key);
        let mut sequential = items;
        sort_unstable_by(&Sequential, &mut sequential, by_key);
        for sorted in [split, sequential] {
            let keys: Vec<u32> = sorted.iter().map(|item| item.0).collect();
            let expected_keys: Vec<u32> = expected.iter().map(|item| item.0).collect();
            assert_eq!(keys, expected_keys);
            // The same items, each once.
            let mut ids: Vec<u32> = sorted.iter().map(|item| item.1).collect();
            ids.sort_unstable();
            assert!(ids.iter().enumerate().all(|(at, id)| at as u32 == *id));
        }
        let mut small = vec![(3, 0), (1, 1), (2, 2)];
        sort_unstable_by(&Sequential, &mut small, by_key);
        assert_eq!(small, vec![(1, 1), (2, 2), (3, 0)]);
    }
}
