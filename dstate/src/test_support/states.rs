//! Ready-made state types for tests: a simple one and a delta-aware one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::{DeltaDistributedState, DeserializeError, DistributedState, SyncUrgency};

/// A simple state: a counter and a label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestState {
    /// A number tests increment.
    pub value: u64,
    /// A free-form label.
    pub label: String,
}

impl DistributedState for TestState {
    fn name() -> &'static str {
        "test_state"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        postcard_bytes(self)
    }

    fn deserialize_state(bytes: &[u8], version: u32) -> Result<Self, DeserializeError> {
        if version != 1 {
            return Err(DeserializeError::UnsupportedVersion { version });
        }
        postcard::from_bytes(bytes).map_err(DeserializeError::malformed)
    }
}

/// The owner's state of [`TestDeltaState`]: public entries plus a private field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestDeltaInner {
    /// Sum of all `Add` changes.
    pub total: u64,
    /// Keyed entries.
    pub entries: BTreeMap<String, u64>,
    /// Never leaves the owner.
    pub secret: u64,
}

/// What peers see of [`TestDeltaInner`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestDeltaView {
    /// Sum of all `Add` changes.
    pub total: u64,
    /// Keyed entries.
    pub entries: BTreeMap<String, u64>,
}

/// A change to [`TestDeltaInner`]; the variant chooses the sync urgency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TestDeltaChange {
    /// Add to the total (default urgency).
    Add(u64),
    /// Set an entry (default urgency).
    Put(String, u64),
    /// Remove an entry (default urgency).
    Remove(String),
    /// Add to the total, pushed at once whatever the strategy.
    Urgent(u64),
    /// Add to the total, pushed within the delay.
    Delayed(u64, Duration),
    /// Change the private field only: nothing is sent.
    Secret(u64),
}

/// A delta-aware test state: `State = TestDeltaInner`, `View = TestDeltaView`.
#[derive(Debug)]
pub struct TestDeltaState;

/// The delta of [`TestDeltaState`]: what changed in the view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TestViewDelta {
    /// Add to the total.
    Add(u64),
    /// Set an entry.
    Put(String, u64),
    /// Remove an entry.
    Remove(String),
    /// The view did not change.
    Nothing,
}

impl DeltaDistributedState for TestDeltaState {
    type State = TestDeltaInner;
    type View = TestDeltaView;
    type ViewDelta = TestViewDelta;
    type StateDeltaChange = TestDeltaChange;

    fn name() -> &'static str {
        "test_delta_state"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn project_view(state: &TestDeltaInner) -> TestDeltaView {
        TestDeltaView {
            total: state.total,
            entries: state.entries.clone(),
        }
    }

    fn project_delta(change: &TestDeltaChange) -> TestViewDelta {
        match change {
            TestDeltaChange::Add(n)
            | TestDeltaChange::Urgent(n)
            | TestDeltaChange::Delayed(n, _) => TestViewDelta::Add(*n),
            TestDeltaChange::Put(k, v) => TestViewDelta::Put(k.clone(), *v),
            TestDeltaChange::Remove(k) => TestViewDelta::Remove(k.clone()),
            TestDeltaChange::Secret(_) => TestViewDelta::Nothing,
        }
    }

    fn apply_delta(view: &TestDeltaView, delta: &TestViewDelta) -> TestDeltaView {
        let mut next = view.clone();
        match delta {
            TestViewDelta::Add(n) => next.total = next.total.wrapping_add(*n),
            TestViewDelta::Put(k, v) => {
                next.entries.insert(k.clone(), *v);
            }
            TestViewDelta::Remove(k) => {
                next.entries.remove(k);
            }
            TestViewDelta::Nothing => {}
        }
        next
    }

    fn serialize_view(view: &TestDeltaView) -> Vec<u8> {
        postcard_bytes(view)
    }
    fn deserialize_view(bytes: &[u8], version: u32) -> Result<TestDeltaView, DeserializeError> {
        check_version(version)?;
        postcard::from_bytes(bytes).map_err(DeserializeError::malformed)
    }
    fn serialize_delta(delta: &TestViewDelta) -> Vec<u8> {
        postcard_bytes(delta)
    }
    fn deserialize_delta(bytes: &[u8], version: u32) -> Result<TestViewDelta, DeserializeError> {
        check_version(version)?;
        postcard::from_bytes(bytes).map_err(DeserializeError::malformed)
    }
    fn serialize_state(state: &TestDeltaInner) -> Vec<u8> {
        postcard_bytes(state)
    }
    fn deserialize_state(bytes: &[u8], version: u32) -> Result<TestDeltaInner, DeserializeError> {
        check_version(version)?;
        postcard::from_bytes(bytes).map_err(DeserializeError::malformed)
    }

    fn sync_urgency(
        _old: &TestDeltaView,
        _new: &TestDeltaView,
        change: &TestDeltaChange,
    ) -> SyncUrgency {
        match change {
            TestDeltaChange::Urgent(_) => SyncUrgency::Immediate,
            TestDeltaChange::Delayed(_, delay) => SyncUrgency::Delayed(*delay),
            TestDeltaChange::Secret(_) => SyncUrgency::Suppress,
            _ => SyncUrgency::Default,
        }
    }
}

/// Apply a change to the owner's state (what a test's mutation closure does).
pub fn apply_test_change(state: &mut TestDeltaInner, change: &TestDeltaChange) {
    match change {
        TestDeltaChange::Add(n) | TestDeltaChange::Urgent(n) | TestDeltaChange::Delayed(n, _) => {
            state.total = state.total.wrapping_add(*n)
        }
        TestDeltaChange::Put(k, v) => {
            state.entries.insert(k.clone(), *v);
        }
        TestDeltaChange::Remove(k) => {
            state.entries.remove(k);
        }
        TestDeltaChange::Secret(n) => state.secret = state.secret.wrapping_add(*n),
    }
}

fn check_version(version: u32) -> Result<(), DeserializeError> {
    if version == 1 {
        Ok(())
    } else {
        Err(DeserializeError::UnsupportedVersion { version })
    }
}

fn postcard_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Invariant: these test types (integers, strings, maps of them) always serialise.
    postcard::to_allocvec(value).expect("test state types always serialise")
}
