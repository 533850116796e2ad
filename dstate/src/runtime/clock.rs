//! Injected time: a monotonic clock for protocol logic, a wall clock for incarnations.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Source of time for the host. Tests inject
/// [`TestClock`](crate::test_support::test_clock::TestClock).
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock milliseconds since the Unix epoch (used for incarnations).
    fn wall_millis(&self) -> u64;
    /// A cheap monotonic reading that may lag [`now`](Self::now) by about a millisecond,
    /// never run ahead of it. Queries check staleness bounds of
    /// [`COARSE_MIN_BOUND`](crate::COARSE_MIN_BOUND) or more against it. The default
    /// is `now()`.
    fn recent(&self) -> Instant {
        self.now()
    }
}

/// The operating system's clocks. [`recent`](Clock::recent) is a coarse clock ticked every
/// [`COARSE_TICK`](crate::COARSE_TICK) by a background thread that parks when
/// nobody reads it; while the machine is overloaded it may lag by more than a tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[inline]
    fn recent(&self) -> Instant {
        super::coarse::recent()
    }

    fn wall_millis(&self) -> u64 {
        // A clock before 1970 is treated as 0; incarnation rules then bump past the last one.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}
