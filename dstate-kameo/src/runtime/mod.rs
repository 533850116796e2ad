//! [`KameoRuntime`]: the dstate [`ActorRuntime`] over kameo actors.

mod actor;
mod groups;
mod timer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dstate::{ActorRuntime, BoxFuture, ClusterEventBus, ClusterEvents};
use kameo::actor::Spawn;
use kameo::mailbox;
use tokio::runtime::Handle;

pub use actor::KameoRef;
pub use timer::KameoTimer;

use actor::HandlerActor;
use groups::Groups;

/// Buffered membership events per slow subscriber.
const EVENT_BUS_CAPACITY: usize = 1024;

/// The dstate [`ActorRuntime`] over kameo: every dstate actor is a kameo actor with an
/// unbounded mailbox, timers are tokio tasks, processing groups live in the runtime.
///
/// Membership events ([`cluster_events`](ActorRuntime::cluster_events)) come from a
/// [`KameoCluster`](crate::KameoCluster) started with this runtime; a runtime without a
/// cluster never reports any.
///
/// ```
/// use dstate::{ActorRef, ActorRuntime};
/// use dstate_kameo::KameoRuntime;
///
/// #[tokio::main]
/// async fn main() {
///     let runtime = KameoRuntime::new();
///     let (tx, rx) = std::sync::mpsc::channel();
///     let actor = runtime.spawn("printer", move |n: u64| tx.send(n).unwrap());
///     actor.send(42).unwrap();
///     # let got = tokio::task::spawn_blocking(move || rx.recv().unwrap()).await.unwrap();
///     # assert_eq!(got, 42);
/// }
/// ```
#[derive(Clone)]
pub struct KameoRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    groups: Groups,
    events: ClusterEventBus,
}

impl KameoRuntime {
    /// A runtime on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime; use [`KameoRuntime::with_handle`] there.
    pub fn new() -> Self {
        KameoRuntime::with_handle(Handle::current())
    }

    /// A runtime whose actors, timers and tasks run on `handle`.
    pub fn with_handle(handle: Handle) -> Self {
        KameoRuntime {
            inner: Arc::new(Inner {
                handle,
                groups: Groups::default(),
                events: ClusterEventBus::new(EVENT_BUS_CAPACITY),
            }),
        }
    }

    /// The bus the cluster layer feeds.
    pub(crate) fn event_bus(&self) -> &ClusterEventBus {
        &self.inner.events
    }

    /// The tokio runtime this runtime spawns on.
    pub(crate) fn handle(&self) -> &Handle {
        &self.inner.handle
    }
}

impl Default for KameoRuntime {
    fn default() -> Self {
        KameoRuntime::new()
    }
}

impl fmt::Debug for KameoRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KameoRuntime").finish_non_exhaustive()
    }
}

impl ActorRuntime for KameoRuntime {
    type Ref<M: Send + 'static> = KameoRef<M>;
    type Timer = KameoTimer;

    fn spawn<M, F>(&self, name: &str, handler: F) -> Self::Ref<M>
    where
        M: Send + 'static,
        F: FnMut(M) + Send + 'static,
    {
        // kameo spawns with `tokio::spawn`: enter our runtime so this works from any thread.
        let _entered = self.inner.handle.enter();
        let actor_ref =
            HandlerActor::spawn_with_mailbox(HandlerActor::new(handler), mailbox::unbounded());
        KameoRef::new(actor_ref, name)
    }

    fn send_after<M: Send + 'static>(
        &self,
        delay: Duration,
        target: &Self::Ref<M>,
        msg: M,
    ) -> Self::Timer {
        KameoTimer::once(&self.inner.handle, delay, target.clone(), msg)
    }

    fn send_interval<M: Clone + Send + 'static>(
        &self,
        period: Duration,
        target: &Self::Ref<M>,
        msg: M,
    ) -> Self::Timer {
        KameoTimer::interval(&self.inner.handle, period, target.clone(), msg)
    }

    fn spawn_task(&self, task: BoxFuture<'static, ()>) {
        self.inner.handle.spawn(task);
    }

    fn join_group<M: Send + 'static>(&self, group: &str, actor: &Self::Ref<M>) {
        self.inner.groups.join(group, actor);
    }

    fn leave_group<M: Send + 'static>(&self, group: &str, actor: &Self::Ref<M>) {
        self.inner.groups.leave(group, actor);
    }

    fn group_members<M: Send + 'static>(&self, group: &str) -> Vec<Self::Ref<M>> {
        self.inner.groups.members(group)
    }

    fn cluster_events(&self) -> ClusterEvents {
        self.inner.events.subscribe()
    }
}

#[cfg(test)]
mod tests;
