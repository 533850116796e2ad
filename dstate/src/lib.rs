//! dstate: replicate per-node state across the nodes of an actor cluster.
//!
//! (Crate documentation is completed in `docs.rs` below.)
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod error;
mod ids;
mod object;
mod persist;
mod runtime;
mod state;
mod transport;
pub mod wire;

pub use config::{NodeConfig, PushMode, StateConfig, SyncStrategy, VersionMismatchPolicy};
pub use error::{
    DecodeError, MutationError, PersistError, QueryError, RejectReason, SendError, TransportError,
};
pub use ids::{Age, Generation, Incarnation, NodeId};
pub use object::{PeerStatus, StateObject, StateViewObject, ViewMap};
#[cfg(all(feature = "durable", unix))]
pub use persist::{
    DurableOptions, DurablePersistence, DurableStats, Fault, FaultInjector, FaultOp,
};
pub use persist::{InMemoryPersistence, PersistedShard, StatePersistence};
pub use runtime::{
    ActorRef, ActorRuntime, BoxFuture, Clock, ClusterEvent, ClusterEventBus, ClusterEvents,
    LeaveReason, SystemClock, TimerHandle,
};
pub use state::{DeltaDistributedState, DeserializeError, DistributedState, Simple, SyncUrgency};
pub use transport::Transport;
