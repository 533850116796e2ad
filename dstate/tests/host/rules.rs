//! Startup incarnation rules, storage migration, subscriptions.

use std::sync::Arc;
use std::time::Duration;

use dstate::test_support::{InMemoryPersistence, TestRuntime, TestState};
use dstate::{
    Age, DeserializeError, DistributedState, Incarnation, Node, NodeId, PersistedShard, StateConfig,
};

use crate::cluster::{eventually, Cluster};

#[tokio::test]
async fn a_fresh_shard_gets_an_incarnation_past_the_persisted_one_when_the_clock_went_back() {
    let store = InMemoryPersistence::new();
    // Data written by a previous lifetime far in the future of this clock, but unreadable
    // (a storage version nobody knows): the shard starts empty under a bumped incarnation.
    let future = Incarnation(u64::MAX / 2);
    store.insert(
        "test_state",
        PersistedShard {
            incarnation: future,
            age: Age(9),
            storage_version: 99,
            state: vec![1, 2],
        },
    );
    let runtime = TestRuntime::new();
    let node = Node::builder(NodeId(1), runtime.clone())
        .clock(Arc::new(runtime.clock()))
        .persistence(Arc::new(store))
        .start();
    let handle = node
        .register::<TestState>(StateConfig::default())
        .await
        .unwrap();
    let generation = handle.generation();
    assert_eq!(generation.incarnation, Incarnation(future.0 + 1));
    assert_eq!(generation.age, Age(0));
}

#[tokio::test]
async fn without_persistence_each_start_takes_the_wall_clock_as_incarnation() {
    let runtime = TestRuntime::new();
    let clock = runtime.clock();
    let node = Node::builder(NodeId(1), runtime.clone())
        .clock(Arc::new(clock.clone()))
        .start();
    let first = node
        .register::<TestState>(StateConfig::default())
        .await
        .unwrap()
        .generation();
    clock.advance(Duration::from_millis(10));
    let node = Node::builder(NodeId(1), runtime.clone())
        .clock(Arc::new(clock.clone()))
        .start();
    let second = node
        .register::<TestState>(StateConfig::default())
        .await
        .unwrap()
        .generation();
    assert_eq!(second.incarnation.0, first.incarnation.0 + 10);
}

/// Version 2 of a state whose version 1 stored a bare little-endian u32.
#[derive(Clone, Debug, Default, PartialEq)]
struct Migrated {
    value: u64,
}

impl DistributedState for Migrated {
    fn name() -> &'static str {
        "migrated"
    }
    const WIRE_VERSION: u32 = 2;
    const STORAGE_VERSION: u32 = 2;
    fn serialize_state(&self) -> Vec<u8> {
        self.value.to_le_bytes().to_vec()
    }
    fn deserialize_state(bytes: &[u8], version: u32) -> Result<Self, DeserializeError> {
        match version {
            1 => {
                let raw: [u8; 4] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
                Ok(Migrated {
                    value: u64::from(u32::from_le_bytes(raw)),
                })
            }
            2 => {
                let raw: [u8; 8] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
                Ok(Migrated {
                    value: u64::from_le_bytes(raw),
                })
            }
            version => Err(DeserializeError::UnsupportedVersion { version }),
        }
    }
}

#[tokio::test]
async fn an_older_storage_version_loads_through_migration_and_keeps_its_generation() {
    let store = InMemoryPersistence::new();
    store.insert(
        "migrated",
        PersistedShard {
            incarnation: Incarnation(5),
            age: Age(3),
            storage_version: 1,
            state: 77u32.to_le_bytes().to_vec(),
        },
    );
    let runtime = TestRuntime::new();
    let node = Node::builder(NodeId(1), runtime.clone())
        .persistence(Arc::new(store.clone()))
        .start();
    let handle = node
        .register::<Migrated>(StateConfig::default())
        .await
        .unwrap();
    assert_eq!(handle.local_view().map(|v| v.value), Some(77));
    assert_eq!(handle.generation().incarnation, Incarnation(5));
    handle.mutate(|m| m.value += 1).await.unwrap();
    let stored = store.stored("migrated").unwrap();
    assert_eq!(stored.storage_version, 2, "saved in the current version");
    assert_eq!(stored.age, Age(4));
}

#[tokio::test]
async fn a_slow_subscriber_loses_old_events_and_never_stalls_replication() {
    let cluster = Cluster::new(2);
    let config = || {
        StateConfig::default().with_subscription_capacity(std::num::NonZeroUsize::new(4).unwrap())
    };
    let a = cluster.simple(0, config()).await;
    let b = cluster.simple(1, config()).await;
    let mut slow = b.subscribe();
    for i in 1..=100u64 {
        a.mutate(move |s| s.value = i).await.unwrap();
    }
    eventually("b holds 100 although nobody read its events", || async {
        b.read(|v| v.view(NodeId(1)).map(|v| v.value)) == Some(100)
    })
    .await;
    let mut last = None;
    while let Some(event) = slow.try_recv() {
        if event.source == NodeId(1) {
            last = event.view.map(|v| v.value);
        }
    }
    assert!(slow.lagged() > 0, "the slow subscriber lost events");
    assert_eq!(last, Some(100), "and still sees the newest");
}
