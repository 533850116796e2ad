//! The frame type and its codec.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::ids::{Generation, NodeId};

/// First byte of every dstate frame.
pub const MAGIC: u8 = 0xD5;
/// Frame format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Magic, format and checksum: no frame is shorter.
pub const MIN_FRAME_BYTES: usize = 2 + 4;

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FrameKind {
    /// The source's full view at `generation`; `ack` asks the receiver to acknowledge it.
    Snapshot {
        /// The receiver should answer with [`FrameKind::Ack`].
        ack: bool,
    },
    /// One piece of a snapshot too large for one frame.
    SnapshotChunk {
        /// Index of this piece.
        index: u32,
        /// Number of pieces.
        count: u32,
        /// Total payload bytes of the assembled snapshot.
        total_bytes: u64,
        /// The receiver should acknowledge the assembled snapshot.
        ack: bool,
    },
    /// The delta from `generation - 1` to `generation`.
    Delta,
    /// A request for the receiver's snapshot; `generation` is what the requester holds,
    /// `payload_version` the wire version it wants.
    SnapshotRequest,
    /// The source's shard is still at `generation` (answer to a request for a view the
    /// requester already holds).
    Current,
    /// Acknowledgement of a snapshot at `generation` (from the receiver of the snapshot).
    Ack,
    /// Node-level: a batch of change notices; the payload is a list of [`Notice`]s.
    Feed,
    /// Node-level: liveness beat; the payload is the list of the source's own shard
    /// generations (as [`Notice`]s), `generation.incarnation` the node's incarnation.
    Heartbeat,
    /// Node-level: the source is leaving gracefully.
    Goodbye,
}

/// One change notice: `(state, source, generation)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// State name.
    pub state: String,
    /// Owner of the shard.
    pub source: NodeId,
    /// Its newest generation.
    pub generation: Generation,
}

/// A frame between engines (or node hosts, for node-level kinds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// What it carries.
    pub kind: FrameKind,
    /// State name (empty for node-level kinds).
    pub state: Cow<'static, str>,
    /// Node whose shard this is about (must equal the authenticated sender for data kinds).
    pub source: NodeId,
    /// Generation the frame refers to.
    pub generation: Generation,
    /// Wire version of the payload (the sender's `WIRE_VERSION`, or the version asked for).
    pub payload_version: u32,
    /// Payload bytes from the state's own codec, or a postcard list for node-level kinds.
    #[serde(with = "serde_bytes_compat")]
    pub payload: Vec<u8>,
}

impl Frame {
    /// A copy of the header fields with an empty payload.
    pub fn clone_header(&self) -> Frame {
        Frame {
            kind: self.kind.clone(),
            state: self.state.clone(),
            source: self.source,
            generation: self.generation,
            payload_version: self.payload_version,
            payload: Vec::new(),
        }
    }
}

/// Encode a frame. Fails only when the encoding exceeds `limit` bytes.
pub fn encode(frame: &Frame, limit: usize) -> Result<Bytes, DecodeError> {
    let mut out = Vec::with_capacity(frame.payload.len() + frame.state.len() + 32);
    out.push(MAGIC);
    out.push(FORMAT_VERSION);
    let mut out = postcard::to_extend(frame, out)
        .map_err(|e| DecodeError::Malformed(format!("encode: {e}")))?;
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    if out.len() > limit {
        return Err(DecodeError::TooLarge {
            len: out.len(),
            limit,
        });
    }
    Ok(Bytes::from(out))
}

/// Decode a frame of at most `limit` bytes. Never panics.
pub fn decode(bytes: &[u8], limit: usize) -> Result<Frame, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    if bytes.len() < MIN_FRAME_BYTES {
        return Err(DecodeError::TooShort { len: bytes.len() });
    }
    if bytes[0] != MAGIC {
        return Err(DecodeError::BadMagic(bytes[0]));
    }
    if bytes[1] != FORMAT_VERSION {
        return Err(DecodeError::UnknownFormat(bytes[1]));
    }
    let (content, crc_bytes) = bytes.split_at(bytes.len() - 4);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(crc_bytes);
    if crc32c::crc32c(content) != u32::from_le_bytes(crc) {
        return Err(DecodeError::Checksum);
    }
    let (frame, rest) = postcard::take_from_bytes::<Frame>(&content[2..])
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(frame)
}

/// Serialize `Vec<u8>` as a postcard byte string (length + raw bytes) rather than a sequence
/// of varints, which keeps payload encoding a plain copy.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests;
