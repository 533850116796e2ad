//! Everything a test needs to run dstate without a network: a virtual clock, an in-process
//! runtime and transport, test state types, and a deterministic simulated cluster.

pub mod conformance;
pub mod process;
pub mod sim;
pub mod test_clock;

mod network;
mod runtime;
mod states;

pub use crate::persist::InMemoryPersistence;
pub use network::InMemoryNetwork;
pub use runtime::{TestRef, TestRuntime};
pub use states::{
    apply_test_change, TestDeltaChange, TestDeltaInner, TestDeltaState, TestDeltaView, TestState,
    TestViewDelta,
};
pub use test_clock::TestClock;
