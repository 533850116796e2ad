//! [`ActorRuntime`] over ractor actors.

mod actor;
mod timer;

use std::fmt;
use std::time::Duration;

use dstate::{ActorRef, ActorRuntime, BoxFuture, ClusterEventBus, ClusterEvents, SendError};
use ractor::{ActorCell, ActorId, MessagingErr};
use tokio::runtime::Handle;

use actor::{ClosureActor, Envelope};
pub use timer::RactorTimer;

/// The `ractor::pg` scope that holds the runtime's processing groups, apart from the
/// application's own groups and from the cluster endpoints.
const GROUP_SCOPE: &str = "dstate.runtime";

/// Capacity of the membership event bus per slow subscriber; membership changes are rare.
const EVENT_BUS_CAPACITY: usize = 1024;

/// [`ActorRuntime`] that runs every dstate actor as a ractor actor.
///
/// * `spawn` is synchronous: it uses `ractor::Actor::spawn_instant`, so the mailbox exists
///   before `spawn` returns and messages sent at once are queued, then handled in order.
/// * Timers are tokio tasks that send into the target's mailbox; `cancel` is exact.
/// * Processing groups live in `ractor::pg` (scope `dstate.runtime`). They are process
///   globals, shared by every `RactorRuntime` of the process; runtime actors are local-only
///   and never advertised to other nodes.
/// * [`cluster_events`](ActorRuntime::cluster_events) reports what a
///   [`RactorCluster`](crate::RactorCluster) started on this runtime learns from
///   ractor_cluster's node sessions. Without a cluster no event is ever reported.
///
/// Messages are wrapped in a private envelope type that implements `ractor::Message`, so any
/// `Send + 'static` type can be a message. Note that `ractor_cluster` enables ractor's `cluster`
/// feature for the whole build, which removes ractor's blanket `Message` impl: the
/// application's *own* ractor actors then need `#[derive(ractor_cluster::RactorMessage)]` (or a
/// manual `impl ractor::Message`) on their message types.
#[derive(Clone)]
pub struct RactorRuntime {
    handle: Handle,
    events: ClusterEventBus,
}

/// Reference to an actor spawned by [`RactorRuntime`].
pub struct RactorRef<M: Send + 'static> {
    inner: ractor::ActorRef<Envelope<M>>,
}

impl RactorRuntime {
    /// A runtime bound to the current tokio runtime.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime (like `tokio::spawn`); use
    /// [`with_handle`](Self::with_handle) to pass one explicitly.
    pub fn new() -> Self {
        Self::with_handle(Handle::current())
    }

    /// A runtime that spawns its actors and timers on `handle`; usable from any thread.
    pub fn with_handle(handle: Handle) -> Self {
        RactorRuntime {
            handle,
            events: ClusterEventBus::new(EVENT_BUS_CAPACITY),
        }
    }

    /// The tokio runtime this runtime spawns on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The bus the cluster layer reports membership on.
    pub(crate) fn event_bus(&self) -> &ClusterEventBus {
        &self.events
    }
}

impl Default for RactorRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RactorRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RactorRuntime").finish_non_exhaustive()
    }
}

impl<M: Send + 'static> RactorRef<M> {
    /// The ractor actor behind this reference (for supervision or monitoring).
    pub fn actor_cell(&self) -> ActorCell {
        self.inner.get_cell()
    }

    /// A typed reference for a local group member, if it takes `M`.
    fn from_cell(cell: ActorCell) -> Option<Self> {
        let is_local = matches!(cell.get_id(), ActorId::Local(_));
        (is_local && cell.is_message_type_of::<Envelope<M>>() == Some(true))
            .then(|| RactorRef { inner: cell.into() })
    }
}

impl<M: Send + 'static> Clone for RactorRef<M> {
    fn clone(&self) -> Self {
        RactorRef {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Send + 'static> fmt::Debug for RactorRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RactorRef")
            .field("id", &self.inner.get_id())
            .finish()
    }
}

impl<M: Send + 'static> ActorRef<M> for RactorRef<M> {
    fn send(&self, msg: M) -> Result<(), SendError<M>> {
        match self.inner.cast(Envelope(msg)) {
            Ok(()) => Ok(()),
            Err(MessagingErr::SendErr(Envelope(msg))) => Err(SendError(msg)),
            // A typed local ref never fails the type check and local messages are never
            // serialized, so ractor only ever reports `SendErr` here; the other variants do
            // not carry the message back, so all that is left is to report the loss.
            Err(other) => {
                tracing::error!(error = %other, "ractor refused a local message without returning it");
                Ok(())
            }
        }
    }

    fn stop(&self) {
        // `drain` closes the mailbox at once (later sends fail), `stop` then ends the actor
        // after the message it is handling, dropping what is still queued. Both fail only
        // when the actor is already gone, which is the goal.
        let _ = self.inner.drain();
        self.inner.stop(None);
    }
}

impl ActorRuntime for RactorRuntime {
    type Ref<M: Send + 'static> = RactorRef<M>;
    type Timer = RactorTimer;

    fn spawn<M, F>(&self, name: &str, handler: F) -> RactorRef<M>
    where
        M: Send + 'static,
        F: FnMut(M) + Send + 'static,
    {
        let _entered = self.handle.enter();
        // Unnamed in ractor's registry: dstate names are descriptive and may repeat.
        match ractor::ActorRuntime::<ClosureActor<M, F>>::spawn_instant(
            None,
            ClosureActor::new(),
            handler,
        ) {
            Ok((inner, _join)) => {
                tracing::trace!(name, id = %inner.get_id(), "spawned actor");
                RactorRef { inner }
            }
            // `spawn_instant` only fails on a name clash in the registry, and no name is given.
            Err(err) => unreachable_spawn(name, err),
        }
    }

    fn send_after<M: Send + 'static>(
        &self,
        delay: Duration,
        target: &RactorRef<M>,
        msg: M,
    ) -> RactorTimer {
        RactorTimer::once(&self.handle, delay, target.clone(), msg)
    }

    fn send_interval<M: Clone + Send + 'static>(
        &self,
        period: Duration,
        target: &RactorRef<M>,
        msg: M,
    ) -> RactorTimer {
        RactorTimer::every(&self.handle, period, target.clone(), msg)
    }

    fn spawn_task(&self, task: BoxFuture<'static, ()>) {
        self.handle.spawn(task);
    }

    fn join_group<M: Send + 'static>(&self, group: &str, actor: &RactorRef<M>) {
        ractor::pg::join_scoped(
            GROUP_SCOPE.to_string(),
            group.to_string(),
            vec![actor.actor_cell()],
        );
    }

    fn leave_group<M: Send + 'static>(&self, group: &str, actor: &RactorRef<M>) {
        ractor::pg::leave_scoped(
            GROUP_SCOPE.to_string(),
            group.to_string(),
            vec![actor.actor_cell()],
        );
    }

    fn group_members<M: Send + 'static>(&self, group: &str) -> Vec<RactorRef<M>> {
        ractor::pg::get_scoped_members(&GROUP_SCOPE.to_string(), &group.to_string())
            .into_iter()
            .filter_map(RactorRef::from_cell)
            .collect()
    }

    fn cluster_events(&self) -> ClusterEvents {
        self.events.subscribe()
    }
}

/// `spawn_instant` without a name cannot fail (ractor only reports a registry name clash
/// there); the trait returns a ref, not a `Result`, so this invariant is enforced by a panic.
#[cold]
fn unreachable_spawn(name: &str, err: ractor::SpawnErr) -> ! {
    panic!("ractor refused to spawn unnamed actor {name:?}: {err}")
}

#[cfg(test)]
mod tests;
