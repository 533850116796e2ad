//! The simulation's drive loop: booting nodes, membership, delivering frames, firing timers,
//! draining engine outputs, checking invariants.
//!
//! Node-level frames are handled as the real host's control actor does
//! (`node/control.rs`): heartbeats carry the node's own generations and feed liveness,
//! change-feed batches carry notices, both are routed to the engine as notices. One
//! difference: a node-level frame of a peer's *previous* process (possible only with
//! [`SimConfig::with_late_frames_from_previous_processes`](super::SimConfig)) is ignored,
//! where `control.rs` would re-join the peer under that old incarnation and then drop every
//! frame of its current process.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;

use super::invariants::Violation;
use super::network::Message;
use super::node::{MemberEvent, NodeStatus, PendingSave, SimNode, SimTag};
use super::{MutationId, QueryId, Sim, SimError};
use crate::engine::{Engine, EngineEvent, PersistRequest, Start};
use crate::error::PersistError;
use crate::feed::ChangeFeed;
use crate::ids::{Age, Generation, Incarnation, NodeId};
use crate::liveness::Liveness;
use crate::persist::PersistedShard;
use crate::state::{DeltaDistributedState, DeserializeError};
use crate::wire::{self, Frame, FrameKind, Notice};

/// Virtual wall clock at the start of every run (what incarnations are drawn from).
const WALL_START_MILLIS: u64 = 1_700_000_000_000;

impl<D> Sim<D>
where
    D: DeltaDistributedState,
    D::View: PartialEq + Debug,
{
    pub(super) fn instant(&self) -> Instant {
        self.base + self.now
    }

    pub(super) fn set_now(&mut self, at: Duration) {
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

    fn wall_millis(&self) -> u64 {
        WALL_START_MILLIS.saturating_add(u64::try_from(self.now.as_millis()).unwrap_or(u64::MAX))
    }

    /// A new process for `id`; `previous` is the process it replaces (its disk kept or wiped
    /// by the caller).
    pub(super) fn boot(&mut self, id: NodeId, previous: Option<SimNode<D>>) -> SimNode<D> {
        let wall = self.wall_millis();
        let incarnation = Incarnation::next_after(previous.as_ref().map(|p| p.incarnation), wall);
        let store = previous.as_ref().and_then(|p| p.store.clone());
        let earlier_shard = previous.as_ref().map(|p| p.shard_incarnation);
        let start = self.start_from(id, store.as_ref(), earlier_shard, wall);
        let acknowledged = previous.and_then(|p| p.acknowledged).filter(|acked| {
            // A loaded shard continues its lifetime; a fresh one starts a new one.
            acked.incarnation == start.generation.incarnation
        });
        if let (Some(acked), Some(stored)) = (acknowledged, store.as_ref()) {
            let loaded = Generation::new(stored.incarnation, stored.age);
            if loaded < acked {
                self.checker.problem(format!(
                    "{id} acknowledged {acked} but restarted from its disk at {loaded}"
                ));
            }
        }
        self.checker
            .record(id, start.generation, D::project_view(&start.state));
        let shard_incarnation = start.generation.incarnation;
        let mut engine = Engine::new(
            id,
            self.config.state.clone(),
            self.config.limits,
            start,
            self.instant(),
        );
        engine.set_view_events(false);
        let node_config = &self.config.node;
        let interval = u64::try_from(node_config.heartbeat_interval.as_micros()).unwrap_or(1);
        let stagger = Duration::from_micros(self.rng.gen_range(0..interval.max(1)));
        SimNode {
            id,
            incarnation,
            status: NodeStatus::Running,
            engine,
            feed: ChangeFeed::new(id, node_config.feed_batch_interval),
            liveness: Liveness::new(node_config.liveness_deadline()),
            members: Default::default(),
            heartbeat_at: self.now + stagger,
            saves: VecDeque::new(),
            store,
            failing_saves: 0,
            mailbox: Vec::new(),
            shard_incarnation,
            acknowledged,
        }
    }

    /// The shard a new process starts from: the disk's if persistence is on and it decodes,
    /// otherwise the initial state under an incarnation newer than any earlier one.
    fn start_from(
        &mut self,
        id: NodeId,
        store: Option<&PersistedShard>,
        earlier: Option<Incarnation>,
        wall: u64,
    ) -> Start<D::State> {
        let persistent = self.config.persistence;
        let mut earlier = earlier;
        if let Some(stored) = store.filter(|_| persistent) {
            match decode_stored::<D>(stored) {
                Ok(state) => {
                    return Start {
                        state,
                        generation: Generation::new(stored.incarnation, stored.age),
                        persistent,
                    }
                }
                Err(error) => {
                    self.checker
                        .problem(format!("{id}'s stored shard does not decode: {error}"));
                    earlier = earlier.max(Some(stored.incarnation));
                }
            }
        }
        Start {
            state: self.initial.clone(),
            generation: Generation::new(Incarnation::next_after(earlier, wall), Age(0)),
            persistent,
        }
    }

    /// Replace `id`'s (dead) process with a new one and announce it.
    pub(super) fn reboot(&mut self, id: NodeId, persisted: bool) {
        let Some(mut old) = self.nodes.remove(&id) else {
            return;
        };
        if !persisted {
            old.store = None;
        }
        let node = self.boot(id, Some(old));
        let incarnation = node.incarnation;
        self.nodes.insert(id, node);
        self.checker.restarted(id);
        self.announce(id, MemberEvent::Up(id, incarnation));
        self.join_members(id);
    }

    /// `id` crashes: reported down to every peer.
    pub(super) fn kill(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.status = NodeStatus::Crashed;
            node.saves.clear();
            node.mailbox.clear();
        }
        self.announce(id, MemberEvent::Down(id));
    }

    /// A hung `id` runs again and catches up with the membership changes it missed.
    pub(super) fn wake(&mut self, id: NodeId) {
        let missed = match self.nodes.get_mut(&id) {
            Some(node) => {
                node.status = NodeStatus::Running;
                std::mem::take(&mut node.mailbox)
            }
            None => return,
        };
        for event in missed {
            self.apply_member_event(id, event);
        }
    }

    /// `id` learns every current member.
    pub(super) fn join_members(&mut self, id: NodeId) {
        let peers: Vec<(NodeId, Incarnation)> = self
            .nodes
            .values()
            .filter(|n| n.id != id && n.status.is_member())
            .map(|n| (n.id, n.incarnation))
            .collect();
        for (peer, incarnation) in peers {
            self.apply_member_event(id, MemberEvent::Up(peer, incarnation));
        }
    }

    /// The membership layer reports `event` about `source` to every other member.
    pub(super) fn announce(&mut self, source: NodeId, event: MemberEvent) {
        let observers: Vec<(NodeId, NodeStatus)> = self
            .nodes
            .values()
            .filter(|n| n.id != source)
            .map(|n| (n.id, n.status))
            .collect();
        for (observer, status) in observers {
            match status {
                NodeStatus::Running => self.apply_member_event(observer, event),
                NodeStatus::Hung => {
                    if let Some(node) = self.nodes.get_mut(&observer) {
                        node.mailbox.push(event);
                    }
                }
                _ => {}
            }
        }
    }

    fn apply_member_event(&mut self, observer: NodeId, event: MemberEvent) {
        let now = self.instant();
        let Some(node) = self.nodes.get_mut(&observer) else {
            return;
        };
        match event {
            MemberEvent::Up(peer, incarnation) => {
                node.members.insert(peer, incarnation);
                node.liveness.handle_joined(now, peer);
                node.engine.handle_peer_up(now, peer, incarnation);
                self.checker.joined(observer, peer);
            }
            MemberEvent::Down(peer) => {
                node.members.remove(&peer);
                node.liveness.handle_left(peer);
                node.engine.handle_peer_down(now, peer);
            }
            MemberEvent::Left(peer) => {
                node.members.remove(&peer);
                node.liveness.handle_left(peer);
                node.engine.handle_peer_left(now, peer);
                self.checker.left(observer, peer);
            }
        }
    }

    /// When the next frame arrives or the next timer fires.
    pub(super) fn next_event(&self) -> Option<Duration> {
        let timers = self.nodes.values().filter_map(|n| n.next_timer(self.base));
        self.network.next_at().into_iter().chain(timers).min()
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
            node.heartbeat_at = at + interval.max(Duration::from_micros(1));
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
            at: after.max(now) + delay,
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
            state: String::new(),
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

/// Decode a stored shard as the host's loader does (migrating older storage versions).
fn decode_stored<D: DeltaDistributedState>(
    stored: &PersistedShard,
) -> Result<D::State, DeserializeError> {
    use std::cmp::Ordering;
    match stored.storage_version.cmp(&D::STORAGE_VERSION) {
        Ordering::Equal => D::deserialize_state(&stored.state, stored.storage_version),
        Ordering::Less => D::migrate_state(&stored.state, stored.storage_version),
        Ordering::Greater => Err(DeserializeError::UnsupportedVersion {
            version: stored.storage_version,
        }),
    }
}
