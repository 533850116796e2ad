//! Injected time: a monotonic clock for protocol logic, a wall clock for incarnations.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Source of time for the host. Tests inject
/// [`TestClock`](crate::test_support::test_clock::TestClock).
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock milliseconds since the Unix epoch (used for incarnations).
    fn wall_millis(&self) -> u64;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_millis(&self) -> u64 {
        // A clock before 1970 is treated as 0; incarnation rules then bump past the last one.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}
