//! The per-node endpoint: a kameo remote actor that receives frame batches from peers.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use dstate::NodeId;
use kameo::actor::ActorRef;
use kameo::message::{Context, Message};
use kameo::{remote_message, Actor, RemoteActor, Reply};
use libp2p::PeerId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::control::SessionToken;
use super::sequencer::{Received, Sequencer};
use super::shared::{FrameSink, Shared};
use super::stats::{add, bump};

/// Batches held back per sending link while waiting for a gap (twice the largest window).
const MAX_PENDING_BATCHES: usize = 128;
/// Frames kept while no sink is attached yet.
const MAX_EARLY_FRAMES: usize = 4096;

/// The name an endpoint is registered under in kameo's registry.
pub(crate) fn registry_name(peer: &PeerId, session: u64) -> String {
    format!("dstate-endpoint/{peer}/{session:016x}")
}

/// Frames of one batch; serialized as a sequence of byte strings (never as integer arrays).
#[derive(Debug, Clone, Default)]
pub(crate) struct Frames(pub(crate) Vec<Bytes>);

impl Serialize for Frames {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for frame in &self.0 {
            seq.serialize_element(serde_bytes::Bytes::new(frame))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Frames {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let frames = Vec::<serde_bytes::ByteBuf>::deserialize(deserializer)?;
        Ok(Frames(
            frames
                .into_iter()
                .map(|frame| Bytes::from(frame.into_vec()))
                .collect(),
        ))
    }
}

/// Frames from one peer to another's endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FrameBatch {
    /// The token the receiver handed to the sender in the handshake.
    pub(crate) token: SessionToken,
    /// Random per sending link, so a new link never collides with an old one's numbers.
    pub(crate) stream: u64,
    /// Position of this batch in its stream.
    pub(crate) seq: u64,
    /// Every batch below this one was acknowledged or abandoned by the sender.
    pub(crate) floor: u64,
    pub(crate) frames: Frames,
}

/// The endpoint's answer to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Reply)]
pub(crate) enum BatchReply {
    /// Taken (delivered, held for ordering, or a duplicate).
    Accepted,
    /// The token names no live session: the sender must handshake again.
    UnknownSession,
}

/// Attach the node's inbound side.
pub(crate) struct AttachSink(pub(crate) Arc<dyn FrameSink>);

/// Receives frame batches, checks their session, orders them and hands the frames to the
/// node tagged with the authenticated sender.
#[derive(RemoteActor)]
#[remote_actor(id = "dstate_kameo::Endpoint/1")]
pub(crate) struct Endpoint {
    shared: Arc<Shared>,
    sequencers: HashMap<(SessionToken, u64), Sequencer<Frames>>,
    sink: Option<Arc<dyn FrameSink>>,
    early: VecDeque<(NodeId, Bytes)>,
}

impl Endpoint {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Endpoint {
            shared,
            sequencers: HashMap::new(),
            sink: None,
            early: VecDeque::new(),
        }
    }

    fn deliver(&mut self, from: NodeId, frames: Frames) {
        add(&self.shared.counters.frames_received, frames.0.len() as u64);
        match &self.sink {
            Some(sink) => {
                for frame in frames.0 {
                    sink.deliver(from, frame);
                }
            }
            None => {
                for frame in frames.0 {
                    if self.early.len() >= MAX_EARLY_FRAMES {
                        self.early.pop_front();
                        bump(&self.shared.counters.dropped_early_frames);
                    }
                    self.early.push_back((from, frame));
                }
            }
        }
    }

    /// Forgets ordering state of sessions that ended.
    fn prune(&mut self) {
        if self.sequencers.len() > 2 * self.shared.session_count() + 8 {
            let shared = &self.shared;
            self.sequencers
                .retain(|(token, _), _| shared.session(token).is_some());
        }
    }
}

impl Actor for Endpoint {
    type Args = Self;
    type Error = std::convert::Infallible;

    fn name() -> &'static str {
        "dstate_kameo::Endpoint"
    }

    async fn on_start(args: Self::Args, _actor_ref: ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(args)
    }
}

#[remote_message("dstate_kameo::FrameBatch/1")]
impl Message<FrameBatch> for Endpoint {
    type Reply = BatchReply;

    async fn handle(
        &mut self,
        batch: FrameBatch,
        _ctx: &mut Context<Self, Self::Reply>,
    ) -> BatchReply {
        bump(&self.shared.counters.batches_received);
        let Some(sender) = self.shared.session(&batch.token) else {
            bump(&self.shared.counters.rejected_batches);
            tracing::warn!(
                frames = batch.frames.0.len(),
                "frame batch with an unknown session token rejected"
            );
            return BatchReply::UnknownSession;
        };
        let mut ready = Vec::new();
        let received = self
            .sequencers
            .entry((batch.token, batch.stream))
            .or_insert_with(|| Sequencer::new(MAX_PENDING_BATCHES))
            .handle_batch(batch.seq, batch.floor, batch.frames, &mut ready);
        if received == Received::Duplicate {
            bump(&self.shared.counters.duplicate_batches);
        }
        for frames in ready {
            self.deliver(sender.node, frames);
        }
        self.prune();
        BatchReply::Accepted
    }
}

impl Message<AttachSink> for Endpoint {
    type Reply = ();

    async fn handle(&mut self, attach: AttachSink, _ctx: &mut Context<Self, Self::Reply>) {
        for (from, frame) in self.early.drain(..) {
            attach.0.deliver(from, frame);
        }
        self.sink = Some(attach.0);
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.shared.local)
            .field("streams", &self.sequencers.len())
            .field("early", &self.early.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_travel_as_byte_strings_under_kameos_codec() {
        let frames = Frames(vec![
            Bytes::from_static(&[200; 1000]),
            Bytes::from_static(b"x"),
        ]);
        // kameo encodes remote messages with rmp-serde (`to_vec_named`).
        let encoded = rmp_serde::to_vec_named(&frames).unwrap();
        // As byte strings: ~1001 bytes plus headers; as an integer array it would be ~2000.
        assert!(encoded.len() < 1020, "{}", encoded.len());
        let decoded: Frames = rmp_serde::from_slice(&encoded).unwrap();
        assert_eq!(decoded.0, frames.0);
    }

    #[test]
    fn garbage_does_not_decode_to_a_batch() {
        assert!(rmp_serde::from_slice::<FrameBatch>(&[0xc1, 0x00, 0xff]).is_err());
        assert!(rmp_serde::from_slice::<FrameBatch>(&[]).is_err());
    }
}
