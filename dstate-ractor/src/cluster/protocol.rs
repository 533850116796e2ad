//! Messages between the endpoint actors of two nodes, and the endpoint's local inputs.
//!
//! Remote messages travel as `ractor_cluster` casts (`SerializedMessage::Cast`) whose
//! `variant` names the kind and whose `args` hold a small hand-written binary encoding.
//! Every message after the handshake starts with the *receiver's* session token: the
//! capability the receiver handed out over one authenticated session, which is how it knows
//! the session (and so the dstate node) a message arrived from. Decoding never panics.

use std::fmt;

use bytes::Bytes;
use dstate::{Incarnation, NodeId};
use ractor::message::SerializedMessage;
use ractor::Message;
use ractor_cluster::node::NodeServerSessionInformation;
use tokio::sync::oneshot;

use crate::cluster::address_book::DialOutcome;

/// Version of this adapter's endpoint protocol, carried in [`Hello`].
pub(crate) const PROTOCOL_VERSION: u8 = 1;

const VARIANT_HELLO: &str = "dstate.hello";
const VARIANT_FRAME: &str = "dstate.frame";
const VARIANT_ACK: &str = "dstate.ack";
const VARIANT_PEERS: &str = "dstate.peers";
const VARIANT_FLUSH: &str = "dstate.flush";

/// Longest string (node name, address) accepted in a handshake.
const MAX_STRING: usize = 1024;
/// Most adverts accepted in one gossip list.
const MAX_ADDRESSES: usize = 256;

/// A node and the address it advertises.
pub(crate) type Advert = (NodeId, String);

/// A capability one node hands to a peer over one authenticated session; frames carry it back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Token(pub(crate) u128);

impl Token {
    pub(crate) fn random() -> Self {
        Token(rand::random())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never log the secret itself.
        write!(f, "Token(..{:04x})", self.0 & 0xffff)
    }
}

/// The dstate handshake: sent once per session, to the peer's endpoint, over that session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The sender's dstate identity.
    pub(crate) node: NodeId,
    /// The sender's process lifetime.
    pub(crate) incarnation: Incarnation,
    /// The sender's ractor_cluster node name (`name@host`), to match the session.
    pub(crate) name: String,
    /// The token the receiver puts on every message it sends back to the sender.
    pub(crate) token: Token,
    /// Where the sender accepts connections, if it advertises an address.
    pub(crate) listen: Option<String>,
    /// Advertised addresses of the sender's other peers (membership gossip).
    pub(crate) known: Vec<Advert>,
}

/// A message from another node's endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireMsg {
    /// Session handshake.
    Hello(Hello),
    /// An opaque dstate frame.
    Frame { token: Token, payload: Bytes },
    /// Cumulative receipt of frames, for outbound flow control; `flush` answers a
    /// [`WireMsg::Flush`] (0 when unsolicited).
    Ack {
        token: Token,
        bytes: u64,
        frames: u64,
        flush: u64,
    },
    /// Peers (and their addresses) the sender learned since its handshake.
    Peers { token: Token, adverts: Vec<Advert> },
    /// Asks for an immediate [`WireMsg::Ack`] carrying `id`.
    Flush { token: Token, id: u64 },
    /// Something that did not decode; counted and dropped.
    Malformed { variant: String, len: usize },
}

/// What a running cluster asks its endpoint actor to do (never crosses the network).
pub(crate) enum LocalMsg {
    /// A ractor_cluster session event, forwarded from the NodeServer.
    Session(SessionEvent, NodeServerSessionInformation),
    /// The node's identity for the handshake, and where inbound frames go.
    Attach {
        incarnation: Incarnation,
        sink: crate::cluster::FrameSink,
    },
    /// Periodic housekeeping: dials, handshake deadlines, endpoint discovery.
    Tick,
    /// A dial task finished.
    DialFinished {
        address: String,
        outcome: DialOutcome,
    },
    /// The core found `peer` silent: drop its session and redial.
    Reconnect(NodeId),
    /// Ask every peer to acknowledge everything sent so far; reply when they have (or the
    /// deadline passed) with the number of peers that did.
    Flush(oneshot::Sender<usize>),
    /// The flush deadline passed.
    FlushDeadline(u64),
}

/// Which node-session callback fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionEvent {
    Opened,
    Ready,
    Disconnected,
}

/// Everything the endpoint actor receives.
pub(crate) enum EndpointMsg {
    Wire(WireMsg),
    Local(LocalMsg),
}

impl WireMsg {
    fn encode(self) -> Option<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        let variant = match self {
            WireMsg::Hello(hello) => {
                out.push(PROTOCOL_VERSION);
                put_u64(&mut out, hello.node.0);
                put_u64(&mut out, hello.incarnation.0);
                out.extend_from_slice(&hello.token.0.to_be_bytes());
                put_str(&mut out, &hello.name);
                put_str(&mut out, hello.listen.as_deref().unwrap_or(""));
                put_list(&mut out, &hello.known);
                VARIANT_HELLO
            }
            WireMsg::Frame { token, payload } => {
                out.reserve_exact(16 + payload.len());
                out.extend_from_slice(&token.0.to_be_bytes());
                out.extend_from_slice(&payload);
                VARIANT_FRAME
            }
            WireMsg::Ack {
                token,
                bytes,
                frames,
                flush,
            } => {
                out.extend_from_slice(&token.0.to_be_bytes());
                put_u64(&mut out, bytes);
                put_u64(&mut out, frames);
                put_u64(&mut out, flush);
                VARIANT_ACK
            }
            WireMsg::Peers { token, adverts } => {
                out.extend_from_slice(&token.0.to_be_bytes());
                put_list(&mut out, &adverts);
                VARIANT_PEERS
            }
            WireMsg::Flush { token, id } => {
                out.extend_from_slice(&token.0.to_be_bytes());
                put_u64(&mut out, id);
                VARIANT_FLUSH
            }
            WireMsg::Malformed { .. } => return None,
        };
        Some((variant, out))
    }

    /// Decode `args` of a cast with the given variant; anything unexpected is `Malformed`.
    pub(crate) fn decode(variant: &str, args: Vec<u8>) -> WireMsg {
        let len = args.len();
        let decoded = match variant {
            VARIANT_FRAME => decode_frame(args),
            VARIANT_HELLO => decode_hello(&args),
            VARIANT_ACK => decode_ack(&args),
            VARIANT_PEERS => decode_peers(&args),
            VARIANT_FLUSH => decode_flush(&args),
            _ => None,
        };
        decoded.unwrap_or_else(|| WireMsg::Malformed {
            variant: variant.chars().take(64).collect(),
            len,
        })
    }
}

fn decode_frame(args: Vec<u8>) -> Option<WireMsg> {
    let mut payload = Bytes::from(args);
    if payload.len() < 16 {
        return None;
    }
    let token = Reader::new(&payload.split_to(16)).u128()?;
    Some(WireMsg::Frame {
        token: Token(token),
        payload,
    })
}

fn decode_hello(args: &[u8]) -> Option<WireMsg> {
    let mut r = Reader::new(args);
    if r.u8()? != PROTOCOL_VERSION {
        return None;
    }
    let node = NodeId(r.u64()?);
    let incarnation = Incarnation(r.u64()?);
    let token = Token(r.u128()?);
    let name = r.string()?;
    let listen = r.string()?;
    let known = r.list()?;
    r.finish()?;
    Some(WireMsg::Hello(Hello {
        node,
        incarnation,
        name,
        token,
        listen: (!listen.is_empty()).then_some(listen),
        known,
    }))
}

fn decode_ack(args: &[u8]) -> Option<WireMsg> {
    let mut r = Reader::new(args);
    let msg = WireMsg::Ack {
        token: Token(r.u128()?),
        bytes: r.u64()?,
        frames: r.u64()?,
        flush: r.u64()?,
    };
    r.finish()?;
    Some(msg)
}

fn decode_peers(args: &[u8]) -> Option<WireMsg> {
    let mut r = Reader::new(args);
    let msg = WireMsg::Peers {
        token: Token(r.u128()?),
        adverts: r.list()?,
    };
    r.finish()?;
    Some(msg)
}

fn decode_flush(args: &[u8]) -> Option<WireMsg> {
    let mut r = Reader::new(args);
    let msg = WireMsg::Flush {
        token: Token(r.u128()?),
        id: r.u64()?,
    };
    r.finish()?;
    Some(msg)
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    // Strings are bounded on decode; a longer one is cut at a char boundary on encode so the
    // peer does not reject the whole handshake.
    let mut end = value.len().min(MAX_STRING);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let value = &value[..end];
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

fn put_list(out: &mut Vec<u8>, adverts: &[Advert]) {
    let adverts = &adverts[..adverts.len().min(MAX_ADDRESSES)];
    out.extend_from_slice(&(adverts.len() as u16).to_be_bytes());
    for (node, address) in adverts {
        put_u64(out, node.0);
        put_str(out, address);
    }
}

/// A bounds-checked cursor: every read returns `None` past the end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }

    fn u128(&mut self) -> Option<u128> {
        self.take().map(u128::from_be_bytes)
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::from(self.u16()?);
        if len > MAX_STRING || len > self.rest.len() {
            return None;
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        String::from_utf8(head.to_vec()).ok()
    }

    fn list(&mut self) -> Option<Vec<Advert>> {
        let count = usize::from(self.u16()?);
        if count > MAX_ADDRESSES {
            return None;
        }
        (0..count)
            .map(|_| Some((NodeId(self.u64()?), self.string()?)))
            .collect()
    }

    fn finish(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

impl Message for EndpointMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, ractor::message::BoxedDowncastErr> {
        match self {
            EndpointMsg::Wire(wire) => match wire.encode() {
                Some((variant, args)) => Ok(SerializedMessage::Cast {
                    variant: variant.to_string(),
                    args,
                    metadata: None,
                }),
                None => Err(ractor::message::BoxedDowncastErr),
            },
            // Local inputs never leave the process.
            EndpointMsg::Local(_) => Err(ractor::message::BoxedDowncastErr),
        }
    }

    fn deserialize(message: SerializedMessage) -> Result<Self, ractor::message::BoxedDowncastErr> {
        Ok(EndpointMsg::Wire(match message {
            SerializedMessage::Cast { variant, args, .. } => WireMsg::decode(&variant, args),
            SerializedMessage::Call { variant, args, .. } => WireMsg::Malformed {
                variant: variant.chars().take(64).collect(),
                len: args.len(),
            },
            SerializedMessage::CallReply(_, args) => WireMsg::Malformed {
                variant: String::from("call-reply"),
                len: args.len(),
            },
        }))
    }
}

#[cfg(test)]
mod tests;
