//! The ractor actor that runs a closure per message, and the message envelope it takes.

use std::marker::PhantomData;

use ractor::{Actor, ActorProcessingErr, ActorRef, Message};

/// Wrapper that gives any `Send + 'static` type a [`ractor::Message`] impl.
///
/// With ractor's `cluster` feature enabled (ractor_cluster enables it) ractor drops its blanket
/// `Message` impl, so the runtime wraps every message in this local-only envelope.
pub(crate) struct Envelope<M>(pub(crate) M);

// Local-only: the default `serializable() == false` keeps these actors off the network.
impl<M: Send + 'static> Message for Envelope<M> {}

/// A ractor actor whose state is the user's handler closure.
pub(crate) struct ClosureActor<M, F> {
    _types: PhantomData<fn() -> (M, F)>,
}

impl<M, F> ClosureActor<M, F> {
    pub(crate) fn new() -> Self {
        ClosureActor {
            _types: PhantomData,
        }
    }
}

impl<M, F> Actor for ClosureActor<M, F>
where
    M: Send + 'static,
    F: FnMut(M) + Send + 'static,
{
    type Msg = Envelope<M>;
    type State = F;
    type Arguments = F;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        handler: F,
    ) -> Result<F, ActorProcessingErr> {
        Ok(handler)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        Envelope(msg): Self::Msg,
        handler: &mut F,
    ) -> Result<(), ActorProcessingErr> {
        handler(msg);
        Ok(())
    }
}
