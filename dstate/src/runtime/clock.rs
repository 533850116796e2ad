//! Injected time: a monotonic clock for protocol logic, a wall clock for incarnations.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Source of time for the host. Tests inject
/// [`TestClock`](crate::test_support::test_clock::TestClock).
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock milliseconds since the Unix epoch (used for incarnations).
    fn wall_millis(&self) -> u64;
    /// True when [`now`](Self::now) is the operating system's monotonic clock
    /// (`Instant::now()`). Queries with bounds of [`COARSE_MIN_BOUND`](crate::COARSE_MIN_BOUND)
    /// or more may then check staleness against a coarse reading of it (about 1 ms behind,
    /// never ahead) instead of a clock read per query. Default `false`.
    fn is_system_clock(&self) -> bool {
        false
    }
}

/// The operating system's clocks. Queries check bounds of
/// [`COARSE_MIN_BOUND`](crate::COARSE_MIN_BOUND) or more against a coarse copy of the
/// monotonic clock, ticked every [`COARSE_TICK`](crate::COARSE_TICK) by a background thread
/// (`dstate-clock`) that parks when nobody reads it; while the machine is overloaded the copy
/// may lag by more than a tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn is_system_clock(&self) -> bool {
        true
    }

    fn wall_millis(&self) -> u64 {
        // A clock before 1970 is treated as 0; incarnation rules then bump past the last one.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}
