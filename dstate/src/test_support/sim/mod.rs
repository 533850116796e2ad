//! A deterministic simulated cluster: many engines, a virtual clock, a seeded fault model.
//!
//! [`Sim`] runs `N` nodes in one thread. Each node drives an [`Engine`](crate::engine::Engine)
//! of one state type `D` the way the real host does: a node-level
//! [`ChangeFeed`](crate::feed::ChangeFeed) batches change notices, a heartbeat carries the
//! node's own generations every interval, [`Liveness`](crate::liveness::Liveness) marks silent
//! peers down, and a simulated disk saves the engine's persist requests after a delay. Frames
//! travel as bytes through per-link faults (loss, duplication, reordering, delay, corruption,
//! partitions); nodes crash, hang, restart with or without their persisted shard, and leave.
//!
//! Nothing sleeps and no clock drives the run: time is virtual (an offset from one `Instant`
//! taken at construction, whose value nothing depends on) and only moves when
//! [`step`](Sim::step), [`advance`](Sim::advance) or [`run_until`](Sim::run_until) reach the
//! next due event; every random choice comes from one `SmallRng` seeded from
//! [`SimConfig::new`]. The same seed and the same operations replay the same run.
//!
//! # Model
//!
//! - **Membership** comes from a simulated cluster layer, as ractor_cluster or kameo would
//!   report it: a crash is reported down to every peer at once, a restart announces the new
//!   process incarnation, a graceful leave is reported as a leave. A hang is reported to
//!   nobody: peers find out through missed heartbeats ([`Liveness`](crate::liveness::Liveness)).
//! - **Frames** are tied to the connection of one sender process and one receiver process:
//!   frames to a crashed, hung or replaced process are lost, and frames of a previous
//!   process are dropped unless
//!   [`SimConfig::with_late_frames_from_previous_processes`] says otherwise.
//! - **Sends** on a cut link are refused and the engine hears of it
//!   ([`handle_send_failed`](crate::engine::Engine::handle_send_failed)), like a transport
//!   without a connection; frames already in flight on a link that is cut are lost.
//! - **Disk**: each save completes after a drawn delay (or fails on demand), in order; a
//!   crash loses the save in flight but keeps the disk. A restart with persisted state loads
//!   the disk (keeping incarnation and age); without, the disk is wiped and the shard starts
//!   fresh under a newer incarnation.
//!
//! # Invariants
//!
//! Checked after every step; a violation panics with the seed (these are test assertions):
//!
//! 1. a node's own view is `project_view` of its committed state, at its committed
//!    generation;
//! 2. every view a node holds of a peer at generation `g` equals the view that peer had when
//!    it committed `g` (a generation never committed is never held): deltas applied by
//!    receivers agree with the owner's projection;
//! 3. the generation a node holds for a peer never goes backwards during the observer's
//!    lifetime;
//! 4. no ghost: once a node received anything of a peer's newer incarnation, it never holds
//!    a view of an older one;
//! 5. after a node processed a peer's graceful leave, it holds no view of that peer until
//!    the peer rejoins;
//! 6. every corrupted frame is rejected by the decoder, every intact frame decodes;
//! 7. a node restarted from its disk comes back at a generation at least as new as every
//!    mutation it acknowledged;
//! 8. time advances: a bounded number of steps happen at one instant (no livelock).
//!
//! [`Sim::check_converged`] states what "converged" means, and [`Sim::settle`] how the
//! cluster gets there once the faults stop.
//!
//! Scenarios are data: a list of [`Op`]s run by [`Sim::run_ops`], which proptest can generate
//! as easily as a test can write.
//!
//! ```
//! use std::time::Duration;
//! use dstate::test_support::sim::{LinkFaults, Op, Sim, SimConfig};
//! use dstate::test_support::{apply_test_change, TestDeltaChange, TestDeltaInner, TestDeltaState};
//! use dstate::NodeId;
//!
//! fn apply(state: &mut TestDeltaInner, change: &TestDeltaChange) -> TestDeltaChange {
//!     apply_test_change(state, change);
//!     change.clone()
//! }
//!
//! let config = SimConfig::new(3, 42).with_links(LinkFaults::lossy_reordering());
//! let mut sim = Sim::<TestDeltaState>::new(config, TestDeltaInner::default());
//! sim.run_ops(
//!     &[
//!         Op::Mutate { node: NodeId(1), change: TestDeltaChange::Add(5) },
//!         Op::Partition { a: vec![NodeId(1)], b: vec![NodeId(2), NodeId(3)] },
//!         Op::Mutate { node: NodeId(1), change: TestDeltaChange::Add(1) },
//!         Op::Advance(Duration::from_secs(5)),
//!         Op::Settle,
//!         Op::AssertConverged,
//!     ],
//!     apply,
//! );
//! assert_eq!(sim.views(NodeId(3)).unwrap().view(NodeId(1)).unwrap().total, 6);
//! ```

mod config;
mod drive;
mod faults;
mod invariants;
mod laws;
mod lifecycle;
mod network;
mod node;
mod scenario;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

pub use config::{SimConfig, SimError, SimStats};
pub use faults::LinkFaults;
pub use invariants::Violation;
pub use laws::{check_delta_law, LawViolation};
pub use node::NodeStatus;
pub use scenario::{ApplyFn, Op};

use crate::diagnostics::StateDiagnostics;
use crate::error::MutationError;
use crate::ids::{Generation, NodeId};
use crate::object::{StateObject, ViewMap};
use crate::persist::PersistedShard;
use crate::state::DeltaDistributedState;
use faults::FaultModel;
use invariants::Checker;
use network::Network;
use node::{SimNode, SimTag};

/// Identifies one mutation submitted to a [`Sim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MutationId(pub u64);

/// Identifies one query submitted to a [`Sim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// A simulated cluster of nodes replicating the state type `D`. See the module docs.
pub struct Sim<D: DeltaDistributedState> {
    config: SimConfig,
    base: Instant,
    now: Duration,
    rng: SmallRng,
    initial: D::State,
    nodes: BTreeMap<NodeId, SimNode<D>>,
    network: Network,
    faults: FaultModel,
    checker: Checker<D>,
    stats: SimStats,
    next_id: u64,
    outcomes: BTreeMap<MutationId, Result<Generation, MutationError>>,
    ready_queries: BTreeSet<QueryId>,
    /// Steps taken at the current instant (livelock detection).
    steps_at_now: u64,
}

impl<D> Sim<D>
where
    D: DeltaDistributedState,
    D::View: PartialEq + Debug,
{
    /// A cluster of `config.nodes()` nodes, each starting from `initial`, all joined to each
    /// other (the first snapshots are in flight).
    ///
    /// # Panics
    ///
    /// If an invariant is violated while the nodes join (a bug in the engine or in `D`).
    pub fn new(config: SimConfig, initial: D::State) -> Self {
        let mut sim = Sim {
            base: Instant::now(),
            now: Duration::ZERO,
            rng: SmallRng::seed_from_u64(config.seed),
            faults: FaultModel::new(config.links.clone()),
            config,
            initial,
            nodes: BTreeMap::new(),
            network: Network::default(),
            checker: Checker::new(),
            stats: SimStats::default(),
            next_id: 0,
            outcomes: BTreeMap::new(),
            ready_queries: BTreeSet::new(),
            steps_at_now: 0,
        };
        let ids: Vec<NodeId> = (1..=sim.config.nodes.get() as u64).map(NodeId).collect();
        for id in &ids {
            let node = sim.boot(*id, None);
            sim.nodes.insert(*id, node);
        }
        for id in &ids {
            sim.join_members(*id);
        }
        sim.finish_step();
        sim
    }

    /// Mutate `node`'s shard with `apply`, which changes the state and returns the change.
    /// The outcome is available from [`mutation_result`](Self::mutation_result) once
    /// committed (at once without persistence, after the simulated save with it).
    ///
    /// # Panics
    ///
    /// If an invariant is violated afterwards.
    pub fn mutate<F>(&mut self, node: NodeId, apply: F) -> Result<MutationId, SimError>
    where
        F: FnOnce(&mut D::State) -> D::StateDeltaChange + Send + 'static,
    {
        self.running(node)?;
        let id = self.next_id();
        let now = self.instant();
        if let Some(sim_node) = self.nodes.get_mut(&node) {
            sim_node
                .engine
                .handle_mutation(now, move |state: &mut D::State| {
                    let change = apply(state);
                    let view = D::project_view(state);
                    (change, SimTag { id, view })
                });
        }
        self.finish_step();
        Ok(MutationId(id))
    }

    /// Run a query on `node` that wants every view fresher than `max_staleness`: stale views
    /// are pulled; [`is_query_ready`](Self::is_query_ready) turns true once they answered or
    /// the pull timeout passed.
    ///
    /// # Panics
    ///
    /// If an invariant is violated afterwards.
    pub fn query(&mut self, node: NodeId, max_staleness: Duration) -> Result<QueryId, SimError> {
        self.running(node)?;
        let id = self.next_id();
        let now = self.instant();
        if let Some(sim_node) = self.nodes.get_mut(&node) {
            sim_node.engine.handle_query(now, id, max_staleness);
        }
        self.finish_step();
        Ok(QueryId(id))
    }

    /// `node` crashes: its engine and in-flight save are lost, its disk survives, and the
    /// membership layer reports it down to every peer.
    pub fn crash(&mut self, node: NodeId) -> Result<(), SimError> {
        self.member(node)?;
        self.kill(node);
        self.finish_step();
        Ok(())
    }

    /// `node` freezes (like a stopped process): no timers, frames to it are lost, and nobody
    /// is told; peers notice through missed heartbeats.
    pub fn hang(&mut self, node: NodeId) -> Result<(), SimError> {
        self.running(node)?;
        if let Some(sim_node) = self.nodes.get_mut(&node) {
            sim_node.status = NodeStatus::Hung;
        }
        Ok(())
    }

    /// A hung `node` continues: membership changes it missed are applied, overdue timers fire.
    pub fn resume(&mut self, node: NodeId) -> Result<(), SimError> {
        let status = self.status(node).ok_or(SimError::UnknownNode(node))?;
        if status != NodeStatus::Hung {
            return Err(SimError::NotRunning(node));
        }
        self.wake(node);
        self.finish_step();
        Ok(())
    }

    /// Start a new process for `node` (crashing the current one if it is still a member).
    /// With `persisted`, the shard is loaded from the node's disk and keeps its incarnation and
    /// age; otherwise the disk is wiped and the shard starts from the initial state under a new
    /// incarnation, greater than every earlier one. The new process gets a new process
    /// incarnation, announced to every peer.
    pub fn restart(&mut self, node: NodeId, persisted: bool) -> Result<(), SimError> {
        let status = self.status(node).ok_or(SimError::UnknownNode(node))?;
        if status.is_member() {
            self.kill(node);
        }
        self.reboot(node, persisted);
        self.finish_step();
        Ok(())
    }

    /// `node` leaves gracefully: every peer removes its view at once.
    pub fn leave(&mut self, node: NodeId) -> Result<(), SimError> {
        self.running(node)?;
        if let Some(sim_node) = self.nodes.get_mut(&node) {
            sim_node.status = NodeStatus::Left;
            sim_node.saves.clear();
        }
        self.announce(node, node::MemberEvent::Left(node));
        self.finish_step();
        Ok(())
    }

    /// Cut every link between a node of `side_a` and a node of `side_b`, both ways. Frames
    /// already in flight on a cut link are lost; sends are refused (the engine is told).
    pub fn partition(&mut self, side_a: &[NodeId], side_b: &[NodeId]) {
        self.faults.partition(side_a, side_b);
    }

    /// Restore every cut link.
    pub fn heal(&mut self) {
        self.faults.heal();
    }

    /// Every link (both directions of every pair) gets `faults`.
    pub fn set_faults(&mut self, faults: LinkFaults) {
        self.faults.set_all(faults);
    }

    /// The directed link `from -> to` gets `faults`.
    pub fn set_link_faults(&mut self, from: NodeId, to: NodeId, faults: LinkFaults) {
        self.faults.set_link(from, to, faults);
    }

    /// The next `count` saves of `node` fail (the engine rolls those mutations back).
    pub fn fail_next_saves(&mut self, node: NodeId, count: usize) -> Result<(), SimError> {
        let sim_node = self
            .nodes
            .get_mut(&node)
            .ok_or(SimError::UnknownNode(node))?;
        sim_node.failing_saves = count;
        Ok(())
    }

    /// Take the next step: deliver the next frame or fire the next node's due timers,
    /// whichever comes first (moving the clock to it). Returns false when nothing is
    /// scheduled.
    ///
    /// # Panics
    ///
    /// If an invariant is violated after the step, or a livelock keeps time from advancing.
    pub fn step(&mut self) -> bool {
        let Some(at) = self.next_event() else {
            return false;
        };
        self.set_now(at);
        if self.network.next_at().is_some_and(|t| t <= self.now) {
            self.deliver_next();
        } else if let Some(node) = self.next_due_node() {
            self.fire_timers(node);
        }
        self.finish_step();
        true
    }

    /// When the next step is due (`None` when nothing is scheduled).
    pub fn next_event_at(&self) -> Option<Instant> {
        self.next_event().map(|at| self.base + at)
    }

    fn run_to(&mut self, target: Duration) {
        let target = target.min(drive::HORIZON);
        while self.next_event().is_some_and(|at| at <= target) {
            self.step();
        }
        self.set_now(target);
    }

    /// Take every step due up to `deadline`, then move the clock to it.
    ///
    /// # Panics
    ///
    /// As [`step`](Self::step).
    pub fn run_until(&mut self, deadline: Instant) {
        self.run_to(deadline.saturating_duration_since(self.base));
    }

    /// Let `by` of virtual time pass, taking every step due. The cost grows with the time
    /// crossed (every node's heartbeat ticks each interval); time stops at a horizon of
    /// about 136 years.
    ///
    /// # Panics
    ///
    /// As [`step`](Self::step).
    pub fn advance(&mut self, by: Duration) {
        self.run_to(self.now.saturating_add(by));
    }

    /// Stop the faults and let the cluster repair itself: heal partitions, stop loss,
    /// duplication and corruption (delays and ordering stay), stop failing saves, resume hung
    /// nodes, wait long enough for liveness, heartbeats, periodic sync and pending saves, then
    /// have every node query with a zero staleness bound (what a feed-and-pull state needs to
    /// fetch what it was only notified of) and wait for the answers. Crashed nodes stay down.
    ///
    /// # Panics
    ///
    /// As [`step`](Self::step).
    pub fn settle(&mut self) {
        self.heal();
        self.faults.calm();
        let hung: Vec<NodeId> = self
            .nodes
            .iter_mut()
            .map(|(id, node)| {
                node.failing_saves = 0;
                (*id, node.status)
            })
            .filter(|(_, status)| *status == NodeStatus::Hung)
            .map(|(id, _)| id)
            .collect();
        for node in hung {
            self.wake(node);
        }
        self.finish_step();
        let node = &self.config.node;
        let state = &self.config.state;
        let round_trip = (self
            .faults
            .max_delay()
            .saturating_add(self.config.save_delay.1))
        .saturating_mul(4);
        let periodic = state.strategy.periodic_full_sync.unwrap_or_default();
        let repair = [
            node.liveness_deadline(),
            node.heartbeat_interval.saturating_mul(2),
            node.feed_batch_interval,
            state.pull_timeout,
            periodic.saturating_mul(2),
            round_trip.saturating_mul(2),
        ]
        .into_iter()
        .fold(Duration::ZERO, Duration::saturating_add);
        let pull_timeout = state.pull_timeout;
        self.advance(repair);
        let running: Vec<NodeId> = self.running_nodes();
        for id in running {
            // Running was just checked; a query cannot fail.
            let _ = self.query(id, Duration::ZERO);
        }
        self.advance(pull_timeout.saturating_add(round_trip.saturating_mul(2)));
    }

    /// Whether the views have converged: every running node holds, for every other running
    /// node, an up, non-pending view at that node's generation equal to `project_view` of its
    /// state; views of crashed nodes are marked down (or evicted) and views of nodes that left
    /// are gone.
    pub fn check_converged(&mut self) -> Result<(), Violation> {
        let problems = invariants::divergences(&mut self.nodes);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.violation(problems))
        }
    }

    /// [`check_converged`](Self::check_converged) as a test assertion.
    ///
    /// # Panics
    ///
    /// When the views have not converged; the message carries the seed.
    pub fn assert_converged(&mut self) {
        if let Err(violation) = self.check_converged() {
            panic!("not converged: {violation}");
        }
    }

    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The virtual now.
    pub fn now(&self) -> Instant {
        self.instant()
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now
    }

    /// Every node id, in order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The lifecycle status of `node`.
    pub fn status(&self, node: NodeId) -> Option<NodeStatus> {
        self.nodes.get(&node).map(|n| n.status)
    }

    /// The view map of a running or hung `node`.
    pub fn views(&mut self, node: NodeId) -> Option<Arc<ViewMap<D::View>>> {
        let sim_node = self.nodes.get_mut(&node)?;
        sim_node.status.is_member().then(|| sim_node.engine.views())
    }

    /// The committed shard of a running or hung `node`.
    pub fn shard(&self, node: NodeId) -> Option<StateObject<D::State>> {
        let sim_node = self.nodes.get(&node)?;
        sim_node.status.is_member().then(|| {
            let shard = sim_node.engine.shard();
            StateObject {
                generation: shard.generation,
                state: shard.state.clone(),
            }
        })
    }

    /// Diagnostics of a running or hung `node`'s engine.
    pub fn diagnostics(&self, node: NodeId) -> Option<StateDiagnostics> {
        let sim_node = self.nodes.get(&node)?;
        sim_node
            .status
            .is_member()
            .then(|| sim_node.engine.diagnostics(self.instant()))
    }

    /// What `node`'s simulated disk holds.
    pub fn stored(&self, node: NodeId) -> Option<&PersistedShard> {
        self.nodes.get(&node)?.store.as_ref()
    }

    /// The outcome of a mutation, once it committed or failed.
    pub fn mutation_result(&self, id: MutationId) -> Option<&Result<Generation, MutationError>> {
        self.outcomes.get(&id)
    }

    /// Whether a query's pulls finished (answered or timed out).
    pub fn is_query_ready(&self, id: QueryId) -> bool {
        self.ready_queries.contains(&id)
    }

    /// Frames in flight.
    pub fn in_flight(&self) -> usize {
        self.network.in_flight()
    }

    /// Counters of the run.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }
}

impl<D: DeltaDistributedState> Debug for Sim<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.config.seed)
            .field("elapsed", &self.now)
            .field("nodes", &self.nodes.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
