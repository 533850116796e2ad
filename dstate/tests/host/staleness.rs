//! Staleness bounds on the system clock, where bounds of 100 ms or more are checked against
//! the coarse clock: a view confirmed just now passes, the same view fails once real time
//! has moved past the bound, and a short bound is checked precisely.

use std::time::{Duration, Instant};

use dstate::test_support::{InMemoryNetwork, TestRuntime, TestState};
use dstate::{ClusterEvent, Node, NodeId, QueryError, StateConfig, SyncStrategy};

use crate::cluster::eventually;

#[tokio::test]
async fn a_view_passes_a_bound_while_young_and_fails_it_once_real_time_moved_past() {
    // Timers run on the runtimes' virtual clocks, which never advance here: no heartbeat or
    // periodic round refreshes the view, so its age is real time since it arrived.
    let network = InMemoryNetwork::new();
    let mut handles = Vec::new();
    let mut nodes = Vec::new();
    let mut runtimes = Vec::new();
    for id in [1, 2] {
        let runtime = TestRuntime::new();
        let node = Node::builder(NodeId(id), runtime.clone())
            .transport(network.transport(NodeId(id)))
            .start();
        network.attach(NodeId(id), node.inbound());
        let config = StateConfig::new(SyncStrategy::periodic_only(Duration::from_secs(3600)));
        handles.push(node.register::<TestState>(config).await.expect("registers"));
        nodes.push(node);
        runtimes.push(runtime);
    }
    for (runtime, peer) in runtimes.iter().zip([2, 1]) {
        let peer = &nodes[peer as usize - 1];
        runtime.emit(ClusterEvent::NodeJoined {
            node: peer.id(),
            incarnation: peer.incarnation(),
        });
    }
    let (a, b) = (&handles[0], &handles[1]);
    b.mutate(|s| s.value = 5).await.expect("commits");
    eventually("a holds b's view", || async {
        a.read(|v| v.view(NodeId(2)).map(|s| s.value)) == Some(5)
    })
    .await;
    let arrived = Instant::now();

    let bound = Duration::from_millis(150);
    let young = a.try_query(bound, |v| v.len());
    // On a machine slow enough to take the whole bound to get here the view is already old.
    if arrived.elapsed() < bound - Duration::from_millis(20) {
        assert_eq!(young, Ok(2), "a view a few ms old meets a 150 ms bound");
    }

    // Wait until real time is well past the bound (a condition on time itself).
    eventually("the bound passed", || async {
        arrived.elapsed() > bound + Duration::from_millis(20)
    })
    .await;
    assert_eq!(
        a.try_query(bound, |v| v.len()),
        Err(QueryError::Stale {
            nodes: vec![NodeId(2)]
        }),
        "the coarse clock must not hide an old view"
    );
    assert_eq!(a.try_query(Duration::from_secs(3600), |v| v.len()), Ok(2));
    // Short bounds read the precise clock.
    assert!(matches!(
        a.try_query(Duration::from_millis(5), |v| v.len()),
        Err(QueryError::Stale { .. })
    ));
}
