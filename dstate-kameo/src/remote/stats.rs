//! Transport and membership counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one cluster node's transport, readable with
/// [`KameoCluster::stats`](crate::KameoCluster::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// Frames taken for sending.
    pub frames_queued: u64,
    /// Frames acknowledged by the receiving endpoint.
    pub frames_sent: u64,
    /// Frame bytes acknowledged by the receiving endpoint.
    pub bytes_sent: u64,
    /// Batches acknowledged.
    pub batches_sent: u64,
    /// Batch sends repeated after a failure.
    pub batches_retried: u64,
    /// Batches given up on (the link was then reset; the engine re-syncs).
    pub batches_abandoned: u64,
    /// Frames refused because the peer's queue was full.
    pub refused_backpressure: u64,
    /// Frames refused because they exceed the frame limit.
    pub refused_too_large: u64,
    /// Frames refused because the peer was not connected.
    pub refused_not_connected: u64,
    /// Frames handed to the local node.
    pub frames_received: u64,
    /// Batches received (including duplicates).
    pub batches_received: u64,
    /// Batches received twice (a retry of a delivered batch), dropped.
    pub duplicate_batches: u64,
    /// Batches refused because their session token is unknown (an outsider, or a session
    /// that ended).
    pub rejected_batches: u64,
    /// Frames dropped because they arrived before a frame sink was attached and the early
    /// buffer was full.
    pub dropped_early_frames: u64,
    /// Handshakes refused (version, node id conflicts).
    pub handshakes_rejected: u64,
    /// Connections refused by the allow-list.
    pub connections_denied: u64,
    /// Incoming connections that failed before they were up (a wrong cluster key shows
    /// up here: the private-network layer garbles everything).
    pub connections_failed: u64,
    /// Peers that completed the handshake (counting reconnects).
    pub sessions_opened: u64,
}

macro_rules! counters {
    ($($field:ident),* $(,)?) => {
        /// Live counters; [`Counters::snapshot`] reads them.
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $field: AtomicU64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> TransportStats {
                TransportStats {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters!(
    frames_queued,
    frames_sent,
    bytes_sent,
    batches_sent,
    batches_retried,
    batches_abandoned,
    refused_backpressure,
    refused_too_large,
    refused_not_connected,
    frames_received,
    batches_received,
    duplicate_batches,
    rejected_batches,
    dropped_early_frames,
    handshakes_rejected,
    connections_denied,
    connections_failed,
    sessions_opened,
);

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}
