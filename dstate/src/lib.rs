//! dstate: replicate per-node state across the nodes of an actor cluster.
//!
//! (Crate documentation is completed in `docs.rs` below.)
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
    ChangeEvent, Inbound, Node, NodeBuilder, QueryResult, SimpleHandle, StateHandle, Subscription,
};
pub use object::{PeerStatus, StateObject, StateViewObject, ViewMap};
pub use persist::{InMemoryPersistence, PersistedShard, StatePersistence};
pub use runtime::{
    ActorRef, ActorRuntime, BoxFuture, Clock, ClusterEvent, ClusterEventBus, ClusterEvents,
    LeaveReason, SystemClock, TimerHandle,
};
pub use state::{DeltaDistributedState, DeserializeError, DistributedState, Simple, SyncUrgency};
pub use transport::Transport;
