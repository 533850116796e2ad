//! What the engine hands out through its `poll_*` methods.

use bytes::Bytes;

use crate::error::{MutationError, RejectReason};
use crate::ids::{Generation, NodeId};
use crate::object::StateViewObject;
use crate::persist::PersistedShard;

/// Bytes to send to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: NodeId,
    /// An encoded frame.
    pub frame: Bytes,
}

/// A save the host must carry out, then report with `handle_persisted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRequest {
    /// Generation the shard will have once saved.
    pub generation: Generation,
    /// What to store.
    pub shard: PersistedShard,
}

/// Something the host must act on or tell the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineEvent<V, T> {
    /// A mutation finished: committed (with its generation) or rolled back.
    MutationDone {
        /// The tag given with the mutation.
        tag: T,
        /// Outcome.
        result: Result<Generation, MutationError>,
    },
    /// A query's pulls finished (answered or timed out): run it now.
    QueryReady {
        /// The id given with `handle_query`.
        id: u64,
    },
    /// The own shard changed under a change-feed strategy: hand this to the feed aggregator.
    FeedNotice {
        /// New generation of the own shard.
        generation: Generation,
    },
    /// A view was installed, updated or removed (`view == None`).
    ViewChanged {
        /// Owner of the view.
        source: NodeId,
        /// The new view, or `None` when it was removed.
        view: Option<StateViewObject<V>>,
    },
    /// An inbound frame was rejected (also counted in diagnostics).
    Rejected {
        /// Authenticated sender.
        from: NodeId,
        /// Why.
        reason: RejectReason,
    },
}
