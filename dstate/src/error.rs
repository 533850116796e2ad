//! Error types, one per failure domain.

use crate::ids::{Generation, NodeId};
use crate::state::DeserializeError;

/// A mutation was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MutationError {
    /// Saving the change failed: state, age and own view were rolled back.
    #[error("saving the change failed, mutation rolled back: {0}")]
    Persist(#[from] PersistError),
    /// The change would produce a snapshot larger than the configured maximum.
    #[error("state of {bytes} bytes exceeds the snapshot limit of {limit} bytes")]
    TooLarge {
        /// Encoded size of the view.
        bytes: usize,
        /// Configured `max_snapshot_bytes`.
        limit: usize,
    },
    /// The state's actor has stopped (the node shut down).
    #[error("the state's actor has stopped")]
    Stopped,
}

/// A query could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The state's actor has stopped (the node shut down).
    #[error("the state's actor has stopped")]
    Stopped,
    /// Some views missed the staleness bound even after pulling.
    #[error("views of {nodes:?} are staler than the bound")]
    Stale {
        /// The peers whose views missed the bound.
        nodes: Vec<NodeId>,
    },
}

/// A state type could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A state type of this name is already registered on the node.
    #[error("a state named {name} is already registered")]
    AlreadyRegistered {
        /// The name.
        name: &'static str,
    },
}

/// A persistence backend failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The device is full.
    #[error("no space left on device")]
    NoSpace,
    /// Permission denied.
    #[error("permission denied: {path}")]
    PermissionDenied {
        /// The file or directory.
        path: String,
    },
    /// Any other I/O error.
    #[error("i/o error ({kind}): {message}")]
    Io {
        /// `std::io::ErrorKind` rendered.
        kind: String,
        /// The error's message.
        message: String,
    },
    /// Stored data failed its checksum or could not be parsed.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// Stored data has a storage version this build cannot read.
    #[error("stored version {found} is newer than supported version {supported}")]
    FutureVersion {
        /// Version found.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The store's directory is already opened by another store (in this or another process).
    #[error("the store directory {path} is in use by another store")]
    Locked {
        /// The directory.
        path: String,
    },
    /// A fault injected by a test backend.
    #[error("injected fault: {0}")]
    Injected(String),
}

impl From<std::io::Error> for PersistError {
    fn from(err: std::io::Error) -> Self {
        use std::io::ErrorKind;
        // ENOSPC (28) is reported as `StorageFull` on recent toolchains, raw on older ones.
        const ENOSPC: i32 = 28;
        if err.kind() == ErrorKind::StorageFull || err.raw_os_error() == Some(ENOSPC) {
            return PersistError::NoSpace;
        }
        if err.kind() == ErrorKind::PermissionDenied {
            return PersistError::PermissionDenied {
                path: err.to_string(),
            };
        }
        PersistError::Io {
            kind: format!("{:?}", err.kind()),
            message: err.to_string(),
        }
    }
}

/// A frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the smallest frame.
    #[error("frame of {len} bytes is too short")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// More bytes than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The first byte is not the dstate magic.
    #[error("bad magic byte {0:#04x}")]
    BadMagic(u8),
    /// A frame format this build does not know.
    #[error("unknown frame format version {0}")]
    UnknownFormat(u8),
    /// The checksum does not match the content.
    #[error("checksum mismatch")]
    Checksum,
    /// The content does not parse.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Why an inbound frame was rejected by an engine (counted in diagnostics).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// The frame claims a source other than the connection it arrived on.
    #[error("frame claims source {claimed} but arrived from {sender}")]
    SpoofedSource {
        /// Source written in the frame.
        claimed: NodeId,
        /// Authenticated sender.
        sender: NodeId,
    },
    /// A frame for this node's own shard came from elsewhere.
    #[error("frame from {sender} claims to carry this node's own shard")]
    OwnShard {
        /// Authenticated sender.
        sender: NodeId,
    },
    /// The payload could not be decoded.
    #[error("payload of generation {generation} could not be decoded: {error}")]
    Payload {
        /// Generation of the frame.
        generation: Generation,
        /// Decoder error.
        error: DeserializeError,
    },
    /// The frame could not be decoded at all.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// An actor's mailbox refused a message; the message is handed back.
#[derive(Debug, thiserror::Error)]
#[error("the actor's mailbox is closed")]
pub struct SendError<M>(pub M);

/// A transport could not take a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer is not connected.
    #[error("peer {0} is not connected")]
    NotConnected(NodeId),
    /// The peer's outbound queue is full: it is slow.
    #[error("outbound queue to {0} is full")]
    Backpressure(NodeId),
    /// The frame exceeds the transport's limit.
    #[error("frame of {len} bytes exceeds the transport limit of {limit}")]
    TooLarge {
        /// Frame size.
        len: usize,
        /// Transport limit.
        limit: usize,
    },
    /// The transport has shut down.
    #[error("transport closed")]
    Closed,
}
