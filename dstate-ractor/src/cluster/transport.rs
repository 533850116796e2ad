//! [`Transport`] over ractor_cluster: frames as casts to the peer's endpoint actor, with a
//! credit window per peer so no queue grows without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use dstate::{Incarnation, NodeId, Transport, TransportError};
use ractor::{ActorRef, MessagingErr};

use crate::cluster::membership::SessionId;
use crate::cluster::protocol::{EndpointMsg, LocalMsg, Token, WireMsg};
use crate::cluster::stats::Counters;

/// How long `Transport::flush` waits for peers to acknowledge what was sent.
const FLUSH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

/// The [`Transport`] of a [`RactorCluster`](crate::RactorCluster); hand it to the dstate
/// node builder.
///
/// * `send` never blocks: it casts the frame to the peer's endpoint actor (through
///   ractor_cluster's session for that peer) and returns.
/// * Outbound traffic per peer is bounded by a credit window (frames and bytes in flight,
///   see [`RactorClusterBuilder::outbound_window`](crate::RactorClusterBuilder::outbound_window)):
///   the receiver acknowledges what it took, and a full window returns
///   [`TransportError::Backpressure`] so the engine collapses that peer's changes into one
///   snapshot instead of queueing them.
/// * Frames to one peer arrive in order, once, while its session lives (TCP under
///   ractor_cluster); a dropped session loses what was in flight and the peer re-syncs when
///   it rejoins.
#[derive(Clone)]
pub struct RactorTransport {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    peers: RwLock<HashMap<NodeId, Arc<PeerLink>>>,
    window_frames: u64,
    window_bytes: u64,
    max_frame_bytes: usize,
    endpoint: OnceLock<ActorRef<EndpointMsg>>,
    pub(crate) counters: Counters,
    closed: AtomicBool,
}

/// A joined peer as the transport sees it.
pub(crate) struct PeerLink {
    pub(crate) incarnation: Incarnation,
    pub(crate) session: SessionId,
    pub(crate) remote: ActorRef<EndpointMsg>,
    /// The peer's token for this session: every message to it carries it.
    pub(crate) token: Token,
    sent_bytes: AtomicU64,
    sent_frames: AtomicU64,
    acked_bytes: AtomicU64,
    acked_frames: AtomicU64,
}

/// A connected peer, as [`RactorCluster::peers`](crate::RactorCluster::peers) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// Its dstate identity.
    pub node: NodeId,
    /// Its process lifetime, from its handshake.
    pub incarnation: Incarnation,
    /// Frames sent to it and not yet acknowledged.
    pub frames_in_flight: u64,
    /// Bytes sent to it and not yet acknowledged.
    pub bytes_in_flight: u64,
}

impl PeerLink {
    pub(crate) fn new(
        incarnation: Incarnation,
        session: SessionId,
        remote: ActorRef<EndpointMsg>,
        token: Token,
    ) -> Self {
        PeerLink {
            incarnation,
            session,
            remote,
            token,
            sent_bytes: AtomicU64::new(0),
            sent_frames: AtomicU64::new(0),
            acked_bytes: AtomicU64::new(0),
            acked_frames: AtomicU64::new(0),
        }
    }

    /// Cumulative acknowledgement from the peer.
    pub(crate) fn on_ack(&self, bytes: u64, frames: u64) {
        // Never credit more than was sent: a confused peer cannot open the window.
        let bytes = bytes.min(self.sent_bytes.load(Ordering::Acquire));
        let frames = frames.min(self.sent_frames.load(Ordering::Acquire));
        self.acked_bytes.fetch_max(bytes, Ordering::AcqRel);
        self.acked_frames.fetch_max(frames, Ordering::AcqRel);
    }

    fn in_flight(&self) -> (u64, u64) {
        let frames = self
            .sent_frames
            .load(Ordering::Acquire)
            .saturating_sub(self.acked_frames.load(Ordering::Acquire));
        let bytes = self
            .sent_bytes
            .load(Ordering::Acquire)
            .saturating_sub(self.acked_bytes.load(Ordering::Acquire));
        (frames, bytes)
    }

    /// Send a wire message to the peer; the message comes back if the session is gone.
    pub(crate) fn cast(&self, msg: WireMsg) -> Result<(), ()> {
        match self.remote.cast(EndpointMsg::Wire(msg)) {
            Ok(()) => Ok(()),
            Err(MessagingErr::SendErr(_) | MessagingErr::ChannelClosed) => Err(()),
            Err(MessagingErr::InvalidActorType) => Err(()),
        }
    }
}

impl Shared {
    pub(crate) fn new(window_frames: u64, window_bytes: u64, max_frame_bytes: usize) -> Self {
        Shared {
            peers: RwLock::new(HashMap::new()),
            window_frames,
            window_bytes,
            max_frame_bytes,
            endpoint: OnceLock::new(),
            counters: Counters::default(),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_endpoint(&self, endpoint: ActorRef<EndpointMsg>) {
        // Set once at start; a second call would be a bug and is ignored.
        let _ = self.endpoint.set(endpoint);
    }

    pub(crate) fn insert(&self, node: NodeId, link: Arc<PeerLink>) {
        write(&self.peers).insert(node, link);
    }

    /// Remove `node` if its link belongs to `session`.
    pub(crate) fn remove(&self, node: NodeId, session: SessionId) {
        let mut peers = write(&self.peers);
        if peers.get(&node).is_some_and(|l| l.session == session) {
            peers.remove(&node);
        }
    }

    pub(crate) fn link(&self, node: NodeId) -> Option<Arc<PeerLink>> {
        read(&self.peers).get(&node).cloned()
    }

    pub(crate) fn links(&self) -> Vec<(NodeId, Arc<PeerLink>)> {
        read(&self.peers)
            .iter()
            .map(|(n, l)| (*n, l.clone()))
            .collect()
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        write(&self.peers).clear();
    }

    fn send(&self, to: NodeId, frame: Bytes) -> Result<(), TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Closed);
        }
        let len = frame.len();
        if len > self.max_frame_bytes {
            return Err(TransportError::TooLarge {
                len,
                limit: self.max_frame_bytes,
            });
        }
        let Some(link) = self.link(to) else {
            Counters::bump(&self.counters.not_connected);
            return Err(TransportError::NotConnected(to));
        };
        let (frames, bytes) = link.in_flight();
        // An empty window always takes one frame, however large, so big frames still pass.
        if frames > 0 && (frames + 1 > self.window_frames || bytes + len as u64 > self.window_bytes)
        {
            Counters::bump(&self.counters.backpressure);
            return Err(TransportError::Backpressure(to));
        }
        link.sent_frames.fetch_add(1, Ordering::AcqRel);
        link.sent_bytes.fetch_add(len as u64, Ordering::AcqRel);
        let msg = WireMsg::Frame {
            token: link.token,
            payload: frame,
        };
        if link.cast(msg).is_err() {
            Counters::bump(&self.counters.not_connected);
            return Err(TransportError::NotConnected(to));
        }
        Counters::bump(&self.counters.frames_sent);
        Counters::add(&self.counters.bytes_sent, len as u64);
        Ok(())
    }
}

impl RactorTransport {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RactorTransport { shared }
    }

    /// Connected peers with their in-flight traffic, ordered by node id.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .shared
            .links()
            .into_iter()
            .map(|(node, link)| {
                let (frames_in_flight, bytes_in_flight) = link.in_flight();
                PeerInfo {
                    node,
                    incarnation: link.incarnation,
                    frames_in_flight,
                    bytes_in_flight,
                }
            })
            .collect();
        peers.sort_by_key(|p| p.node);
        peers
    }
}

impl std::fmt::Debug for RactorTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RactorTransport")
            .field("peers", &self.peers())
            .finish()
    }
}

impl Transport for RactorTransport {
    fn send(&self, to: NodeId, frame: Bytes) -> Result<(), TransportError> {
        self.shared.send(to, frame)
    }

    fn max_frame_bytes(&self) -> usize {
        self.shared.max_frame_bytes
    }

    fn flush(&self) -> dstate::BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(endpoint) = self.shared.endpoint.get() else {
                return;
            };
            let (reply, done) = tokio::sync::oneshot::channel();
            if endpoint
                .cast(EndpointMsg::Local(LocalMsg::Flush(reply)))
                .is_err()
            {
                return; // the cluster already stopped: nothing left to flush
            }
            // Bounded: a peer that never acknowledges must not hold up a shutdown.
            let acknowledged = tokio::time::timeout(FLUSH_DEADLINE, done).await;
            tracing::debug!(?acknowledged, "transport flushed");
        })
    }

    fn reconnect(&self, peer: NodeId) {
        if let Some(endpoint) = self.shared.endpoint.get() {
            if endpoint
                .cast(EndpointMsg::Local(LocalMsg::Reconnect(peer)))
                .is_err()
            {
                tracing::debug!(%peer, "reconnect after the cluster stopped");
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // The map stays consistent across a panic elsewhere: every update is one insert/remove.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
