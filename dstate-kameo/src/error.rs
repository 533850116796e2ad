//! Errors of the kameo adapter, one enum per failure domain.

use std::net::SocketAddr;

/// A key or identity could not be read, parsed or stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a valid hex-encoded 32-byte cluster key.
    #[error("cluster key must be 64 hex digits: {reason}")]
    MalformedClusterKey {
        /// What was wrong.
        reason: String,
    },
    /// The bytes are not a valid identity key (protobuf-encoded libp2p keypair).
    #[error("malformed identity key: {reason}")]
    MalformedIdentity {
        /// The decoder's message.
        reason: String,
    },
    /// The text is not a valid peer identity.
    #[error("malformed peer identity {text:?}: {reason}")]
    MalformedPeer {
        /// The text given.
        text: String,
        /// The parser's message.
        reason: String,
    },
    /// Reading or writing the key file failed.
    #[error("identity key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The cluster node could not start or join.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// kameo allows one remote swarm per process; another cluster node already runs here.
    #[error(
        "a kameo cluster node already runs in this process (kameo allows one swarm per process)"
    )]
    AlreadyRunning,
    /// Building the libp2p transport failed.
    #[error("building the libp2p transport failed: {reason}")]
    Transport {
        /// The error's message.
        reason: String,
    },
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The error's message.
        reason: String,
    },
    /// The cluster node has shut down.
    #[error("the cluster node has shut down")]
    Closed,
    /// [`KameoCluster::join`](crate::KameoCluster::join) was called twice.
    #[error("the cluster node has already joined")]
    AlreadyJoined,
}
