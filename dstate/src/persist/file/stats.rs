//! Counters of the durable store.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a [`DurablePersistence`](super::DurablePersistence), read with
/// [`stats`](super::DurablePersistence::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurableStats {
    /// Saves acknowledged since the store was opened.
    pub saves: u64,
    /// Saves answered with an error.
    pub failed_saves: u64,
    /// Group commits made durable: one write and one `fdatasync` each.
    pub commits: u64,
    /// Bytes appended to the log by commits.
    pub bytes_appended: u64,
    /// Compactions completed.
    pub compactions: u64,
    /// Compactions that failed (the store keeps working on the log).
    pub failed_compactions: u64,
    /// Bytes in the store's files now.
    pub disk_bytes: u64,
    /// Bytes of the latest record of every state: what a compaction keeps.
    pub live_bytes: u64,
}

/// The counters, shared between the writer thread and the handle.
#[derive(Debug, Default)]
pub(crate) struct SharedStats {
    pub(crate) saves: AtomicU64,
    pub(crate) failed_saves: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) bytes_appended: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) failed_compactions: AtomicU64,
    pub(crate) disk_bytes: AtomicU64,
    pub(crate) live_bytes: AtomicU64,
}

impl SharedStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_sizes(&self, disk_bytes: u64, live_bytes: u64) {
        self.disk_bytes.store(disk_bytes, Ordering::Relaxed);
        self.live_bytes.store(live_bytes, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> DurableStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DurableStats {
            saves: get(&self.saves),
            failed_saves: get(&self.failed_saves),
            commits: get(&self.commits),
            bytes_appended: get(&self.bytes_appended),
            compactions: get(&self.compactions),
            failed_compactions: get(&self.failed_compactions),
            disk_bytes: get(&self.disk_bytes),
            live_bytes: get(&self.live_bytes),
        }
    }
}
