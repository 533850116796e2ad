//! The two state traits an application implements, and what they share.

use std::sync::Arc;
use std::time::Duration;

/// Why bytes could not be turned back into a state, view or delta.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeserializeError {
    /// The bytes are not a valid encoding.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// The bytes were written with a version this build does not read.
    #[error("unsupported version {version}")]
    UnsupportedVersion {
        /// The version stamped on the bytes.
        version: u32,
    },
}

impl DeserializeError {
    /// A `Malformed` error from any displayable cause.
    pub fn malformed(cause: impl std::fmt::Display) -> Self {
        DeserializeError::Malformed(cause.to_string())
    }
}

/// How urgently one change must reach the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncUrgency {
    /// Push now, whatever the strategy.
    Immediate,
    /// Push within this delay (changes within the delay travel as one snapshot).
    Delayed(Duration),
    /// Send nothing now: the next change or snapshot sent carries the difference.
    Suppress,
    /// Follow the state's configured strategy.
    #[default]
    Default,
}

/// A simple replicated state: peers see the whole value, every change sends all of it.
///
/// Small, all-public state (load figures, flags, presence). The required items are fixed:
///
/// ```
/// use dstate::{DeserializeError, DistributedState};
///
/// #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
/// struct Counter { value: u64 }
///
/// impl DistributedState for Counter {
///     fn name() -> &'static str { "counter" }
///     const WIRE_VERSION: u32 = 1;
///     const STORAGE_VERSION: u32 = 1;
///     fn serialize_state(&self) -> Vec<u8> { self.value.to_le_bytes().to_vec() }
///     fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
///         let raw: [u8; 8] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
///         Ok(Counter { value: u64::from_le_bytes(raw) })
///     }
/// }
/// ```
///
/// `deserialize_state` receives the version the bytes were written with (the sender's
/// `WIRE_VERSION`, or the `STORAGE_VERSION` of persisted data) and decides what it accepts.
pub trait DistributedState: Clone + Send + Sync + 'static {
    /// Unique name of the state type within the cluster.
    fn name() -> &'static str;
    /// Version stamped on everything this build sends.
    const WIRE_VERSION: u32;
    /// Version stamped on everything this build persists.
    const STORAGE_VERSION: u32;
    /// Encode the state (used on the wire and on disk).
    fn serialize_state(&self) -> Vec<u8>;
    /// Decode a state written with `version`.
    fn deserialize_state(bytes: &[u8], version: u32) -> Result<Self, DeserializeError>;
}

impl DeserializeError {
    /// A `Malformed` error for a byte string of the wrong length (handy in hand-written codecs).
    pub fn malformed_len(_: std::array::TryFromSliceError) -> Self {
        DeserializeError::Malformed("wrong length".to_owned())
    }
}

/// A delta-aware replicated state: peers see a projection, changes travel as deltas.
///
/// The owner keeps `State` (which may hold private fields); peers hold `View =
/// project_view(&state)`. A mutation returns a `StateDeltaChange`; peers receive
/// `project_delta(&change)` and apply it with `apply_delta`. The contract that the simulated
/// cluster checks: applying the deltas of a run of changes to the old view gives the same
/// view as projecting the new state.
pub trait DeltaDistributedState: Send + Sync + 'static {
    /// The owner's full state.
    type State: Clone + Send + Sync + 'static;
    /// What peers see.
    type View: Clone + Send + Sync + 'static;
    /// The change to a view that one mutation causes.
    type ViewDelta: Clone + Send + Sync + 'static;
    /// What a mutation reports about the change it made.
    type StateDeltaChange: Send + 'static;

    /// Unique name of the state type within the cluster.
    fn name() -> &'static str;
    /// Version stamped on everything this build sends.
    const WIRE_VERSION: u32;
    /// Version stamped on everything this build persists.
    const STORAGE_VERSION: u32;

    /// True when a delta is the whole new view (simple states): the engine then sends it as
    /// a snapshot. Delta-aware states keep the default.
    #[doc(hidden)]
    const DELTA_IS_SNAPSHOT: bool = false;

    /// What peers see of `state`.
    fn project_view(state: &Self::State) -> Self::View;
    /// What peers must apply for `change`.
    fn project_delta(change: &Self::StateDeltaChange) -> Self::ViewDelta;
    /// Apply a delta to a view.
    fn apply_delta(view: &Self::View, delta: &Self::ViewDelta) -> Self::View;

    /// Encode a view for the wire (at `WIRE_VERSION`).
    fn serialize_view(view: &Self::View) -> Vec<u8>;
    /// Decode a view written with `version`.
    fn deserialize_view(bytes: &[u8], version: u32) -> Result<Self::View, DeserializeError>;
    /// Encode a delta for the wire (at `WIRE_VERSION`).
    fn serialize_delta(delta: &Self::ViewDelta) -> Vec<u8>;
    /// Decode a delta written with `version`.
    fn deserialize_delta(bytes: &[u8], version: u32) -> Result<Self::ViewDelta, DeserializeError>;
    /// Encode the owner's state for persistence (at `STORAGE_VERSION`).
    fn serialize_state(state: &Self::State) -> Vec<u8>;
    /// Decode a persisted state written with `STORAGE_VERSION` (older versions go through
    /// [`migrate_state`](Self::migrate_state)).
    fn deserialize_state(bytes: &[u8], version: u32) -> Result<Self::State, DeserializeError>;

    /// Urgency of one change; the default follows the configured strategy.
    fn sync_urgency(
        _old: &Self::View,
        _new: &Self::View,
        _change: &Self::StateDeltaChange,
    ) -> SyncUrgency {
        SyncUrgency::Default
    }

    /// Encode a view at an older wire `version`, for a peer that asked for it (rolling
    /// upgrades). `None` (the default) means only `WIRE_VERSION` can be produced.
    fn serialize_view_at(_view: &Self::View, _version: u32) -> Option<Vec<u8>> {
        None
    }

    /// Turn a state persisted with an older `STORAGE_VERSION` into the current state.
    /// The default refuses: a type that changes its storage format overrides this.
    fn migrate_state(_bytes: &[u8], from_version: u32) -> Result<Self::State, DeserializeError> {
        Err(DeserializeError::UnsupportedVersion {
            version: from_version,
        })
    }
}

/// Adapter that lets the engine treat a [`DistributedState`] as a delta-aware state whose
/// view is the whole state and whose "delta" is the new state (always sent as a snapshot).
#[derive(Debug)]
pub struct Simple<S>(std::marker::PhantomData<S>);

impl<S: DistributedState> DeltaDistributedState for Simple<S> {
    type State = S;
    type View = S;
    type ViewDelta = Arc<S>;
    type StateDeltaChange = Arc<S>;

    fn name() -> &'static str {
        S::name()
    }
    const WIRE_VERSION: u32 = S::WIRE_VERSION;
    const STORAGE_VERSION: u32 = S::STORAGE_VERSION;

    const DELTA_IS_SNAPSHOT: bool = true;

    fn project_view(state: &S) -> S {
        state.clone()
    }
    fn project_delta(change: &Arc<S>) -> Arc<S> {
        change.clone()
    }
    fn apply_delta(_view: &S, delta: &Arc<S>) -> S {
        S::clone(delta)
    }
    fn serialize_view(view: &S) -> Vec<u8> {
        view.serialize_state()
    }
    fn deserialize_view(bytes: &[u8], version: u32) -> Result<S, DeserializeError> {
        S::deserialize_state(bytes, version)
    }
    fn serialize_delta(delta: &Arc<S>) -> Vec<u8> {
        delta.serialize_state()
    }
    fn deserialize_delta(bytes: &[u8], version: u32) -> Result<Arc<S>, DeserializeError> {
        S::deserialize_state(bytes, version).map(Arc::new)
    }
    fn serialize_state(state: &S) -> Vec<u8> {
        state.serialize_state()
    }
    fn deserialize_state(bytes: &[u8], version: u32) -> Result<S, DeserializeError> {
        S::deserialize_state(bytes, version)
    }
    fn migrate_state(bytes: &[u8], from_version: u32) -> Result<S, DeserializeError> {
        // A simple state's own decoder receives the stored version and decides.
        S::deserialize_state(bytes, from_version)
    }
}
