//! dstate over ractor: an [`ActorRuntime`](dstate::ActorRuntime) on ractor actors, and
//! membership and transport over `ractor_cluster`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cluster;
mod error;
mod runtime;

pub use cluster::{
    ClusterStats, PeerInfo, RactorCluster, RactorClusterBuilder, RactorTransport, TlsSettings,
};
pub use error::ClusterError;
pub use runtime::{RactorRef, RactorRuntime, RactorTimer};
/// The `tokio_rustls` version ractor_cluster uses, for building [`TlsSettings`].
pub use tokio_rustls;
