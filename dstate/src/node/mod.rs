//! The runtime-generic host: one actor per engine, a control actor per node.
//!
//! A [`Node`] runs on any [`ActorRuntime`] and [`Transport`]. Registering a state type
//! loads its shard, starts its engine in an actor, and returns a typed [`StateHandle`].
//! The node's control actor turns membership events into engine inputs, sends heartbeats
//! (marking silent peers down and asking the transport to redial them), and flushes the
//! change feed.

mod control;
mod engine_actor;
mod handle;
mod inbound;
mod load;
mod query;
mod registry;

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::{broadcast, oneshot, watch};

pub use engine_actor::ChangeEvent;
pub use handle::{SimpleHandle, StateHandle, Subscription};
pub use inbound::Inbound;
pub use query::{Query, QueryResult};

use crate::config::{NodeConfig, StateConfig};
use crate::engine::{Engine, EngineLimits};
use crate::error::{RegisterError, TransportError};
use crate::ids::{Incarnation, NodeId};
use crate::persist::StatePersistence;
use crate::runtime::{ActorRef, ActorRuntime, Clock, SystemClock};
use crate::state::{DeltaDistributedState, DistributedState, Simple};
use crate::transport::Transport;
use control::{Control, ControlMsg};
use engine_actor::{ActorParts, EngineSlot, StateShared};
use registry::NodeShared;

/// Largest inbound frame accepted (chunked snapshots keep frames far below this).
const MAX_INBOUND_FRAME: usize = 64 * 1024 * 1024;

/// A dstate node: registers state types and runs their engines.
pub struct Node<R: ActorRuntime> {
    inner: Arc<NodeInner<R>>,
}

struct NodeInner<R: ActorRuntime> {
    shared: Arc<NodeShared>,
    runtime: R,
    transport: Arc<dyn Transport>,
    persistence: Option<Arc<dyn StatePersistence>>,
    clock: Arc<dyn Clock>,
    control: R::Ref<ControlMsg>,
}

/// Builds a [`Node`].
pub struct NodeBuilder<R: ActorRuntime> {
    id: NodeId,
    runtime: R,
    transport: Option<Arc<dyn Transport>>,
    persistence: Option<Arc<dyn StatePersistence>>,
    clock: Arc<dyn Clock>,
    config: NodeConfig,
    incarnation: Option<Incarnation>,
}

impl<R: ActorRuntime> NodeBuilder<R> {
    /// The transport to peers (without one the node runs alone).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Persistence for the node's own shards.
    pub fn persistence(mut self, persistence: Arc<dyn StatePersistence>) -> Self {
        self.persistence = Some(persistence);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Node-wide settings (heartbeat, change-feed batch).
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.config = config;
        self
    }

    /// The process incarnation announced to peers (default: wall-clock milliseconds now).
    pub fn incarnation(mut self, incarnation: Incarnation) -> Self {
        self.incarnation = Some(incarnation);
        self
    }

    /// Start the node's control actor. Must run inside the runtime's executor.
    pub fn start(self) -> Node<R> {
        if self.clock.is_system_clock() {
            // Fix the coarse clock's origin before any view exists (see `runtime::coarse`).
            crate::runtime::coarse::base();
        }
        let incarnation = self
            .incarnation
            .unwrap_or_else(|| Incarnation::next_after(None, self.clock.wall_millis()));
        let shared = Arc::new(NodeShared::new(self.id, incarnation, MAX_INBOUND_FRAME));
        let transport = self.transport.unwrap_or_else(|| Arc::new(Alone));
        let mut control = Control::new(
            shared.clone(),
            self.runtime.clone(),
            transport.clone(),
            self.clock.clone(),
            &self.config,
        );
        let me = control.me.clone();
        let mut events = self.runtime.cluster_events();
        let control_ref = self
            .runtime
            .spawn("dstate-control", move |msg| control.handle(msg));
        // Set before the ref is shared, so the actor always finds it.
        let _ = me.set(control_ref.clone());
        let pump = control_ref.clone();
        self.runtime.spawn_task(Box::pin(async move {
            while let Some(event) = events.recv().await {
                if pump.send(ControlMsg::Cluster(event)).is_err() {
                    break;
                }
            }
        }));
        // The first beat goes out at once; each beat schedules the next.
        let _ = control_ref.send(ControlMsg::Heartbeat);
        tracing::info!(node = %self.id, incarnation = incarnation.0, "dstate node started");
        Node {
            inner: Arc::new(NodeInner {
                shared,
                runtime: self.runtime,
                transport,
                persistence: self.persistence,
                clock: self.clock,
                control: control_ref,
            }),
        }
    }
}

impl<R: ActorRuntime> Node<R> {
    /// A builder for node `id` on `runtime`.
    pub fn builder(id: NodeId, runtime: R) -> NodeBuilder<R> {
        NodeBuilder {
            id,
            runtime,
            transport: None,
            persistence: None,
            clock: Arc::new(SystemClock),
            config: NodeConfig::default(),
            incarnation: None,
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.shared.id
    }

    /// This process's incarnation (for the adapters' handshake).
    pub fn incarnation(&self) -> Incarnation {
        self.inner.shared.incarnation
    }

    /// Where the transport hands in received frames.
    pub fn inbound(&self) -> Inbound {
        let control = self.inner.control.clone();
        Inbound::new(
            self.inner.shared.clone(),
            Arc::new(move |from, frame| {
                // A stopped control actor (node shut down) drops node-level frames.
                let _ = control.send(ControlMsg::Frame(from, frame));
            }),
        )
    }

    /// The peers currently connected.
    pub fn members(&self) -> Vec<NodeId> {
        self.inner.shared.members().keys().copied().collect()
    }

    /// Register a simple state starting from `S::default()`.
    pub async fn register<S: DistributedState + Default>(
        &self,
        config: StateConfig,
    ) -> Result<SimpleHandle<S>, RegisterError> {
        self.register_with(S::default(), config).await
    }

    /// Register a simple state starting from `initial` (unless persistence has a shard).
    pub async fn register_with<S: DistributedState>(
        &self,
        initial: S,
        config: StateConfig,
    ) -> Result<SimpleHandle<S>, RegisterError> {
        self.register_delta::<Simple<S>>(initial, config).await
    }

    /// Register a delta-aware state starting from `initial` (unless persistence has a shard).
    pub async fn register_delta<D: DeltaDistributedState>(
        &self,
        initial: D::State,
        config: StateConfig,
    ) -> Result<StateHandle<D>, RegisterError> {
        let inner = &self.inner;
        if inner.shared.slot(D::name()).is_some() {
            return Err(RegisterError::AlreadyRegistered { name: D::name() });
        }
        let start =
            load::load_start::<D>(inner.persistence.as_deref(), inner.clock.as_ref(), initial)
                .await;
        let now = inner.clock.now();
        let limits = EngineLimits {
            transport_frame_bytes: inner.transport.max_frame_bytes(),
        };
        let engine = Engine::new(inner.shared.id, config.clone(), limits, start, now);
        let mut engine = engine;
        let views = engine.views();
        let (events, _) = broadcast::channel(config.subscription_capacity.get());
        let (ready, _) = watch::channel(true);
        let shared = Arc::new(StateShared {
            views: ArcSwap::new(views),
            generation: std::sync::Mutex::new(engine.generation()),
            events,
            lagged: Arc::default(),
            ready,
        });
        let control = inner.control.clone();
        let parts = ActorParts {
            runtime: inner.runtime.clone(),
            transport: inner.transport.clone(),
            persistence: inner.persistence.clone(),
            clock: inner.clock.clone(),
            feed: Arc::new(move |state, generation| {
                // A stopped control actor (node shut down) no longer batches notices.
                let _ = control.send(ControlMsg::FeedNotice(state, generation));
            }),
        };
        let actor = engine_actor::spawn::<R, D>(engine, parts, shared.clone());
        let slot = Arc::new(EngineSlot::<R, D> {
            actor: actor.clone(),
            shared: shared.clone(),
        });
        if !inner.shared.insert_slot(D::name(), slot) {
            actor.stop();
            return Err(RegisterError::AlreadyRegistered { name: D::name() });
        }
        let members: Vec<_> = inner
            .shared
            .members()
            .iter()
            .map(|(n, i)| (*n, *i))
            .collect();
        for (node, incarnation) in members {
            let up = registry::Membership::Up(node, incarnation);
            // The actor was just started; it only stops when the node shuts down.
            let _ = actor.send(engine_actor::EngineMsg::Membership(up));
        }
        let sender = actor.clone();
        let send = Arc::new(move |msg| sender.send(msg));
        Ok(StateHandle::new(send, shared, inner.clock.clone()))
    }

    /// Leave the cluster gracefully: peers drop this node's views at once; every state
    /// actor stops.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.inner.control.send(ControlMsg::Shutdown(done)).is_ok() {
            // Err means the control actor is already gone: nothing left to wait for.
            let _ = finished.await;
        }
        // The goodbyes are queued; let the transport hand them to the network.
        self.inner.transport.flush().await;
        for slot in self.inner.shared.slots() {
            slot.stop();
        }
        self.inner.control.stop();
    }
}

impl<R: ActorRuntime> Clone for Node<R> {
    fn clone(&self) -> Self {
        Node {
            inner: self.inner.clone(),
        }
    }
}

impl<R: ActorRuntime> std::fmt::Debug for Node<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.shared.id)
            .finish_non_exhaustive()
    }
}

/// The transport of a node without peers.
struct Alone;

impl Transport for Alone {
    fn send(&self, to: NodeId, _frame: Bytes) -> Result<(), TransportError> {
        Err(TransportError::NotConnected(to))
    }
}
