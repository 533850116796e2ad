//! Strategies end to end through the host.

use std::time::Duration;

use dstate::test_support::{TestDeltaChange, TestDeltaInner, TestDeltaState, TestState};
use dstate::{NodeId, StateConfig, SyncStrategy};

use crate::cluster::{eventually, Cluster};

#[tokio::test]
async fn active_push_converges_three_nodes() {
    let cluster = Cluster::new(3);
    let mut handles = Vec::new();
    for n in &cluster.nodes {
        handles.push(
            n.node
                .register::<TestState>(StateConfig::new(SyncStrategy::active_push()))
                .await
                .unwrap(),
        );
    }
    for (i, handle) in handles.iter().enumerate() {
        let value = handle
            .mutate(move |s| {
                s.value = 10 * (i as u64 + 1);
                s.value
            })
            .await
            .unwrap();
        assert_eq!(value, 10 * (i as u64 + 1));
    }
    for handle in &handles {
        eventually("every node sees every value", || async {
            handle.read(|views| views.values().map(|v| v.value).sum::<u64>()) == 60
        })
        .await;
    }
    let result = handles[0]
        .query(Duration::from_secs(5), |views| views.len())
        .await
        .unwrap();
    assert_eq!(result.value, 3);
    assert!(result.is_fresh(), "stale: {:?}", result.stale);
}

#[tokio::test]
async fn feed_lazy_pull_query_pulls_pending_views() {
    let cluster = Cluster::new(2);
    let config = || StateConfig::new(SyncStrategy::feed_lazy_pull());
    let a = cluster.nodes[0]
        .node
        .register_delta::<TestDeltaState>(TestDeltaInner::default(), config())
        .await
        .unwrap();
    let b = cluster.nodes[1]
        .node
        .register_delta::<TestDeltaState>(TestDeltaInner::default(), config())
        .await
        .unwrap();
    eventually("b holds a's initial view", || async {
        b.read(|v| v.len()) == 2
    })
    .await;
    a.mutate_with_delta(|s| {
        s.total += 5;
        TestDeltaChange::Add(5)
    })
    .await
    .unwrap();
    // Nothing is pushed: b still sees 0 until the feed batch is flushed and a query pulls.
    assert_eq!(b.read(|v| v.view(NodeId(1)).map(|v| v.total)), Some(0));
    cluster.clock.advance(Duration::from_millis(150));
    eventually("b marks a's view pending", || async {
        b.read(|v| v.get(NodeId(1)).is_some_and(|v| v.pending.is_some()))
    })
    .await;
    let result = b
        .query(Duration::from_secs(60), |v| {
            v.view(NodeId(1)).map(|v| v.total)
        })
        .await
        .unwrap();
    assert_eq!(result.value, Some(5));
    assert!(result.is_fresh());
}

#[tokio::test]
async fn periodic_only_repairs_on_its_timer() {
    let cluster = Cluster::new(2);
    let config = || StateConfig::new(SyncStrategy::periodic_only(Duration::from_secs(2)));
    let a = cluster.simple(0, config()).await;
    let b = cluster.simple(1, config()).await;
    eventually("b holds a's view", || async { b.read(|v| v.len()) == 2 }).await;
    a.mutate(|s| s.value = 7).await.unwrap();
    assert_eq!(b.read(|v| v.view(NodeId(1)).map(|v| v.value)), Some(0));
    cluster.clock.advance(Duration::from_secs(2));
    eventually("periodic sync delivers 7", || async {
        b.read(|v| v.view(NodeId(1)).map(|v| v.value)) == Some(7)
    })
    .await;
}

#[tokio::test]
async fn a_query_polled_again_after_it_completed_reports_stopped() {
    use dstate::QueryError;
    use futures::FutureExt;

    let cluster = Cluster::new(2);
    let config = || StateConfig::new(SyncStrategy::feed_lazy_pull());
    let a = cluster.simple(0, config()).await;
    let b = cluster.simple(1, config()).await;
    eventually("b holds a's view", || async { b.read(|v| v.len()) == 2 }).await;

    // Fast path: done in the first poll.
    let mut fast = b.query(Duration::from_secs(60), |v| v.len());
    assert_eq!((&mut fast).await.map(|r| r.value), Ok(2));
    assert_eq!((&mut fast).now_or_never(), Some(Err(QueryError::Stopped)));

    // Pull path: a's change is only announced, so the query pulls it.
    a.mutate(|s| s.value = 5).await.unwrap();
    cluster.clock.advance(Duration::from_millis(150));
    eventually("b marks a's view pending", || async {
        b.read(|v| v.get(NodeId(1)).is_some_and(|v| v.pending.is_some()))
    })
    .await;
    let mut pulled = b.query(Duration::from_secs(60), |v| {
        v.view(NodeId(1)).map(|s| s.value)
    });
    assert_eq!((&mut pulled).await.map(|r| r.value), Ok(Some(5)));
    // Its spent reply channel is not polled again.
    assert_eq!((&mut pulled).now_or_never(), Some(Err(QueryError::Stopped)));
}
