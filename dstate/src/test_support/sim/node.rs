//! One simulated node: an engine, the node-level change feed and liveness, the membership it
//! knows, and its simulated disk.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::engine::{Engine, PersistRequest};
use crate::feed::ChangeFeed;
use crate::ids::{Generation, Incarnation, NodeId};
use crate::liveness::Liveness;
use crate::persist::PersistedShard;
use crate::state::DeltaDistributedState;

/// Lifecycle of a simulated node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeStatus {
    /// Processing frames and timers.
    Running,
    /// Frozen (like a stopped process): takes no input, sends nothing; peers are not told.
    Hung,
    /// Crashed; its disk survives.
    Crashed,
    /// Left the cluster gracefully.
    Left,
}

impl NodeStatus {
    /// Whether the membership layer still lists the node (running or hung).
    pub fn is_member(self) -> bool {
        matches!(self, NodeStatus::Running | NodeStatus::Hung)
    }
}

/// The tag each simulated mutation carries through the engine: its id and the projected
/// view the state had right after it (recorded once the mutation commits).
#[derive(Debug)]
pub(super) struct SimTag<V> {
    pub(super) id: u64,
    pub(super) view: V,
}

pub(super) type SimEngine<D> = Engine<D, SimTag<<D as DeltaDistributedState>::View>>;

/// A membership change, as the cluster layer reports it to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MemberEvent {
    Up(NodeId, Incarnation),
    Down(NodeId),
    Left(NodeId),
}

/// A save on the simulated disk.
#[derive(Debug)]
pub(super) struct PendingSave {
    pub(super) at: Duration,
    pub(super) request: PersistRequest,
    pub(super) fail: bool,
}

pub(super) struct SimNode<D: DeltaDistributedState> {
    pub(super) id: NodeId,
    /// Process incarnation (what the membership layer announces).
    pub(super) incarnation: Incarnation,
    pub(super) status: NodeStatus,
    pub(super) engine: SimEngine<D>,
    pub(super) feed: ChangeFeed,
    pub(super) liveness: Liveness,
    /// Peers this node believes are members, with their process incarnation.
    pub(super) members: BTreeMap<NodeId, Incarnation>,
    pub(super) heartbeat_at: Duration,
    /// Saves on the simulated disk, completing in order.
    pub(super) saves: VecDeque<PendingSave>,
    /// The simulated disk: survives crashes, wiped by a restart without persisted state.
    pub(super) store: Option<PersistedShard>,
    /// The next this many saves fail.
    pub(super) failing_saves: usize,
    /// Membership changes that arrived while the node was hung.
    pub(super) mailbox: Vec<MemberEvent>,
    /// Highest shard incarnation any lifetime of this node used.
    pub(super) shard_incarnation: Incarnation,
    /// Newest generation acknowledged to a caller in the current shard incarnation.
    pub(super) acknowledged: Option<Generation>,
}

impl<D: DeltaDistributedState> SimNode<D> {
    /// When this node next needs [`Sim`](super::Sim) to fire its timers.
    pub(super) fn next_timer(&self, base: Instant) -> Option<Duration> {
        if self.status != NodeStatus::Running {
            return None;
        }
        let instants = [
            self.engine.poll_timeout(),
            self.feed.poll_timeout(),
            self.liveness.poll_timeout(),
        ];
        instants
            .into_iter()
            .flatten()
            .map(|at| at.saturating_duration_since(base))
            .chain(
                [Some(self.heartbeat_at), self.saves.front().map(|s| s.at)]
                    .into_iter()
                    .flatten(),
            )
            .min()
    }
}
