//! # dstate: replicated state for actor clusters
//!
//! Every node **owns one shard** of each registered state type (it is the only writer) and
//! holds a **read-only view** of every other node's shard. Reads run locally over the view
//! map, lock-free, with a staleness bound the caller chooses; changes travel to peers by the
//! state's [`SyncStrategy`].
//!
//! ```no_run
//! use std::time::Duration;
//! use dstate::test_support::{TestRuntime, TestState};
//! use dstate::{Node, NodeId, StateConfig, SyncStrategy};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::builder(NodeId(1), TestRuntime::new()).start(); // + .transport(..)
//! let load = node.register::<TestState>(StateConfig::new(SyncStrategy::active_push())).await?;
//! load.mutate(|s| s.value = 42).await?;                  // acknowledged once committed
//! let total = load
//!     .query(Duration::from_millis(500), |views| views.values().map(|s| s.value).sum::<u64>())
//!     .await?;                                             // pulls views older than 500 ms
//! assert!(total.is_fresh() || !total.stale.is_empty());
//! # Ok(()) }
//! ```
//!
//! ## Data model
//!
//! - [`DistributedState`]: small, all-public state; peers see all of it; each change sends
//!   the whole value.
//! - [`DeltaDistributedState`]: the owner keeps `State`, peers see `View = project_view(state)`,
//!   a change sends `project_delta(change)` which peers apply with `apply_delta`.
//! - Versions are ordered by [`Generation`] `(incarnation, age)`: `age` counts committed
//!   mutations, `incarnation` one lifetime of the shard.
//!
//! ## Guarantees
//!
//! - **Single writer:** a view is only ever written from frames that arrived on the owner's
//!   own authenticated connection; a frame claiming another source is rejected and counted.
//! - **Monotonic views:** within an incarnation the generation a node holds for a peer never
//!   goes backwards; a newer incarnation retires the older one at once (no ghost views).
//! - **Convergence:** once the network delivers again, every view converges to its owner's
//!   state (snapshots on join and on gaps, heartbeat notices, periodic sync, pulls).
//! - **Persistence rule:** with a [`StatePersistence`], a mutation is acknowledged only after
//!   its save succeeded and published only after that; a failed save rolls back state, age
//!   and own view and returns [`MutationError::Persist`].
//! - **Honest freshness:** [`StateHandle::query`] pulls views older than the bound and lists
//!   in [`QueryResult::stale`] every view that still misses it; nothing stale is presented as
//!   fresh.
//! - **Bounded:** a slow peer never makes a queue grow: its pending changes collapse into one
//!   snapshot; subscribers that fall behind lose old events (counted), never stall
//!   replication; frames bigger than the configured size travel as chunked snapshots.
//!
//! ## Not guaranteed
//!
//! - No consensus and no multi-writer merge: cluster-wide values are projections over shards.
//! - No read-your-writes across nodes without a staleness bound: a peer's view may lag.
//! - Without persistence a restarted node starts its shard empty (under a new incarnation).
//! - Delivery order of different state types relative to each other is not kept.
//!
//! ## Architecture and drive loop
//!
//! The [`engine`] is a pure state machine per state type: the host feeds it inputs with
//! `handle_*(now, ..)` and drains `poll_transmit`, `poll_persist`, `poll_event` and
//! `poll_timeout`. It never does I/O, reads a clock or spawns. The [`feed`] aggregator and
//! [`liveness`] tracker are pure too. [`Node`] is the runtime-generic host: one actor per
//! engine on any [`ActorRuntime`], persistence I/O through [`ActorRuntime::spawn_task`], bytes
//! through a [`Transport`], membership from [`ActorRuntime::cluster_events`]. Adapters
//! (`dstate-ractor`, `dstate-kameo`) provide a runtime, a transport and membership.
//!
//! ## Time
//!
//! Protocol logic takes `now` as an argument; the host reads it from an injected [`Clock`]
//! ([`SystemClock`] by default, [`test_support::TestClock`] in tests). Wall-clock time is only
//! used for incarnations.
//!
//! ## Testing your own state types
//!
//! [`test_support`] has a [`TestRuntime`](test_support::TestRuntime) with a virtual clock, an
//! in-memory network, in-memory persistence with fault injection, ready-made test states, the
//! runtime conformance suite, and the multi-process scenario harness the adapters share.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
pub mod diagnostics;
pub mod engine;
mod error;
pub mod feed;
mod ids;
pub mod liveness;
mod node;
mod object;
mod persist;
mod runtime;
mod state;
pub mod test_support;
mod transport;
pub mod wire;

pub use config::{NodeConfig, PushMode, StateConfig, SyncStrategy, VersionMismatchPolicy};
pub use diagnostics::{Health, LinkCounters, PeerDiagnostics, StateDiagnostics};
pub use error::{
    DecodeError, MutationError, PersistError, QueryError, RegisterError, RejectReason, SendError,
    TransportError,
};
pub use ids::{Age, Generation, Incarnation, NodeId};
pub use node::{
    ChangeEvent, Inbound, Node, NodeBuilder, Query, QueryResult, SimpleHandle, StateHandle,
    Subscription,
};
pub use object::{PeerStatus, StateObject, StateViewObject, ViewMap};
#[cfg(all(feature = "durable", unix))]
pub use persist::{
    DurableOptions, DurablePersistence, DurableStats, Fault, FaultInjector, FaultOp,
};
pub use persist::{InMemoryPersistence, PersistedShard, StatePersistence};
pub use runtime::{
    ActorRef, ActorRuntime, BoxFuture, Clock, ClusterEvent, ClusterEventBus, ClusterEvents,
    LeaveReason, SystemClock, TimerHandle, COARSE_MIN_BOUND, COARSE_TICK,
};
pub use state::{DeltaDistributedState, DeserializeError, DistributedState, Simple, SyncUrgency};
pub use transport::Transport;
