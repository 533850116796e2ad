//! Peers joining, going down, leaving; timers.

use std::time::Instant;

use super::Engine;
use crate::ids::{Incarnation, NodeId};
use crate::object::PeerStatus;
use crate::state::DeltaDistributedState;

impl<D: DeltaDistributedState, T> Engine<D, T> {
    /// `node` is connected (first time, after a disconnect, or restarted with a new process
    /// `incarnation`). It gets this node's snapshot at once.
    pub fn handle_peer_up(&mut self, now: Instant, node: NodeId, incarnation: Incarnation) {
        if node == self.local {
            return;
        }
        let peer = self.peer_mut(node);
        let restarted = peer
            .node_incarnation
            .is_some_and(|known| known != incarnation);
        peer.node_incarnation = Some(incarnation);
        peer.status = PeerStatus::Up;
        peer.evict_at = None;
        peer.acked = None;
        peer.pull_until = None;
        peer.retry_at = None;
        let _ = now;
        self.touch_view(node, |v| {
            v.status = PeerStatus::Up;
            if restarted {
                // Unconfirmed until the new process sends its shard.
                v.pending = Some(v.generation);
            }
        });
        self.send_snapshot(node, false);
    }

    /// `node` crashed, hung or disconnected: its view stays, marked down, until the
    /// per-state retention ends.
    pub fn handle_peer_down(&mut self, now: Instant, node: NodeId) {
        let retention = self.config.down_retention;
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        if !peer.is_up() {
            return;
        }
        peer.status = PeerStatus::Down { since: now };
        peer.evict_at = Some(now + retention);
        peer.pull_until = None;
        self.touch_view(node, |v| v.status = PeerStatus::Down { since: now });
        self.answered(node);
    }

    /// `node` left gracefully: its view is removed at once.
    pub fn handle_peer_left(&mut self, _now: Instant, node: NodeId) {
        self.peers.remove(&node);
        self.remove_view(node);
        self.answered(node);
    }

    /// Timers: evictions, retries after backpressure, delayed pushes, periodic sync, pull
    /// timeouts. Call at (or after) [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        let evict: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.evict_at.is_some_and(|at| at <= now))
            .map(|(n, _)| *n)
            .collect();
        for node in evict {
            tracing::info!(state = D::name(), %node, "evicting view of a peer down too long");
            self.peers.remove(&node);
            self.remove_view(node);
        }
        let retry: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_up() && p.needs_snapshot)
            .filter(|(_, p)| p.retry_at.is_some_and(|at| at <= now))
            .map(|(n, _)| *n)
            .collect();
        for node in retry {
            self.send_snapshot(node, false);
        }
        for peer in self.peers.values_mut() {
            if peer.pull_until.is_some_and(|until| until <= now) {
                peer.pull_until = None;
            }
        }
        if self.delayed_push_at.is_some_and(|at| at <= now) {
            self.delayed_push_at = None;
            self.push_snapshot_all(now);
        }
        if let Some(period) = self.config.strategy.periodic_full_sync {
            if self.periodic_next.is_some_and(|at| at <= now) {
                self.periodic_next = Some(now + period);
                self.periodic_round();
            }
        }
        self.expire_pulls(now);
    }

    /// Periodic full sync: a snapshot (acknowledged) to every live peer that has not
    /// acknowledged the current generation. Nothing is sent when all have.
    fn periodic_round(&mut self) {
        let current = self.shard.generation;
        let targets: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_up() && p.acked != Some(current))
            .map(|(n, _)| *n)
            .collect();
        for node in targets {
            self.send_snapshot(node, true);
        }
    }
}
