//! The typed handle an application uses for one registered state type.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, oneshot, watch};

use super::engine_actor::{ChangeEvent, EngineMsg, MutationFn, Responder, StateShared};
use super::query::Query;
use crate::diagnostics::{Health, StateDiagnostics};
use crate::error::{MutationError, QueryError, SendError};
use crate::ids::Generation;
use crate::object::ViewMap;
use crate::runtime::{coarse, Clock, COARSE_MIN_BOUND};
use crate::state::{DeltaDistributedState, DistributedState, Simple};

type Sender<D> = Arc<dyn Fn(EngineMsg<D>) -> Result<(), SendError<EngineMsg<D>>> + Send + Sync>;

/// Handle to one registered state type on one node. Cheap to clone.
pub struct StateHandle<D: DeltaDistributedState> {
    pub(super) send: Sender<D>,
    pub(super) shared: Arc<StateShared<D::View>>,
    pub(super) clock: Arc<dyn Clock>,
    /// The clock is the system clock: long bounds are checked against the coarse clock.
    coarse: bool,
}

/// The handle of a simple state `S`.
pub type SimpleHandle<S> = StateHandle<Simple<S>>;

/// A subscription to view changes. Bounded: a subscriber that falls behind loses the oldest
/// events (counted by [`lagged`](Subscription::lagged)); replication never waits for it.
///
/// Treat events as wake-ups: after a lag the last event of some source may be among those
/// lost, so read the current view ([`StateHandle::read`]) rather than rebuilding state from
/// events. The view map is always current when an event is delivered.
pub struct Subscription<V> {
    receiver: broadcast::Receiver<ChangeEvent<V>>,
    lagged: u64,
    total_lagged: Arc<AtomicU64>,
}

impl<V: Send + Sync + 'static> Subscription<V> {
    /// The next change; `None` once the state's actor stopped.
    pub async fn recv(&mut self) -> Option<ChangeEvent<V>> {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => self.count_lag(missed),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next change if one is waiting.
    pub fn try_recv(&mut self) -> Option<ChangeEvent<V>> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => self.count_lag(missed),
                Err(_) => return None,
            }
        }
    }

    /// Events this subscriber lost because it fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    fn count_lag(&mut self, missed: u64) {
        self.lagged += missed;
        self.total_lagged.fetch_add(missed, Ordering::Relaxed);
        tracing::debug!(missed, "subscriber lagged");
    }
}

impl<D: DeltaDistributedState> StateHandle<D> {
    pub(crate) fn new(
        send: Sender<D>,
        shared: Arc<StateShared<D::View>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        StateHandle {
            send,
            shared,
            coarse: clock.is_system_clock(),
            clock,
        }
    }

    /// Change the own shard; the change is returned by `f` and sent per the strategy.
    /// Resolves once the change is committed (after its save, with persistence), with the
    /// new generation; a failed save rolls it back and returns the error.
    pub async fn mutate_with_delta<F>(&self, f: F) -> Result<Generation, MutationError>
    where
        F: FnOnce(&mut D::State) -> D::StateDeltaChange + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let apply: MutationFn<D> = Box::new(move |state: &mut D::State| {
            let change = f(state);
            let responder: Responder = Box::new(move |result| {
                // The caller may have stopped waiting; the mutation stands regardless.
                let _ = reply.send(result);
            });
            (change, responder)
        });
        (self.send)(EngineMsg::Mutate(apply)).map_err(|_| MutationError::Stopped)?;
        answer.await.map_err(|_| MutationError::Stopped)?
    }

    /// Run `projection` over the view map once every view is fresher than `max_staleness`,
    /// pulling the stale ones first (waiting at most the pull timeout). Views that still miss
    /// the bound are listed in the result; they are never silently presented as fresh.
    ///
    /// When every view already meets the bound the projection runs in the first poll: one
    /// atomic load, no allocation, no message to the state's actor. A view's age counts
    /// from when this node processed it; bounds of
    /// [`COARSE_MIN_BOUND`](crate::COARSE_MIN_BOUND) (100 ms) or more are checked
    /// against a coarse copy of the system clock (about 1 ms behind, never ahead; see
    /// [`SystemClock`](crate::SystemClock)), shorter ones against the precise clock. See
    /// [`Query`].
    pub fn query<P, R>(&self, max_staleness: Duration, projection: P) -> Query<'_, D, P>
    where
        P: FnOnce(&ViewMap<D::View>) -> R,
    {
        Query::new(self, max_staleness, projection)
    }

    /// Run `projection` now if every view meets `max_staleness`, without pulling; otherwise
    /// [`QueryError::Stale`] lists the views that miss it. Lock-free, never waits. Time is
    /// read as for [`query`](Self::query).
    pub fn try_query<R>(
        &self,
        max_staleness: Duration,
        projection: impl FnOnce(&ViewMap<D::View>) -> R,
    ) -> Result<R, QueryError> {
        let views = self.shared.views.load();
        if self.all_fresh(&views, max_staleness) {
            return Ok(projection(&views));
        }
        Err(QueryError::Stale {
            nodes: views.stale(self.clock.now(), max_staleness),
        })
    }

    /// Whether every view meets `max_staleness` now: against the coarse clock for long bounds
    /// on the system clock (one atomic load), else against the precise clock, read only when
    /// a peer view's age matters.
    #[inline(always)]
    pub(super) fn all_fresh(&self, views: &ViewMap<D::View>, max_staleness: Duration) -> bool {
        if self.coarse && max_staleness >= COARSE_MIN_BOUND {
            views.all_fresh_coarse(coarse::now_nanos, max_staleness)
        } else {
            views.all_fresh_with(|| self.clock.now(), max_staleness)
        }
    }

    /// Run `projection` over the views as they are, without any staleness check. Lock-free.
    pub fn read<R>(&self, projection: impl FnOnce(&ViewMap<D::View>) -> R) -> R {
        projection(&self.shared.views.load())
    }

    /// This node's own view, as last committed.
    pub fn local_view(&self) -> Option<Arc<D::View>> {
        let views = self.shared.views.load();
        views.get(views.local).map(|v| v.view.clone())
    }

    /// The generation of this node's own shard.
    pub fn generation(&self) -> Generation {
        *self
            .shared
            .generation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Changes to any view from now on.
    pub fn subscribe(&self) -> Subscription<D::View> {
        Subscription {
            receiver: self.shared.events.subscribe(),
            lagged: 0,
            total_lagged: self.shared.lagged.clone(),
        }
    }

    /// Per-peer sync status and counters.
    pub async fn diagnostics(&self) -> Result<StateDiagnostics, QueryError> {
        Ok(self.diagnostics_and_health().await?.0)
    }

    /// Healthy, degraded or unhealthy, by view staleness, peers down and failing saves.
    pub async fn health(&self) -> Result<Health, QueryError> {
        Ok(self.diagnostics_and_health().await?.1)
    }

    /// Resolves once this node holds a view from every peer known to be live. Membership
    /// changes already delivered to the state's actor are taken into account; call it after
    /// the adapter reports the cluster connected.
    pub async fn ready(&self) -> Result<(), QueryError> {
        // A round trip through the actor: everything queued before is processed first.
        self.diagnostics_and_health().await?;
        let mut ready: watch::Receiver<bool> = self.shared.ready.subscribe();
        ready
            .wait_for(|synced| *synced)
            .await
            .map_err(|_| QueryError::Stopped)?;
        Ok(())
    }

    async fn diagnostics_and_health(&self) -> Result<(StateDiagnostics, Health), QueryError> {
        let (reply, answer) = oneshot::channel();
        (self.send)(EngineMsg::Diagnostics(reply)).map_err(|_| QueryError::Stopped)?;
        answer.await.map_err(|_| QueryError::Stopped)
    }
}

impl<S: DistributedState> StateHandle<Simple<S>> {
    /// Change the own shard with `f`; the whole new state is sent per the strategy.
    /// Resolves with `f`'s result once the change is committed (after its save, with
    /// persistence); a failed save rolls it back and returns the error.
    pub async fn mutate<R, F>(&self, f: F) -> Result<R, MutationError>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> R + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let apply: MutationFn<Simple<S>> = Box::new(move |state: &mut S| {
            let value = f(state);
            let responder: Responder = Box::new(move |result| {
                // The caller may have stopped waiting; the mutation stands regardless.
                let _ = reply.send(result.map(|_| value));
            });
            (Arc::new(state.clone()), responder)
        });
        (self.send)(EngineMsg::Mutate(apply)).map_err(|_| MutationError::Stopped)?;
        answer.await.map_err(|_| MutationError::Stopped)?
    }
}

impl<D: DeltaDistributedState> Clone for StateHandle<D> {
    fn clone(&self) -> Self {
        StateHandle {
            send: self.send.clone(),
            shared: self.shared.clone(),
            clock: self.clock.clone(),
            coarse: self.coarse,
        }
    }
}

impl<D: DeltaDistributedState> std::fmt::Debug for StateHandle<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateHandle")
            .field("state", &D::name())
            .finish_non_exhaustive()
    }
}
