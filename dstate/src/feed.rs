//! The node-level change-feed aggregator: a pure state machine.
//!
//! Engines of feed-strategy states report each committed change as a notice
//! `(state, generation)` of this node's own shard. The aggregator keeps only the newest
//! generation per state and, once per batch interval, hands out one batch that the host sends
//! as one message per peer, whatever the number of state types or changes.
//!
//! Drive loop: [`handle_notice`](ChangeFeed::handle_notice) for each notice, then at
//! [`poll_timeout`](ChangeFeed::poll_timeout) call [`handle_timeout`](ChangeFeed::handle_timeout)
//! and drain [`poll_batch`](ChangeFeed::poll_batch).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ids::{Generation, NodeId};
use crate::wire::Notice;

/// Batches change notices of all state types of one node.
#[derive(Debug)]
pub struct ChangeFeed {
    local: NodeId,
    interval: Duration,
    pending: BTreeMap<&'static str, Generation>,
    flush_at: Option<Instant>,
    ready: Option<Vec<Notice>>,
}

impl ChangeFeed {
    /// A feed for node `local` that flushes every `interval`.
    pub fn new(local: NodeId, interval: Duration) -> Self {
        ChangeFeed {
            local,
            interval,
            pending: BTreeMap::new(),
            flush_at: None,
            ready: None,
        }
    }

    /// The own shard of `state` reached `generation`.
    pub fn handle_notice(&mut self, now: Instant, state: &'static str, generation: Generation) {
        let entry = self.pending.entry(state).or_insert(generation);
        *entry = (*entry).max(generation);
        if self.flush_at.is_none() {
            self.flush_at = Some(now + self.interval);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.flush_at
    }

    /// Close the batch if its interval has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.flush_at.is_some_and(|at| at <= now) {
            self.flush_at = None;
            let notices: Vec<Notice> = std::mem::take(&mut self.pending)
                .into_iter()
                .map(|(state, generation)| Notice {
                    state: state.to_owned(),
                    source: self.local,
                    generation,
                })
                .collect();
            if !notices.is_empty() {
                self.ready = Some(notices);
            }
        }
    }

    /// The closed batch, to be sent to every live peer as one message.
    pub fn poll_batch(&mut self) -> Option<Vec<Notice>> {
        self.ready.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Age, Incarnation};

    fn generation(age: u64) -> Generation {
        Generation::new(Incarnation(1), Age(age))
    }

    #[test]
    fn ten_states_at_a_hundred_changes_per_second_make_ten_batches_per_second() {
        let start = Instant::now();
        let names: [&'static str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        let mut feed = ChangeFeed::new(NodeId(1), Duration::from_millis(100));
        let mut batches = Vec::new();
        // One second: every state changes every 10 ms.
        for tick in 0..100u64 {
            let now = start + Duration::from_millis(tick * 10);
            feed.handle_timeout(now);
            batches.extend(std::iter::from_fn(|| feed.poll_batch()));
            for name in names {
                feed.handle_notice(now, name, generation(tick + 1));
            }
        }
        feed.handle_timeout(start + Duration::from_secs(1));
        batches.extend(std::iter::from_fn(|| feed.poll_batch()));
        assert!(batches.len() <= 10, "{} batches", batches.len());
        let last = batches.last().expect("at least one batch");
        assert_eq!(last.len(), 10, "one notice per state");
        assert!(
            last.iter().all(|n| n.generation == generation(100)),
            "newest kept"
        );
    }

    #[test]
    fn nothing_is_sent_when_nothing_changed() {
        let start = Instant::now();
        let mut feed = ChangeFeed::new(NodeId(1), Duration::from_millis(100));
        assert_eq!(feed.poll_timeout(), None);
        feed.handle_timeout(start + Duration::from_secs(5));
        assert!(feed.poll_batch().is_none());
    }
}
