//! The outbound link to one peer: a bounded queue drained into acknowledged batches with
//! a bounded window in flight.
//!
//! Measured on kameo 0.22: unacknowledged `tell`s lose and reorder messages in bursts and
//! can exhaust yamux streams; asks with a bounded window deliver everything. So frames are
//! batched, every batch is an `ask` answered by the peer's endpoint, at most
//! `max_in_flight` batches (and `max_in_flight_bytes`) are outstanding, a failed batch is
//! retried a few times and then the link fails, which resets the connection (the engine
//! re-syncs after the reconnect).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dstate::{NodeId, TransportError};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use kameo::actor::RemoteActorRef;
use kameo::error::RemoteSendError;
use libp2p::PeerId;
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::task::AbortHandle;

use super::control::SessionToken;
use super::endpoint::{BatchReply, Endpoint, FrameBatch, Frames};
use super::shared::{Command, Limits, Shared};
use super::stats::{add, bump};

/// Pause before the first retry of a failed batch; doubles per attempt.
const RETRY_DELAY: Duration = Duration::from_millis(50);

/// The sending side of a link, held in the shared link table.
#[derive(Debug)]
pub(crate) struct LinkHandle {
    node: NodeId,
    peer: PeerId,
    tx: mpsc::Sender<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    /// Frames taken and not yet acknowledged.
    outstanding: Arc<AtomicUsize>,
    task: AbortHandle,
}

impl LinkHandle {
    /// Starts the link task to `remote` (the peer's endpoint), presenting `token`.
    pub(crate) fn spawn(
        handle: &Handle,
        node: NodeId,
        peer: PeerId,
        remote: RemoteActorRef<Endpoint>,
        token: SessionToken,
        shared: Arc<Shared>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(shared.limits.queue_frames.max(1));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let outstanding = Arc::new(AtomicUsize::new(0));
        let sender = Sender {
            outstanding: outstanding.clone(),
            peer,
            remote,
            token,
            stream: rand::random(),
            rx,
            queued_bytes: queued_bytes.clone(),
            shared,
        };
        let task = handle.spawn(sender.run()).abort_handle();
        LinkHandle {
            node,
            peer,
            tx,
            queued_bytes,
            outstanding,
            task,
        }
    }

    /// Every frame taken so far was acknowledged.
    pub(crate) fn is_idle(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) == 0
    }

    pub(crate) fn peer(&self) -> PeerId {
        self.peer
    }

    /// Queues a frame without blocking; a full queue is backpressure.
    pub(crate) fn try_send(&self, frame: Bytes, limits: &Limits) -> Result<(), TransportError> {
        let len = frame.len();
        let queued = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if queued > 0 && queued + len > limits.queue_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(TransportError::Backpressure(self.node));
        }
        match self.tx.try_send(frame) {
            Ok(()) => {
                self.outstanding.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(err) => {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                Err(match err {
                    mpsc::error::TrySendError::Full(_) => TransportError::Backpressure(self.node),
                    mpsc::error::TrySendError::Closed(_) => TransportError::NotConnected(self.node),
                })
            }
        }
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One batch as sent, kept until acknowledged.
struct Outgoing {
    batch: Arc<FrameBatch>,
    bytes: usize,
    attempt: u32,
}

type Sent = (Outgoing, Result<BatchReply, RemoteSendError>);

/// The link task's state.
struct Sender {
    peer: PeerId,
    remote: RemoteActorRef<Endpoint>,
    token: SessionToken,
    stream: u64,
    rx: mpsc::Receiver<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    outstanding: Arc<AtomicUsize>,
    shared: Arc<Shared>,
}

/// Why a link stopped.
enum Stop {
    /// Every handle dropped: the session ended.
    Closed,
    /// The link cannot continue: reset the connection.
    Failed(String),
}

impl Sender {
    async fn run(mut self) {
        match self.pump().await {
            Stop::Closed => tracing::debug!(peer = %self.peer, "link closed"),
            Stop::Failed(reason) => {
                tracing::warn!(peer = %self.peer, %reason, "link failed; resetting the connection");
                let command = Command::LinkFailed {
                    peer: self.peer,
                    reason,
                };
                if self.shared.commands.try_send(command).is_err() {
                    tracing::warn!(peer = %self.peer, "driver busy or gone; link reset not requested");
                }
            }
        }
    }

    async fn pump(&mut self) -> Stop {
        let limits = self.shared.limits;
        let mut next_seq = 0u64;
        let mut unacked = BTreeSet::new();
        let mut in_flight: FuturesUnordered<BoxFuture<'static, Sent>> = FuturesUnordered::new();
        let mut in_flight_bytes = 0usize;
        let mut carry: Option<Bytes> = None;
        let mut closed = false;
        loop {
            // Fill the window with whatever is queued, without waiting.
            while window_open(&limits, in_flight.len(), in_flight_bytes) && !closed {
                let first = match carry.take() {
                    Some(frame) => frame,
                    None => match self.rx.try_recv() {
                        Ok(frame) => self.took(frame),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    },
                };
                let (frames, bytes) = self.assemble(first, &mut carry, &limits);
                let seq = next_seq;
                next_seq += 1;
                unacked.insert(seq);
                let floor = unacked.first().copied().unwrap_or(seq);
                let outgoing = Outgoing {
                    batch: Arc::new(FrameBatch {
                        token: self.token,
                        stream: self.stream,
                        seq,
                        floor,
                        frames,
                    }),
                    bytes,
                    attempt: 1,
                };
                in_flight_bytes += bytes;
                in_flight.push(self.send(outgoing, Duration::ZERO));
            }
            if closed && in_flight.is_empty() {
                return Stop::Closed;
            }
            let can_take = window_open(&limits, in_flight.len(), in_flight_bytes)
                && carry.is_none()
                && !closed;
            tokio::select! {
                Some((outgoing, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    in_flight_bytes -= outgoing.bytes;
                    match result {
                        Ok(BatchReply::Accepted) => {
                            unacked.remove(&outgoing.batch.seq);
                            let frames = outgoing.batch.frames.0.len();
                            if self.outstanding.fetch_sub(frames, Ordering::AcqRel) == frames {
                                self.shared.drained.notify_waiters();
                            }
                            bump(&self.shared.counters.batches_sent);
                            add(&self.shared.counters.frames_sent, outgoing.batch.frames.0.len() as u64);
                            add(&self.shared.counters.bytes_sent, outgoing.bytes as u64);
                        }
                        Ok(BatchReply::UnknownSession) => {
                            return Stop::Failed("the peer does not know our session".to_owned());
                        }
                        Err(err) if is_retryable(&err) && outgoing.attempt < limits.max_send_attempts => {
                            bump(&self.shared.counters.batches_retried);
                            tracing::debug!(peer = %self.peer, seq = outgoing.batch.seq, %err, "retrying batch");
                            let delay = RETRY_DELAY * 2u32.saturating_pow(outgoing.attempt - 1);
                            let retry = Outgoing { attempt: outgoing.attempt + 1, ..outgoing };
                            in_flight_bytes += retry.bytes;
                            in_flight.push(self.send(retry, delay));
                        }
                        Err(err) => {
                            bump(&self.shared.counters.batches_abandoned);
                            return Stop::Failed(format!("batch {} failed: {err}", outgoing.batch.seq));
                        }
                    }
                }
                frame = self.rx.recv(), if can_take => match frame {
                    Some(frame) => carry = Some(self.took(frame)),
                    None => closed = true,
                },
                else => return Stop::Closed,
            }
        }
    }

    /// Accounts for a frame leaving the queue.
    fn took(&self, frame: Bytes) -> Bytes {
        self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        frame
    }

    /// `first` plus whatever else is queued, up to the batch limits; the first frame that
    /// does not fit stays in `carry`.
    fn assemble(
        &mut self,
        first: Bytes,
        carry: &mut Option<Bytes>,
        limits: &Limits,
    ) -> (Frames, usize) {
        let mut bytes = first.len();
        let mut frames = vec![first];
        while frames.len() < limits.max_batch_frames {
            let Ok(frame) = self.rx.try_recv() else {
                break;
            };
            let frame = self.took(frame);
            if bytes + frame.len() > limits.max_batch_bytes {
                *carry = Some(frame);
                break;
            }
            bytes += frame.len();
            frames.push(frame);
        }
        (Frames(frames), bytes)
    }

    fn send(&self, outgoing: Outgoing, delay: Duration) -> BoxFuture<'static, Sent> {
        let remote = self.remote.clone();
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let result = remote.ask(outgoing.batch.as_ref()).send().await;
            (outgoing, result)
        })
    }
}

fn window_open(limits: &Limits, batches: usize, bytes: usize) -> bool {
    batches == 0 || (batches < limits.max_in_flight && bytes < limits.max_in_flight_bytes)
}

/// Failures that a later attempt on the same connection may overcome.
fn is_retryable(err: &RemoteSendError) -> bool {
    matches!(
        err,
        RemoteSendError::MailboxFull
            | RemoteSendError::ReplyTimeout
            | RemoteSendError::NetworkTimeout
            | RemoteSendError::Io(_)
    )
}
