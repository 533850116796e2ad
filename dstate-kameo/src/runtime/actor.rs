//! One dstate actor as a kameo actor: a closure run for each message, one at a time.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dstate::{ActorRef, SendError};
use kameo::actor::{ActorId, ActorRef as KameoActorRef};
use kameo::message::{Context, Message};
use kameo::Actor;

/// What travels through the mailbox: the message, and for timer ticks the flag that says
/// "a tick of this timer is queued", cleared when the tick is handled.
pub(crate) struct Envelope<M> {
    pub(crate) msg: M,
    pub(crate) tick: Option<Arc<AtomicBool>>,
}

/// The kameo actor behind a [`KameoRef`]: owns the handler closure.
pub(crate) struct HandlerActor<M: Send + 'static> {
    handler: Box<dyn FnMut(M) + Send + 'static>,
}

impl<M: Send + 'static> HandlerActor<M> {
    pub(crate) fn new(handler: impl FnMut(M) + Send + 'static) -> Self {
        HandlerActor {
            handler: Box::new(handler),
        }
    }
}

impl<M: Send + 'static> Actor for HandlerActor<M> {
    type Args = Self;
    type Error = std::convert::Infallible;

    fn name() -> &'static str {
        "dstate_kameo::HandlerActor"
    }

    async fn on_start(
        args: Self::Args,
        _actor_ref: KameoActorRef<Self>,
    ) -> Result<Self, Self::Error> {
        Ok(args)
    }
}

impl<M: Send + 'static> Message<Envelope<M>> for HandlerActor<M> {
    type Reply = ();

    async fn handle(&mut self, envelope: Envelope<M>, _ctx: &mut Context<Self, Self::Reply>) {
        // Clear the flag first: a tick that fires while this one runs may be queued.
        if let Some(tick) = envelope.tick {
            tick.store(false, Ordering::Release);
        }
        (self.handler)(envelope.msg);
    }
}

/// Address of an actor spawned by [`KameoRuntime`](crate::KameoRuntime).
///
/// Sending never blocks: the mailbox is unbounded because [`ActorRef::send`] is
/// fire-and-forget with no "full" outcome; dstate bounds peer traffic in the transport.
pub struct KameoRef<M: Send + 'static> {
    inner: KameoActorRef<HandlerActor<M>>,
    /// Set by [`ActorRef::stop`]; shared by every clone so later sends fail at once.
    stopped: Arc<AtomicBool>,
    name: Arc<str>,
}

impl<M: Send + 'static> KameoRef<M> {
    pub(crate) fn new(inner: KameoActorRef<HandlerActor<M>>, name: &str) -> Self {
        KameoRef {
            inner,
            stopped: Arc::new(AtomicBool::new(false)),
            name: Arc::from(name),
        }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True while the actor runs and has not been asked to stop.
    pub fn is_alive(&self) -> bool {
        !self.stopped.load(Ordering::Acquire) && self.inner.is_alive()
    }

    pub(crate) fn id(&self) -> ActorId {
        self.inner.id()
    }

    /// Delivers an envelope; for timer ticks, `tick` is set while the tick waits in the
    /// mailbox.
    pub(crate) fn send_envelope(&self, envelope: Envelope<M>) -> Result<(), SendError<M>> {
        use kameo::error::SendError as KameoSendError;

        if self.stopped.load(Ordering::Acquire) {
            return Err(SendError(envelope.msg));
        }
        match self.inner.tell(envelope).try_send() {
            Ok(()) => Ok(()),
            Err(
                KameoSendError::ActorNotRunning(envelope)
                | KameoSendError::MailboxFull(envelope)
                | KameoSendError::ActorRestarting(envelope)
                | KameoSendError::Timeout(Some(envelope)),
            ) => Err(SendError(envelope.msg)),
            // kameo 0.22 builds the error of `tell().try_send()` only from tokio's
            // `TrySendError` (error.rs, `From<TrySendError<Signal<A>>>`), which yields
            // `MailboxFull` or `ActorNotRunning`, both carrying the message.
            Err(_) => unreachable!("kameo tell().try_send() returned an error without the message"),
        }
    }
}

impl<M: Send + 'static> ActorRef<M> for KameoRef<M> {
    fn send(&self, msg: M) -> Result<(), SendError<M>> {
        self.send_envelope(Envelope { msg, tick: None })
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        // Aborts at the next await point: the message being handled (a synchronous
        // closure) completes, queued ones are dropped.
        self.inner.kill();
    }
}

impl<M: Send + 'static> Clone for KameoRef<M> {
    fn clone(&self) -> Self {
        KameoRef {
            inner: self.inner.clone(),
            stopped: self.stopped.clone(),
            name: self.name.clone(),
        }
    }
}

impl<M: Send + 'static> fmt::Debug for KameoRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KameoRef")
            .field("name", &self.name)
            .field("id", &self.inner.id())
            .field("alive", &self.is_alive())
            .finish()
    }
}
