//! dstate over kameo.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod remote;
mod runtime;

pub use error::{ClusterError, KeyError};
pub use remote::{
    ClusterKey, FrameSink, KameoCluster, KameoClusterBuilder, KameoTransport, NodeIdentity,
    PeerIdentity, TransportStats,
};
pub use runtime::{KameoRef, KameoRuntime, KameoTimer};
