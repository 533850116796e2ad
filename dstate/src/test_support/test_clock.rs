//! A virtual clock that only moves when told to, with timers that fire as it moves.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::runtime::{Clock, TimerHandle};

type Callback = Box<dyn FnMut() + Send>;

struct Timer {
    period: Option<Duration>,
    cancelled: Arc<AtomicBool>,
    fire: Callback,
}

struct Inner {
    base: Instant,
    offset: Duration,
    wall_base_millis: u64,
    wall_skew_millis: i64,
    seq: u64,
    timers: BTreeMap<(Duration, u64), Timer>,
}

/// Manual time for tests: `now()` stays put until [`advance`](TestClock::advance), which
/// fires every timer due on the way, in deadline order. Clones share the same time.
#[derive(Clone)]
pub struct TestClock {
    inner: Arc<Mutex<Inner>>,
}

/// A timer scheduled on a [`TestClock`].
#[derive(Debug, Clone)]
pub struct TestTimer {
    cancelled: Arc<AtomicBool>,
}

impl TestClock {
    /// A clock at an arbitrary start, with wall time 1,700,000,000,000 ms.
    pub fn new() -> Self {
        TestClock {
            inner: Arc::new(Mutex::new(Inner {
                base: Instant::now(),
                offset: Duration::ZERO,
                wall_base_millis: 1_700_000_000_000,
                wall_skew_millis: 0,
                seq: 0,
                timers: BTreeMap::new(),
            })),
        }
    }

    /// Move time forward by `by`, firing due timers (each at its own deadline).
    pub fn advance(&self, by: Duration) {
        let target = self.lock().offset + by;
        loop {
            let due = {
                let mut inner = self.lock();
                let next = inner
                    .timers
                    .keys()
                    .next()
                    .copied()
                    .filter(|(at, _)| *at <= target);
                match next {
                    Some(key) => {
                        inner.offset = inner.offset.max(key.0);
                        inner.timers.remove(&key).map(|timer| (key.0, timer))
                    }
                    None => {
                        inner.offset = target;
                        None
                    }
                }
            };
            let Some((at, mut timer)) = due else { break };
            if timer.cancelled.load(Ordering::SeqCst) {
                continue;
            }
            (timer.fire)();
            if let Some(period) = timer.period {
                let mut inner = self.lock();
                let seq = inner.next_seq();
                inner
                    .timers
                    .insert((at + period.max(Duration::from_nanos(1)), seq), timer);
            }
        }
    }

    /// Shift the wall clock (e.g. backwards, to test incarnation rules).
    pub fn skew_wall_millis(&self, by: i64) {
        self.lock().wall_skew_millis += by;
    }

    /// Run `fire` at `now + delay`, then every `period` if given.
    pub fn schedule(
        &self,
        delay: Duration,
        period: Option<Duration>,
        fire: impl FnMut() + Send + 'static,
    ) -> TestTimer {
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut inner = self.lock();
        let at = inner.offset + delay;
        let seq = inner.next_seq();
        let timer = Timer {
            period,
            cancelled: cancelled.clone(),
            fire: Box::new(fire),
        };
        inner.timers.insert((at, seq), timer);
        TestTimer { cancelled }
    }

    /// Number of timers not yet fired or cancelled.
    pub fn pending_timers(&self) -> usize {
        self.lock()
            .timers
            .values()
            .filter(|t| !t.cancelled.load(Ordering::SeqCst))
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Callbacks run outside the lock, so a poisoned lock means a panic in this file only;
        // the data stays consistent (single-field updates).
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock::new()
    }
}

impl std::fmt::Debug for TestClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClock")
            .field("offset", &self.lock().offset)
            .finish()
    }
}

impl Clock for TestClock {
    fn now(&self) -> Instant {
        let inner = self.lock();
        inner.base + inner.offset
    }

    fn wall_millis(&self) -> u64 {
        let inner = self.lock();
        let millis = u64::try_from(inner.offset.as_millis()).unwrap_or(u64::MAX);
        inner
            .wall_base_millis
            .saturating_add(millis)
            .saturating_add_signed(inner.wall_skew_millis)
    }
}

impl TimerHandle for TestTimer {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn timers_fire_in_order_as_time_advances_and_cancel_stops_them() {
        let clock = TestClock::new();
        let fired = Arc::new(Mutex::new(Vec::new()));
        let log = fired.clone();
        clock.schedule(Duration::from_millis(20), None, move || {
            log.lock().unwrap().push(20)
        });
        let log = fired.clone();
        clock.schedule(Duration::from_millis(10), None, move || {
            log.lock().unwrap().push(10)
        });
        let ticks = Arc::new(AtomicUsize::new(0));
        let counter = ticks.clone();
        let every = clock.schedule(
            Duration::from_millis(5),
            Some(Duration::from_millis(5)),
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
            },
        );
        let start = clock.now();
        clock.advance(Duration::from_millis(15));
        assert_eq!(*fired.lock().unwrap(), vec![10]);
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
        assert_eq!(clock.now() - start, Duration::from_millis(15));
        every.cancel();
        clock.advance(Duration::from_millis(15));
        assert_eq!(*fired.lock().unwrap(), vec![10, 20]);
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn wall_clock_moves_with_advance_and_can_go_backwards() {
        let clock = TestClock::new();
        let before = clock.wall_millis();
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.wall_millis(), before + 1000);
        clock.skew_wall_millis(-5000);
        assert_eq!(clock.wall_millis(), before - 4000);
    }
}
