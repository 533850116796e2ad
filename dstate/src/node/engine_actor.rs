//! The actor that owns one engine: feeds it messages, carries out what it asks for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, oneshot, watch};

use super::registry::{Membership, Slot};
use crate::diagnostics::{Health, StateDiagnostics};
use crate::engine::{Engine, EngineEvent};
use crate::error::{MutationError, PersistError, TransportError};
use crate::ids::{Generation, NodeId};
use crate::object::ViewMap;
use crate::persist::StatePersistence;
use crate::runtime::{ActorRef, ActorRuntime, Clock, TimerHandle};
use crate::state::DeltaDistributedState;
use crate::transport::Transport;
use crate::wire::Frame;

/// Answers one mutation's caller.
pub(crate) type Responder = Box<dyn FnOnce(Result<Generation, MutationError>) + Send>;

/// A mutation as the actor receives it.
pub(crate) type MutationFn<D> = Box<
    dyn FnOnce(
            &mut <D as DeltaDistributedState>::State,
        ) -> (<D as DeltaDistributedState>::StateDeltaChange, Responder)
        + Send,
>;

/// Messages of an engine actor.
pub(crate) enum EngineMsg<D: DeltaDistributedState> {
    Frame(NodeId, Frame),
    Notice(NodeId, Generation),
    Membership(Membership),
    Mutate(MutationFn<D>),
    Persisted(Generation, Result<(), PersistError>),
    Query(Duration, oneshot::Sender<()>),
    Diagnostics(oneshot::Sender<(StateDiagnostics, Health)>),
    Tick,
}

/// A change to one view, as subscribers see it.
#[derive(Debug)]
pub struct ChangeEvent<V> {
    /// Owner of the view.
    pub source: NodeId,
    /// Generation of the new view (`None` when the view was removed).
    pub generation: Option<Generation>,
    /// The new view (`None` when the view was removed).
    pub view: Option<Arc<V>>,
}

impl<V> Clone for ChangeEvent<V> {
    fn clone(&self) -> Self {
        ChangeEvent {
            source: self.source,
            generation: self.generation,
            view: self.view.clone(),
        }
    }
}

/// What the actor shares with the handles.
pub(crate) struct StateShared<V> {
    pub(crate) views: ArcSwap<ViewMap<V>>,
    pub(crate) generation: Mutex<Generation>,
    pub(crate) events: broadcast::Sender<ChangeEvent<V>>,
    /// Events lost by lagging subscribers, all subscribers together.
    pub(crate) lagged: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) ready: watch::Sender<bool>,
}

/// Everything the actor needs besides the engine.
pub(crate) struct ActorParts<R: ActorRuntime> {
    pub(crate) runtime: R,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) persistence: Option<Arc<dyn StatePersistence>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) feed: Arc<dyn Fn(&'static str, Generation) + Send + Sync>,
}

struct EngineActor<R: ActorRuntime, D: DeltaDistributedState> {
    engine: Engine<D, Responder>,
    parts: ActorParts<R>,
    me: Arc<OnceLock<R::Ref<EngineMsg<D>>>>,
    shared: Arc<StateShared<D::View>>,
    queries: HashMap<u64, oneshot::Sender<()>>,
    next_query: u64,
    timer: Option<(Instant, R::Timer)>,
}

/// Start the actor for `engine`; returns its ref.
pub(crate) fn spawn<R: ActorRuntime, D: DeltaDistributedState>(
    engine: Engine<D, Responder>,
    parts: ActorParts<R>,
    shared: Arc<StateShared<D::View>>,
) -> R::Ref<EngineMsg<D>> {
    let me = Arc::new(OnceLock::new());
    let runtime = parts.runtime.clone();
    let mut actor = EngineActor {
        engine,
        parts,
        me: me.clone(),
        shared,
        queries: HashMap::new(),
        next_query: 0,
        timer: None,
    };
    let name = format!("dstate-{}", D::name());
    let reference = runtime.spawn(&name, move |msg: EngineMsg<D>| actor.handle(msg));
    // The cell is set before the ref is handed to anyone, so no message can observe it empty.
    let _ = me.set(reference.clone());
    reference
}

impl<R: ActorRuntime, D: DeltaDistributedState> EngineActor<R, D> {
    fn handle(&mut self, msg: EngineMsg<D>) {
        let now = self.parts.clock.now();
        // Before the message: a subscriber that just joined must see the change it causes.
        self.engine
            .set_view_events(self.shared.events.receiver_count() > 0);
        match msg {
            EngineMsg::Frame(from, frame) => self.engine.handle_frame(now, from, frame),
            EngineMsg::Notice(from, generation) => self.engine.handle_notice(now, from, generation),
            EngineMsg::Membership(Membership::Up(node, incarnation)) => {
                self.engine.handle_peer_up(now, node, incarnation)
            }
            EngineMsg::Membership(Membership::Down(node)) => {
                self.engine.handle_peer_down(now, node)
            }
            EngineMsg::Membership(Membership::Left(node)) => {
                self.engine.handle_peer_left(now, node)
            }
            EngineMsg::Mutate(apply) => self.engine.handle_mutation(now, apply),
            EngineMsg::Persisted(generation, result) => {
                self.engine.handle_persisted(now, generation, result)
            }
            EngineMsg::Query(max_staleness, reply) => {
                let id = self.next_query;
                self.next_query += 1;
                self.queries.insert(id, reply);
                self.engine.handle_query(now, id, max_staleness);
            }
            EngineMsg::Diagnostics(reply) => {
                let mut diagnostics = self.engine.diagnostics(now);
                diagnostics.subscriber_lag = self
                    .shared
                    .lagged
                    .load(std::sync::atomic::Ordering::Relaxed);
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send((diagnostics, self.engine.health(now)));
            }
            EngineMsg::Tick => {
                self.timer = None;
                self.engine.handle_timeout(now);
            }
        }
        self.drive(now);
    }

    /// Drain every output of the engine and carry it out.
    fn drive(&mut self, now: Instant) {
        while let Some(transmit) = self.engine.poll_transmit() {
            match self.parts.transport.send(transmit.to, transmit.frame) {
                Ok(()) => {}
                Err(TransportError::Backpressure(_) | TransportError::NotConnected(_)) => {
                    self.engine.handle_send_failed(now, transmit.to)
                }
                Err(error) => tracing::warn!(state = D::name(), %error, "send failed"),
            }
        }
        while let Some(request) = self.engine.poll_persist() {
            self.save(request.generation, request.shard);
        }
        // Publish before answering: a caller whose mutation is acknowledged reads its write.
        if self.engine.views_changed() {
            self.shared.views.store(self.engine.views());
        }
        *self
            .shared
            .generation
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = self.engine.generation();
        while let Some(event) = self.engine.poll_event() {
            self.on_event(event);
        }
        let synced = self.engine.is_synced();
        self.shared
            .ready
            .send_if_modified(|ready| std::mem::replace(ready, synced) != synced);
        self.schedule(now);
    }

    fn on_event(&mut self, event: EngineEvent<D::View, Responder>) {
        match event {
            EngineEvent::MutationDone { tag, result } => tag(result),
            EngineEvent::QueryReady { id } => {
                if let Some(reply) = self.queries.remove(&id) {
                    // The query's caller may have been dropped; nothing to answer then.
                    let _ = reply.send(());
                }
            }
            EngineEvent::FeedNotice { generation } => (self.parts.feed)(D::name(), generation),
            EngineEvent::ViewChanged { source, view } => {
                let event = ChangeEvent {
                    source,
                    generation: view.as_ref().map(|v| v.generation),
                    view: view.map(|v| v.view.clone()),
                };
                // No subscriber is fine; a lagging one loses old events, never blocks us.
                let _ = self.shared.events.send(event);
            }
            EngineEvent::Rejected { from, reason } => {
                tracing::debug!(state = D::name(), %from, %reason, "rejected frame");
            }
        }
    }

    fn save(&self, generation: Generation, shard: crate::persist::PersistedShard) {
        let Some(persistence) = self.parts.persistence.clone() else {
            return;
        };
        let Some(me) = self.me.get().cloned() else {
            return;
        };
        self.parts.runtime.spawn_task(Box::pin(async move {
            let result = persistence.save(D::name(), &shard).await;
            // A stopped actor no longer needs the answer.
            let _ = me.send(EngineMsg::Persisted(generation, result));
        }));
    }

    fn schedule(&mut self, now: Instant) {
        let wanted = self.engine.poll_timeout();
        if self.timer.as_ref().map(|(at, _)| *at) == wanted {
            return;
        }
        if let Some((_, timer)) = self.timer.take() {
            timer.cancel();
        }
        let (Some(at), Some(me)) = (wanted, self.me.get()) else {
            return;
        };
        let timer =
            self.parts
                .runtime
                .send_after(at.saturating_duration_since(now), me, EngineMsg::Tick);
        self.timer = Some((at, timer));
    }
}

/// The registry's view of one engine actor.
pub(crate) struct EngineSlot<R: ActorRuntime, D: DeltaDistributedState> {
    pub(crate) actor: R::Ref<EngineMsg<D>>,
    pub(crate) shared: Arc<StateShared<D::View>>,
}

impl<R: ActorRuntime, D: DeltaDistributedState> Slot for EngineSlot<R, D> {
    fn frame(&self, from: NodeId, frame: Frame) {
        // A stopped actor (node shutting down) drops inbound frames.
        let _ = self.actor.send(EngineMsg::Frame(from, frame));
    }

    fn notice(&self, from: NodeId, generation: Generation) {
        let _ = self.actor.send(EngineMsg::Notice(from, generation));
    }

    fn membership(&self, change: Membership) {
        let _ = self.actor.send(EngineMsg::Membership(change));
    }

    fn generation(&self) -> Generation {
        *self
            .shared
            .generation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn stop(&self) {
        self.actor.stop();
    }
}
