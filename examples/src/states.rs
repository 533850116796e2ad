//! The state types of the examples.

use dstate::{DeserializeError, DistributedState};
use serde::{Deserialize, Serialize};

/// What one node publishes about itself in the `node_resource` example and the demo.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// 1-minute load average × 1000 (from `/proc/loadavg`; simulated where unavailable).
    pub load_milli: u32,
    /// Resident memory of the node's process in KiB (`/proc/self/statm`).
    pub rss_kib: u64,
    /// Updates published so far: shows each node's shard moving on every peer.
    pub ticks: u64,
    /// OS process id of the node.
    pub pid: u32,
}

impl DistributedState for NodeLoad {
    fn name() -> &'static str {
        "node_load"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        // Plain data: postcard cannot fail on it.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    fn deserialize_state(bytes: &[u8], version: u32) -> Result<Self, DeserializeError> {
        if version != Self::WIRE_VERSION {
            return Err(DeserializeError::malformed(format!(
                "unknown version {version}"
            )));
        }
        postcard::from_bytes(bytes).map_err(DeserializeError::malformed)
    }
}

impl NodeLoad {
    /// Sample this process and machine; `ticks` is the caller's.
    pub fn sample(ticks: u64) -> NodeLoad {
        NodeLoad {
            load_milli: load_milli(ticks),
            rss_kib: rss_kib(),
            ticks,
            pid: std::process::id(),
        }
    }
}

/// A shard of a cluster-wide counter: the cluster total is the sum of the shards.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// This node's contribution.
    pub value: u64,
}

impl DistributedState for Counter {
    fn name() -> &'static str {
        "counter"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        self.value.to_le_bytes().to_vec()
    }

    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
        let raw: [u8; 8] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
        Ok(Counter {
            value: u64::from_le_bytes(raw),
        })
    }
}

fn load_milli(ticks: u64) -> u32 {
    let real = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| {
        s.split_whitespace()
            .next()
            .and_then(|l| l.parse::<f64>().ok())
    });
    match real {
        Some(load) => (load * 1000.0) as u32,
        // Simulated: a slow wave per process.
        None => 500 + ((ticks * 37 + u64::from(std::process::id())) % 1000) as u32,
    }
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_roundtrip_and_reject_garbage() {
        let load = NodeLoad::sample(3);
        let bytes = load.serialize_state();
        assert_eq!(NodeLoad::deserialize_state(&bytes, 1), Ok(load));
        assert!(NodeLoad::deserialize_state(&[0xff; 3], 1).is_err());
        let counter = Counter { value: 42 };
        assert_eq!(
            Counter::deserialize_state(&counter.serialize_state(), 1),
            Ok(counter)
        );
        assert!(Counter::deserialize_state(&[1, 2], 1).is_err());
    }
}
