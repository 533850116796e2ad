//! Persistence rules through the host.

use std::sync::Arc;
use std::time::Duration;

use dstate::test_support::InMemoryPersistence;
use dstate::{MutationError, NodeId, PersistError, StateConfig};

use crate::cluster::{eventually, Cluster};

#[tokio::test]
async fn a_failed_save_rolls_back_and_is_not_published() {
    let mut cluster = Cluster::new(1);
    let store = InMemoryPersistence::new();
    cluster.add(NodeId(2), Some(Arc::new(store.clone())));
    cluster.connect_all();
    let a = cluster.simple(0, StateConfig::default()).await;
    let b = cluster.simple(1, StateConfig::default()).await;
    b.mutate(|s| s.value = 1).await.unwrap();
    eventually("a holds 1", || async {
        a.read(|v| v.view(NodeId(2)).map(|v| v.value)) == Some(1)
    })
    .await;
    let before = b.generation();
    store.fail_next_saves(1);
    let error = b.mutate(|s| s.value = 2).await.unwrap_err();
    assert!(
        matches!(error, MutationError::Persist(PersistError::Injected(_))),
        "{error:?}"
    );
    assert_eq!(b.generation(), before, "age rolled back");
    assert_eq!(
        b.local_view().map(|v| v.value),
        Some(1),
        "own view rolled back"
    );
    assert_eq!(store.stored("test_state").map(|s| s.age), Some(before.age));
    b.mutate(|s| s.value += 10).await.unwrap();
    eventually("a sees 11, never 2", || async {
        a.read(|v| v.view(NodeId(2)).map(|v| v.value)) == Some(11)
    })
    .await;
}

#[tokio::test]
async fn a_restart_with_persistence_keeps_the_shard_and_its_incarnation() {
    let mut cluster = Cluster::new(0);
    let store = InMemoryPersistence::new();
    cluster.add(NodeId(1), Some(Arc::new(store.clone())));
    let first = cluster.simple(0, StateConfig::default()).await;
    for _ in 0..3 {
        first.mutate(|s| s.value += 1).await.unwrap();
    }
    let generation = first.generation();
    cluster.nodes[0].node.shutdown().await;
    cluster.nodes.clear();
    cluster.clock.advance(Duration::from_secs(1));
    cluster.add(NodeId(1), Some(Arc::new(store.clone())));
    let second = cluster.simple(0, StateConfig::default()).await;
    assert_eq!(second.generation(), generation);
    assert_eq!(second.local_view().map(|v| v.value), Some(3));
}
