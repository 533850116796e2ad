//! An in-process transport between nodes of one test, with partitions.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::error::TransportError;
use crate::ids::NodeId;
use crate::node::Inbound;
use crate::transport::Transport;

#[derive(Default)]
struct Inner {
    nodes: HashMap<NodeId, Inbound>,
    cut: BTreeSet<(NodeId, NodeId)>,
    reconnects: Vec<NodeId>,
}

/// Connects the nodes of one test in memory: frames are delivered at once, in order, unless
/// the link is cut. Clones share the same network.
#[derive(Clone, Default)]
pub struct InMemoryNetwork {
    inner: Arc<Mutex<Inner>>,
    delivered: Arc<AtomicU64>,
}

impl InMemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// The transport of `node` on this network.
    pub fn transport(&self, node: NodeId) -> Arc<dyn Transport> {
        Arc::new(InMemoryTransport {
            network: self.clone(),
            local: node,
        })
    }

    /// Deliver frames for `node` to `inbound` from now on.
    pub fn attach(&self, node: NodeId, inbound: Inbound) {
        self.lock().nodes.insert(node, inbound);
    }

    /// Stop delivering to `node` (it crashed).
    pub fn detach(&self, node: NodeId) {
        self.lock().nodes.remove(&node);
    }

    /// Cut every link between a node of `side_a` and a node of `side_b`, both ways.
    pub fn partition(&self, side_a: &[NodeId], side_b: &[NodeId]) {
        let mut inner = self.lock();
        for a in side_a {
            for b in side_b {
                inner.cut.insert((*a, *b));
                inner.cut.insert((*b, *a));
            }
        }
    }

    /// Restore every link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// Frames delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Peers some transport was asked to redial, in order.
    pub fn reconnect_requests(&self) -> Vec<NodeId> {
        self.lock().reconnects.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding this lock; the maps stay consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for InMemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryNetwork")
            .field("delivered", &self.delivered())
            .finish()
    }
}

struct InMemoryTransport {
    network: InMemoryNetwork,
    local: NodeId,
}

impl Transport for InMemoryTransport {
    fn send(&self, to: NodeId, frame: Bytes) -> Result<(), TransportError> {
        let inbound = {
            let inner = self.network.lock();
            if inner.cut.contains(&(self.local, to)) {
                return Err(TransportError::NotConnected(to));
            }
            inner
                .nodes
                .get(&to)
                .cloned()
                .ok_or(TransportError::NotConnected(to))?
        };
        self.network.delivered.fetch_add(1, Ordering::Relaxed);
        inbound.deliver(self.local, frame);
        Ok(())
    }

    fn reconnect(&self, peer: NodeId) {
        self.network.lock().reconnects.push(peer);
    }
}
