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

/// `body` sealed as a frame: magic, format version, `body`, and a valid CRC32C over them.
/// For tests and fuzzers that want arbitrary bytes to get past the checksum and reach the
/// frame decoder and the receive rules.
pub fn seal_frame_body(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(body.len() + 6);
    bytes.extend_from_slice(&[crate::wire::MAGIC, crate::wire::FORMAT_VERSION]);
    bytes.extend_from_slice(body);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}
