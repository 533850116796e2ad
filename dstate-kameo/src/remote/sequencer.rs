//! Receive-side ordering of frame batches from one sending link.
//!
//! kameo runs each remote request in its own task, so batches sent with several in flight
//! arrive out of order. Each batch carries its sequence number and the sender's `floor`:
//! every batch below `floor` was either acknowledged or abandoned by the sender. The
//! sequencer releases batches in sequence order, waits for a gap only while the sender may
//! still fill it, and never holds more than `max_pending` batches.

use std::collections::BTreeMap;

/// Ordering state of one sending link (a session token and a stream id).
#[derive(Debug)]
pub(crate) struct Sequencer<T> {
    next: u64,
    pending: BTreeMap<u64, T>,
    max_pending: usize,
}

/// What became of one received batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// Already seen (a retry of a batch that did arrive): dropped.
    Duplicate,
    /// Kept or released; released batches went to the output in order.
    Accepted,
}

impl<T> Sequencer<T> {
    pub(crate) fn new(max_pending: usize) -> Self {
        Sequencer {
            next: 0,
            pending: BTreeMap::new(),
            max_pending: max_pending.max(1),
        }
    }

    /// Takes batch `seq` (with the sender's `floor`) and pushes every batch now in order
    /// onto `out`.
    pub(crate) fn handle_batch(
        &mut self,
        seq: u64,
        floor: u64,
        batch: T,
        out: &mut Vec<T>,
    ) -> Received {
        if seq < self.next || self.pending.contains_key(&seq) {
            self.advance_floor(floor, out);
            return Received::Duplicate;
        }
        self.pending.insert(seq, batch);
        self.advance_floor(floor, out);
        self.release_in_order(out);
        while self.pending.len() > self.max_pending {
            // The sender outran the window it promised: give up waiting for the gap.
            if let Some((&lowest, _)) = self.pending.iter().next() {
                self.skip_to(lowest, out);
                self.release_in_order(out);
            }
        }
        Received::Accepted
    }

    /// Batches held back waiting for a gap.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    fn advance_floor(&mut self, floor: u64, out: &mut Vec<T>) {
        if floor > self.next {
            self.skip_to(floor, out);
            self.release_in_order(out);
        }
    }

    /// Releases everything below `to` in order and continues from `to`.
    fn skip_to(&mut self, to: u64, out: &mut Vec<T>) {
        let rest = self.pending.split_off(&to);
        out.extend(std::mem::replace(&mut self.pending, rest).into_values());
        self.next = self.next.max(to);
    }

    fn release_in_order(&mut self, out: &mut Vec<T>) {
        while let Some(batch) = self.pending.remove(&self.next) {
            out.push(batch);
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seq: &mut Sequencer<u64>, s: u64, floor: u64) -> Vec<u64> {
        let mut out = Vec::new();
        seq.handle_batch(s, floor, s, &mut out);
        out
    }

    #[test]
    fn in_order_batches_pass_straight_through() {
        let mut seq = Sequencer::new(8);
        for i in 0..5 {
            assert_eq!(feed(&mut seq, i, i), vec![i]);
        }
    }

    #[test]
    fn reordered_batches_are_released_in_order() {
        let mut seq = Sequencer::new(8);
        assert_eq!(feed(&mut seq, 2, 0), Vec::<u64>::new());
        assert_eq!(feed(&mut seq, 1, 0), Vec::<u64>::new());
        assert_eq!(feed(&mut seq, 0, 0), vec![0, 1, 2]);
        assert_eq!(seq.pending(), 0);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut seq = Sequencer::new(8);
        feed(&mut seq, 0, 0);
        let mut out = Vec::new();
        assert_eq!(seq.handle_batch(0, 0, 0, &mut out), Received::Duplicate);
        feed(&mut seq, 3, 0);
        assert_eq!(seq.handle_batch(3, 0, 3, &mut out), Received::Duplicate);
        assert!(out.is_empty());
    }

    #[test]
    fn an_abandoned_gap_is_skipped_when_the_floor_passes_it() {
        let mut seq = Sequencer::new(8);
        assert_eq!(feed(&mut seq, 0, 0), vec![0]);
        // Batch 1 was abandoned by the sender; 2 waits until the floor moves past 1.
        assert_eq!(feed(&mut seq, 2, 1), Vec::<u64>::new());
        assert_eq!(feed(&mut seq, 3, 2), vec![2, 3]);
    }

    #[test]
    fn pending_never_exceeds_the_bound() {
        let mut seq = Sequencer::new(3);
        let mut released = Vec::new();
        for s in 1..10 {
            released.extend(feed(&mut seq, s, 0));
            assert!(seq.pending() <= 3);
        }
        assert!(released.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(released.len() + seq.pending(), 9);
    }
}
