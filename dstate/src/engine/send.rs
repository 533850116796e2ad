//! Building frames and pushing changes to peers.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Engine, Transmit};
use crate::config::PushMode;
use crate::error::{DecodeError, MutationError};
use crate::ids::{Generation, NodeId};
use crate::state::{DeltaDistributedState, SyncUrgency};
use crate::wire::{self, Frame, FrameKind};

/// Bytes reserved for a chunk frame's header and checksum besides the state name.
const CHUNK_OVERHEAD: usize = 64;
/// Backoff before retrying a peer whose queue was full.
const BACKPRESSURE_BACKOFF: Duration = Duration::from_millis(50);

/// Encoded snapshot of the own shard, reused while the generation stays the same.
#[derive(Debug)]
pub(super) struct SnapshotCache {
    generation: Generation,
    version: u32,
    ack: bool,
    frames: Vec<Bytes>,
}

impl<D: DeltaDistributedState, T> Engine<D, T> {
    /// The transport could not take a frame for `peer` (queue full or not connected): its
    /// pending changes collapse into one snapshot, sent after a short backoff.
    pub fn handle_send_failed(&mut self, now: Instant, peer: NodeId) {
        let entry = self.peer_mut(peer);
        entry.needs_snapshot = true;
        entry.retry_at = Some(now + BACKPRESSURE_BACKOFF);
        entry.counters.backpressure += 1;
    }

    /// Send one committed change according to its urgency and the strategy.
    pub(super) fn dispatch_change(
        &mut self,
        now: Instant,
        generation: Generation,
        urgency: SyncUrgency,
        delta: &D::ViewDelta,
        payload: Option<Vec<u8>>,
    ) {
        let push = match urgency {
            SyncUrgency::Immediate => true,
            SyncUrgency::Suppress => false,
            SyncUrgency::Delayed(delay) => {
                let at = now + delay;
                self.delayed_push_at = Some(self.delayed_push_at.map_or(at, |t| t.min(at)));
                false
            }
            _ => match self.config.strategy.push_mode {
                PushMode::ActivePush => true,
                PushMode::ActiveFeedLazyPull => {
                    self.events
                        .push_back(super::EngineEvent::FeedNotice { generation });
                    false
                }
                _ => false,
            },
        };
        if push {
            self.push_change(now, generation, delta, payload);
        } else {
            // Peers did not get this change: whatever is sent next must be a snapshot.
            for peer in self.peers.values_mut() {
                peer.needs_snapshot = true;
            }
        }
    }

    /// Push one change to every live peer: a delta, or a snapshot to peers that need one.
    fn push_change(
        &mut self,
        now: Instant,
        generation: Generation,
        delta: &D::ViewDelta,
        mut payload: Option<Vec<u8>>,
    ) {
        let mut targets = std::mem::take(&mut self.scratch_peers);
        targets.clear();
        targets.extend(self.live_peers());
        let mut change_frame: Option<Result<Bytes, DecodeError>> = None;
        for &to in &targets {
            let Some(peer) = self.peers.get(&to) else {
                continue;
            };
            if peer.needs_snapshot {
                if peer.retry_at.is_none_or(|at| at <= now) {
                    self.send_snapshot(to, false);
                }
                continue;
            }
            let frame = change_frame
                .get_or_insert_with(|| self.encode_change(generation, delta, payload.take()));
            match frame {
                Ok(bytes) => {
                    let bytes = bytes.clone();
                    self.transmit(to, bytes, false);
                }
                // Too big for one frame: a (chunked) snapshot carries it instead.
                Err(_) => self.send_snapshot(to, false),
            }
        }
        self.scratch_peers = targets;
    }

    /// Send the own snapshot to every live peer (delayed pushes).
    pub(super) fn push_snapshot_all(&mut self, now: Instant) {
        let targets: Vec<NodeId> = self.live_peers().collect();
        for to in targets {
            let waiting = self
                .peers
                .get(&to)
                .is_some_and(|p| p.retry_at.is_some_and(|t| t > now));
            if !waiting {
                self.send_snapshot(to, false);
            }
        }
    }

    fn encode_change(
        &self,
        generation: Generation,
        delta: &D::ViewDelta,
        payload: Option<Vec<u8>>,
    ) -> Result<Bytes, DecodeError> {
        let (kind, payload) = if D::DELTA_IS_SNAPSHOT {
            let payload = payload.unwrap_or_else(|| D::serialize_delta(delta));
            (FrameKind::Snapshot { ack: false }, payload)
        } else {
            (FrameKind::Delta, D::serialize_delta(delta))
        };
        let frame = Frame {
            kind,
            state: D::name().into(),
            source: self.local,
            generation,
            payload_version: D::WIRE_VERSION,
            payload,
        };
        wire::encode(&frame, self.frame_limit)
    }

    /// Send the own snapshot (chunked if needed) to `to` at this build's wire version.
    pub(super) fn send_snapshot(&mut self, to: NodeId, ack: bool) {
        self.send_snapshot_at(to, ack, D::WIRE_VERSION);
    }

    /// Send the own snapshot encoded at `version` when the state can produce it.
    pub(super) fn send_snapshot_at(&mut self, to: NodeId, ack: bool, version: u32) {
        match self.snapshot_frames(ack, version) {
            Ok(frames) => {
                if let Some(peer) = self.peers.get_mut(&to) {
                    peer.needs_snapshot = false;
                    peer.retry_at = None;
                    peer.counters.snapshots_sent += 1;
                }
                for frame in frames {
                    self.transmit(to, frame, true);
                }
            }
            Err(error) => self.record_error(format!("snapshot not sent to {to}: {error}")),
        }
    }

    /// Queue a frame for `to`, counting it.
    pub(super) fn transmit(&mut self, to: NodeId, frame: Bytes, snapshot: bool) {
        let peer = self.peer_mut(to);
        peer.counters.frames_out += 1;
        peer.counters.bytes_out += frame.len() as u64;
        if !snapshot {
            peer.counters.deltas_sent += 1;
        }
        self.transmits.push_back(Transmit { to, frame });
    }

    /// Queue a small control frame (request, ack, current) for `to`.
    pub(super) fn send_control(&mut self, to: NodeId, kind: FrameKind, generation: Generation) {
        let frame = Frame {
            kind,
            state: D::name().into(),
            source: self.local,
            generation,
            payload_version: D::WIRE_VERSION,
            payload: Vec::new(),
        };
        match wire::encode(&frame, self.frame_limit) {
            Ok(bytes) => {
                let peer = self.peer_mut(to);
                peer.counters.frames_out += 1;
                peer.counters.bytes_out += bytes.len() as u64;
                self.transmits.push_back(Transmit { to, frame: bytes });
            }
            Err(error) => self.record_error(format!("control frame not encoded: {error}")),
        }
    }

    /// Ask `to` for its snapshot, telling it which generation is held.
    pub(super) fn request_snapshot(&mut self, now: Instant, to: NodeId, force: bool) {
        let timeout = self.config.pull_timeout;
        let peer = self.peer_mut(to);
        if peer.pulling(now) {
            return;
        }
        peer.pull_until = Some(now + timeout);
        peer.counters.pulls_sent += 1;
        let held = match (force, self.held(to)) {
            (false, Some(view)) => view.generation,
            _ => Generation::default(),
        };
        self.send_control(to, FrameKind::SnapshotRequest, held);
    }

    /// The own snapshot as frames of at most `frame_limit` bytes (cached per generation).
    fn snapshot_frames(&mut self, ack: bool, version: u32) -> Result<Vec<Bytes>, MutationError> {
        let generation = self.shard.generation;
        if let Some(cache) = &self.snapshot_cache {
            if cache.generation == generation && cache.version == version && cache.ack == ack {
                return Ok(cache.frames.clone());
            }
        }
        let (payload, version) = match version {
            v if v == D::WIRE_VERSION => (D::serialize_view(&self.shard.own_view), v),
            v => match D::serialize_view_at(&self.shard.own_view, v) {
                Some(bytes) => (bytes, v),
                None => (D::serialize_view(&self.shard.own_view), D::WIRE_VERSION),
            },
        };
        let limit = self.config.max_snapshot_bytes.get();
        if payload.len() > limit {
            return Err(MutationError::TooLarge {
                bytes: payload.len(),
                limit,
            });
        }
        let whole = Frame {
            kind: FrameKind::Snapshot { ack },
            state: D::name().into(),
            source: self.local,
            generation,
            payload_version: version,
            payload,
        };
        let frames = match wire::encode(&whole, self.frame_limit) {
            Ok(bytes) => vec![bytes],
            Err(_) => self.chunk(whole, ack)?,
        };
        self.snapshot_cache = Some(SnapshotCache {
            generation,
            version,
            ack,
            frames: frames.clone(),
        });
        Ok(frames)
    }

    fn chunk(&self, whole: Frame, ack: bool) -> Result<Vec<Bytes>, MutationError> {
        let piece = self
            .frame_limit
            .saturating_sub(CHUNK_OVERHEAD + D::name().len())
            .max(1);
        let parts = wire::split_payload(&whole.payload, piece);
        let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        let total_bytes = whole.payload.len() as u64;
        let mut frames = Vec::with_capacity(parts.len());
        for (index, part) in parts.into_iter().enumerate() {
            let frame = Frame {
                kind: FrameKind::SnapshotChunk {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    count,
                    total_bytes,
                    ack,
                },
                payload: part.to_vec(),
                ..whole.clone_header()
            };
            let bytes =
                wire::encode(&frame, self.frame_limit).map_err(|_| MutationError::TooLarge {
                    bytes: whole.payload.len(),
                    limit: self.frame_limit,
                })?;
            frames.push(bytes);
        }
        Ok(frames)
    }
}

/// Which transmits carry what, for tests.
#[cfg(test)]
pub(super) fn kind_of(transmit: &Transmit) -> FrameKind {
    wire::decode(&transmit.frame, usize::MAX)
        .map(|f| f.kind)
        .unwrap_or(FrameKind::Goodbye)
}
