//! The future behind [`StateHandle::query`](super::StateHandle::query) and its result.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use super::engine_actor::EngineMsg;
use super::handle::StateHandle;
use crate::error::QueryError;
use crate::ids::NodeId;
use crate::object::ViewMap;
use crate::state::DeltaDistributedState;

/// A query's value and the views that did not meet its staleness bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult<R> {
    /// What the projection returned.
    pub value: R,
    /// Peers whose views are down, have newer data pending, or are older than the bound
    /// even after pulling. Empty when every view was fresh.
    pub stale: Vec<NodeId>,
}

impl<R> QueryResult<R> {
    /// True when every view met the bound.
    pub fn is_fresh(&self) -> bool {
        self.stale.is_empty()
    }

    /// The value if every view met the bound, else [`QueryError::Stale`].
    pub fn into_fresh(self) -> Result<R, QueryError> {
        if self.stale.is_empty() {
            Ok(self.value)
        } else {
            Err(QueryError::Stale { nodes: self.stale })
        }
    }
}

/// The future returned by [`StateHandle::query`]. Does nothing until polled.
///
/// The first poll checks the view map: when every view meets the bound the projection runs
/// and the future completes in that poll (one atomic load, no allocation, no message). Only
/// otherwise does it ask the state's actor to pull the stale views and wait for them.
/// Bounds of [`COARSE_MIN_BOUND`](crate::COARSE_MIN_BOUND) or more are checked against a
/// coarse copy of the system clock (about 1 ms behind) when the node runs on it.
/// Polling again after completion returns [`QueryError::Stopped`].
#[must_use = "a query does nothing unless awaited"]
pub struct Query<'a, D: DeltaDistributedState, P> {
    handle: &'a StateHandle<D>,
    max_staleness: Duration,
    projection: Option<P>,
    pulled: Option<oneshot::Receiver<()>>,
}

// The projection is only ever moved out and called, never pinned, so the future can move.
impl<D: DeltaDistributedState, P> Unpin for Query<'_, D, P> {}

impl<'a, D: DeltaDistributedState, P> Query<'a, D, P> {
    pub(crate) fn new(handle: &'a StateHandle<D>, max_staleness: Duration, projection: P) -> Self {
        Query {
            handle,
            max_staleness,
            projection: Some(projection),
            pulled: None,
        }
    }

    /// Ask the state's actor to pull the stale views; `false` when it has stopped.
    fn start_pull(&mut self) -> bool {
        let (reply, answer) = oneshot::channel();
        let sent = (self.handle.send)(EngineMsg::Query(self.max_staleness, reply)).is_ok();
        self.pulled = Some(answer);
        sent
    }
}

impl<D, P, R> Future for Query<'_, D, P>
where
    D: DeltaDistributedState,
    P: FnOnce(&ViewMap<D::View>) -> R,
{
    type Output = Result<QueryResult<R>, QueryError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.pulled.is_none() {
            // First poll: every view fresh means done, with no message and no allocation.
            let views = this.handle.shared.views.load();
            if this.handle.all_fresh(&views, this.max_staleness) {
                return Poll::Ready(match this.projection.take() {
                    Some(projection) => Ok(QueryResult {
                        value: projection(&views),
                        stale: Vec::new(),
                    }),
                    // Polled again after it completed.
                    None => Err(QueryError::Stopped),
                });
            }
        }
        this.poll_pull(cx)
    }
}

impl<D, P, R> Query<'_, D, P>
where
    D: DeltaDistributedState,
    P: FnOnce(&ViewMap<D::View>) -> R,
{
    /// The slow path: ask the actor to pull the stale views, wait, then run the projection
    /// and list what is still stale.
    #[inline(never)]
    fn poll_pull(&mut self, cx: &mut Context<'_>) -> Poll<Result<QueryResult<R>, QueryError>> {
        if self.projection.is_none() {
            // Polled again after it completed.
            return Poll::Ready(Err(QueryError::Stopped));
        }
        if self.pulled.is_none() && !self.start_pull() {
            self.projection = None;
            return Poll::Ready(Err(QueryError::Stopped));
        }
        let Some(answer) = self.pulled.as_mut() else {
            return Poll::Ready(Err(QueryError::Stopped));
        };
        let answered = Pin::new(answer).poll(cx);
        if answered.is_pending() {
            return Poll::Pending;
        }
        // Done either way: a later poll must not touch the spent receiver.
        let projection = self.projection.take();
        let (Poll::Ready(Ok(())), Some(projection)) = (answered, projection) else {
            // The actor stopped before answering.
            return Poll::Ready(Err(QueryError::Stopped));
        };
        let views = self.handle.shared.views.load();
        let stale = views.stale(self.handle.clock.now(), self.max_staleness);
        Poll::Ready(Ok(QueryResult {
            value: projection(&views),
            stale,
        }))
    }
}
