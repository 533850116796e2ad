//! State shared by the swarm driver, the endpoint actor and the transport handle.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use dstate::NodeId;
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::control::SessionToken;
use super::link::LinkHandle;
use super::stats::Counters;

/// Receives the frames peers send to this node: the node's inbound side.
///
/// `from` is the sender as authenticated by the connection the frame arrived on, never a
/// field inside the frame. Implemented for closures `Fn(NodeId, Bytes)`.
pub trait FrameSink: Send + Sync + 'static {
    /// Hands one frame to the node. Must not block.
    fn deliver(&self, from: NodeId, frame: Bytes);
}

impl<F> FrameSink for F
where
    F: Fn(NodeId, Bytes) + Send + Sync + 'static,
{
    fn deliver(&self, from: NodeId, frame: Bytes) {
        self(from, frame)
    }
}

impl FrameSink for dstate::Inbound {
    fn deliver(&self, from: NodeId, frame: Bytes) {
        dstate::Inbound::deliver(self, from, frame)
    }
}

/// Size limits of the transport, derived once from the builder's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest frame taken by `send`.
    pub(crate) max_frame_bytes: usize,
    /// Largest sum of frame bytes in one batch (at least one maximal frame).
    pub(crate) max_batch_bytes: usize,
    /// Most frames in one batch.
    pub(crate) max_batch_frames: usize,
    /// Queued frame bytes per peer before `send` reports backpressure.
    pub(crate) queue_bytes: usize,
    /// Queued frames per peer before `send` reports backpressure.
    pub(crate) queue_frames: usize,
    /// Batches awaiting acknowledgement per peer.
    pub(crate) max_in_flight: usize,
    /// Frame bytes awaiting acknowledgement per peer (one batch may always go).
    pub(crate) max_in_flight_bytes: usize,
    /// Attempts per batch before the link is reset.
    pub(crate) max_send_attempts: u32,
}

impl Limits {
    /// The kameo request size every node must accept: CBOR writes each payload byte as an
    /// integer (up to two bytes), plus envelope overhead.
    pub(crate) fn request_size_maximum(&self) -> u64 {
        (2 * self.max_batch_bytes + 64 * 1024) as u64
    }
}

/// Who sent a batch, as bound to its session token by the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionPeer {
    pub(crate) node: NodeId,
    pub(crate) peer: PeerId,
}

/// Requests to the swarm driver from other tasks.
#[derive(Debug)]
pub(crate) enum Command {
    /// The node started with this incarnation: begin dialing and handshaking.
    Join(dstate::Incarnation),
    /// The core's liveness check found the node silent: drop and redial.
    Reconnect(NodeId),
    /// A link gave up on a batch or lost its session: reset the connection.
    LinkFailed { peer: PeerId, reason: String },
    /// Leave gracefully and stop.
    Shutdown(tokio::sync::oneshot::Sender<()>),
    /// Report connected nodes.
    Members(tokio::sync::oneshot::Sender<Vec<NodeId>>),
}

/// The shared part of one cluster node.
pub(crate) struct Shared {
    pub(crate) local: NodeId,
    pub(crate) limits: Limits,
    pub(crate) counters: Counters,
    pub(crate) commands: mpsc::Sender<Command>,
    /// Token a peer presents -> that peer. Written by the driver before the token is
    /// handed out, read by the endpoint for every batch.
    sessions: RwLock<HashMap<SessionToken, SessionPeer>>,
    /// Outbound link per joined node.
    links: RwLock<HashMap<NodeId, Arc<LinkHandle>>>,
    /// Woken whenever a link has delivered everything it took.
    pub(crate) drained: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn new(local: NodeId, limits: Limits, commands: mpsc::Sender<Command>) -> Arc<Self> {
        Arc::new(Shared {
            local,
            limits,
            counters: Counters::default(),
            commands,
            sessions: RwLock::new(HashMap::new()),
            links: RwLock::new(HashMap::new()),
            drained: tokio::sync::Notify::new(),
        })
    }

    pub(crate) fn session(&self, token: &SessionToken) -> Option<SessionPeer> {
        read(&self.sessions).get(token).copied()
    }

    pub(crate) fn session_count(&self) -> usize {
        read(&self.sessions).len()
    }

    pub(crate) fn open_session(&self, token: SessionToken, peer: SessionPeer) {
        write(&self.sessions).insert(token, peer);
    }

    pub(crate) fn close_session(&self, token: &SessionToken) {
        write(&self.sessions).remove(token);
    }

    pub(crate) fn link(&self, node: NodeId) -> Option<Arc<LinkHandle>> {
        read(&self.links).get(&node).cloned()
    }

    pub(crate) fn set_link(&self, node: NodeId, link: LinkHandle) {
        write(&self.links).insert(node, Arc::new(link));
    }

    /// Removes the link of `node` if it runs to `peer`.
    pub(crate) fn remove_link(&self, node: NodeId, peer: PeerId) {
        let mut links = write(&self.links);
        if links.get(&node).is_some_and(|link| link.peer() == peer) {
            links.remove(&node);
        }
    }

    /// Every link delivered everything it took.
    pub(crate) fn links_idle(&self) -> bool {
        read(&self.links).values().all(|link| link.is_idle())
    }

    /// Waits until every link delivered everything it took, or `within` passed.
    pub(crate) async fn wait_idle(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a link draining in between still wakes us.
            drained.as_mut().enable();
            if self.links_idle() {
                return;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                tracing::debug!("links did not drain before the deadline");
                return;
            }
        }
    }

    pub(crate) fn clear_links(&self) {
        write(&self.links).clear();
    }

    pub(crate) fn linked_nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = read(&self.links).keys().copied().collect();
        nodes.sort();
        nodes
    }
}

// Every critical section on these maps is a single insert/remove/lookup, so a panic cannot
// leave them half-updated: a poisoned lock is still consistent.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
