//! A small harness: N nodes on `TestRuntime`s sharing one `TestClock` and one
//! `InMemoryNetwork`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dstate::test_support::{InMemoryNetwork, TestClock, TestRuntime, TestState};
use dstate::{
    ClusterEvent, LeaveReason, Node, NodeConfig, NodeId, SimpleHandle, StateConfig,
    StatePersistence,
};

pub(crate) struct TestNode {
    pub(crate) id: NodeId,
    pub(crate) runtime: TestRuntime,
    pub(crate) node: Node<TestRuntime>,
}

pub(crate) struct Cluster {
    pub(crate) clock: TestClock,
    pub(crate) network: InMemoryNetwork,
    pub(crate) nodes: Vec<TestNode>,
}

impl Cluster {
    pub(crate) fn new(size: u64) -> Self {
        let mut cluster = Cluster {
            clock: TestClock::new(),
            network: InMemoryNetwork::new(),
            nodes: Vec::new(),
        };
        for i in 1..=size {
            cluster.add(NodeId(i), None);
        }
        cluster.connect_all();
        cluster
    }

    /// Start node `id` (optionally with persistence); it is not connected yet.
    pub(crate) fn add(
        &mut self,
        id: NodeId,
        persistence: Option<Arc<dyn StatePersistence>>,
    ) -> usize {
        let runtime = TestRuntime::with_clock(self.clock.clone());
        let mut builder = Node::builder(id, runtime.clone())
            .transport(self.network.transport(id))
            .clock(Arc::new(self.clock.clone()))
            .config(NodeConfig::new().with_heartbeat(Duration::from_secs(1), 3));
        if let Some(persistence) = persistence {
            builder = builder.persistence(persistence);
        }
        let node = builder.start();
        self.network.attach(id, node.inbound());
        self.nodes.push(TestNode { id, runtime, node });
        self.nodes.len() - 1
    }

    /// Tell every node that every other node joined.
    pub(crate) fn connect_all(&self) {
        for a in &self.nodes {
            for b in &self.nodes {
                if a.id != b.id {
                    a.runtime.emit(joined(b));
                }
            }
        }
    }

    /// Register `TestState` with `config` on the node at `index`.
    pub(crate) async fn simple(
        &self,
        index: usize,
        config: StateConfig,
    ) -> SimpleHandle<TestState> {
        self.nodes[index]
            .node
            .register::<TestState>(config)
            .await
            .expect("registers")
    }

    pub(crate) fn index(&self, id: NodeId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .expect("node exists")
    }

    /// Node `id` crashed: its transport is detached and every other node sees it disconnect.
    pub(crate) fn crash(&mut self, id: NodeId) -> TestNode {
        let index = self.index(id);
        let gone = self.nodes.remove(index);
        self.network.detach(id);
        for other in &self.nodes {
            other.runtime.emit(ClusterEvent::NodeLeft {
                node: id,
                reason: LeaveReason::Disconnected,
            });
        }
        gone
    }
}

pub(crate) fn joined(node: &TestNode) -> ClusterEvent {
    ClusterEvent::NodeJoined {
        node: node.id,
        incarnation: node.node.incarnation(),
    }
}

/// Wait (in real time, bounded) until `condition` holds; actors run meanwhile.
pub(crate) async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
