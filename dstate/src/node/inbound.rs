//! Where transports hand in the frames they receive.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::registry::NodeShared;
use crate::ids::NodeId;
use crate::wire::{self, Frame, FrameKind};

type ControlSink = Arc<dyn Fn(NodeId, Frame) + Send + Sync>;

/// The entry point for inbound frames of one node. Transports call
/// [`deliver`](Inbound::deliver) with the sender's authenticated identity; decoding, routing
/// and rejection happen here and never block.
#[derive(Clone)]
pub struct Inbound {
    shared: Arc<NodeShared>,
    control: ControlSink,
}

impl Inbound {
    pub(crate) fn new(shared: Arc<NodeShared>, control: ControlSink) -> Self {
        Inbound { shared, control }
    }

    /// A frame arrived from `from` (the identity of the connection it came on).
    pub fn deliver(&self, from: NodeId, frame: Bytes) {
        let frame = match wire::decode(&frame, self.shared.max_inbound_frame) {
            Ok(frame) => frame,
            Err(error) => {
                self.shared.count_rejected();
                tracing::warn!(%from, %error, "undecodable frame dropped");
                return;
            }
        };
        match frame.kind {
            FrameKind::Feed | FrameKind::Heartbeat | FrameKind::Goodbye => {
                (self.control)(from, frame)
            }
            _ => match self.shared.slot(&frame.state) {
                Some(slot) => slot.frame(from, frame),
                None => {
                    self.shared
                        .unknown_state_frames
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, state = %frame.state, "frame for an unregistered state");
                }
            },
        }
    }

    /// Frames dropped because they did not decode.
    pub fn rejected_frames(&self) -> u64 {
        self.shared.rejected_frames.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("node", &self.shared.id)
            .finish_non_exhaustive()
    }
}
