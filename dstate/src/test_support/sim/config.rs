//! Settings of a simulated cluster, its counters and its errors.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::faults::LinkFaults;
use crate::config::{NodeConfig, StateConfig};
use crate::engine::EngineLimits;
use crate::ids::NodeId;

/// Settings of a [`Sim`](super::Sim). Every value is valid once built.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub(super) nodes: NonZeroUsize,
    pub(super) seed: u64,
    pub(super) state: StateConfig,
    pub(super) node: NodeConfig,
    pub(super) limits: EngineLimits,
    pub(super) links: LinkFaults,
    pub(super) persistence: bool,
    pub(super) save_delay: (Duration, Duration),
    pub(super) late_frames: bool,
    pub(super) max_steps_per_instant: u64,
}

impl SimConfig {
    /// `nodes` nodes (`NodeId(1)` to `NodeId(nodes)`; at least one) whose faults and timings
    /// are all drawn from `seed`. The same seed and the same operations replay the same run.
    pub fn new(nodes: usize, seed: u64) -> Self {
        SimConfig {
            nodes: NonZeroUsize::new(nodes).unwrap_or(NonZeroUsize::MIN),
            seed,
            state: StateConfig::default(),
            node: NodeConfig::default(),
            limits: EngineLimits::default(),
            // Perfect links: a scenario adds the faults it is about.
            links: LinkFaults::reliable(),
            // Off: most scenarios are about the network; restarts then start fresh.
            persistence: false,
            // A fast local disk: saves finish within a few milliseconds.
            save_delay: (Duration::from_millis(1), Duration::from_millis(5)),
            // Off: ractor_cluster and kameo tie frames to a connection of one process.
            late_frames: false,
            // Far beyond any legitimate burst at one instant; reaching it means a livelock.
            max_steps_per_instant: 100_000,
        }
    }

    /// Configuration of the state type on every node (strategy, pull timeout, retention...).
    pub fn with_state_config(mut self, config: StateConfig) -> Self {
        self.state = config;
        self
    }

    /// Node-level settings: heartbeat interval and misses (liveness), change-feed batch.
    pub fn with_node_config(mut self, config: NodeConfig) -> Self {
        self.node = config;
        self
    }

    /// Limits of the simulated transport (e.g. a small frame size to force chunking).
    pub fn with_engine_limits(mut self, limits: EngineLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The fault settings every link starts with.
    pub fn with_links(mut self, faults: LinkFaults) -> Self {
        self.links = faults;
        self
    }

    /// Whether nodes persist their shard: mutations are then acknowledged and published only
    /// after a simulated save, and a restart can load the saved shard.
    pub fn with_persistence(mut self, enabled: bool) -> Self {
        self.persistence = enabled;
        self
    }

    /// How long a simulated save takes, drawn uniformly from `min..=max`.
    pub fn with_save_delay(mut self, min: Duration, max: Duration) -> Self {
        self.save_delay = (min.min(max), min.max(max));
        self
    }

    /// Whether frames a node's previous process sent may still arrive after its new process
    /// joined (a transport whose connections do not fence off a restarted peer). Engines must
    /// then discard them as a previous lifetime and never resurrect a retired incarnation.
    pub fn with_late_frames_from_previous_processes(mut self, enabled: bool) -> Self {
        self.late_frames = enabled;
        self
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes.get()
    }
}

/// Counters of a simulated run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimStats {
    /// Steps taken (deliveries, timer firings and operations).
    pub steps: u64,
    /// Frames handed to links.
    pub frames_sent: u64,
    /// Frames that reached a node.
    pub frames_delivered: u64,
    /// Frames the fault model dropped.
    pub frames_lost: u64,
    /// Frames the fault model delivered twice.
    pub frames_duplicated: u64,
    /// Frames the fault model corrupted.
    pub frames_corrupted: u64,
    /// Corrupted frames the decoder rejected (must equal the corrupted frames delivered).
    pub corrupted_rejected: u64,
    /// Sends refused because the link was cut (reported to the engine as a failed send).
    pub sends_refused: u64,
    /// Frames dropped on arrival: link cut meanwhile, or the receiver crashed, hung, left or
    /// restarted since the frame was sent.
    pub frames_unreachable: u64,
    /// Frames engines rejected (spoofed source, undecodable payload).
    pub frames_rejected: u64,
    /// Mutations committed.
    pub mutations_committed: u64,
    /// Mutations rolled back or refused.
    pub mutations_failed: u64,
    /// Saves that succeeded.
    pub saves: u64,
    /// Saves that failed on demand.
    pub save_failures: u64,
    /// Times every invariant was checked.
    pub invariant_checks: u64,
}

/// An operation the simulation could not carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// No node has this id.
    #[error("{0} is not a node of this simulation")]
    UnknownNode(NodeId),
    /// The node is crashed, hung or gone.
    #[error("{0} is not running")]
    NotRunning(NodeId),
}
