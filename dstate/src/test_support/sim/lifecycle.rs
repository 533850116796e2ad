//! Processes and membership: booting a node (loading its disk by the incarnation rules),
//! crashes, hangs, restarts, and the membership layer's announcements.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::time::Duration;

use rand::Rng;

use super::node::{MemberEvent, NodeStatus, SimNode};
use super::Sim;
use crate::engine::{Engine, Start};
use crate::feed::ChangeFeed;
use crate::ids::{Age, Generation, Incarnation, NodeId};
use crate::liveness::Liveness;
use crate::persist::PersistedShard;
use crate::state::{DeltaDistributedState, DeserializeError};

/// Virtual wall clock at the start of every run (what incarnations are drawn from).
const WALL_START_MILLIS: u64 = 1_700_000_000_000;

impl<D> Sim<D>
where
    D: DeltaDistributedState,
    D::View: PartialEq + Debug,
{
    fn wall_millis(&self) -> u64 {
        WALL_START_MILLIS.saturating_add(u64::try_from(self.now.as_millis()).unwrap_or(u64::MAX))
    }

    /// A new process for `id`; `previous` is the process it replaces (its disk kept or wiped
    /// by the caller).
    pub(super) fn boot(&mut self, id: NodeId, previous: Option<SimNode<D>>) -> SimNode<D> {
        let wall = self.wall_millis();
        let incarnation = Incarnation::next_after(previous.as_ref().map(|p| p.incarnation), wall);
        let store = previous.as_ref().and_then(|p| p.store.clone());
        let earlier_shard = previous.as_ref().map(|p| p.shard_incarnation);
        let start = self.start_from(id, store.as_ref(), earlier_shard, wall);
        let acknowledged = previous.and_then(|p| p.acknowledged).filter(|acked| {
            // A loaded shard continues its lifetime; a fresh one starts a new one.
            acked.incarnation == start.generation.incarnation
        });
        if let (Some(acked), Some(stored)) = (acknowledged, store.as_ref()) {
            let loaded = Generation::new(stored.incarnation, stored.age);
            if loaded < acked {
                self.checker.problem(format!(
                    "{id} acknowledged {acked} but restarted from its disk at {loaded}"
                ));
            }
        }
        self.checker
            .record(id, start.generation, D::project_view(&start.state));
        let shard_incarnation = start.generation.incarnation;
        let mut engine = Engine::new(
            id,
            self.config.state.clone(),
            self.config.limits,
            start,
            self.instant(),
        );
        engine.set_view_events(false);
        let node_config = &self.config.node;
        let interval = u64::try_from(node_config.heartbeat_interval.as_micros()).unwrap_or(1);
        let stagger = Duration::from_micros(self.rng.gen_range(0..interval.max(1)));
        SimNode {
            id,
            incarnation,
            status: NodeStatus::Running,
            engine,
            feed: ChangeFeed::new(id, node_config.feed_batch_interval),
            liveness: Liveness::new(node_config.liveness_deadline()),
            members: Default::default(),
            heartbeat_at: self.now.saturating_add(stagger),
            saves: VecDeque::new(),
            store,
            failing_saves: 0,
            mailbox: Vec::new(),
            shard_incarnation,
            acknowledged,
        }
    }

    /// The shard a new process starts from: the disk's if persistence is on and it decodes,
    /// otherwise the initial state under an incarnation newer than any earlier one.
    fn start_from(
        &mut self,
        id: NodeId,
        store: Option<&PersistedShard>,
        earlier: Option<Incarnation>,
        wall: u64,
    ) -> Start<D::State> {
        let persistent = self.config.persistence;
        let mut earlier = earlier;
        if let Some(stored) = store.filter(|_| persistent) {
            match decode_stored::<D>(stored) {
                Ok(state) => {
                    return Start {
                        state,
                        generation: Generation::new(stored.incarnation, stored.age),
                        persistent,
                    }
                }
                Err(error) => {
                    self.checker
                        .problem(format!("{id}'s stored shard does not decode: {error}"));
                    earlier = earlier.max(Some(stored.incarnation));
                }
            }
        }
        Start {
            state: self.initial.clone(),
            generation: Generation::new(Incarnation::next_after(earlier, wall), Age(0)),
            persistent,
        }
    }

    /// Replace `id`'s (dead) process with a new one and announce it.
    pub(super) fn reboot(&mut self, id: NodeId, persisted: bool) {
        let Some(mut old) = self.nodes.remove(&id) else {
            return;
        };
        if !persisted {
            old.store = None;
        }
        let node = self.boot(id, Some(old));
        let incarnation = node.incarnation;
        self.nodes.insert(id, node);
        self.checker.restarted(id);
        self.announce(id, MemberEvent::Up(id, incarnation));
        self.join_members(id);
    }

    /// `id` crashes: reported down to every peer.
    pub(super) fn kill(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.status = NodeStatus::Crashed;
            node.saves.clear();
            node.mailbox.clear();
        }
        self.announce(id, MemberEvent::Down(id));
    }

    /// A hung `id` runs again and catches up with the membership changes it missed.
    pub(super) fn wake(&mut self, id: NodeId) {
        let missed = match self.nodes.get_mut(&id) {
            Some(node) => {
                node.status = NodeStatus::Running;
                std::mem::take(&mut node.mailbox)
            }
            None => return,
        };
        for event in missed {
            self.apply_member_event(id, event);
        }
    }

    /// `id` learns every current member.
    pub(super) fn join_members(&mut self, id: NodeId) {
        let peers: Vec<(NodeId, Incarnation)> = self
            .nodes
            .values()
            .filter(|n| n.id != id && n.status.is_member())
            .map(|n| (n.id, n.incarnation))
            .collect();
        for (peer, incarnation) in peers {
            self.apply_member_event(id, MemberEvent::Up(peer, incarnation));
        }
    }

    /// The membership layer reports `event` about `source` to every other member.
    pub(super) fn announce(&mut self, source: NodeId, event: MemberEvent) {
        let observers: Vec<(NodeId, NodeStatus)> = self
            .nodes
            .values()
            .filter(|n| n.id != source)
            .map(|n| (n.id, n.status))
            .collect();
        for (observer, status) in observers {
            match status {
                NodeStatus::Running => self.apply_member_event(observer, event),
                NodeStatus::Hung => {
                    if let Some(node) = self.nodes.get_mut(&observer) {
                        node.mailbox.push(event);
                    }
                }
                _ => {}
            }
        }
    }

    pub(super) fn apply_member_event(&mut self, observer: NodeId, event: MemberEvent) {
        let now = self.instant();
        let Some(node) = self.nodes.get_mut(&observer) else {
            return;
        };
        match event {
            MemberEvent::Up(peer, incarnation) => {
                node.members.insert(peer, incarnation);
                node.liveness.handle_joined(now, peer);
                node.engine.handle_peer_up(now, peer, incarnation);
                self.checker.joined(observer, peer);
            }
            MemberEvent::Down(peer) => {
                node.members.remove(&peer);
                node.liveness.handle_left(peer);
                node.engine.handle_peer_down(now, peer);
            }
            MemberEvent::Left(peer) => {
                node.members.remove(&peer);
                node.liveness.handle_left(peer);
                node.engine.handle_peer_left(now, peer);
                self.checker.left(observer, peer);
            }
        }
    }
}

/// Decode a stored shard as the host's loader does (migrating older storage versions).
fn decode_stored<D: DeltaDistributedState>(
    stored: &PersistedShard,
) -> Result<D::State, DeserializeError> {
    use std::cmp::Ordering;
    match stored.storage_version.cmp(&D::STORAGE_VERSION) {
        Ordering::Equal => D::deserialize_state(&stored.state, stored.storage_version),
        Ordering::Less => D::migrate_state(&stored.state, stored.storage_version),
        Ordering::Greater => Err(DeserializeError::UnsupportedVersion {
            version: stored.storage_version,
        }),
    }
}
