//! Join, leave, crash, restart, liveness through the host.

use std::time::Duration;

use dstate::test_support::TestState;
use dstate::{NodeId, PeerStatus, StateConfig};

use crate::cluster::{eventually, joined, Cluster};

#[tokio::test]
async fn graceful_leave_removes_the_views_at_once() {
    let cluster = Cluster::new(3);
    let mut handles = Vec::new();
    for n in &cluster.nodes {
        handles.push(
            n.node
                .register::<TestState>(StateConfig::default())
                .await
                .unwrap(),
        );
    }
    for h in &handles {
        eventually("full view map", || async { h.read(|v| v.len()) == 3 }).await;
    }
    cluster.nodes[2].node.shutdown().await;
    for h in &handles[..2] {
        eventually("node 3 removed", || async {
            h.read(|v| v.get(NodeId(3)).is_none())
        })
        .await;
    }
}

#[tokio::test]
async fn a_crashed_peer_is_kept_marked_down_then_evicted() {
    let mut cluster = Cluster::new(2);
    let config = || StateConfig::default().with_down_retention(Duration::from_secs(30));
    let a = cluster.simple(0, config()).await;
    let b = cluster.simple(1, config()).await;
    b.mutate(|s| s.value = 9).await.unwrap();
    eventually("a holds b's 9", || async {
        a.read(|v| v.view(NodeId(2)).map(|v| v.value)) == Some(9)
    })
    .await;
    let _gone = cluster.crash(NodeId(2));
    eventually("b marked down", || async {
        a.read(|v| {
            v.get(NodeId(2))
                .is_some_and(|v| matches!(v.status, PeerStatus::Down { .. }))
        })
    })
    .await;
    // Still served, with its value, and reported stale by a bounded query.
    let result = a
        .query(Duration::from_secs(60), |v| {
            v.view(NodeId(2)).map(|v| v.value)
        })
        .await
        .unwrap();
    assert_eq!(result.value, Some(9));
    assert_eq!(result.stale, vec![NodeId(2)]);
    cluster.clock.advance(Duration::from_secs(31));
    eventually("b evicted after retention", || async {
        a.read(|v| v.get(NodeId(2)).is_none())
    })
    .await;
}

#[tokio::test]
async fn a_silent_peer_is_marked_down_and_redialled_then_recovers() {
    let cluster = Cluster::new(2);
    let a = cluster.simple(0, StateConfig::default()).await;
    let b = cluster.simple(1, StateConfig::default()).await;
    eventually("synced", || async {
        a.read(|v| v.len()) == 2 && b.read(|v| v.len()) == 2
    })
    .await;
    // b hangs: nothing it sends arrives any more.
    cluster.network.partition(&[NodeId(2)], &[NodeId(1)]);
    for _ in 0..4 {
        cluster.clock.advance(Duration::from_secs(1));
        tokio::task::yield_now().await;
    }
    eventually("b marked down on a", || async {
        a.read(|v| {
            v.get(NodeId(2))
                .is_some_and(|v| matches!(v.status, PeerStatus::Down { .. }))
        })
    })
    .await;
    assert!(cluster.network.reconnect_requests().contains(&NodeId(2)));
    let diagnostics = a.diagnostics().await.unwrap();
    assert!(matches!(
        diagnostics.peers[&NodeId(2)].status,
        PeerStatus::Down { .. }
    ));
    cluster.network.heal();
    b.mutate(|s| s.value = 4).await.unwrap();
    cluster.clock.advance(Duration::from_secs(1));
    eventually("b back up with its new value", || async {
        a.read(|v| {
            v.get(NodeId(2))
                .is_some_and(|v| v.status == PeerStatus::Up && v.view.value == 4)
        })
    })
    .await;
}

#[tokio::test]
async fn a_restarted_peer_replaces_its_old_incarnation_everywhere() {
    let mut cluster = Cluster::new(2);
    let a = cluster.simple(0, StateConfig::default()).await;
    let b = cluster.simple(1, StateConfig::default()).await;
    b.mutate(|s| s.value = 100).await.unwrap();
    eventually("a holds 100", || async {
        a.read(|v| v.view(NodeId(2)).map(|v| v.value)) == Some(100)
    })
    .await;
    let old_generation = a.read(|v| v.get(NodeId(2)).map(|v| v.generation)).unwrap();
    cluster.crash(NodeId(2));
    cluster.clock.advance(Duration::from_millis(5));
    let index = cluster.add(NodeId(2), None);
    let b2 = cluster.nodes[index]
        .node
        .register::<TestState>(StateConfig::default())
        .await
        .unwrap();
    cluster.nodes[0].runtime.emit(joined(&cluster.nodes[index]));
    cluster.nodes[index].runtime.emit(joined(&cluster.nodes[0]));
    eventually("new incarnation replaces the old view", || async {
        a.read(|v| {
            v.get(NodeId(2))
                .is_some_and(|v| v.generation.incarnation > old_generation.incarnation)
        })
    })
    .await;
    assert_eq!(
        a.read(|v| v.view(NodeId(2)).map(|v| v.value)),
        Some(0),
        "no ghost of the old value"
    );
    eventually("restarted node re-synced", || async {
        b2.read(|v| v.view(NodeId(1)).is_some())
    })
    .await;
}

#[tokio::test]
async fn health_degrades_when_a_peer_goes_down_and_ready_waits_for_every_live_peer() {
    let mut cluster = Cluster::new(2);
    let a = cluster.simple(0, StateConfig::default()).await;
    let b = cluster.simple(1, StateConfig::default()).await;
    tokio::time::timeout(Duration::from_secs(10), a.ready())
        .await
        .expect("ready in time")
        .unwrap();
    assert_eq!(a.read(|v| v.len()), 2, "ready means b's view is held");
    assert_eq!(a.health().await.unwrap(), dstate::Health::Healthy);
    b.mutate(|s| s.value = 1).await.unwrap();
    cluster.crash(NodeId(2));
    eventually("health degraded", || async {
        a.health().await.unwrap() == dstate::Health::Degraded
    })
    .await;
    let diagnostics = a.diagnostics().await.unwrap();
    assert!(matches!(
        diagnostics.peers[&NodeId(2)].status,
        PeerStatus::Down { .. }
    ));
    assert!(diagnostics.peers[&NodeId(2)].counters.frames_in > 0);
}

#[tokio::test]
async fn late_node_frames_of_a_previous_process_are_ignored() {
    use dstate::wire::{self, Frame, FrameKind};
    use dstate::{Age, Generation, Incarnation};
    let cluster = Cluster::new(2);
    let a = cluster.simple(0, StateConfig::default()).await;
    let b = cluster.simple(1, StateConfig::default()).await;
    let node_a = cluster.nodes[0].node.clone();
    eventually("a holds b", || async { a.read(|v| v.len()) == 2 }).await;
    let old = Incarnation(cluster.nodes[1].node.incarnation().0 - 1000);
    let late = |kind| Frame {
        kind,
        state: "".into(),
        source: NodeId(2),
        generation: Generation::new(old, Age(0)),
        payload_version: 1,
        payload: vec![0],
    };
    for kind in [FrameKind::Heartbeat, FrameKind::Goodbye] {
        node_a
            .inbound()
            .deliver(NodeId(2), wire::encode(&late(kind), usize::MAX).unwrap());
    }
    // A frame of the current process behind them proves they were processed.
    let mut b_changes = a.subscribe();
    b.mutate(|s| s.value = 3).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = b_changes.recv().await {
            if event.view.is_some_and(|v| v.value == 3) {
                return;
            }
        }
    });
    seen.await.expect("b's change reached a");
    assert_eq!(
        node_a.members(),
        vec![NodeId(2)],
        "the old goodbye did not remove b"
    );
    let view = a.read(|v| v.get(NodeId(2)).map(|v| (v.status, v.pending)));
    assert_eq!(
        view,
        Some((PeerStatus::Up, None)),
        "b's view neither removed nor unconfirmed"
    );
}
