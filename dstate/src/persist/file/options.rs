//! Options of the durable store.

use std::num::NonZeroUsize;

use super::fault::FaultInjector;

/// Options of a [`DurablePersistence`](super::DurablePersistence).
///
/// ```
/// use dstate::DurableOptions;
///
/// let options = DurableOptions::default().compaction_threshold(16 << 20);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct DurableOptions {
    pub(crate) compaction_threshold: u64,
    pub(crate) max_batch_bytes: NonZeroUsize,
    pub(crate) fault_injector: Option<FaultInjector>,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            // Compacting after 64 MiB of superseded records keeps compactions rare for small
            // states while bounding what recovery reads to a fraction of a second.
            compaction_threshold: 64 << 20,
            // 16 MiB per write: hundreds of 64 KB saves share one fsync, and the memory held
            // by one batch stays small.
            max_batch_bytes: NonZeroUsize::new(16 << 20).unwrap_or(NonZeroUsize::MIN),
            // No faults unless a test asks for them.
            fault_injector: None,
        }
    }
}

impl DurableOptions {
    /// Compact once the files hold more than this many bytes of superseded records *and* more
    /// superseded bytes than live ones. Disk use stays below about twice the live data plus
    /// this threshold, and so does what recovery reads.
    pub fn compaction_threshold(mut self, bytes: u64) -> Self {
        self.compaction_threshold = bytes;
        self
    }

    /// Upper bound on the bytes of one group commit (a single larger save still goes alone).
    pub fn max_batch_bytes(mut self, bytes: NonZeroUsize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Route file operations through `faults` (for tests).
    pub fn fault_injector(mut self, faults: FaultInjector) -> Self {
        self.fault_injector = Some(faults);
        self
    }
}
