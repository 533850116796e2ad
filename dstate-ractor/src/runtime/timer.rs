//! Timers as tokio tasks that deliver into ractor mailboxes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dstate::{ActorRef as _, TimerHandle};
use tokio::runtime::Handle;
use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;

use super::RactorRef;

/// Handle of a timer started by [`RactorRuntime`](crate::RactorRuntime).
///
/// [`cancel`](TimerHandle::cancel) guarantees that no message is delivered after it returns:
/// the timer task checks the cancel flag under the same lock it holds while sending.
/// Dropping the handle does not cancel the timer.
#[derive(Debug, Clone)]
pub struct RactorTimer {
    shared: Arc<TimerShared>,
}

#[derive(Debug, Default)]
struct TimerShared {
    cancelled: Mutex<bool>,
    task: Mutex<Option<AbortHandle>>,
}

impl RactorTimer {
    pub(crate) fn once<M: Send + 'static>(
        handle: &Handle,
        delay: Duration,
        target: RactorRef<M>,
        msg: M,
    ) -> Self {
        let timer = RactorTimer {
            shared: Arc::new(TimerShared::default()),
        };
        let shared = timer.shared.clone();
        let task = handle.spawn(async move {
            tokio::time::sleep(delay).await;
            let cancelled = lock(&shared.cancelled);
            if !*cancelled && target.send(msg).is_err() {
                tracing::trace!("timer target stopped before the timer fired");
            }
        });
        timer.set_task(task.abort_handle());
        timer
    }

    pub(crate) fn every<M: Clone + Send + 'static>(
        handle: &Handle,
        period: Duration,
        target: RactorRef<M>,
        msg: M,
    ) -> Self {
        let timer = RactorTimer {
            shared: Arc::new(TimerShared::default()),
        };
        let shared = timer.shared.clone();
        // A zero period would spin; tokio rejects it, so clamp to the smallest tick.
        let period = period.max(Duration::from_millis(1));
        let task = handle.spawn(async move {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            // A late tick is delivered once, not as a burst of missed ticks.
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let cancelled = lock(&shared.cancelled);
                if *cancelled || target.send(msg.clone()).is_err() {
                    break;
                }
            }
        });
        timer.set_task(task.abort_handle());
        timer
    }

    fn set_task(&self, task: AbortHandle) {
        let cancelled = lock(&self.shared.cancelled);
        if *cancelled {
            task.abort();
        } else {
            *lock(&self.shared.task) = Some(task);
        }
    }
}

impl TimerHandle for RactorTimer {
    fn cancel(&self) {
        *lock(&self.shared.cancelled) = true;
        if let Some(task) = lock(&self.shared.task).take() {
            task.abort();
        }
    }
}

/// Lock ignoring poison: the guarded values are plain flags that stay valid after a panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
