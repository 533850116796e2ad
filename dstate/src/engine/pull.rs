//! Pull on query: waiting for stale views, coalesced per peer, with a timeout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{Engine, EngineEvent};
use crate::ids::NodeId;
use crate::state::DeltaDistributedState;

/// A query waiting for pulled views.
#[derive(Debug)]
struct Waiter {
    id: u64,
    peers: BTreeSet<NodeId>,
    deadline: Instant,
}

/// Queries waiting for pulls.
#[derive(Debug, Default)]
pub(super) struct Pulls {
    waiters: Vec<Waiter>,
}

impl Pulls {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.waiters.iter().map(|w| w.deadline).min()
    }
}

impl<D: DeltaDistributedState, T> Engine<D, T> {
    /// A query wants every view fresher than `max_staleness`. Stale views of live peers are
    /// pulled (one request per peer however many queries wait); [`EngineEvent::QueryReady`]
    /// with `id` follows once they answered or the pull timeout passed.
    pub fn handle_query(&mut self, now: Instant, id: u64, max_staleness: Duration) {
        if !self.config.strategy.pull_on_query {
            self.events.push_back(EngineEvent::QueryReady { id });
            return;
        }
        let stale: BTreeSet<NodeId> = self
            .live_peers()
            .filter(|node| {
                self.held(*node)
                    .is_none_or(|v| !v.is_fresh(now, max_staleness))
            })
            .collect();
        if stale.is_empty() {
            self.events.push_back(EngineEvent::QueryReady { id });
            return;
        }
        for node in &stale {
            self.request_snapshot(now, *node, false);
        }
        let deadline = now + self.config.pull_timeout;
        self.pulls.waiters.push(Waiter {
            id,
            peers: stale,
            deadline,
        });
    }

    /// `node` answered a pull (or can no longer answer): release queries waiting only on it.
    pub(super) fn answered(&mut self, node: NodeId) {
        let mut ready = Vec::new();
        self.pulls.waiters.retain_mut(|waiter| {
            waiter.peers.remove(&node);
            let done = waiter.peers.is_empty();
            if done {
                ready.push(waiter.id);
            }
            !done
        });
        for id in ready {
            self.events.push_back(EngineEvent::QueryReady { id });
        }
    }

    pub(super) fn expire_pulls(&mut self, now: Instant) {
        let mut ready = Vec::new();
        self.pulls.waiters.retain(|waiter| {
            let expired = waiter.deadline <= now;
            if expired {
                ready.push(waiter.id);
            }
            !expired
        });
        for id in ready {
            self.events.push_back(EngineEvent::QueryReady { id });
        }
    }
}
