//! A coarse monotonic clock for the query fast path: one atomic load instead of a clock read.
//!
//! Reading the monotonic clock costs 15-25 ns (a vDSO call), several times the rest of a
//! query over a few views. A background thread (`dstate-clock`) stores the time every
//! millisecond; readers load it. The thread parks after about a second without readers and
//! is woken by the next one, which reads the precise clock meanwhile. If the thread cannot be
//! started every reading is precise.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::Clock;

/// How often the coarse time is refreshed.
pub const COARSE_TICK: Duration = Duration::from_millis(1);

/// Staleness bounds of at least this are checked against the coarse clock (an error of a
/// tick is then at most 1% of the bound); shorter bounds against the precise clock.
pub const COARSE_MIN_BOUND: Duration = Duration::from_millis(100);

/// Ticks without a reader after which the thread parks.
const IDLE_TICKS: u32 = 1000;

/// The time to compare views' sync times with for a staleness bound of `max_staleness`.
#[inline]
pub(crate) fn staleness_now(clock: &dyn Clock, max_staleness: Duration) -> Instant {
    if max_staleness >= COARSE_MIN_BOUND {
        clock.recent()
    } else {
        clock.now()
    }
}

/// The coarse time: at most about a tick behind `Instant::now()` while the machine keeps up.
#[inline]
pub(crate) fn recent() -> Instant {
    match ticker() {
        Some(ticker) => ticker.read(),
        None => Instant::now(),
    }
}

struct Shared {
    base: Instant,
    /// Nanoseconds from `base` at the last tick.
    nanos: AtomicU64,
    /// The thread is ticking (not parked).
    running: AtomicBool,
    /// Read since the last tick.
    used: AtomicBool,
}

struct Ticker {
    shared: Arc<Shared>,
    thread: Thread,
}

fn ticker() -> Option<&'static Ticker> {
    static TICKER: OnceLock<Option<Ticker>> = OnceLock::new();
    TICKER.get_or_init(Ticker::start).as_ref()
}

impl Shared {
    fn tick(&self) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.store(nanos, Ordering::Release);
    }
}

impl Ticker {
    fn start() -> Option<Ticker> {
        let shared = Arc::new(Shared {
            base: Instant::now(),
            nanos: AtomicU64::new(0),
            running: AtomicBool::new(false),
            used: AtomicBool::new(true),
        });
        let for_thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("dstate-clock".into())
            .spawn(move || run(&for_thread));
        match spawned {
            Ok(handle) => Some(Ticker {
                shared,
                thread: handle.thread().clone(),
            }),
            Err(error) => {
                tracing::warn!(%error, "dstate: no coarse clock thread; queries read the precise clock");
                None
            }
        }
    }

    #[inline]
    fn read(&self) -> Instant {
        let shared = &*self.shared;
        if !shared.running.load(Ordering::Acquire) {
            self.thread.unpark();
            return Instant::now();
        }
        if !shared.used.load(Ordering::Relaxed) {
            shared.used.store(true, Ordering::Relaxed);
        }
        shared.base + Duration::from_nanos(shared.nanos.load(Ordering::Acquire))
    }
}

fn run(shared: &Shared) {
    loop {
        shared.tick();
        shared.running.store(true, Ordering::Release);
        let mut idle = 0;
        while idle < IDLE_TICKS {
            std::thread::sleep(COARSE_TICK);
            shared.tick();
            if shared.used.swap(false, Ordering::Relaxed) {
                idle = 0;
            } else {
                idle += 1;
            }
        }
        shared.running.store(false, Ordering::Release);
        // A reader that saw `running == false` unparks us; an unpark before this park makes
        // it return at once.
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_never_runs_ahead_and_stays_within_a_few_ticks_while_read() {
        let first = recent();
        let mut worst = Duration::ZERO;
        for _ in 0..200 {
            let coarse = recent();
            let precise = Instant::now();
            assert!(coarse <= precise, "the coarse clock must never be ahead");
            worst = worst.max(precise - coarse);
            std::thread::sleep(Duration::from_micros(500));
        }
        assert!(recent() > first, "the coarse clock advances");
        // Generous: a loaded CI machine may delay the ticking thread.
        assert!(worst < Duration::from_millis(250), "lag {worst:?}");
    }

    #[test]
    fn short_bounds_read_the_precise_clock() {
        struct Fixed(Instant);
        impl Clock for Fixed {
            fn now(&self) -> Instant {
                self.0 + Duration::from_secs(1)
            }
            fn wall_millis(&self) -> u64 {
                0
            }
            fn recent(&self) -> Instant {
                self.0
            }
        }
        let clock = Fixed(Instant::now());
        let short = staleness_now(&clock, COARSE_MIN_BOUND - Duration::from_nanos(1));
        let long = staleness_now(&clock, COARSE_MIN_BOUND);
        assert_eq!(short, clock.now());
        assert_eq!(long, clock.recent());
    }
}
