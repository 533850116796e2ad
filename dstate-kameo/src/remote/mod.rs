//! Everything specific to kameo's `remote` feature (libp2p 0.56): the swarm, the dstate
//! handshake, the endpoint actor and the links.
//!
//! kameo plans to replace its libp2p remote layer with a new `kameo_remote` crate; moving
//! to it touches this module only. The runtime ([`crate::KameoRuntime`]) does not depend
//! on it.

mod book;
mod cluster;
mod control;
mod driver;
mod endpoint;
mod keys;
mod link;
mod sequencer;
mod session;
mod shared;
mod stats;
mod swarm;
mod transport;

pub use cluster::{KameoCluster, KameoClusterBuilder};
pub use keys::{ClusterKey, NodeIdentity, PeerIdentity};
pub use shared::FrameSink;
pub use stats::TransportStats;
pub use transport::KameoTransport;
