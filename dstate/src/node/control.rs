//! The node's control actor: membership, heartbeats and liveness, the change feed.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::oneshot;

use super::registry::{Membership, NodeShared};
use crate::config::NodeConfig;
use crate::feed::ChangeFeed;
use crate::ids::{Age, Generation, Incarnation, NodeId};
use crate::liveness::Liveness;
use crate::runtime::{ActorRuntime, Clock, ClusterEvent, LeaveReason, TimerHandle};
use crate::transport::Transport;
use crate::wire::{self, Frame, FrameKind, Notice};

/// Messages of the control actor.
pub(crate) enum ControlMsg {
    Cluster(ClusterEvent),
    Frame(NodeId, Frame),
    FeedNotice(&'static str, Generation),
    Heartbeat,
    Wake,
    Shutdown(oneshot::Sender<()>),
}

pub(crate) struct Control<R: ActorRuntime> {
    pub(crate) shared: Arc<NodeShared>,
    pub(crate) runtime: R,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) me: Arc<OnceLock<R::Ref<ControlMsg>>>,
    liveness: Liveness,
    feed: ChangeFeed,
    wake: Option<(Instant, R::Timer)>,
    /// Nodes that said goodbye, with the process incarnation that did: late heartbeats of
    /// that lifetime must not bring them back.
    departed: std::collections::BTreeMap<NodeId, Incarnation>,
    heartbeat: Option<R::Timer>,
    interval: std::time::Duration,
    stopped: bool,
}

impl<R: ActorRuntime> Control<R> {
    pub(crate) fn new(
        shared: Arc<NodeShared>,
        runtime: R,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        config: &NodeConfig,
    ) -> Self {
        Control {
            feed: ChangeFeed::new(shared.id, config.feed_batch_interval),
            liveness: Liveness::new(config.liveness_deadline()),
            shared,
            runtime,
            transport,
            clock,
            me: Arc::new(OnceLock::new()),
            wake: None,
            departed: std::collections::BTreeMap::new(),
            heartbeat: None,
            interval: config.heartbeat_interval,
            stopped: false,
        }
    }

    pub(crate) fn handle(&mut self, msg: ControlMsg) {
        if self.stopped {
            return;
        }
        let now = self.clock.now();
        match msg {
            ControlMsg::Cluster(event) => self.on_cluster(now, event),
            ControlMsg::Frame(from, frame) => self.on_frame(now, from, frame),
            ControlMsg::FeedNotice(state, generation) => {
                self.feed.handle_notice(now, state, generation)
            }
            ControlMsg::Heartbeat => self.heartbeat(),
            ControlMsg::Wake => self.wake = None,
            ControlMsg::Shutdown(done) => {
                self.goodbye();
                for timer in self
                    .heartbeat
                    .take()
                    .into_iter()
                    .chain(self.wake.take().map(|w| w.1))
                {
                    timer.cancel();
                }
                self.stopped = true;
                // The caller may have stopped waiting.
                let _ = done.send(());
                return;
            }
        }
        self.liveness.handle_timeout(now);
        while let Some(node) = self.liveness.poll_silent() {
            tracing::warn!(%node, "peer silent past the liveness deadline: marking down, redialling");
            self.broadcast(Membership::Down(node));
            self.transport.reconnect(node);
        }
        self.feed.handle_timeout(now);
        if let Some(batch) = self.feed.poll_batch() {
            self.send_notices(FrameKind::Feed, batch);
        }
        self.schedule(now);
    }

    fn on_cluster(&mut self, now: Instant, event: ClusterEvent) {
        match event {
            ClusterEvent::NodeJoined { node, incarnation } if node != self.shared.id => {
                self.join(now, node, incarnation)
            }
            ClusterEvent::NodeLeft { node, reason } if node != self.shared.id => {
                self.shared.members().remove(&node);
                self.liveness.handle_left(node);
                let change = match reason {
                    LeaveReason::Graceful => Membership::Left(node),
                    _ => Membership::Down(node),
                };
                self.broadcast(change);
            }
            _ => {}
        }
    }

    fn join(&mut self, now: Instant, node: NodeId, incarnation: Incarnation) {
        self.liveness.handle_joined(now, node);
        // Broadcast under the members lock (it only enqueues): whoever sees the member also
        // finds the `Up` already queued for every registered state.
        let mut members = self.shared.members();
        members.insert(node, incarnation);
        self.broadcast(Membership::Up(node, incarnation));
        drop(members);
    }

    fn on_frame(&mut self, now: Instant, from: NodeId, frame: Frame) {
        if frame.source != from {
            self.shared.count_rejected();
            tracing::warn!(%from, claimed = %frame.source, "node frame with a spoofed source");
            return;
        }
        let known = self.shared.members().get(&from).copied();
        if known.is_some_and(|known| frame.generation.incarnation < known) {
            // A late frame of the peer's previous process: it must not re-join it under
            // that old lifetime (the current process would then look silent forever).
            tracing::debug!(%from, "node frame of a previous process dropped");
            return;
        }
        match frame.kind {
            FrameKind::Heartbeat => {
                let incarnation = frame.generation.incarnation;
                if self.departed.get(&from) == Some(&incarnation) {
                    return; // a late beat of a lifetime that already said goodbye
                }
                let back = self.liveness.handle_heard(now, from);
                if known != Some(incarnation) || back {
                    // Unknown, restarted, or alive again after going silent.
                    self.join(now, from, incarnation);
                }
                self.route_notices(from, &frame.payload);
            }
            FrameKind::Feed => self.route_notices(from, &frame.payload),
            FrameKind::Goodbye => {
                self.departed.insert(from, frame.generation.incarnation);
                self.shared.members().remove(&from);
                self.liveness.handle_left(from);
                self.broadcast(Membership::Left(from));
            }
            _ => {}
        }
    }

    fn route_notices(&self, from: NodeId, payload: &[u8]) {
        let notices: Vec<Notice> = match postcard::from_bytes(payload) {
            Ok(notices) => notices,
            Err(error) => {
                self.shared.count_rejected();
                tracing::warn!(%from, %error, "undecodable notice list");
                return;
            }
        };
        for notice in notices {
            if notice.source != from {
                self.shared.count_rejected();
                tracing::warn!(%from, claimed = %notice.source, "notice for another node's shard");
                continue;
            }
            if let Some(slot) = self.shared.slot(&notice.state) {
                slot.notice(from, notice.generation);
            }
        }
    }

    fn heartbeat(&mut self) {
        if let Some(me) = self.me.get() {
            self.heartbeat = Some(self.runtime.send_after(
                self.interval,
                me,
                ControlMsg::Heartbeat,
            ));
        }
        let notices = self
            .shared
            .generations()
            .into_iter()
            .map(|(state, generation)| Notice {
                state: state.to_owned(),
                source: self.shared.id,
                generation,
            })
            .collect();
        self.send_notices(FrameKind::Heartbeat, notices);
    }

    fn send_notices(&self, kind: FrameKind, notices: Vec<Notice>) {
        let payload = match postcard::to_allocvec(&notices) {
            Ok(payload) => payload,
            Err(error) => return tracing::error!(%error, "notice list not encodable"),
        };
        self.send_node_frame(kind, payload);
    }

    fn goodbye(&self) {
        self.send_node_frame(FrameKind::Goodbye, Vec::new());
    }

    fn send_node_frame(&self, kind: FrameKind, payload: Vec<u8>) {
        let frame = Frame {
            kind,
            state: Cow::Borrowed(""),
            source: self.shared.id,
            generation: Generation::new(self.shared.incarnation, Age(0)),
            payload_version: wire::FORMAT_VERSION.into(),
            payload,
        };
        let bytes = match wire::encode(&frame, self.transport.max_frame_bytes()) {
            Ok(bytes) => bytes,
            Err(error) => return tracing::error!(%error, "node frame not encodable"),
        };
        let members: Vec<NodeId> = self.shared.members().keys().copied().collect();
        for node in members {
            if let Err(error) = self.transport.send(node, bytes.clone()) {
                tracing::debug!(%node, %error, "node frame not sent");
            }
        }
    }

    fn broadcast(&self, change: Membership) {
        for slot in self.shared.slots() {
            slot.membership(change);
        }
    }

    fn schedule(&mut self, now: Instant) {
        let wanted = [self.feed.poll_timeout(), self.liveness.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        if self.wake.as_ref().map(|(at, _)| *at) == wanted {
            return;
        }
        if let Some((_, timer)) = self.wake.take() {
            timer.cancel();
        }
        let (Some(at), Some(me)) = (wanted, self.me.get()) else {
            return;
        };
        let timer =
            self.runtime
                .send_after(at.saturating_duration_since(now), me, ControlMsg::Wake);
        self.wake = Some((at, timer));
    }
}
