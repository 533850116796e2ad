//! A coarse monotonic clock for the query fast path: one atomic load instead of a clock read.
//!
//! Reading the monotonic clock costs 15-25 ns (a vDSO call), several times the rest of a
//! query over a few views. A background thread (`dstate-clock`) stores the time, as
//! nanoseconds since a process-wide base, every millisecond; readers load it. The thread
//! parks after about a second without readers and is woken by the next one, which reads the
//! precise clock meanwhile. If the thread cannot be started every reading is precise.
//!
//! The coarse reading never runs ahead of the precise clock: it lags it by up to a tick while
//! the machine keeps up (more while the ticking thread is starved of CPU).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How often the coarse time is refreshed.
pub const COARSE_TICK: Duration = Duration::from_millis(1);

/// Staleness bounds of at least this are checked against the coarse clock (an error of a
/// tick is then at most 1% of the bound); shorter bounds against the precise clock.
pub const COARSE_MIN_BOUND: Duration = Duration::from_millis(100);

/// Ticks without a reader after which the thread parks.
const IDLE_TICKS: u32 = 1000;

/// Nanoseconds since [`base`] at the last tick, plus one; 0 while the thread is parked.
static NANOS: AtomicU64 = AtomicU64::new(0);
/// Read since the last tick.
static USED: AtomicBool = AtomicBool::new(true);

/// The process-wide origin of coarse readings. The host sets it when a node starts (before
/// any view exists), so every sync time it converts is at or after it.
pub(crate) fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// `at` as nanoseconds since [`base`] (0 for earlier instants).
pub(crate) fn since_base(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(base()).as_nanos()).unwrap_or(u64::MAX)
}

/// Now, in nanoseconds since [`base`]: the coarse reading while the thread ticks, else the
/// precise clock (and the thread is woken).
#[inline]
pub(crate) fn now_nanos() -> u64 {
    let ticked = NANOS.load(Ordering::Acquire);
    if ticked != 0 {
        if !USED.load(Ordering::Relaxed) {
            USED.store(true, Ordering::Relaxed);
        }
        return ticked - 1;
    }
    wake();
    since_base(Instant::now())
}

#[cold]
fn wake() {
    static THREAD: OnceLock<Option<Thread>> = OnceLock::new();
    let thread = THREAD.get_or_init(|| {
        let base = base();
        let spawned = std::thread::Builder::new()
            .name("dstate-clock".into())
            .spawn(move || run(base));
        match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(error) => {
                tracing::warn!(%error, "dstate: no coarse clock thread; queries read the precise clock");
                None
            }
        }
    });
    if let Some(thread) = thread {
        thread.unpark();
    }
}

fn run(base: Instant) {
    let tick = || {
        let nanos = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        NANOS.store(nanos + 1, Ordering::Release);
    };
    loop {
        tick();
        let mut idle = 0;
        while idle < IDLE_TICKS {
            std::thread::sleep(COARSE_TICK);
            tick();
            if USED.swap(false, Ordering::Relaxed) {
                idle = 0;
            } else {
                idle += 1;
            }
        }
        NANOS.store(0, Ordering::Release);
        // A reader that saw 0 unparks us; an unpark before this park makes it return at once.
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_never_runs_ahead_and_stays_within_a_few_ticks_while_read() {
        let first = now_nanos();
        let mut worst = 0u64;
        for _ in 0..200 {
            let coarse = now_nanos();
            let precise = since_base(Instant::now());
            assert!(coarse <= precise, "the coarse clock must never be ahead");
            worst = worst.max(precise - coarse);
            std::thread::sleep(Duration::from_micros(500));
        }
        assert!(now_nanos() > first, "the coarse clock advances");
        // Generous: a loaded CI machine may delay the ticking thread.
        assert!(worst < 250_000_000, "lag {worst} ns");
    }

    #[test]
    fn instants_before_the_base_count_as_the_base() {
        let base = base();
        assert_eq!(since_base(base), 0);
        assert_eq!(since_base(base + Duration::from_nanos(7)), 7);
    }
}
