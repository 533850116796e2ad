//! Counters of the cluster layer, readable as a plain struct.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the cluster layer counted since it started (see
/// [`RactorCluster::stats`](crate::RactorCluster::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Frames handed to peers.
    pub frames_sent: u64,
    /// Bytes of those frames.
    pub bytes_sent: u64,
    /// Frames received from joined peers and delivered to the node.
    pub frames_received: u64,
    /// Bytes of those frames.
    pub bytes_received: u64,
    /// Sends refused because the peer's window was full.
    pub backpressure: u64,
    /// Sends to a peer that is not connected.
    pub not_connected: u64,
    /// Messages whose token matched no joined session (spoofed, stale or misrouted): dropped.
    pub rejected_unknown_token: u64,
    /// Messages that did not decode: dropped.
    pub malformed: u64,
    /// Dials started.
    pub dials: u64,
    /// Dials that failed (connect, TLS, or the session closed before the peer joined).
    pub dial_failures: u64,
    /// Sessions opened (inbound and outbound).
    pub sessions_opened: u64,
    /// Sessions closed because the handshake did not complete in time.
    pub handshake_timeouts: u64,
    /// Peers that joined.
    pub joins: u64,
    /// Peers whose session dropped.
    pub leaves: u64,
}

/// The live counters behind [`ClusterStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) backpressure: AtomicU64,
    pub(crate) not_connected: AtomicU64,
    pub(crate) rejected_unknown_token: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) dials: AtomicU64,
    pub(crate) dial_failures: AtomicU64,
    pub(crate) sessions_opened: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    pub(crate) joins: AtomicU64,
    pub(crate) leaves: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClusterStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClusterStats {
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            frames_received: get(&self.frames_received),
            bytes_received: get(&self.bytes_received),
            backpressure: get(&self.backpressure),
            not_connected: get(&self.not_connected),
            rejected_unknown_token: get(&self.rejected_unknown_token),
            malformed: get(&self.malformed),
            dials: get(&self.dials),
            dial_failures: get(&self.dial_failures),
            sessions_opened: get(&self.sessions_opened),
            handshake_timeouts: get(&self.handshake_timeouts),
            joins: get(&self.joins),
            leaves: get(&self.leaves),
        }
    }
}
