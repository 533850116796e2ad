//! dstate over [ractor](https://docs.rs/ractor): an [`ActorRuntime`](dstate::ActorRuntime) on
//! ractor actors, and membership and transport over `ractor_cluster`, so registered states
//! replicate between OS processes and machines.
//!
//! # Quick start
//!
//! ```no_run
//! use std::sync::Arc;
//! use dstate::{Node, NodeId, StateConfig, SyncStrategy};
//! use dstate::test_support::TestState;
//! use dstate_ractor::{RactorCluster, RactorRuntime};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = RactorRuntime::new();
//! let cluster = RactorCluster::builder(NodeId(1), "cluster cookie")
//!     .listen("127.0.0.1:0".parse()?)
//!     .seed("127.0.0.1:7001")
//!     .start(&runtime)
//!     .await?;
//! println!("listening on {}", cluster.local_addr());
//! let transport: Arc<dyn dstate::Transport> = cluster.transport();
//! let node = Node::builder(NodeId(1), runtime.clone()).transport(transport).start();
//! cluster.attach_node(&node).await?;
//! let state = node.register::<TestState>(StateConfig::new(SyncStrategy::active_push())).await?;
//! state.mutate(|s| s.value += 1).await?;
//! let total: u64 = state.read(|views| views.iter().map(|v| v.view.value).sum());
//! # let _ = total;
//! node.shutdown().await;
//! cluster.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # What this crate provides
//!
//! * [`RactorRuntime`]: every dstate actor is a ractor actor (`spawn` is synchronous, via
//!   `spawn_instant`); timers are tokio tasks with exact cancellation; processing groups are
//!   `ractor::pg` groups. It passes the core's runtime conformance suite.
//! * [`RactorCluster`]: one per process. It binds its own TCP listener (port 0 allowed; the
//!   bound address is [`RactorCluster::local_addr`]) and hands accepted and dialled sockets
//!   to a `ractor_cluster::NodeServer`, which runs the cookie authentication. On every
//!   ready session the two endpoint actors (one per node, found through a cluster-wide
//!   `ractor::pg` group) exchange a dstate handshake: `NodeId`, incarnation and a random
//!   per-session token. Membership events on the runtime's
//!   [`cluster_events`](dstate::ActorRuntime::cluster_events) come from those sessions:
//!   joined when both handshakes are done, left (`Disconnected`) when the session closes.
//! * [`RactorTransport`]: dstate frames travel as ractor_cluster casts to the peer's
//!   endpoint, carrying the receiver's token; the receiver delivers them tagged with the node
//!   that token was issued to, and drops (and counts) anything else. Per peer, unacknowledged
//!   traffic is bounded by a credit window; a full window is reported to the core as
//!   backpressure, which collapses that peer's changes into one snapshot.
//! * Reconnection: seeds and the addresses peers advertise are redialled with exponential
//!   backoff after a failure or disconnect; a silent peer reported by the core's heartbeat
//!   ([`Transport::reconnect`](dstate::Transport::reconnect)) has its session closed and is
//!   redialled. ractor_cluster does none of this on its own.
//!
//! # Guarantees and limits
//!
//! * Frames to one peer arrive in order and at most once per session; frames in flight when
//!   a session drops are lost (the core re-syncs with snapshots on rejoin).
//! * A node with a different cookie never joins and never delivers a frame. Every process
//!   holding the cookie is trusted to run this protocol honestly: ractor_cluster advertises
//!   all remote-capable actors to every session, so the session tokens protect against
//!   misrouted and forged frames, not against a malicious cookie holder that sniffs
//!   traffic. Use [`RactorClusterBuilder::tls`] on untrusted networks.
//! * Frames larger than the configured inbound limit (16 MiB by default, the same on every
//!   node) would kill a ractor_cluster session; the transport reports a slightly smaller
//!   [`max_frame_bytes`](dstate::Transport::max_frame_bytes) so the core chunks them.
//! * `ractor::pg` and ractor's registry are process-global: one [`RactorCluster`] per OS
//!   process.
//!
//! # ractor's `cluster` feature
//!
//! `ractor_cluster` enables ractor's `cluster` feature for the whole build, which removes
//! ractor's blanket `impl Message for T`. This crate wraps its own messages, but the
//! application's own ractor actors then need `#[derive(ractor_cluster::RactorMessage)]` (or
//! a manual `impl ractor::Message`) on their message types. Networking is therefore not
//! behind a cargo feature of this crate: the runtime alone would change nothing about that
//! requirement as soon as any crate of the build uses ractor_cluster, and a dstate node
//! without a cluster is simply a `RactorRuntime` with no `RactorCluster` started.
//! ractor's optional `async-trait` feature is not supported.
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
