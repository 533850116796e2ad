//! Errors of the cluster layer.

use std::net::SocketAddr;

/// Starting or driving a [`RactorCluster`](crate::RactorCluster) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A ractor actor of the cluster layer did not start.
    #[error("cannot start the {actor} actor: {reason}")]
    Spawn {
        /// Which actor.
        actor: &'static str,
        /// ractor's error, rendered.
        reason: String,
    },
    /// [`attach`](crate::RactorCluster::attach) was already called.
    #[error("the cluster is already attached to a node")]
    AlreadyAttached,
    /// The cluster has shut down.
    #[error("the cluster has stopped")]
    Stopped,
}
