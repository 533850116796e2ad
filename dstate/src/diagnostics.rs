//! Per-state, per-peer sync status and counters, and health.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ids::{Generation, NodeId};
use crate::object::PeerStatus;

/// Counters of one peer link of one state type (inbound and outbound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Frames received from the peer.
    pub frames_in: u64,
    /// Bytes received from the peer.
    pub bytes_in: u64,
    /// Frames sent to the peer.
    pub frames_out: u64,
    /// Bytes sent to the peer.
    pub bytes_out: u64,
    /// Deltas applied.
    pub deltas_applied: u64,
    /// Snapshots applied.
    pub snapshots_applied: u64,
    /// Deltas sent.
    pub deltas_sent: u64,
    /// Snapshots sent (chunked snapshots count once).
    pub snapshots_sent: u64,
    /// Duplicate or stale frames discarded.
    pub stale_discarded: u64,
    /// Gaps detected (a delta skipped ages): answered with a snapshot request.
    pub gaps: u64,
    /// Frames rejected (spoofed source, undecodable payload).
    pub rejected: u64,
    /// Payloads whose version this build could not read.
    pub version_mismatches: u64,
    /// Times the peer's queue was full and its pending changes collapsed into a snapshot.
    pub backpressure: u64,
    /// Snapshot requests sent (pulls and repairs).
    pub pulls_sent: u64,
}

/// Sync status of one peer's view, as held by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDiagnostics {
    /// The peer.
    pub node: NodeId,
    /// Reachability.
    pub status: PeerStatus,
    /// Generation of the view held, if any.
    pub generation: Option<Generation>,
    /// A newer generation known but not held.
    pub pending: Option<Generation>,
    /// When the view was last confirmed current (monotonic).
    pub last_sync: Option<Instant>,
    /// How long ago that was.
    pub sync_age: Option<Duration>,
    /// Counters of this link.
    pub counters: LinkCounters,
    /// The last error seen on this link.
    pub last_error: Option<String>,
}

/// Diagnostics of one registered state type on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDiagnostics {
    /// State name.
    pub state: &'static str,
    /// This node's shard generation.
    pub generation: Generation,
    /// Per peer.
    pub peers: BTreeMap<NodeId, PeerDiagnostics>,
    /// Mutations committed.
    pub mutations_committed: u64,
    /// Saves that failed (each rolled back a batch of mutations).
    pub save_failures: u64,
    /// Frames that could not be decoded at all, or claimed a source they did not come from.
    pub rejected_frames: u64,
    /// Change events dropped because a subscriber lagged.
    pub subscriber_lag: u64,
    /// The last error of any kind.
    pub last_error: Option<String>,
}

/// Health of one state type on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Every live peer's view is fresh and nothing failed recently.
    Healthy,
    /// Some view is older than the stale threshold, or a peer is down.
    Degraded,
    /// Some view is older than the unhealthy threshold, or saves are failing.
    Unhealthy,
}
