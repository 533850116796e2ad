//! Timers: `send_after` and `send_interval` as tokio tasks delivering into kameo mailboxes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstate::{ActorRef, TimerHandle};
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use super::actor::{Envelope, KameoRef};

/// Shortest interval period: tokio's interval refuses a zero period.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Handle of a timer started by [`KameoRuntime`](crate::KameoRuntime).
///
/// Dropping it leaves the timer running; [`TimerHandle::cancel`] stops it.
#[derive(Debug)]
pub struct KameoTimer {
    cancelled: Arc<Mutex<bool>>,
    task: AbortHandle,
}

impl KameoTimer {
    /// One message after `delay`.
    pub(crate) fn once<M: Send + 'static>(
        handle: &Handle,
        delay: Duration,
        target: KameoRef<M>,
        msg: M,
    ) -> Self {
        let cancelled = Arc::new(Mutex::new(false));
        let flag = cancelled.clone();
        let task = handle.spawn(async move {
            tokio::time::sleep(delay).await;
            // Holding the lock while sending makes `cancel` wait for a send in progress,
            // so no message leaves after `cancel` returns.
            let guard = lock(&flag);
            if !*guard {
                // A stopped target has nowhere to deliver; nothing to retry.
                if target.send(msg).is_err() {
                    tracing::trace!(target = target.name(), "timer target stopped");
                }
            }
            drop(guard);
        });
        KameoTimer {
            cancelled,
            task: task.abort_handle(),
        }
    }

    /// A clone of `msg` every `period`. At most one tick of this timer waits in the
    /// target's mailbox at any time: when the target is busy, ticks coalesce instead of
    /// piling up, and the timer keeps running.
    pub(crate) fn interval<M: Clone + Send + 'static>(
        handle: &Handle,
        period: Duration,
        target: KameoRef<M>,
        msg: M,
    ) -> Self {
        let period = period.max(MIN_PERIOD);
        let cancelled = Arc::new(Mutex::new(false));
        let flag = cancelled.clone();
        let queued = Arc::new(AtomicBool::new(false));
        let task = handle.spawn(async move {
            let start = tokio::time::Instant::now() + period;
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let guard = lock(&flag);
                if *guard {
                    break;
                }
                if queued.swap(true, Ordering::AcqRel) {
                    // The previous tick is still waiting: coalesce.
                    continue;
                }
                let envelope = Envelope {
                    msg: msg.clone(),
                    tick: Some(queued.clone()),
                };
                if target.send_envelope(envelope).is_err() {
                    tracing::trace!(target = target.name(), "interval target stopped");
                    break;
                }
                drop(guard);
            }
        });
        KameoTimer {
            cancelled,
            task: task.abort_handle(),
        }
    }
}

impl TimerHandle for KameoTimer {
    fn cancel(&self) {
        *lock(&self.cancelled) = true;
        self.task.abort();
    }
}

/// The flag is a plain bool: a panic while holding it cannot leave it inconsistent.
fn lock(flag: &Mutex<bool>) -> std::sync::MutexGuard<'_, bool> {
    flag.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
