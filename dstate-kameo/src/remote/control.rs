//! The dstate control protocol on the libp2p connection: handshake, peer exchange, goodbye.
//!
//! It runs as its own request-response protocol next to kameo's, so every message is tied
//! to the libp2p peer (noise-authenticated) it arrived from. Session tokens handed out here
//! bind kameo frame batches, whose handler cannot see the sending peer, to that peer.

use std::time::Duration;

use dstate::{Incarnation, NodeId};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};

/// Protocol name on the wire.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/dstate/control/1");
/// Version of the handshake's content; a peer speaking another one is refused.
pub(crate) const HELLO_VERSION: u32 = 1;
/// Largest control message: a hello lists every peer, far below this.
const MAX_CONTROL_BYTES: u64 = 256 * 1024;
/// A control request unanswered for this long fails (the handshake is then retried).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most peers listed in one hello or exchange message.
pub(crate) const MAX_PEER_RECORDS: usize = 1024;
/// Most addresses kept per peer.
pub(crate) const MAX_ADDRS_PER_PEER: usize = 16;

/// A secret a node hands to one peer over the authenticated connection; the peer puts it
/// on every frame batch it sends back, which is how the receiver knows who sent the batch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct SessionToken(pub(crate) [u8; 16]);

impl SessionToken {
    pub(crate) fn generate() -> Self {
        SessionToken(rand::random())
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself.
        write!(f, "SessionToken(..)")
    }
}

/// Who a node is, as it tells a peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) version: u32,
    pub(crate) node: NodeId,
    pub(crate) incarnation: Incarnation,
    /// Random per process: names this process's endpoint in kameo's registry.
    pub(crate) session: u64,
    /// The token the receiver must put on frame batches to the sender.
    pub(crate) token: SessionToken,
    /// Where the sender listens (multiaddr bytes).
    pub(crate) listen: Vec<Vec<u8>>,
    /// Other peers the sender is connected to.
    pub(crate) peers: Vec<PeerRecord>,
}

/// A peer and where it listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PeerRecord {
    pub(crate) peer: Vec<u8>,
    pub(crate) addrs: Vec<Vec<u8>>,
}

impl PeerRecord {
    pub(crate) fn new(peer: PeerId, addrs: &[Multiaddr]) -> Self {
        PeerRecord {
            peer: peer.to_bytes(),
            addrs: encode_addrs(addrs),
        }
    }

    /// The peer and its valid addresses; `None` when the peer id does not parse.
    pub(crate) fn decode(&self) -> Option<(PeerId, Vec<Multiaddr>)> {
        let peer = PeerId::from_bytes(&self.peer).ok()?;
        Some((peer, decode_addrs(&self.addrs)))
    }
}

/// A control request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ControlRequest {
    /// Start (or repeat) the handshake.
    Hello(Hello),
    /// Peers the sender got to know since its hello.
    Peers(Vec<PeerRecord>),
    /// The sender leaves the cluster gracefully.
    Goodbye,
}

/// A control response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ControlResponse {
    /// The handshake is accepted; the responder's own hello.
    Welcome(Hello),
    /// The handshake is refused.
    Rejected(Rejection),
    /// A peer list or goodbye was taken.
    Ack,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Rejection {
    /// The peer speaks another handshake version.
    Version,
    /// The peer claims the responder's own `NodeId`.
    OwnNodeId,
    /// Another live peer holds that `NodeId` with an equal or newer incarnation.
    NodeIdTaken,
    /// The responder is leaving.
    ShuttingDown,
}

/// The control protocol's libp2p behaviour.
pub(crate) type ControlBehaviour =
    request_response::cbor::Behaviour<ControlRequest, ControlResponse>;

pub(crate) fn behaviour() -> ControlBehaviour {
    let codec = request_response::cbor::codec::Codec::default()
        .set_request_size_maximum(MAX_CONTROL_BYTES)
        .set_response_size_maximum(MAX_CONTROL_BYTES);
    request_response::cbor::Behaviour::with_codec(
        codec,
        [(PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(CONTROL_TIMEOUT),
    )
}

pub(crate) fn encode_addrs(addrs: &[Multiaddr]) -> Vec<Vec<u8>> {
    addrs
        .iter()
        .take(MAX_ADDRS_PER_PEER)
        .map(|addr| addr.to_vec())
        .collect()
}

/// Valid addresses only; peer input that does not parse is skipped.
pub(crate) fn decode_addrs(addrs: &[Vec<u8>]) -> Vec<Multiaddr> {
    addrs
        .iter()
        .take(MAX_ADDRS_PER_PEER)
        .filter_map(|bytes| Multiaddr::try_from(bytes.clone()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_records_skip_garbage() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4000".parse().unwrap();
        let peer = PeerId::random();
        let mut record = PeerRecord::new(peer, std::slice::from_ref(&addr));
        record.addrs.push(vec![0xff, 0x00, 0x13]);
        assert_eq!(record.decode(), Some((peer, vec![addr])));
        record.peer = vec![1, 2, 3];
        assert_eq!(record.decode(), None);
    }

    #[test]
    fn tokens_do_not_print() {
        assert_eq!(format!("{:?}", SessionToken([7; 16])), "SessionToken(..)");
    }
}
