//! The endpoint's inbound side: messages from peers' endpoints, acknowledgements, flushes.

use std::collections::HashSet;
use std::time::Instant;

use dstate::NodeId;
use ractor::ActorRef;
use tokio::sync::oneshot;

use super::{EndpointState, PendingFlush, FLUSH_LIMIT};
use crate::cluster::config::{ACK_EVERY_BYTES, ACK_EVERY_FRAMES};
use crate::cluster::membership::SessionId;
use crate::cluster::protocol::{EndpointMsg, LocalMsg, Token, WireMsg};
use crate::cluster::stats::Counters;

impl EndpointState {
    pub(super) fn on_wire(&mut self, msg: WireMsg) {
        match msg {
            WireMsg::Frame { token, payload } => self.on_frame(token, payload),
            WireMsg::Hello(hello) => {
                tracing::debug!(node = %hello.node, incarnation = hello.incarnation.0, "hello");
                let actions = self.membership.handle_hello(hello);
                self.apply(actions, Instant::now());
            }
            WireMsg::Ack {
                token,
                bytes,
                frames,
                flush,
            } => {
                let Some((node, session)) = self.authenticate(token) else {
                    return;
                };
                if let Some(link) = self.shared.link(node).filter(|l| l.session == session) {
                    link.on_ack(bytes, frames);
                }
                if flush != 0 {
                    self.on_flush_ack(flush, node);
                }
            }
            WireMsg::Peers { token, adverts } => {
                if self.authenticate(token).is_some() {
                    let now = Instant::now();
                    for (node, address) in adverts {
                        self.learn(address, node, now);
                    }
                }
            }
            WireMsg::Flush { token, id } => {
                if let Some((node, session)) = self.authenticate(token) {
                    self.send_ack(node, session, id);
                }
            }
            WireMsg::Malformed { variant, len } => {
                Counters::bump(&self.shared.counters.malformed);
                tracing::debug!(variant, len, "dropped a malformed endpoint message");
            }
        }
    }

    fn on_frame(&mut self, token: Token, payload: bytes::Bytes) {
        let Some((node, session)) = self.authenticate(token) else {
            return;
        };
        let len = payload.len() as u64;
        let counters = &self.shared.counters;
        Counters::bump(&counters.frames_received);
        Counters::add(&counters.bytes_received, len);
        if let Some(sink) = &self.sink {
            sink(node, payload);
        }
        let Some(handle) = self.sessions.get_mut(&session) else {
            return;
        };
        handle.received_frames += 1;
        handle.received_bytes += len;
        if handle.received_frames - handle.acked_frames >= ACK_EVERY_FRAMES
            || handle.received_bytes - handle.acked_bytes >= ACK_EVERY_BYTES
        {
            self.send_ack(node, session, 0);
        }
    }

    /// The joined peer behind `token`, or `None` (counted as rejected).
    fn authenticate(&self, token: Token) -> Option<(NodeId, SessionId)> {
        let sender = self.membership.sender_of(token);
        if sender.is_none() {
            Counters::bump(&self.shared.counters.rejected_unknown_token);
            tracing::debug!(?token, "dropped a message with an unknown session token");
        }
        sender
    }

    fn send_ack(&mut self, node: NodeId, session: SessionId, flush: u64) {
        let Some(handle) = self.sessions.get_mut(&session) else {
            return;
        };
        handle.acked_bytes = handle.received_bytes;
        handle.acked_frames = handle.received_frames;
        let Some(link) = self.shared.link(node).filter(|l| l.session == session) else {
            return;
        };
        let ack = WireMsg::Ack {
            token: link.token,
            bytes: handle.received_bytes,
            frames: handle.received_frames,
            flush,
        };
        if link.cast(ack).is_err() {
            tracing::debug!(%node, "ack to a closed session");
        }
    }

    pub(super) fn start_flush(
        &mut self,
        myself: &ActorRef<EndpointMsg>,
        reply: oneshot::Sender<usize>,
    ) {
        self.tasks.retain(|task| !task.is_finished());
        let id = self.next_flush;
        self.next_flush += 1;
        let mut waiting = HashSet::new();
        for (node, link) in self.shared.links() {
            if link
                .cast(WireMsg::Flush {
                    token: link.token,
                    id,
                })
                .is_ok()
            {
                waiting.insert(node);
            }
        }
        if waiting.is_empty() {
            let _ = reply.send(0);
            return;
        }
        self.flushes.insert(
            id,
            PendingFlush {
                reply,
                waiting,
                acknowledged: 0,
            },
        );
        let endpoint = myself.clone();
        self.tasks.push(tokio::spawn(async move {
            tokio::time::sleep(FLUSH_LIMIT).await;
            let _ = endpoint.cast(EndpointMsg::Local(LocalMsg::FlushDeadline(id)));
        }));
    }

    fn on_flush_ack(&mut self, id: u64, node: NodeId) {
        let Some(flush) = self.flushes.get_mut(&id) else {
            return;
        };
        if flush.waiting.remove(&node) {
            flush.acknowledged += 1;
        }
        if flush.waiting.is_empty() {
            if let Some(flush) = self.flushes.remove(&id) {
                let _ = flush.reply.send(flush.acknowledged);
            }
        }
    }
}
