//! Inbound frames: the receive table of DESIGN §2.

use std::time::Instant;

use super::{Engine, EngineEvent};
use crate::config::{PushMode, VersionMismatchPolicy};
use crate::error::RejectReason;
use crate::ids::{Generation, NodeId};
use crate::object::{PeerStatus, StateViewObject};
use crate::state::{DeltaDistributedState, DeserializeError};
use crate::wire::{Frame, FrameKind};

impl<D: DeltaDistributedState, T> Engine<D, T> {
    /// A frame for this state type that arrived from the authenticated peer `from`.
    pub fn handle_frame(&mut self, now: Instant, from: NodeId, frame: Frame) {
        if frame.source != from {
            let reason = RejectReason::SpoofedSource {
                claimed: frame.source,
                sender: from,
            };
            return self.reject(from, reason);
        }
        if from == self.local {
            return self.reject(from, RejectReason::OwnShard { sender: from });
        }
        let size = frame.payload.len() as u64;
        let peer = self.peer_mut(from);
        peer.counters.frames_in += 1;
        peer.counters.bytes_in += size;
        let generation = frame.generation;
        let carries_own_generation = matches!(
            frame.kind,
            FrameKind::Snapshot { .. }
                | FrameKind::SnapshotChunk { .. }
                | FrameKind::Delta
                | FrameKind::Current
        );
        if carries_own_generation && self.discard_previous_lifetime(from, generation) {
            return;
        }
        match frame.kind {
            FrameKind::Snapshot { ack } => self.on_snapshot(
                now,
                from,
                generation,
                frame.payload_version,
                frame.payload,
                ack,
            ),
            FrameKind::SnapshotChunk {
                index,
                count,
                total_bytes,
                ack,
            } => {
                let assembled = self.reassembler.handle_chunk(
                    from,
                    generation,
                    index,
                    count,
                    total_bytes,
                    frame.payload,
                );
                match assembled {
                    Ok(Some(payload)) => {
                        self.on_snapshot(now, from, generation, frame.payload_version, payload, ack)
                    }
                    Ok(None) => {}
                    Err(error) => {
                        let reason = RejectReason::Payload {
                            generation,
                            error: DeserializeError::malformed(error),
                        };
                        self.reject(from, reason);
                    }
                }
            }
            FrameKind::Delta => {
                self.on_delta(now, from, generation, frame.payload_version, frame.payload)
            }
            FrameKind::SnapshotRequest => self.on_request(from, generation, frame.payload_version),
            FrameKind::Current => self.on_current(now, from, generation),
            FrameKind::Ack => {
                let peer = self.peer_mut(from);
                peer.acked = peer.acked.max(Some(generation));
            }
            // Node-level kinds are handled by the host, never routed here.
            _ => {}
        }
    }

    /// A change-feed notice or heartbeat entry: `from`'s shard is at `generation`.
    pub fn handle_notice(&mut self, now: Instant, from: NodeId, generation: Generation) {
        if from == self.local || self.discard_previous_lifetime(from, generation) {
            return;
        }
        if self.retire_if_older(from, generation) {
            self.request_snapshot(now, from, true);
            return;
        }
        let Some(held) = self.held(from).map(|v| v.generation) else {
            self.request_snapshot(now, from, true);
            return;
        };
        if generation.incarnation < held.incarnation {
            return; // a previous lifetime
        }
        if generation == held {
            self.touch_view(from, |v| {
                v.synced_at = now;
                v.pending = None;
            });
            self.answered(from);
        } else if generation > held {
            self.touch_view(from, |v| {
                v.pending = Some(v.pending.map_or(generation, |p| p.max(generation)))
            });
            // Under active push a newer generation means a frame was lost: repair now.
            // Under the change feed, queries pull when they need it.
            if self.config.strategy.push_mode == PushMode::ActivePush {
                self.request_snapshot(now, from, false);
            }
        }
    }

    fn on_snapshot(
        &mut self,
        now: Instant,
        from: NodeId,
        generation: Generation,
        version: u32,
        payload: Vec<u8>,
        ack: bool,
    ) {
        if ack {
            self.send_control(from, FrameKind::Ack, generation);
        }
        self.retire_if_older(from, generation);
        if let Some(held) = self.held(from).map(|v| v.generation) {
            if generation == held {
                self.touch_view(from, |v| {
                    v.synced_at = now;
                    v.pending = v.pending.filter(|p| *p > generation);
                });
                self.peer_mut(from).counters.stale_discarded += 1;
                self.answered(from);
                return;
            }
            if generation < held {
                self.peer_mut(from).counters.stale_discarded += 1;
                return;
            }
        }
        match D::deserialize_view(&payload, version) {
            Ok(view) => {
                self.install(now, from, generation, view);
                self.peer_mut(from).counters.snapshots_applied += 1;
                self.answered(from);
            }
            Err(error) => self.undecodable(now, from, generation, version, error),
        }
    }

    fn on_delta(
        &mut self,
        now: Instant,
        from: NodeId,
        generation: Generation,
        version: u32,
        payload: Vec<u8>,
    ) {
        if self.retire_if_older(from, generation) {
            return self.request_snapshot(now, from, true);
        }
        let Some(held) = self.held(from) else {
            return self.request_snapshot(now, from, true);
        };
        if generation.incarnation < held.generation.incarnation || generation <= held.generation {
            self.peer_mut(from).counters.stale_discarded += 1;
            return;
        }
        if !held.generation.is_followed_by(generation) {
            self.peer_mut(from).counters.gaps += 1;
            self.touch_view(from, |v| {
                v.pending = Some(v.pending.map_or(generation, |p| p.max(generation)))
            });
            return self.request_snapshot(now, from, false);
        }
        let base = held.view.clone();
        let pending = held.pending.filter(|p| *p > generation);
        match D::deserialize_delta(&payload, version) {
            Ok(delta) => {
                let view = D::apply_delta(&base, &delta);
                self.install(now, from, generation, view);
                if pending.is_some() {
                    self.touch_view(from, |v| v.pending = pending);
                }
                self.peer_mut(from).counters.deltas_applied += 1;
                self.answered(from);
            }
            Err(error) => self.undecodable(now, from, generation, version, error),
        }
    }

    fn on_request(&mut self, from: NodeId, held: Generation, version: u32) {
        if held == self.shard.generation && version == D::WIRE_VERSION {
            self.send_control(from, FrameKind::Current, held);
        } else {
            self.send_snapshot_at(from, false, version);
        }
    }

    fn on_current(&mut self, now: Instant, from: NodeId, generation: Generation) {
        match self.held(from).map(|v| v.generation) {
            Some(held) if held == generation => {
                self.touch_view(from, |v| {
                    v.synced_at = now;
                    v.pending = v.pending.filter(|p| *p > generation);
                });
                self.peer_mut(from).pull_until = None;
                self.answered(from);
            }
            _ => {
                self.peer_mut(from).pull_until = None;
                self.request_snapshot(now, from, true);
            }
        }
    }

    /// Install a decoded view received from `from`.
    fn install(&mut self, now: Instant, from: NodeId, generation: Generation, view: D::View) {
        let status = self.peers.get(&from).map_or(PeerStatus::Up, |p| p.status);
        let pending = self
            .held(from)
            .and_then(|v| v.pending)
            .filter(|p| *p > generation);
        self.peer_mut(from).pull_until = None;
        self.removed.remove(&from);
        self.set_view(StateViewObject {
            source: from,
            generation,
            view: std::sync::Arc::new(view),
            synced_at: now,
            pending,
            status,
        });
    }

    /// A payload that did not decode: a version mismatch follows the configured policy,
    /// anything else is rejected and counted.
    fn undecodable(
        &mut self,
        now: Instant,
        from: NodeId,
        generation: Generation,
        version: u32,
        error: DeserializeError,
    ) {
        let mismatch = version != D::WIRE_VERSION
            || matches!(error, DeserializeError::UnsupportedVersion { .. });
        if !mismatch {
            return self.reject(from, RejectReason::Payload { generation, error });
        }
        self.peer_mut(from).counters.version_mismatches += 1;
        tracing::info!(state = D::name(), %from, version, "payload version not readable");
        match self.config.mismatch {
            VersionMismatchPolicy::KeepStale => {
                self.touch_view(from, |v| {
                    v.pending = Some(v.pending.map_or(generation, |p| p.max(generation)))
                });
            }
            VersionMismatchPolicy::DropAndWait => {}
            _ => self.request_snapshot(now, from, true),
        }
    }

    /// True (and counted as stale) when `generation` belongs to a lifetime of `from` older
    /// than the newest one heard, even if that older view was already retired, or is older
    /// than the view removed last while none is held: a late frame of a previous process must
    /// not bring its ghost back nor take a view back in time. Otherwise remembers the newest
    /// incarnation heard.
    fn discard_previous_lifetime(&mut self, from: NodeId, generation: Generation) -> bool {
        let older_than_removed = self.held(from).is_none()
            && self
                .removed
                .get(&from)
                .is_some_and(|removed| generation < *removed);
        let peer = self.peer_mut(from);
        if older_than_removed
            || peer
                .newest_incarnation
                .is_some_and(|newest| generation.incarnation < newest)
        {
            peer.counters.stale_discarded += 1;
            return true;
        }
        peer.newest_incarnation = Some(generation.incarnation);
        false
    }

    /// A message of a newer incarnation retires the held view at once (no ghost).
    /// Returns true when a view was retired.
    fn retire_if_older(&mut self, from: NodeId, generation: Generation) -> bool {
        let older = self
            .held(from)
            .is_some_and(|v| v.generation.incarnation < generation.incarnation);
        if older {
            tracing::debug!(state = D::name(), %from, %generation, "retiring previous incarnation");
            self.remove_view(from);
        }
        older
    }

    fn reject(&mut self, from: NodeId, reason: RejectReason) {
        tracing::warn!(state = D::name(), %from, %reason, "frame rejected");
        self.stats.rejected_frames += 1;
        let peer = self.peer_mut(from);
        peer.counters.rejected += 1;
        peer.last_error = Some(reason.to_string());
        self.events
            .push_back(EngineEvent::Rejected { from, reason });
    }
}
