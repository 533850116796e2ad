//! The replication engine: a pure state machine, one per registered state type.
//!
//! # Drive loop
//!
//! The engine does no I/O, reads no clock and spawns nothing. Its owner (the host actor, the
//! simulated cluster, a benchmark) feeds it inputs through `handle_*(now, ..)` methods, then
//! drains every `poll_*` method until each returns `None`:
//!
//! - [`poll_transmit`](Engine::poll_transmit): frames to send to one peer each;
//! - [`poll_persist`](Engine::poll_persist): saves to carry out; report each with
//!   [`handle_persisted`](Engine::handle_persisted) (transmits that depend on it are held);
//! - [`poll_event`](Engine::poll_event): mutation outcomes, queries ready to run, change-feed
//!   notices, view changes, rejected frames;
//! - [`poll_timeout`](Engine::poll_timeout): the next instant at which
//!   [`handle_timeout`](Engine::handle_timeout) must be called.
//!
//! # Time
//!
//! `now` is a monotonic [`Instant`] supplied by the caller; wall-clock time enters only as
//! the incarnation given to [`Engine::new`].

mod local;
mod membership;
mod output;
mod peer;
mod pull;
mod receive;
mod send;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

pub use output::{EngineEvent, PersistRequest, Transmit};

use crate::config::StateConfig;
use crate::diagnostics::{Health, PeerDiagnostics, StateDiagnostics};
use crate::ids::{Generation, NodeId};
use crate::object::{PeerStatus, StateObject, StateViewObject, ViewMap};
use crate::state::DeltaDistributedState;
use crate::wire::Reassembler;
use local::Shard;
use peer::Peer;
use pull::Pulls;

/// How the shard starts: from persisted data or fresh.
#[derive(Debug, Clone)]
pub struct Start<S> {
    /// Initial (or loaded) state.
    pub state: S,
    /// Its generation: loaded, or `(new incarnation, 0)`.
    pub generation: Generation,
    /// Whether committed mutations must be saved before they are acknowledged.
    pub persistent: bool,
}

/// Node-wide facts an engine needs besides its own config.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Largest frame the transport carries (the engine chunks snapshots to fit).
    pub transport_frame_bytes: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            transport_frame_bytes: usize::MAX,
        }
    }
}

/// The replication engine of one state type on one node. See the module docs for the drive
/// loop. `T` is an opaque tag carried with each mutation and handed back with its outcome.
pub struct Engine<D: DeltaDistributedState, T = ()> {
    local: NodeId,
    config: StateConfig,
    frame_limit: usize,
    shard: Shard<D, T>,
    peers: BTreeMap<NodeId, Peer>,
    views: Arc<ViewMap<D::View>>,
    /// Generation of each peer view removed (leave, eviction, retirement) and not replaced
    /// since: until a view of that peer is installed again, nothing older is accepted, so a
    /// late frame of its previous process cannot take the view back in time.
    removed: BTreeMap<NodeId, Generation>,
    views_dirty: bool,
    /// A peer's view changed: the freshness summary (which ignores the own view) is stale.
    summary_dirty: bool,
    emit_view_events: bool,
    pulls: Pulls,
    reassembler: Reassembler,
    transmits: VecDeque<Transmit>,
    events: VecDeque<EngineEvent<D::View, T>>,
    persists: VecDeque<PersistRequest>,
    periodic_next: Option<Instant>,
    delayed_push_at: Option<Instant>,
    snapshot_cache: Option<send::SnapshotCache>,
    /// Reused buffer of push targets (no allocation per change).
    scratch_peers: Vec<NodeId>,
    stats: Stats,
}

#[derive(Debug, Default, Clone)]
struct Stats {
    mutations_committed: u64,
    save_failures: u64,
    rejected_frames: u64,
    last_error: Option<String>,
}

impl<D: DeltaDistributedState, T> Engine<D, T> {
    /// An engine for the shard of `local`, starting from `start` at `now`.
    pub fn new(
        local: NodeId,
        config: StateConfig,
        limits: EngineLimits,
        start: Start<D::State>,
        now: Instant,
    ) -> Self {
        let frame_limit = config
            .max_frame_bytes
            .get()
            .min(limits.transport_frame_bytes)
            .max(256);
        let own_view = Arc::new(D::project_view(&start.state));
        let mut views = ViewMap::new(local);
        views.insert(StateViewObject {
            source: local,
            generation: start.generation,
            view: own_view.clone(),
            synced_at: now,
            pending: None,
            status: PeerStatus::Up,
        });
        let periodic_next = config
            .strategy
            .periodic_full_sync
            .map(|period| now + period);
        Engine {
            local,
            reassembler: Reassembler::new(config.max_snapshot_bytes.get()),
            config,
            frame_limit,
            shard: Shard::new(start, own_view),
            peers: BTreeMap::new(),
            views: Arc::new(views),
            removed: BTreeMap::new(),
            views_dirty: true,
            summary_dirty: true,
            emit_view_events: true,
            pulls: Pulls::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            persists: VecDeque::new(),
            periodic_next,
            delayed_push_at: None,
            snapshot_cache: None,
            scratch_peers: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Whether to emit [`EngineEvent::ViewChanged`] (off when nobody subscribes).
    pub fn set_view_events(&mut self, enabled: bool) {
        self.emit_view_events = enabled;
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next save to carry out.
    pub fn poll_persist(&mut self) -> Option<PersistRequest> {
        self.persists.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<EngineEvent<D::View, T>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let peer_deadlines = self.peers.values().filter_map(|p| p.next_deadline());
        [
            self.periodic_next,
            self.delayed_push_at,
            self.pulls.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .chain(peer_deadlines)
        .min()
    }

    /// The view map as of now, with its freshness summary. Cheap when nothing changed.
    pub fn views(&mut self) -> Arc<ViewMap<D::View>> {
        if self.summary_dirty {
            Arc::make_mut(&mut self.views).refresh_summary();
            self.summary_dirty = false;
        }
        self.views_dirty = false;
        self.views.clone()
    }

    /// Whether the view map changed since the last call to [`views`](Self::views).
    pub fn views_changed(&self) -> bool {
        self.views_dirty
    }

    /// This node's id.
    pub fn local(&self) -> NodeId {
        self.local
    }

    /// The state name.
    pub fn name(&self) -> &'static str {
        D::name()
    }

    /// The committed shard (what has been acknowledged).
    pub fn shard(&self) -> StateObject<&D::State> {
        StateObject {
            generation: self.shard.generation,
            state: &self.shard.state,
        }
    }

    /// The committed generation of the own shard.
    pub fn generation(&self) -> Generation {
        self.shard.generation
    }

    /// True when this node holds a view from every peer that is up (newer data may be
    /// pending under the change feed; queries pull it).
    pub fn is_synced(&self) -> bool {
        self.peers
            .iter()
            .filter(|(_, p)| p.status == PeerStatus::Up)
            .all(|(node, _)| self.views.contains(*node))
    }

    /// The peers currently up.
    pub fn live_peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.status == PeerStatus::Up)
            .map(|(n, _)| *n)
    }

    /// Diagnostics as of `now`.
    pub fn diagnostics(&self, now: Instant) -> StateDiagnostics {
        let mut peers = BTreeMap::new();
        for (node, peer) in &self.peers {
            let view = self.views.get(*node);
            peers.insert(
                *node,
                PeerDiagnostics {
                    node: *node,
                    status: peer.status,
                    generation: view.map(|v| v.generation),
                    pending: view.and_then(|v| v.pending),
                    last_sync: view.map(|v| v.synced_at),
                    sync_age: view.map(|v| v.age(now)),
                    counters: peer.counters.clone(),
                    last_error: peer.last_error.clone(),
                },
            );
        }
        StateDiagnostics {
            state: D::name(),
            generation: self.shard.generation,
            peers,
            mutations_committed: self.stats.mutations_committed,
            save_failures: self.stats.save_failures,
            rejected_frames: self.stats.rejected_frames,
            subscriber_lag: 0,
            last_error: self.stats.last_error.clone(),
        }
    }

    /// Health as of `now`: by view staleness, peers down and failing saves.
    pub fn health(&self, now: Instant) -> Health {
        if self.shard.failing_saves() {
            return Health::Unhealthy;
        }
        let mut health = Health::Healthy;
        for (node, peer) in &self.peers {
            let age = self.views.get(*node).map(|v| v.age(now));
            let too_old = |limit| age.is_none_or(|a| a > limit);
            if peer.status == PeerStatus::Up && too_old(self.config.unhealthy_after) {
                return Health::Unhealthy;
            }
            if peer.status != PeerStatus::Up || too_old(self.config.stale_after) {
                health = Health::Degraded;
            }
        }
        health
    }

    fn set_view(&mut self, view: StateViewObject<D::View>) {
        let source = view.source;
        if self.emit_view_events {
            self.events.push_back(EngineEvent::ViewChanged {
                source,
                view: Some(view.clone()),
            });
        }
        Arc::make_mut(&mut self.views).insert(view);
        self.mark_changed(source);
    }

    fn remove_view(&mut self, source: NodeId) {
        if let Some(removed) = Arc::make_mut(&mut self.views).remove(source) {
            self.removed.insert(source, removed.generation);
            self.mark_changed(source);
            self.reassembler.forget(source);
            if self.emit_view_events {
                self.events
                    .push_back(EngineEvent::ViewChanged { source, view: None });
            }
        }
    }

    /// Update the metadata of a held view without touching its value.
    fn touch_view(&mut self, source: NodeId, update: impl FnOnce(&mut StateViewObject<D::View>)) {
        let Some(current) = self.views.get(source) else {
            return;
        };
        let mut next = current.clone();
        update(&mut next);
        Arc::make_mut(&mut self.views).insert(next);
        self.mark_changed(source);
    }

    fn mark_changed(&mut self, source: NodeId) {
        self.views_dirty = true;
        self.summary_dirty |= source != self.local;
    }

    fn held(&self, source: NodeId) -> Option<&StateViewObject<D::View>> {
        self.views.get(source)
    }

    fn peer_mut(&mut self, node: NodeId) -> &mut Peer {
        self.peers.entry(node).or_insert_with(Peer::new)
    }

    fn record_error(&mut self, error: String) {
        tracing::warn!(state = D::name(), %error, "dstate engine error");
        self.stats.last_error = Some(error);
    }
}

#[cfg(test)]
mod tests;
