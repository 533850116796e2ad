//! Persistence of a node's own shards.
//!
//! The rule the host keeps: **a mutation is acknowledged only after its save succeeded, and
//! published only after that.** A failed save rolls the mutation back.

#[cfg(all(feature = "durable", unix))]
mod file;
mod memory;

#[cfg(all(feature = "durable", unix))]
pub use file::{DurableOptions, DurablePersistence, DurableStats, Fault, FaultInjector, FaultOp};
pub use memory::InMemoryPersistence;

use crate::error::PersistError;
use crate::ids::{Age, Incarnation};
use crate::runtime::BoxFuture;

/// A shard as stored: its generation parts, the storage version and the encoded state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedShard {
    /// Incarnation of the shard's lifetime.
    pub incarnation: Incarnation,
    /// Committed mutations in that lifetime.
    pub age: Age,
    /// `STORAGE_VERSION` the state bytes were written with.
    pub storage_version: u32,
    /// The encoded state.
    pub state: Vec<u8>,
}

/// Async storage of shards, keyed by state name. One instance serves all state types of a
/// node; concurrent saves of different state types may share one flush.
pub trait StatePersistence: Send + Sync + 'static {
    /// The last saved shard of `state`, if any.
    fn load<'a>(
        &'a self,
        state: &'a str,
    ) -> BoxFuture<'a, Result<Option<PersistedShard>, PersistError>>;

    /// Durably store `shard` as the current value of `state`. Returns `Ok` only once the data
    /// would survive a crash (for durable backends).
    fn save<'a>(
        &'a self,
        state: &'a str,
        shard: &'a PersistedShard,
    ) -> BoxFuture<'a, Result<(), PersistError>>;
}
