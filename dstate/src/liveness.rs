//! Per-peer liveness: a pure deadline tracker fed by heartbeats.
//!
//! Neither ractor_cluster nor kameo's swarm notices a hung peer, so the host sends a small
//! heartbeat to every peer each interval and marks a peer down when nothing was heard from it
//! for the deadline. Drive loop: [`handle_heard`](Liveness::handle_heard) per heartbeat,
//! [`handle_timeout`](Liveness::handle_timeout) at [`poll_timeout`](Liveness::poll_timeout),
//! then drain [`poll_silent`](Liveness::poll_silent).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::ids::NodeId;

#[derive(Debug, Clone, Copy)]
struct Tracked {
    last_heard: Instant,
    silent: bool,
}

/// Tracks when each peer was last heard from.
#[derive(Debug)]
pub struct Liveness {
    deadline: Duration,
    peers: BTreeMap<NodeId, Tracked>,
    silent: VecDeque<NodeId>,
}

impl Liveness {
    /// A tracker that declares a peer silent after `deadline` without a heartbeat.
    pub fn new(deadline: Duration) -> Self {
        Liveness {
            deadline,
            peers: BTreeMap::new(),
            silent: VecDeque::new(),
        }
    }

    /// Start tracking `node` (it just connected).
    pub fn handle_joined(&mut self, now: Instant, node: NodeId) {
        self.peers.insert(
            node,
            Tracked {
                last_heard: now,
                silent: false,
            },
        );
    }

    /// Stop tracking `node` (it left or disconnected).
    pub fn handle_left(&mut self, node: NodeId) {
        self.peers.remove(&node);
    }

    /// A heartbeat from `node` arrived. Returns true when the node had been declared silent
    /// (it is alive again).
    pub fn handle_heard(&mut self, now: Instant, node: NodeId) -> bool {
        let entry = self.peers.entry(node).or_insert(Tracked {
            last_heard: now,
            silent: false,
        });
        entry.last_heard = now;
        std::mem::replace(&mut entry.silent, false)
    }

    /// When the next peer would become silent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter(|t| !t.silent)
            .map(|t| t.last_heard + self.deadline)
            .min()
    }

    /// Declare every peer silent past its deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (node, tracked) in &mut self.peers {
            if !tracked.silent && now.saturating_duration_since(tracked.last_heard) >= self.deadline
            {
                tracked.silent = true;
                self.silent.push_back(*node);
            }
        }
    }

    /// The next peer that went silent.
    pub fn poll_silent(&mut self) -> Option<NodeId> {
        self.silent.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_peer_is_reported_once_and_comes_back_when_heard() {
        let start = Instant::now();
        let mut live = Liveness::new(Duration::from_secs(3));
        live.handle_joined(start, NodeId(2));
        live.handle_joined(start, NodeId(3));
        live.handle_heard(start + Duration::from_secs(2), NodeId(3));
        assert_eq!(live.poll_timeout(), Some(start + Duration::from_secs(3)));
        live.handle_timeout(start + Duration::from_secs(3));
        assert_eq!(live.poll_silent(), Some(NodeId(2)));
        assert_eq!(live.poll_silent(), None);
        live.handle_timeout(start + Duration::from_secs(4));
        assert_eq!(live.poll_silent(), None, "reported once");
        live.handle_timeout(start + Duration::from_secs(5));
        assert_eq!(live.poll_silent(), Some(NodeId(3)));
        assert!(
            live.handle_heard(start + Duration::from_secs(6), NodeId(2)),
            "back to life"
        );
        assert!(!live.handle_heard(start + Duration::from_secs(6), NodeId(2)));
    }
}
