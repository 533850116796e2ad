//! The byte transport between nodes, as adapters provide it.

use bytes::Bytes;

use crate::error::TransportError;
use crate::ids::NodeId;
use crate::runtime::BoxFuture;

/// Moves opaque frames between dstate nodes. Implemented by the adapters (and by the
/// in-memory transport of `test_support`).
///
/// Inbound frames are handed to the node with [`Inbound::deliver`](crate::Inbound::deliver),
/// tagged with the sender's authenticated identity (the connection the bytes came from,
/// never a field inside the frame).
pub trait Transport: Send + Sync + 'static {
    /// Queue `frame` for `to`. Must not block. A full per-peer queue returns
    /// [`TransportError::Backpressure`]: the engine then collapses that peer's pending
    /// changes into one snapshot.
    fn send(&self, to: NodeId, frame: Bytes) -> Result<(), TransportError>;

    /// Largest frame this transport carries in one message.
    fn max_frame_bytes(&self) -> usize {
        usize::MAX
    }

    /// Resolves once the frames queued so far have been handed to the network (or could not
    /// be). [`Node::shutdown`](crate::Node::shutdown) awaits it after its goodbye frames so a
    /// process that exits right after shutting down does not cut them off.
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// The liveness check found `peer` silent: drop its connection and redial it.
    fn reconnect(&self, peer: NodeId) {
        tracing::debug!(%peer, "transport has no reconnect; ignoring");
    }
}
