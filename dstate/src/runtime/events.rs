//! Cluster membership events, as adapters report them.

use tokio::sync::broadcast;

use crate::ids::{Incarnation, NodeId};

/// Why a node left the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaveReason {
    /// It said goodbye: its views are removed at once.
    Graceful,
    /// Its connection dropped (crash, partition, hang): its views stay, marked down.
    Disconnected,
}

/// A change of cluster membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A node is connected and identified by the adapter's handshake.
    NodeJoined {
        /// Its dstate identity.
        node: NodeId,
        /// Its process lifetime; a new value means the node restarted.
        incarnation: Incarnation,
    },
    /// A node is gone.
    NodeLeft {
        /// Its dstate identity.
        node: NodeId,
        /// Graceful leave or lost connection.
        reason: LeaveReason,
    },
}

/// The sending side of membership events; adapters own one and emit what their
/// framework's cluster layer reports.
#[derive(Debug, Clone)]
pub struct ClusterEventBus {
    sender: broadcast::Sender<ClusterEvent>,
}

impl ClusterEventBus {
    /// A bus that buffers up to `capacity` events per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        ClusterEventBus { sender }
    }

    /// Publish an event to every subscriber.
    pub fn emit(&self, event: ClusterEvent) {
        tracing::debug!(?event, "cluster event");
        // No subscriber yet is fine: the host subscribes when a node starts.
        let _ = self.sender.send(event);
    }

    /// A new subscription that sees events emitted from now on.
    pub fn subscribe(&self) -> ClusterEvents {
        ClusterEvents {
            receiver: self.sender.subscribe(),
        }
    }
}

impl Default for ClusterEventBus {
    fn default() -> Self {
        ClusterEventBus::new(1024)
    }
}

/// A subscription to membership events.
#[derive(Debug)]
pub struct ClusterEvents {
    receiver: broadcast::Receiver<ClusterEvent>,
}

impl ClusterEvents {
    /// The next event; `None` once the bus is gone. Events missed by a lagging subscriber
    /// are skipped (the periodic heartbeat repairs membership).
    pub async fn recv(&mut self) -> Option<ClusterEvent> {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "cluster event subscriber lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<ClusterEvent> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    }
}
