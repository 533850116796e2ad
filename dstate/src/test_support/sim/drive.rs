//! The simulation's drive loop: delivering frames, firing timers, draining engine outputs,
//! checking invariants.
//!
//! Node-level frames are handled as the real host's control actor does
//! (`node/control.rs`): heartbeats carry the node's own generations and feed liveness,
//! change-feed batches carry notices, both are routed to the engine as notices. One
//! difference: a node-level frame of a peer's *previous* process (possible only with
//! [`SimConfig::with_late_frames_from_previous_processes`](super::SimConfig)) is ignored,
//! where `control.rs` would re-join the peer under that old incarnation and then drop every
//! frame of its current process.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;

use super::invariants::Violation;
use super::network::Message;
use super::node::{MemberEvent, NodeStatus, PendingSave, SimTag};
use super::{MutationId, QueryId, Sim, SimError};
use crate::engine::{EngineEvent, PersistRequest};
use crate::error::PersistError;
use crate::ids::{Age, Generation, NodeId};
use crate::state::DeltaDistributedState;
use crate::wire::{self, Frame, FrameKind, Notice};

/// Virtual time never goes past this (about 136 years): events due later never happen, so
/// huge delays or advances cannot overflow `Instant` arithmetic.
pub(super) const HORIZON: Duration = Duration::from_secs(1 << 32);

impl<D> Sim<D>
where
    D: DeltaDistributedState,
    D::View: PartialEq + Debug,
{
    pub(super) fn instant(&self) -> Instant {
        self.base + self.now
    }

    pub(super) fn set_now(&mut self, at: Duration) {
        let at = at.min(HORIZON);
        if at > self.now {
            self.now = at;
            self.steps_at_now = 0;
        }
    }

    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn running(&self, node: NodeId) -> Result<(), SimError> {
        match self.status(node) {
            None => Err(SimError::UnknownNode(node)),
            Some(NodeStatus::Running) => Ok(()),
            Some(_) => Err(SimError::NotRunning(node)),
        }
    }

    pub(super) fn member(&self, node: NodeId) -> Result<(), SimError> {
        match self.status(node) {
            None => Err(SimError::UnknownNode(node)),
            Some(status) if status.is_member() => Ok(()),
            Some(_) => Err(SimError::NotRunning(node)),
        }
    }

    pub(super) fn running_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.status == NodeStatus::Running)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(super) fn violation(&self, problems: Vec<String>) -> Violation {
        Violation {
            seed: self.config.seed,
            step: self.stats.steps,
            elapsed: self.now,
            problems,
        }
    }

    /// When the next frame arrives or the next timer fires.
    pub(super) fn next_event(&self) -> Option<Duration> {
        let timers = self.nodes.values().filter_map(|n| n.next_timer(self.base));
        let next = self.network.next_at().into_iter().chain(timers).min();
        next.filter(|at| *at <= HORIZON)
    }

    /// The first node (by id) with a timer due now.
    pub(super) fn next_due_node(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .find(|n| n.next_timer(self.base).is_some_and(|at| at <= self.now))
            .map(|n| n.id)
    }

    /// Deliver the next frame that is due, if its receiver can still get it.
    pub(super) fn deliver_next(&mut self) {
        let Some(message) = self.network.pop_due(self.now) else {
            return;
        };
        let (from, to) = (message.from, message.to);
        let late_frames = self.config.late_frames;
        let open = self.nodes.get(&to).is_some_and(|n| {
            // The receiver takes frames from the sender's process it knows, and, when late
            // frames are modelled, from that node's earlier processes too.
            let sender_known = n.members.get(&from).is_some_and(|known| {
                *known == message.from_incarnation
                    || (late_frames && message.from_incarnation < *known)
            });
            n.status == NodeStatus::Running
                && n.incarnation == message.to_incarnation
                && sender_known
        });
        if !open || self.faults.is_cut(from, to) {
            self.stats.frames_unreachable += 1;
            return;
        }
        self.stats.frames_delivered += 1;
        let frame = match wire::decode(&message.bytes, usize::MAX) {
            Ok(frame) => frame,
            Err(error) => {
                if message.corrupted {
                    self.stats.corrupted_rejected += 1;
                } else {
                    self.checker.problem(format!(
                        "an intact frame from {from} to {to} did not decode: {error}"
                    ));
                }
                return;
            }
        };
        if message.corrupted {
            self.checker.problem(format!(
                "a corrupted frame from {from} to {to} decoded as {:?}",
                frame.kind
            ));
        }
        match frame.kind {
            FrameKind::Heartbeat | FrameKind::Feed | FrameKind::Goodbye => {
                self.on_node_frame(to, from, frame)
            }
            _ if frame.state == D::name() => {
                if matches!(
                    frame.kind,
                    FrameKind::Snapshot { .. } | FrameKind::Delta | FrameKind::Current
                ) {
                    self.checker.heard(to, from, frame.generation.incarnation);
                }
                let now = self.instant();
                if let Some(node) = self.nodes.get_mut(&to) {
                    node.engine.handle_frame(now, from, frame);
                }
            }
            _ => self.stats.frames_rejected += 1,
        }
    }

    /// A node-level frame, handled as the host's control actor does.
    fn on_node_frame(&mut self, observer: NodeId, from: NodeId, frame: Frame) {
        let now = self.instant();
        let Some(node) = self.nodes.get_mut(&observer) else {
            return;
        };
        let incarnation = frame.generation.incarnation;
        let known = node.members.get(&from).copied();
        if known.is_some_and(|known| incarnation < known) {
            // A late frame of the peer's previous process. (The host's control actor would
            // re-join the peer with that old incarnation here: reported, see the module docs.)
            return;
        }
        match frame.kind {
            FrameKind::Heartbeat => {
                let back = node.liveness.handle_heard(now, from);
                if known != Some(incarnation) || back {
                    // Unknown, restarted, or alive again after going silent.
                    self.apply_member_event(observer, MemberEvent::Up(from, incarnation));
                }
                self.route_notices(observer, from, &frame.payload);
            }
            FrameKind::Feed => self.route_notices(observer, from, &frame.payload),
            FrameKind::Goodbye if known == Some(incarnation) => {
                self.apply_member_event(observer, MemberEvent::Left(from))
            }
            _ => {}
        }
    }

    fn route_notices(&mut self, observer: NodeId, from: NodeId, payload: &[u8]) {
        let notices: Vec<Notice> = match postcard::from_bytes(payload) {
            Ok(notices) => notices,
            Err(_) => {
                self.stats.frames_rejected += 1;
                return;
            }
        };
        let now = self.instant();
        for notice in notices {
            if notice.source != from {
                self.stats.frames_rejected += 1;
                continue;
            }
            if notice.state != D::name() {
                continue;
            }
            self.checker
                .heard(observer, from, notice.generation.incarnation);
            if let Some(node) = self.nodes.get_mut(&observer) {
                node.engine.handle_notice(now, from, notice.generation);
            }
        }
    }

    /// Fire every timer of `id` that is due: engine, change feed, heartbeat, liveness, disk.
    pub(super) fn fire_timers(&mut self, id: NodeId) {
        let (now, at) = (self.instant(), self.now);
        let interval = self.config.node.heartbeat_interval;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.engine.poll_timeout().is_some_and(|t| t <= now) {
            node.engine.handle_timeout(now);
        }
        node.feed.handle_timeout(now);
        let batch = node.feed.poll_batch();
        let heartbeat = (node.heartbeat_at <= at).then(|| {
            node.heartbeat_at = at.saturating_add(interval.max(Duration::from_micros(1)));
            Notice {
                state: D::name().to_owned(),
                source: id,
                generation: node.engine.generation(),
            }
        });
        node.liveness.handle_timeout(now);
        while let Some(peer) = node.liveness.poll_silent() {
            // Silent past the deadline: down (the host would also redial it).
            node.engine.handle_peer_down(now, peer);
        }
        let save = match node.saves.front() {
            Some(save) if save.at <= at => node.saves.pop_front(),
            _ => None,
        };
        if let Some(save) = save {
            self.complete_save(id, save);
        }
        if let Some(batch) = batch {
            self.send_notices(id, FrameKind::Feed, batch);
        }
        if let Some(notice) = heartbeat {
            self.send_notices(id, FrameKind::Heartbeat, vec![notice]);
        }
    }

    fn complete_save(&mut self, id: NodeId, save: PendingSave) {
        let now = self.instant();
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let generation = save.request.generation;
        let result = if save.fail {
            self.stats.save_failures += 1;
            Err(PersistError::Injected(format!(
                "simulated save failure on {id}"
            )))
        } else {
            self.stats.saves += 1;
            node.store = Some(save.request.shard);
            Ok(())
        };
        node.engine.handle_persisted(now, generation, result);
    }

    fn schedule_save(&mut self, id: NodeId, request: PersistRequest) {
        let (min, max) = self.config.save_delay;
        let span = u64::try_from((max - min).as_micros()).unwrap_or(u64::MAX);
        let delay = min + Duration::from_micros(self.rng.gen_range(0..=span));
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let after = node.saves.back().map_or(now, |s| s.at);
        let fail = node.failing_saves > 0;
        node.failing_saves = node.failing_saves.saturating_sub(1);
        node.saves.push_back(PendingSave {
            at: after.max(now).saturating_add(delay),
            request,
            fail,
        });
    }

    /// Send a node-level frame with `notices` to every member `from` knows.
    fn send_notices(&mut self, from: NodeId, kind: FrameKind, notices: Vec<Notice>) {
        let Some(node) = self.nodes.get(&from) else {
            return;
        };
        let Ok(payload) = postcard::to_allocvec(&notices) else {
            return self
                .checker
                .problem(format!("{from}: notice list not encodable"));
        };
        let frame = Frame {
            kind,
            state: std::borrow::Cow::Borrowed(""),
            source: from,
            generation: Generation::new(node.incarnation, Age(0)),
            payload_version: wire::FORMAT_VERSION.into(),
            payload,
        };
        let bytes = match wire::encode(&frame, usize::MAX) {
            Ok(bytes) => bytes,
            Err(error) => {
                return self
                    .checker
                    .problem(format!("{from}: node frame not encodable: {error}"))
            }
        };
        let members: Vec<NodeId> = node.members.keys().copied().collect();
        for to in members {
            // A refused node-level frame is only logged by the host; the next beat follows.
            self.transmit(from, to, bytes.clone());
        }
    }

    /// Hand `bytes` to the link `from -> to`. False when the send is refused (link cut,
    /// receiver crashed or gone), which the engine hears as a failed send.
    fn transmit(&mut self, from: NodeId, to: NodeId, bytes: Bytes) -> bool {
        self.stats.frames_sent += 1;
        let Some(from_incarnation) = self.nodes.get(&from).map(|n| n.incarnation) else {
            return false;
        };
        let receiver = self
            .nodes
            .get(&to)
            .filter(|n| n.status.is_member())
            .map(|n| n.incarnation);
        let Some(to_incarnation) = receiver.filter(|_| !self.faults.is_cut(from, to)) else {
            self.stats.sends_refused += 1;
            return false;
        };
        let message = Message {
            from,
            from_incarnation,
            to,
            to_incarnation,
            bytes,
            corrupted: false,
        };
        let faults = self.faults.link(from, to);
        let sent = self.network.send(self.now, message, faults, &mut self.rng);
        self.stats.frames_lost += u64::from(sent.lost);
        self.stats.frames_duplicated += u64::from(sent.duplicated);
        self.stats.frames_corrupted += u64::from(sent.corrupted);
        true
    }

    /// Carry out everything `id`'s engine asked for.
    fn drain(&mut self, id: NodeId) {
        let now = self.instant();
        loop {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let transmits: Vec<_> = std::iter::from_fn(|| node.engine.poll_transmit()).collect();
            let persists: Vec<_> = std::iter::from_fn(|| node.engine.poll_persist()).collect();
            let events: Vec<_> = std::iter::from_fn(|| node.engine.poll_event()).collect();
            if transmits.is_empty() && persists.is_empty() && events.is_empty() {
                return;
            }
            let refused: Vec<NodeId> = transmits
                .into_iter()
                .filter_map(|t| (!self.transmit(id, t.to, t.frame)).then_some(t.to))
                .collect();
            for request in persists {
                self.schedule_save(id, request);
            }
            for event in events {
                self.on_event(id, event);
            }
            if let Some(node) = self.nodes.get_mut(&id) {
                for peer in refused {
                    node.engine.handle_send_failed(now, peer);
                }
            }
        }
    }

    fn on_event(&mut self, id: NodeId, event: EngineEvent<D::View, SimTag<D::View>>) {
        let now = self.instant();
        match event {
            EngineEvent::MutationDone { tag, result } => {
                match &result {
                    Ok(generation) => {
                        self.stats.mutations_committed += 1;
                        self.checker.record(id, *generation, tag.view);
                        if let Some(node) = self.nodes.get_mut(&id) {
                            node.acknowledged = node.acknowledged.max(Some(*generation));
                        }
                    }
                    Err(_) => self.stats.mutations_failed += 1,
                }
                self.outcomes.insert(MutationId(tag.id), result);
            }
            EngineEvent::QueryReady { id: query } => {
                self.ready_queries.insert(QueryId(query));
            }
            EngineEvent::FeedNotice { generation } => {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.feed.handle_notice(now, D::name(), generation);
                }
            }
            EngineEvent::Rejected { .. } => self.stats.frames_rejected += 1,
            _ => {}
        }
    }

    /// Drain every running node, count the step and check the invariants.
    ///
    /// # Panics
    ///
    /// When an invariant is violated or time stopped advancing.
    pub(super) fn finish_step(&mut self) {
        for id in self.running_nodes() {
            self.drain(id);
        }
        self.stats.steps += 1;
        self.steps_at_now += 1;
        if self.steps_at_now > self.config.max_steps_per_instant {
            self.checker.problem(format!(
                "livelock: {} steps at t = {:?} without time advancing",
                self.steps_at_now, self.now
            ));
        }
        self.checker.check(&mut self.nodes);
        self.stats.invariant_checks += 1;
        let problems = self.checker.take_problems();
        if !problems.is_empty() {
            panic!("invariant violated: {}", self.violation(problems));
        }
    }
}
