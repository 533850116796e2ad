//! Node-wide shared state: the registered engines, the live members, counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::ids::{Generation, Incarnation, NodeId};
use crate::wire::Frame;

/// A membership change as one engine sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Membership {
    Up(NodeId, Incarnation),
    Down(NodeId),
    Left(NodeId),
}

/// One registered state type, as the node-level code reaches it (type-erased).
pub(crate) trait Slot: Send + Sync + 'static {
    fn frame(&self, from: NodeId, frame: Frame);
    fn notice(&self, from: NodeId, generation: Generation);
    fn membership(&self, change: Membership);
    fn generation(&self) -> Generation;
    fn stop(&self);
}

pub(crate) type Registry = HashMap<&'static str, Arc<dyn Slot>>;

/// What the node's parts share.
pub(crate) struct NodeShared {
    pub(crate) id: NodeId,
    pub(crate) incarnation: Incarnation,
    pub(crate) max_inbound_frame: usize,
    registry: ArcSwap<Registry>,
    members: Mutex<BTreeMap<NodeId, Incarnation>>,
    pub(crate) rejected_frames: AtomicU64,
    pub(crate) unknown_state_frames: AtomicU64,
}

impl NodeShared {
    pub(crate) fn new(id: NodeId, incarnation: Incarnation, max_inbound_frame: usize) -> Self {
        NodeShared {
            id,
            incarnation,
            max_inbound_frame,
            registry: ArcSwap::from_pointee(HashMap::new()),
            members: Mutex::new(BTreeMap::new()),
            rejected_frames: AtomicU64::new(0),
            unknown_state_frames: AtomicU64::new(0),
        }
    }

    pub(crate) fn slot(&self, state: &str) -> Option<Arc<dyn Slot>> {
        self.registry.load().get(state).cloned()
    }

    pub(crate) fn slots(&self) -> Vec<Arc<dyn Slot>> {
        self.registry.load().values().cloned().collect()
    }

    /// Add a slot; false when the name is taken.
    pub(crate) fn insert_slot(&self, name: &'static str, slot: Arc<dyn Slot>) -> bool {
        let mut inserted = false;
        self.registry.rcu(|current| {
            let mut next = Registry::clone(current);
            inserted = !next.contains_key(name);
            if inserted {
                next.insert(name, slot.clone());
            }
            next
        });
        inserted
    }

    pub(crate) fn generations(&self) -> Vec<(&'static str, Generation)> {
        self.registry
            .load()
            .iter()
            .map(|(name, slot)| (*name, slot.generation()))
            .collect()
    }

    pub(crate) fn members(&self) -> MutexGuard<'_, BTreeMap<NodeId, Incarnation>> {
        // No code panics while holding this lock; a poisoned map is still consistent.
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn count_rejected(&self) {
        self.rejected_frames.fetch_add(1, Ordering::Relaxed);
    }
}
