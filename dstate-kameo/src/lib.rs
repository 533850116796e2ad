//! # dstate-kameo: dstate over kameo
//!
//! Runs [`dstate`] replication on [kameo](https://docs.rs/kameo) actors, between OS
//! processes and machines, over kameo's own distribution (its `remote` feature, libp2p).
//!
//! - [`KameoRuntime`] is the dstate [`ActorRuntime`](dstate::ActorRuntime) over kameo
//!   actors: `spawn` from synchronous code inside a tokio runtime, fire-and-forget `send`,
//!   timers, processing groups.
//! - [`KameoCluster`] is one node of a cluster: its own libp2p swarm (TCP, a cluster key,
//!   noise, yamux) with kameo's remote behaviour, a dstate handshake, membership events for
//!   the runtime, and a [`KameoTransport`] for the dstate node.
//!
//! ## Starting a node
//!
//! ```no_run
//! use dstate::{Node, NodeId, StateConfig, SyncStrategy};
//! use dstate::test_support::TestState;
//! use dstate_kameo::{ClusterKey, KameoCluster, KameoRuntime};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = KameoRuntime::new();
//! let cluster = KameoCluster::builder(NodeId(2), ClusterKey::from_passphrase("our secret"))
//!     .listen("0.0.0.0:7000".parse()?)       // port 0 picks one: see `local_addr()`
//!     .seed("10.0.0.1:7000".parse()?)        // one reachable member is enough
//!     .start(&runtime)
//!     .await?;
//! let node = Node::builder(NodeId(2), runtime.clone())
//!     .transport(cluster.transport())
//!     .start();
//! cluster.join_node(&node).await?;           // handshake with the node's incarnation
//!
//! let state = node.register::<TestState>(StateConfig::new(SyncStrategy::active_push())).await?;
//! state.mutate(|s| s.value += 1).await?;
//!
//! node.shutdown().await;                      // goodbye frames to every peer
//! cluster.shutdown().await;                   // delivered, then the connections close
//! # Ok(()) }
//! ```
//!
//! ## What the adapter adds to kameo's remote layer
//!
//! | kameo 0.22 `remote` (libp2p 0.56) | dstate-kameo |
//! |---|---|
//! | `bootstrap()` uses mDNS on 0.0.0.0 and QUIC | own swarm: TCP on the address you give, explicit seeds, no mDNS |
//! | idle connections close after 10 s | idle timeout of a year; liveness is the core's heartbeat |
//! | nothing redials; a failed dial forgets the address | own address book, redial with exponential backoff and jitter; peers exchange addresses |
//! | the registry (Kademlia) is not a liveness view | membership from connection events and the dstate handshake |
//! | remote handlers do not see the sending peer | per-session tokens handed out over the authenticated connection bind every batch to its peer |
//! | `tell` loses and reorders bursts, exhausts yamux streams | frames batched into acknowledged asks, a bounded window in flight, reordered back into sequence at the receiver |
//! | about 0.5 MB per message (CBOR doubles byte payloads) | frames above [`Transport::max_frame_bytes`](dstate::Transport::max_frame_bytes) (512 KiB) refused with [`TransportError::TooLarge`](dstate::TransportError); the core chunks snapshots to fit |
//! | unbounded send queues | bounded per-peer queue: a full queue is [`TransportError::Backpressure`](dstate::TransportError) |
//!
//! ## Membership and identity
//!
//! A connection is a member only after the dstate handshake, which carries the node's
//! [`NodeId`](dstate::NodeId) and incarnation. The dialer speaks first; the listener answers.
//! `NodeJoined` is reported once the peer's endpoint actor is found in kameo's registry and
//! frames can flow; `NodeLeft` when the last connection closes (`Disconnected`) or the peer
//! says goodbye (`Graceful`). A second peer claiming a live `NodeId` is refused unless its
//! incarnation is newer (a restart), in which case the old connection is retired at once.
//!
//! ## Security
//!
//! - Every connection runs libp2p's private-network layer keyed by the [`ClusterKey`], then
//!   noise (authenticated encryption). A process without the key cannot complete a
//!   connection, so it never gets or delivers a frame.
//! - Optionally, [`KameoClusterBuilder::allow_peers`] limits connections to known
//!   [`PeerIdentity`]s (load a stable [`NodeIdentity`] per node for that).
//! - Frames are tagged with the sender the session token was issued to, never with a field
//!   inside the frame; the core rejects a frame whose claimed source differs.
//!
//! ## Delivery
//!
//! `send` never blocks. Frames to one peer go out in order, batched, as kameo asks with at
//! most 32 batches in flight (configurable up to 64); the receiver restores the order. A
//! batch that keeps failing resets the connection; the redial and the core's snapshots on
//! join repair what was lost. [`KameoCluster::shutdown`] waits (briefly) until queued frames
//! are acknowledged before saying goodbye.
//!
//! ## Limits of kameo's remote layer
//!
//! kameo allows one remote swarm per process, so one [`KameoCluster`] per process (a second
//! start fails with [`ClusterError::AlreadyRunning`], even after a shutdown). Every node of
//! a cluster must use the same `max_frame_bytes`. kameo plans to replace this remote layer
//! with a `kameo_remote` crate; everything specific to it lives in one private module.
//!
//! ## Build cost
//!
//! libp2p stays inside this crate (the core and the ractor adapter do not pull it). A cold
//! debug build of `dstate-kameo` compiles 260 crates: 3 min 42 s wall (2 min CPU) on two
//! shared cores; see the workspace README for the release figure.
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
