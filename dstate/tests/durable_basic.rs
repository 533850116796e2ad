//! Basic behaviour of the durable file store: round trips, reopen, compaction, locking.
#![cfg(all(feature = "durable", unix))]

use dstate::{
    Age, DurableOptions, DurablePersistence, Incarnation, PersistError, PersistedShard,
    StatePersistence,
};
use futures::executor::block_on;

fn shard(age: u64, storage_version: u32, state: Vec<u8>) -> PersistedShard {
    PersistedShard {
        incarnation: Incarnation(1_700_000_000_000),
        age: Age(age),
        storage_version,
        state,
    }
}

#[test]
fn saves_are_loaded_back_after_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counter = shard(3, 1, b"three".to_vec());
    let big = shard(1, 7, (0..200_000u32).map(|i| (i % 251) as u8).collect());
    let empty = shard(9, 2, Vec::new());
    {
        let store = DurablePersistence::open(dir.path()).expect("open");
        assert_eq!(block_on(store.load("counter")), Ok(None));
        block_on(store.save("counter", &shard(1, 1, b"one".to_vec()))).expect("save");
        block_on(store.save("counter", &counter)).expect("save");
        block_on(store.save("big", &big)).expect("save");
        block_on(store.save("empty", &empty)).expect("save");
        assert_eq!(block_on(store.load("counter")), Ok(Some(counter.clone())));
        let stats = store.stats();
        assert_eq!(stats.saves, 4);
        assert_eq!(stats.failed_saves, 0);
    }
    let store = DurablePersistence::open(dir.path()).expect("reopen");
    assert_eq!(block_on(store.load("counter")), Ok(Some(counter)));
    assert_eq!(block_on(store.load("big")), Ok(Some(big)));
    assert_eq!(block_on(store.load("empty")), Ok(Some(empty)));
    assert_eq!(block_on(store.load("missing")), Ok(None));
}

#[test]
fn storage_versions_are_returned_as_stored() {
    // The host migrates older storage versions after load; the store must hand back the
    // version each shard was written with, old or new.
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = DurablePersistence::open(dir.path()).expect("open");
        block_on(store.save("old", &shard(1, 1, b"v1 bytes".to_vec()))).expect("save");
        block_on(store.save("new", &shard(1, 2, b"v2 bytes".to_vec()))).expect("save");
    }
    let store = DurablePersistence::open(dir.path()).expect("reopen");
    let old = block_on(store.load("old")).expect("load").expect("present");
    let new = block_on(store.load("new")).expect("load").expect("present");
    assert_eq!((old.storage_version, old.state), (1, b"v1 bytes".to_vec()));
    assert_eq!((new.storage_version, new.state), (2, b"v2 bytes".to_vec()));
}

#[test]
fn compaction_keeps_latest_values_and_bounds_disk_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = DurableOptions::default().compaction_threshold(64 << 10);
    let mut expected = Vec::new();
    {
        let store = DurablePersistence::open_with(dir.path(), options.clone()).expect("open");
        for round in 0..60u64 {
            for name in ["a", "b", "c"] {
                let value = shard(round + 1, 1, vec![round as u8; 2000]);
                block_on(store.save(name, &value)).expect("save");
                if round == 59 {
                    expected.push((name, value));
                }
            }
        }
        block_on(store.compact()).expect("compact");
        let stats = store.stats();
        assert!(stats.compactions >= 2, "{stats:?}");
        // Three live records of ~2 KB: after an explicit compaction only they remain, plus
        // headers of the snapshot and of the empty new segment.
        assert!(stats.disk_bytes < 8 << 10, "{stats:?}");
        for (name, value) in &expected {
            assert_eq!(
                block_on(store.load(name)).as_ref(),
                Ok(&Some(value.clone()))
            );
        }
    }
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert!(files.len() <= 3, "{files:?}");
    let store = DurablePersistence::open_with(dir.path(), options).expect("reopen");
    for (name, value) in expected {
        assert_eq!(block_on(store.load(name)), Ok(Some(value)));
    }
}

#[test]
fn a_directory_is_opened_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DurablePersistence::open(dir.path()).expect("open");
    match DurablePersistence::open(dir.path()) {
        Err(PersistError::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(store);
    DurablePersistence::open(dir.path()).expect("open after the first store is dropped");
}

#[test]
fn invalid_names_are_refused_not_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DurablePersistence::open(dir.path()).expect("open");
    let long_name = "x".repeat(70_000);
    let result = block_on(store.save(&long_name, &shard(1, 1, vec![1])));
    assert!(matches!(result, Err(PersistError::Io { .. })), "{result:?}");
    assert_eq!(store.stats().commits, 0);
}
