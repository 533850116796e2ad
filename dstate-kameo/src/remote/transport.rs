//! [`KameoTransport`]: the dstate [`Transport`] over the cluster node's links.

use std::fmt;
use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use dstate::{BoxFuture, NodeId, Transport, TransportError};

use super::shared::{Command, Shared};
use super::stats::{bump, TransportStats};

/// Longest [`Transport::flush`] waits for unacknowledged frames.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends dstate frames to peers over kameo remote messages.
///
/// `send` never blocks: the frame goes into the peer's bounded queue, drained by the peer's
/// link into acknowledged batches. A full queue is [`TransportError::Backpressure`], an
/// unknown or not yet joined peer [`TransportError::NotConnected`], a frame above
/// [`max_frame_bytes`](Transport::max_frame_bytes) [`TransportError::TooLarge`] (the core
/// chunks snapshots to fit).
#[derive(Clone)]
pub struct KameoTransport {
    shared: Arc<Shared>,
}

impl KameoTransport {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        KameoTransport { shared }
    }

    /// Transport and membership counters (the same as [`KameoCluster::stats`]).
    ///
    /// [`KameoCluster::stats`]: crate::KameoCluster::stats
    pub fn stats(&self) -> TransportStats {
        self.shared.counters.snapshot()
    }
}

impl Transport for KameoTransport {
    fn send(&self, to: NodeId, frame: Bytes) -> Result<(), TransportError> {
        let counters = &self.shared.counters;
        let limits = &self.shared.limits;
        if frame.len() > limits.max_frame_bytes {
            bump(&counters.refused_too_large);
            return Err(TransportError::TooLarge {
                len: frame.len(),
                limit: limits.max_frame_bytes,
            });
        }
        let Some(link) = self.shared.link(to) else {
            bump(&counters.refused_not_connected);
            return Err(TransportError::NotConnected(to));
        };
        let result = link.try_send(frame, limits);
        match &result {
            Ok(()) => bump(&counters.frames_queued),
            Err(TransportError::Backpressure(_)) => bump(&counters.refused_backpressure),
            Err(_) => bump(&counters.refused_not_connected),
        }
        result
    }

    fn max_frame_bytes(&self) -> usize {
        self.shared.limits.max_frame_bytes
    }

    /// Resolves once every frame taken so far was acknowledged by its peer's endpoint (or
    /// after [`FLUSH_TIMEOUT`], when a peer does not answer).
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.shared.wait_idle(FLUSH_TIMEOUT))
    }

    fn reconnect(&self, peer: NodeId) {
        if self
            .shared
            .commands
            .try_send(Command::Reconnect(peer))
            .is_err()
        {
            tracing::warn!(%peer, "reconnect request dropped: the cluster driver is busy or stopped");
        }
    }
}

impl fmt::Debug for KameoTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KameoTransport")
            .field("local", &self.shared.local)
            .field("limits", &self.shared.limits)
            .finish()
    }
}
