//! An in-process [`ActorRuntime`] for tests: actors are tokio tasks, timers run on a
//! [`TestClock`], membership events are emitted by the test.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use super::test_clock::{TestClock, TestTimer};
use crate::error::SendError;
use crate::runtime::{
    ActorRef, ActorRuntime, BoxFuture, ClusterEvent, ClusterEventBus, ClusterEvents,
};

static NEXT_ACTOR: AtomicU64 = AtomicU64::new(1);

/// Reference to an actor of the [`TestRuntime`].
pub struct TestRef<M> {
    id: u64,
    sender: mpsc::UnboundedSender<M>,
    stopped: Arc<AtomicBool>,
}

impl<M> Clone for TestRef<M> {
    fn clone(&self) -> Self {
        TestRef {
            id: self.id,
            sender: self.sender.clone(),
            stopped: self.stopped.clone(),
        }
    }
}

impl<M> std::fmt::Debug for TestRef<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRef").field("id", &self.id).finish()
    }
}

impl<M: Send + 'static> ActorRef<M> for TestRef<M> {
    fn send(&self, msg: M) -> Result<(), SendError<M>> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(SendError(msg));
        }
        self.sender.send(msg).map_err(|e| SendError(e.0))
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

type Group = Vec<(u64, Box<dyn Any + Send + Sync>)>;

/// A runtime for tests. Needs a tokio runtime (e.g. `#[tokio::test]`); time is the
/// [`TestClock`] returned by [`clock`](TestRuntime::clock), so timers fire only when the test
/// advances it. Emit membership events with [`emit`](TestRuntime::emit).
#[derive(Clone)]
pub struct TestRuntime {
    clock: TestClock,
    events: ClusterEventBus,
    groups: Arc<Mutex<HashMap<String, Group>>>,
}

impl TestRuntime {
    /// A runtime with a fresh [`TestClock`].
    pub fn new() -> Self {
        Self::with_clock(TestClock::new())
    }

    /// A runtime on an existing clock (several nodes of one test share time).
    pub fn with_clock(clock: TestClock) -> Self {
        TestRuntime {
            clock,
            events: ClusterEventBus::default(),
            groups: Arc::default(),
        }
    }

    /// The clock that drives this runtime's timers.
    pub fn clock(&self) -> TestClock {
        self.clock.clone()
    }

    /// Publish a membership event, as an adapter's cluster layer would.
    pub fn emit(&self, event: ClusterEvent) {
        self.events.emit(event);
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        // No code panics while holding this lock; recover the map if a test thread did.
        self.groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for TestRuntime {
    fn default() -> Self {
        TestRuntime::new()
    }
}

impl std::fmt::Debug for TestRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRuntime").finish_non_exhaustive()
    }
}

impl ActorRuntime for TestRuntime {
    type Ref<M: Send + 'static> = TestRef<M>;
    type Timer = TestTimer;

    fn spawn<M, F>(&self, name: &str, mut handler: F) -> TestRef<M>
    where
        M: Send + 'static,
        F: FnMut(M) + Send + 'static,
    {
        let (sender, mut receiver) = mpsc::unbounded_channel::<M>();
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            while let Some(msg) = receiver.recv().await {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                handler(msg);
            }
            tracing::trace!(actor = %name, "test actor stopped");
        });
        TestRef {
            id: NEXT_ACTOR.fetch_add(1, Ordering::Relaxed),
            sender,
            stopped,
        }
    }

    fn send_after<M: Send + 'static>(
        &self,
        delay: Duration,
        target: &TestRef<M>,
        msg: M,
    ) -> TestTimer {
        let target = target.clone();
        let mut msg = Some(msg);
        self.clock.schedule(delay, None, move || {
            if let Some(msg) = msg.take() {
                // A stopped target simply does not get the message.
                let _ = target.send(msg);
            }
        })
    }

    fn send_interval<M: Clone + Send + 'static>(
        &self,
        period: Duration,
        target: &TestRef<M>,
        msg: M,
    ) -> TestTimer {
        let target = target.clone();
        self.clock.schedule(period, Some(period), move || {
            // A stopped target simply does not get the message.
            let _ = target.send(msg.clone());
        })
    }

    fn spawn_task(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }

    fn join_group<M: Send + 'static>(&self, group: &str, actor: &TestRef<M>) {
        let mut groups = self.groups();
        let members = groups.entry(group.to_owned()).or_default();
        if !members.iter().any(|(id, _)| *id == actor.id) {
            members.push((actor.id, Box::new(actor.clone())));
        }
    }

    fn leave_group<M: Send + 'static>(&self, group: &str, actor: &TestRef<M>) {
        if let Some(members) = self.groups().get_mut(group) {
            members.retain(|(id, _)| *id != actor.id);
        }
    }

    fn group_members<M: Send + 'static>(&self, group: &str) -> Vec<TestRef<M>> {
        self.groups()
            .get(group)
            .map(|members| {
                members
                    .iter()
                    .filter_map(|(_, r)| r.downcast_ref::<TestRef<M>>().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn cluster_events(&self) -> ClusterEvents {
        self.events.subscribe()
    }
}
