//! The owner's shard and the read-only views of every shard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ids::{Generation, NodeId};
use crate::runtime::coarse;

/// The owner's shard: its state and generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateObject<S> {
    /// Generation of the last committed mutation.
    pub generation: Generation,
    /// The state.
    pub state: S,
}

/// Whether the owner of a view is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerStatus {
    /// Connected and heard from within the liveness deadline.
    Up,
    /// Crashed, disconnected or silent since `since`; the view is kept until retention ends.
    Down {
        /// When it was marked down (monotonic).
        since: Instant,
    },
}

/// A read-only view of one node's shard, as held by this node.
#[derive(Debug)]
pub struct StateViewObject<V> {
    /// Owner of the shard.
    pub source: NodeId,
    /// Generation of the view held.
    pub generation: Generation,
    /// The view (shared: metadata updates never copy it).
    pub view: Arc<V>,
    /// When this view was last confirmed current (received, or confirmed by a notice).
    pub synced_at: Instant,
    /// A newer generation is known to exist but has not been fetched (feed notice, or a
    /// payload this build could not read).
    pub pending: Option<Generation>,
    /// Reachability of the owner.
    pub status: PeerStatus,
}

impl<V> StateViewObject<V> {
    /// How long ago this view was last confirmed current.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.synced_at)
    }

    /// True when the view is confirmed within `max_staleness` and nothing newer is pending.
    pub fn is_fresh(&self, now: Instant, max_staleness: Duration) -> bool {
        self.pending.is_none() && self.age(now) <= max_staleness
    }
}

/// The view map: one view per node (this node's own view included), shared immutably with
/// readers. Queries borrow it; nothing is copied per read.
///
/// Views are kept inline in one vector sorted by node id: iteration visits them in
/// ascending [`NodeId`] order, a lookup is a binary search, and a read touches no hash
/// table and no per-view allocation besides the view value itself.
#[derive(Debug)]
pub struct ViewMap<V> {
    views: Vec<StateViewObject<V>>,
    /// The node holding this map (its own view is always current).
    pub(crate) local: NodeId,
    /// Oldest `synced_at` among peer views (`None` when there are none).
    oldest_sync: Option<Instant>,
    /// `oldest_sync` in nanoseconds since the coarse clock's base.
    oldest_nanos: u64,
    /// Some peer view has newer data pending or its owner is not up.
    any_pending: bool,
}

impl<V> ViewMap<V> {
    pub(crate) fn new(local: NodeId) -> Self {
        ViewMap {
            views: Vec::new(),
            local,
            oldest_sync: None,
            oldest_nanos: 0,
            any_pending: false,
        }
    }

    /// Install or replace the view of `view.source`.
    pub(crate) fn insert(&mut self, view: StateViewObject<V>) {
        match self.position(view.source) {
            Ok(at) => self.views[at] = view,
            Err(at) => self.views.insert(at, view),
        }
    }

    /// Remove the view of `node`, returning it.
    pub(crate) fn remove(&mut self, node: NodeId) -> Option<StateViewObject<V>> {
        self.position(node).ok().map(|at| self.views.remove(at))
    }

    /// True when a view of `node` is held.
    pub(crate) fn contains(&self, node: NodeId) -> bool {
        self.position(node).is_ok()
    }

    fn position(&self, node: NodeId) -> Result<usize, usize> {
        self.views.binary_search_by_key(&node, |v| v.source)
    }

    /// Recompute the freshness summary after changes.
    pub(crate) fn refresh_summary(&mut self) {
        let peers = self.views.iter().filter(|v| v.source != self.local);
        let (mut oldest, mut pending) = (None::<Instant>, false);
        for view in peers {
            oldest = Some(oldest.map_or(view.synced_at, |o| o.min(view.synced_at)));
            pending |= view.pending.is_some() || view.status != PeerStatus::Up;
        }
        self.oldest_sync = oldest;
        self.oldest_nanos = oldest.map_or(0, coarse::since_base);
        self.any_pending = pending;
    }

    /// True when every peer view is up, has nothing pending and was confirmed within
    /// `max_staleness` (the own view is always current). O(1).
    pub fn all_fresh(&self, now: Instant, max_staleness: Duration) -> bool {
        self.all_fresh_with(|| now, max_staleness)
    }

    /// [`all_fresh`](Self::all_fresh) that reads the clock only when a peer view's age
    /// matters (not when there are no peer views or one is already known to be stale).
    #[inline]
    pub(crate) fn all_fresh_with(
        &self,
        now: impl FnOnce() -> Instant,
        max_staleness: Duration,
    ) -> bool {
        // `now - oldest <= bound` as `now <= oldest + bound`: no subtraction, and a bound too
        // large to add is met by every view.
        !self.any_pending
            && self
                .oldest_sync
                .and_then(|oldest| oldest.checked_add(max_staleness))
                .is_none_or(|deadline| now() <= deadline)
    }

    /// [`all_fresh`](Self::all_fresh) against the coarse clock (`now` in nanoseconds since
    /// its base), for maps whose sync times come from the system clock.
    #[inline(always)]
    pub(crate) fn all_fresh_coarse(
        &self,
        now: impl FnOnce() -> u64,
        max_staleness: Duration,
    ) -> bool {
        let bound = u64::try_from(max_staleness.as_nanos()).unwrap_or(u64::MAX);
        !self.any_pending
            && (self.oldest_sync.is_none() || now() <= self.oldest_nanos.saturating_add(bound))
    }

    /// The peer views that are down, have newer data pending, or were confirmed longer than
    /// `max_staleness` ago, in ascending node order.
    pub fn stale(&self, now: Instant, max_staleness: Duration) -> Vec<NodeId> {
        self.views
            .iter()
            .filter(|v| v.source != self.local)
            .filter(|v| !v.is_fresh(now, max_staleness) || v.status != PeerStatus::Up)
            .map(|v| v.source)
            .collect()
    }

    /// The view value of `node`'s shard.
    pub fn view(&self, node: NodeId) -> Option<&V> {
        self.get(node).map(|v| &*v.view)
    }

    /// The view of `node`'s shard.
    pub fn get(&self, node: NodeId) -> Option<&StateViewObject<V>> {
        self.position(node).ok().map(|at| &self.views[at])
    }

    /// Every view, in ascending node order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &StateViewObject<V>> {
        self.views.iter()
    }

    /// Every node's view value, in ascending node order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &V> {
        self.views.iter().map(|v| &*v.view)
    }

    /// Number of views.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// True when no view is held.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// The nodes whose views are held, in ascending order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = NodeId> + '_ {
        self.views.iter().map(|v| v.source)
    }
}

impl<V> Clone for ViewMap<V> {
    fn clone(&self) -> Self {
        ViewMap {
            views: self.views.clone(),
            local: self.local,
            oldest_sync: self.oldest_sync,
            oldest_nanos: self.oldest_nanos,
            any_pending: self.any_pending,
        }
    }
}

impl<V> Clone for StateViewObject<V> {
    fn clone(&self) -> Self {
        StateViewObject {
            source: self.source,
            generation: self.generation,
            view: self.view.clone(),
            synced_at: self.synced_at,
            pending: self.pending,
            status: self.status,
        }
    }
}
