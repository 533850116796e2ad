//! The `ActorRuntime` conformance suite: the same checks for every runtime (the test
//! runtime, `dstate-ractor`, `dstate-kameo`).
//!
//! ```no_run
//! # async fn demo() {
//! use dstate::test_support::{conformance, TestRuntime};
//! let runtime = TestRuntime::new();
//! let clock = runtime.clock();
//! let time = conformance::TimeDriver::new(move |d| {
//!     clock.advance(d);
//!     Box::pin(tokio::task::yield_now())
//! });
//! conformance::check_runtime(&runtime, &time).await.expect("conforms");
//! # }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::runtime::{ActorRef, ActorRuntime, BoxFuture, TimerHandle};

/// How the suite lets time pass: real runtimes sleep, the test runtime advances its clock.
pub struct TimeDriver {
    pass: Box<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>,
}

impl TimeDriver {
    /// A driver from a function that lets `d` pass (and yields to the executor).
    pub fn new(pass: impl Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'static) -> Self {
        TimeDriver {
            pass: Box::new(pass),
        }
    }

    async fn pass(&self, by: Duration) {
        (self.pass)(by).await;
    }
}

impl std::fmt::Debug for TimeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimeDriver")
    }
}

/// A failed conformance check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runtime conformance check `{check}` failed: {detail}")]
pub struct ConformanceError {
    /// Which check.
    pub check: &'static str,
    /// What was observed.
    pub detail: String,
}

/// Step of time the suite lets pass while waiting for a condition.
const STEP: Duration = Duration::from_millis(5);
/// How many steps a condition may take before the check fails.
const STEPS: usize = 400;

/// Run every check against `runtime`. Must be called inside the runtime's executor.
pub async fn check_runtime<R: ActorRuntime>(
    runtime: &R,
    time: &TimeDriver,
) -> Result<(), ConformanceError> {
    spawn_and_order(runtime, time).await?;
    stopped_actor_hands_message_back(runtime).await?;
    send_after_and_cancel(runtime, time).await?;
    send_interval_and_cancel(runtime, time).await?;
    groups(runtime, time).await?;
    spawn_task_runs(runtime, time).await?;
    Ok(())
}

type Log = Arc<Mutex<Vec<u64>>>;

fn recorder<R: ActorRuntime>(runtime: &R, name: &str) -> (R::Ref<u64>, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let actor = runtime.spawn(name, move |msg: u64| {
        sink.lock().unwrap_or_else(|p| p.into_inner()).push(msg);
    });
    (actor, log)
}

fn snapshot(log: &Log) -> Vec<u64> {
    log.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

async fn wait_for(
    time: &TimeDriver,
    check: &'static str,
    mut condition: impl FnMut() -> bool,
) -> Result<(), ConformanceError> {
    for _ in 0..STEPS {
        if condition() {
            return Ok(());
        }
        time.pass(STEP).await;
    }
    if condition() {
        return Ok(());
    }
    Err(ConformanceError {
        check,
        detail: "condition not met in time".to_owned(),
    })
}

fn fail(check: &'static str, detail: String) -> ConformanceError {
    ConformanceError { check, detail }
}

async fn spawn_and_order<R: ActorRuntime>(
    runtime: &R,
    time: &TimeDriver,
) -> Result<(), ConformanceError> {
    let (actor, log) = recorder(runtime, "conformance-order");
    for i in 0..1000u64 {
        actor
            .send(i)
            .map_err(|_| fail("spawn_and_order", format!("send {i} refused")))?;
    }
    wait_for(time, "spawn_and_order", || snapshot(&log).len() == 1000).await?;
    let seen = snapshot(&log);
    if seen != (0..1000).collect::<Vec<_>>() {
        return Err(fail(
            "spawn_and_order",
            "messages from one sender out of order".to_owned(),
        ));
    }
    actor.stop();
    Ok(())
}

async fn stopped_actor_hands_message_back<R: ActorRuntime>(
    runtime: &R,
) -> Result<(), ConformanceError> {
    let (actor, _log) = recorder(runtime, "conformance-stop");
    actor.stop();
    match actor.send(42) {
        Err(error) if error.0 == 42 => Ok(()),
        Err(error) => Err(fail("stopped_actor", format!("handed back {}", error.0))),
        Ok(()) => Err(fail(
            "stopped_actor",
            "send to a stopped actor succeeded".to_owned(),
        )),
    }
}

async fn send_after_and_cancel<R: ActorRuntime>(
    runtime: &R,
    time: &TimeDriver,
) -> Result<(), ConformanceError> {
    let (actor, log) = recorder(runtime, "conformance-after");
    let _kept = runtime.send_after(Duration::from_millis(20), &actor, 1);
    let cancelled = runtime.send_after(Duration::from_millis(20), &actor, 2);
    cancelled.cancel();
    wait_for(time, "send_after", || snapshot(&log) == [1]).await?;
    time.pass(Duration::from_millis(50)).await;
    if snapshot(&log) != [1] {
        return Err(fail(
            "send_after",
            format!("cancelled timer fired: {:?}", snapshot(&log)),
        ));
    }
    actor.stop();
    Ok(())
}

async fn send_interval_and_cancel<R: ActorRuntime>(
    runtime: &R,
    time: &TimeDriver,
) -> Result<(), ConformanceError> {
    let (actor, log) = recorder(runtime, "conformance-interval");
    let timer = runtime.send_interval(Duration::from_millis(10), &actor, 7);
    wait_for(time, "send_interval", || snapshot(&log).len() >= 3).await?;
    timer.cancel();
    time.pass(Duration::from_millis(30)).await;
    let after_cancel = snapshot(&log).len();
    time.pass(Duration::from_millis(100)).await;
    if snapshot(&log).len() != after_cancel {
        return Err(fail(
            "send_interval",
            "interval kept firing after cancel".to_owned(),
        ));
    }
    actor.stop();
    Ok(())
}

async fn groups<R: ActorRuntime>(runtime: &R, time: &TimeDriver) -> Result<(), ConformanceError> {
    let group = "dstate-conformance-group";
    let (first, first_log) = recorder(runtime, "conformance-group-1");
    let (second, second_log) = recorder(runtime, "conformance-group-2");
    runtime.join_group(group, &first);
    runtime.join_group(group, &second);
    wait_for(time, "groups_join", || {
        runtime.group_members::<u64>(group).len() == 2
    })
    .await?;
    let reached = runtime.broadcast_group(group, 5u64);
    if reached != 2 {
        return Err(fail("groups_broadcast", format!("reached {reached} of 2")));
    }
    wait_for(time, "groups_broadcast", || {
        snapshot(&first_log) == [5] && snapshot(&second_log) == [5]
    })
    .await?;
    runtime.leave_group(group, &second);
    wait_for(time, "groups_leave", || {
        runtime.group_members::<u64>(group).len() == 1
    })
    .await?;
    runtime.broadcast_group(group, 6u64);
    wait_for(time, "groups_leave", || snapshot(&first_log) == [5, 6]).await?;
    if snapshot(&second_log) != [5] {
        return Err(fail(
            "groups_leave",
            "a member that left still got a broadcast".to_owned(),
        ));
    }
    runtime.leave_group(group, &first);
    first.stop();
    second.stop();
    Ok(())
}

async fn spawn_task_runs<R: ActorRuntime>(
    runtime: &R,
    time: &TimeDriver,
) -> Result<(), ConformanceError> {
    let done = Arc::new(AtomicUsize::new(0));
    let flag = done.clone();
    runtime.spawn_task(Box::pin(async move {
        flag.fetch_add(1, Ordering::SeqCst);
    }));
    wait_for(time, "spawn_task", || done.load(Ordering::SeqCst) == 1).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRuntime;

    #[tokio::test]
    async fn the_test_runtime_conforms() {
        let runtime = TestRuntime::new();
        let clock = runtime.clock();
        let time = TimeDriver::new(move |d| {
            clock.advance(d);
            Box::pin(tokio::task::yield_now())
        });
        check_runtime(&runtime, &time)
            .await
            .expect("TestRuntime conforms");
    }
}
