//! The owner's shard and the read-only views of every shard.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ids::{Generation, NodeId};

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
#[derive(Debug)]
pub struct ViewMap<V> {
    pub(crate) views: HashMap<NodeId, Arc<StateViewObject<V>>>,
    /// The node holding this map (its own view is always current).
    pub(crate) local: NodeId,
    /// Oldest `synced_at` among peer views (`None` when there are none).
    pub(crate) oldest_sync: Option<Instant>,
    /// Some peer view has newer data pending.
    pub(crate) any_pending: bool,
}

impl<V> ViewMap<V> {
    pub(crate) fn new(local: NodeId) -> Self {
        ViewMap {
            views: HashMap::new(),
            local,
            oldest_sync: None,
            any_pending: false,
        }
    }

    /// Recompute the freshness summary after changes.
    pub(crate) fn refresh_summary(&mut self) {
        let peers = self.views.values().filter(|v| v.source != self.local);
        let (mut oldest, mut pending) = (None::<Instant>, false);
        for view in peers {
            oldest = Some(oldest.map_or(view.synced_at, |o| o.min(view.synced_at)));
            pending |= view.pending.is_some() || view.status != PeerStatus::Up;
        }
        self.oldest_sync = oldest;
        self.any_pending = pending;
    }

    /// True when every peer view is up, has nothing pending and was confirmed within
    /// `max_staleness` (the own view is always current). O(1).
    pub fn all_fresh(&self, now: Instant, max_staleness: Duration) -> bool {
        !self.any_pending
            && self
                .oldest_sync
                .is_none_or(|o| now.saturating_duration_since(o) <= max_staleness)
    }

    /// The peer views that are down, have newer data pending, or were confirmed longer than
    /// `max_staleness` ago.
    pub fn stale(&self, now: Instant, max_staleness: Duration) -> Vec<NodeId> {
        let mut stale: Vec<NodeId> = self
            .views
            .values()
            .filter(|v| v.source != self.local)
            .filter(|v| !v.is_fresh(now, max_staleness) || v.status != PeerStatus::Up)
            .map(|v| v.source)
            .collect();
        stale.sort();
        stale
    }

    /// The view value of `node`'s shard.
    pub fn view(&self, node: NodeId) -> Option<&V> {
        self.views.get(&node).map(|v| &*v.view)
    }

    /// The view of `node`'s shard.
    pub fn get(&self, node: NodeId) -> Option<&StateViewObject<V>> {
        self.views.get(&node).map(|v| &**v)
    }

    /// Every view, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &StateViewObject<V>> {
        self.views.values().map(|v| &**v)
    }

    /// Every node's view value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.views.values().map(|v| &*v.view)
    }

    /// Number of views.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// True when no view is held.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// The nodes whose views are held.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.views.keys().copied()
    }
}

impl<V> Clone for ViewMap<V> {
    fn clone(&self) -> Self {
        ViewMap {
            views: self.views.clone(),
            local: self.local,
            oldest_sync: self.oldest_sync,
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
