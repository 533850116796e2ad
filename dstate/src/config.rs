//! Per-state and per-node configuration. Every value is valid once built.

use std::num::NonZeroUsize;
use std::time::Duration;

/// How committed changes travel to peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushMode {
    /// Every committed change goes to every peer at once.
    ActivePush,
    /// A change only produces a notification in the node's batched change feed; receivers
    /// pull the data when a query needs it.
    ActiveFeedLazyPull,
    /// Nothing is pushed per change (periodic sync and pulls only).
    None,
}

/// How a state type replicates. Build it with one of the constructors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncStrategy {
    /// What happens on each committed change.
    pub push_mode: PushMode,
    /// Send the full view to every peer on this period (repairs anything lost).
    pub periodic_full_sync: Option<Duration>,
    /// Queries pull views that miss their staleness bound.
    pub pull_on_query: bool,
    /// Changes produce change-feed notifications.
    pub change_feed: bool,
}

impl SyncStrategy {
    /// Push every change to every peer at once; queries may still pull stale views.
    pub fn active_push() -> Self {
        SyncStrategy {
            push_mode: PushMode::ActivePush,
            periodic_full_sync: None,
            pull_on_query: true,
            change_feed: false,
        }
    }

    /// Batched change feed; queries pull what they need.
    pub fn feed_lazy_pull() -> Self {
        SyncStrategy {
            push_mode: PushMode::ActiveFeedLazyPull,
            periodic_full_sync: None,
            pull_on_query: true,
            change_feed: true,
        }
    }

    /// Batched change feed plus a full sync every `interval`.
    pub fn feed_with_periodic_sync(interval: Duration) -> Self {
        SyncStrategy {
            periodic_full_sync: Some(interval),
            ..Self::feed_lazy_pull()
        }
    }

    /// Only a full sync every `interval` (and pulls on query).
    pub fn periodic_only(interval: Duration) -> Self {
        SyncStrategy {
            push_mode: PushMode::None,
            periodic_full_sync: Some(interval),
            pull_on_query: true,
            change_feed: false,
        }
    }
}

impl Default for SyncStrategy {
    /// Active push: the lowest latency and the simplest to reason about.
    fn default() -> Self {
        Self::active_push()
    }
}

/// What a receiver does with a message whose payload version it cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum VersionMismatchPolicy {
    /// Keep the last good view, marked as having newer data it could not read.
    #[default]
    KeepStale,
    /// Drop the message and wait for the next compatible one.
    DropAndWait,
    /// Ask the sender for a snapshot in this node's `WIRE_VERSION`.
    RequestSnapshot,
}

/// Configuration of one registered state type.
#[derive(Debug, Clone)]
pub struct StateConfig {
    pub(crate) strategy: SyncStrategy,
    pub(crate) mismatch: VersionMismatchPolicy,
    pub(crate) pull_timeout: Duration,
    pub(crate) down_retention: Duration,
    pub(crate) max_frame_bytes: NonZeroUsize,
    pub(crate) max_snapshot_bytes: NonZeroUsize,
    pub(crate) outbound_budget: NonZeroUsize,
    pub(crate) subscription_capacity: NonZeroUsize,
    pub(crate) stale_after: Duration,
    pub(crate) unhealthy_after: Duration,
}

impl StateConfig {
    /// A configuration with the given strategy and the documented defaults.
    pub fn new(strategy: SyncStrategy) -> Self {
        StateConfig {
            strategy,
            mismatch: VersionMismatchPolicy::default(),
            // A pull that takes longer than this is reported stale instead of blocking a read.
            pull_timeout: Duration::from_millis(500),
            // Long enough to ride out a restart, short enough that dead nodes leave the map.
            down_retention: Duration::from_secs(60),
            // Well under ractor_cluster's 16 MiB session limit and kameo's ~0.5 MB message.
            max_frame_bytes: nz(256 * 1024),
            // A snapshot beyond this is refused with an error instead of chunked.
            max_snapshot_bytes: nz(64 * 1024 * 1024),
            // Frames queued for one peer before its deltas collapse into one snapshot.
            outbound_budget: nz(1024),
            // Subscribers further behind than this lose events (counted), never stall us.
            subscription_capacity: nz(1024),
            // Health turns degraded when a live peer's view is older than this.
            stale_after: Duration::from_secs(5),
            // Health turns unhealthy when a peer's view is older than this.
            unhealthy_after: Duration::from_secs(30),
        }
    }

    /// The sync strategy.
    pub fn strategy(&self) -> SyncStrategy {
        self.strategy
    }

    /// What to do with payload versions this build cannot read.
    pub fn with_mismatch_policy(mut self, policy: VersionMismatchPolicy) -> Self {
        self.mismatch = policy;
        self
    }

    /// How long a query waits for pulled views.
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// How long the view of a crashed or disconnected peer is kept (marked down).
    pub fn with_down_retention(mut self, retention: Duration) -> Self {
        self.down_retention = retention;
        self
    }

    /// Largest frame sent in one piece; bigger snapshots travel in chunks of this size.
    pub fn with_max_frame_bytes(mut self, bytes: NonZeroUsize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// Largest snapshot accepted or sent (in chunks); larger ones are refused with an error.
    pub fn with_max_snapshot_bytes(mut self, bytes: NonZeroUsize) -> Self {
        self.max_snapshot_bytes = bytes;
        self
    }

    /// Frames that may wait for one slow peer before its queue collapses into a snapshot.
    pub fn with_outbound_budget(mut self, frames: NonZeroUsize) -> Self {
        self.outbound_budget = frames;
        self
    }

    /// Capacity of each subscriber's change-event buffer.
    pub fn with_subscription_capacity(mut self, events: NonZeroUsize) -> Self {
        self.subscription_capacity = events;
        self
    }

    /// Staleness thresholds for health: degraded after `stale`, unhealthy after `unhealthy`.
    pub fn with_health_thresholds(mut self, stale: Duration, unhealthy: Duration) -> Self {
        self.stale_after = stale;
        self.unhealthy_after = unhealthy.max(stale);
        self
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig::new(SyncStrategy::default())
    }
}

/// Node-wide configuration: liveness and the change-feed batch.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_misses: u32,
    pub(crate) feed_batch_interval: Duration,
}

impl NodeConfig {
    /// The documented defaults.
    pub fn new() -> Self {
        NodeConfig {
            // Cheap (a few bytes per state) and quick enough to notice a hung peer in seconds.
            heartbeat_interval: Duration::from_secs(1),
            // Three missed beats: tolerant of a GC-like pause, still under five seconds.
            heartbeat_misses: 3,
            // One feed message per peer per 100 ms keeps feed traffic at <= 10 msg/s per peer.
            feed_batch_interval: Duration::from_millis(100),
        }
    }

    /// Heartbeat period and how many missed beats mark a peer down (at least one).
    pub fn with_heartbeat(mut self, interval: Duration, misses: u32) -> Self {
        self.heartbeat_interval = interval;
        self.heartbeat_misses = misses.max(1);
        self
    }

    /// Change-feed batch interval.
    pub fn with_feed_batch_interval(mut self, interval: Duration) -> Self {
        self.feed_batch_interval = interval;
        self
    }

    /// A peer silent for this long is marked down.
    pub fn liveness_deadline(&self) -> Duration {
        self.heartbeat_interval * self.heartbeat_misses
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig::new()
    }
}

fn nz(value: usize) -> NonZeroUsize {
    NonZeroUsize::new(value).unwrap_or(NonZeroUsize::MIN)
}
