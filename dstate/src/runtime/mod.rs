//! What the host needs from an actor framework: actors, timers, groups, membership, time.
//!
//! The same host runs on any implementation: `dstate-ractor`, `dstate-kameo` and
//! [`TestRuntime`](crate::test_support::TestRuntime).

mod clock;
pub(crate) mod coarse;
mod events;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use clock::{Clock, SystemClock};
pub use coarse::{COARSE_MIN_BOUND, COARSE_TICK};
pub use events::{ClusterEvent, ClusterEventBus, ClusterEvents, LeaveReason};

use crate::error::SendError;

/// A boxed, sendable future, as the runtime's task spawner takes it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Address of a running actor that takes messages of type `M`.
pub trait ActorRef<M: Send + 'static>: Clone + Send + Sync + 'static {
    /// Fire-and-forget delivery. Messages from one sender arrive in the order sent.
    /// A stopped actor hands the message back.
    fn send(&self, msg: M) -> Result<(), SendError<M>>;
    /// Stop the actor after the message it is handling; later sends fail.
    fn stop(&self);
}

/// A scheduled timer; dropping the handle does not cancel it.
pub trait TimerHandle: Send + 'static {
    /// Stop the timer: no message is sent after this returns.
    fn cancel(&self);
}

/// An actor framework as the dstate host uses it.
///
/// Contract (checked by [`conformance`](crate::test_support::conformance)):
/// `spawn` may be called from synchronous code inside a tokio runtime and returns at once;
/// one actor handles one message at a time; messages from one sender keep their order;
/// timers deliver to their target until cancelled; groups hold refs of one message type.
pub trait ActorRuntime: Clone + Send + Sync + 'static {
    /// Reference to an actor of message type `M`.
    type Ref<M: Send + 'static>: ActorRef<M>;
    /// Handle of a timer.
    type Timer: TimerHandle;

    /// Start an actor that runs `handler` for each message, one at a time.
    fn spawn<M, F>(&self, name: &str, handler: F) -> Self::Ref<M>
    where
        M: Send + 'static,
        F: FnMut(M) + Send + 'static;

    /// Send `msg` to `target` once, after `delay`.
    fn send_after<M: Send + 'static>(
        &self,
        delay: Duration,
        target: &Self::Ref<M>,
        msg: M,
    ) -> Self::Timer;

    /// Send a clone of `msg` to `target` every `period`.
    fn send_interval<M: Clone + Send + 'static>(
        &self,
        period: Duration,
        target: &Self::Ref<M>,
        msg: M,
    ) -> Self::Timer;

    /// Run a future to completion in the background (persistence I/O).
    fn spawn_task(&self, task: BoxFuture<'static, ()>);

    /// Add `actor` to the processing group `group`.
    fn join_group<M: Send + 'static>(&self, group: &str, actor: &Self::Ref<M>);
    /// Remove `actor` from `group`.
    fn leave_group<M: Send + 'static>(&self, group: &str, actor: &Self::Ref<M>);
    /// The members of `group` that take messages of type `M`.
    fn group_members<M: Send + 'static>(&self, group: &str) -> Vec<Self::Ref<M>>;
    /// Send a clone of `msg` to every member of `group`; returns how many took it.
    fn broadcast_group<M: Clone + Send + 'static>(&self, group: &str, msg: M) -> usize {
        self.group_members::<M>(group)
            .iter()
            .filter(|member| member.send(msg.clone()).is_ok())
            .count()
    }

    /// Membership events of the cluster this runtime is part of.
    fn cluster_events(&self) -> ClusterEvents;
}
