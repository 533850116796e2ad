//! State types of the replication benchmark (shared with `benches/replication.rs`).

// Included by the bench peer and by the benchmark; each uses a different part.
#![allow(dead_code)]

use dstate::{DeserializeError, DistributedState};

/// A u64 that is a wall-clock stamp (ns since the epoch) of the mutation that wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BenchCounter {
    /// Stamp in ns since the epoch (the clock every process on one machine shares).
    pub(crate) stamp_ns: u64,
}

impl DistributedState for BenchCounter {
    fn name() -> &'static str {
        "bench_counter"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        self.stamp_ns.to_le_bytes().to_vec()
    }

    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
        let raw: [u8; 8] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
        Ok(BenchCounter {
            stamp_ns: u64::from_le_bytes(raw),
        })
    }
}

/// Marks the last mutation of a burst: only marked bursts are reported by the peer.
pub(crate) const MARK: u64 = 1 << 63;

/// The throughput benchmark's state: `stamp_ns` is a sequence number, or a stamp with
/// [`MARK`] set for the last mutation of a burst.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BenchBurst {
    /// Sequence number, or `now_ns() | MARK`.
    pub(crate) stamp_ns: u64,
}

impl DistributedState for BenchBurst {
    fn name() -> &'static str {
        "bench_burst"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        self.stamp_ns.to_le_bytes().to_vec()
    }

    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
        let raw: [u8; 8] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
        Ok(BenchBurst {
            stamp_ns: u64::from_le_bytes(raw),
        })
    }
}

/// A 16 KB view with a stamp in its first 8 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BenchBlob {
    /// Stamp (first 8 bytes) and payload.
    pub(crate) bytes: Vec<u8>,
}

/// Size of a [`BenchBlob`].
pub(crate) const BLOB_BYTES: usize = 16 * 1024;

impl BenchBlob {
    /// A blob stamped `stamp_ns`.
    pub(crate) fn stamped(stamp_ns: u64) -> Self {
        let mut bytes = vec![0xa5; BLOB_BYTES];
        bytes[..8].copy_from_slice(&stamp_ns.to_le_bytes());
        BenchBlob { bytes }
    }

    /// Its stamp.
    pub(crate) fn stamp_ns(&self) -> u64 {
        stamp_of(&self.bytes)
    }
}

impl DistributedState for BenchBlob {
    fn name() -> &'static str {
        "bench_blob"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
        Ok(BenchBlob {
            bytes: bytes.to_vec(),
        })
    }
}

/// The stamp in the first 8 bytes (0 when shorter).
pub(crate) fn stamp_of(bytes: &[u8]) -> u64 {
    bytes
        .first_chunk::<8>()
        .map(|b| u64::from_le_bytes(*b))
        .unwrap_or(0)
}

/// Wall-clock ns since the epoch.
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
