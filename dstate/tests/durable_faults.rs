//! Disk full, I/O errors and permission errors: typed errors, nothing half-written, nothing
//! acknowledged lost, and the store works again once the fault clears.
#![cfg(all(feature = "durable", unix))]

use std::path::Path;

use dstate::{
    Age, DurableOptions, DurablePersistence, Fault, FaultInjector, FaultOp, Incarnation,
    PersistError, PersistedShard, StatePersistence,
};
use futures::executor::block_on;

fn value(age: u64, len: usize) -> PersistedShard {
    PersistedShard {
        incarnation: Incarnation(7),
        age: Age(age),
        storage_version: 1,
        state: vec![age as u8; len],
    }
}

fn open(dir: &Path, faults: &FaultInjector) -> DurablePersistence {
    let options = DurableOptions::default().fault_injector(faults.clone());
    DurablePersistence::open_with(dir, options).expect("open")
}

fn wal_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("wal-0000000000000001.log"))
        .expect("metadata")
        .len()
}

#[test]
fn disk_full_during_a_write_fails_the_save_and_leaves_no_half_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let store = open(dir.path(), &faults);
    block_on(store.save("s", &value(1, 5000))).expect("save");
    let good_len = wal_len(dir.path());
    faults.fail_next(FaultOp::Write, Fault::NoSpace, 1);
    assert_eq!(
        block_on(store.save("s", &value(2, 5000))),
        Err(PersistError::NoSpace)
    );
    assert_eq!(faults.injected(), 1);
    // The injected fault wrote half of the batch; it was truncated away.
    assert_eq!(wal_len(dir.path()), good_len);
    assert_eq!(block_on(store.load("s")), Ok(Some(value(1, 5000))));
    block_on(store.save("s", &value(3, 5000))).expect("save once there is room");
    let stats = store.stats();
    assert_eq!((stats.saves, stats.failed_saves), (2, 1));
    drop(store);
    let store = open(dir.path(), &faults);
    assert_eq!(block_on(store.load("s")), Ok(Some(value(3, 5000))));
}

#[test]
fn an_io_error_on_sync_fails_every_save_of_the_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let store = open(dir.path(), &faults);
    block_on(store.save("a", &value(1, 100))).expect("save");
    let good_len = wal_len(dir.path());
    faults.fail_next(FaultOp::Sync, Fault::Io, 1);
    let result = block_on(store.save("a", &value(2, 100)));
    match result {
        Err(PersistError::Io { message, .. }) => {
            assert!(message.contains("wal-0000000000000001.log"), "{message}")
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(wal_len(dir.path()), good_len);
    drop(store);
    let store = open(dir.path(), &faults);
    assert_eq!(block_on(store.load("a")), Ok(Some(value(1, 100))));
}

#[test]
fn permission_denied_is_typed_with_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let store = open(dir.path(), &faults);
    faults.fail_next(FaultOp::Write, Fault::PermissionDenied, 1);
    match block_on(store.save("a", &value(1, 100))) {
        Err(PersistError::PermissionDenied { path }) => {
            assert!(path.ends_with("wal-0000000000000001.log"), "{path}")
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    block_on(store.save("a", &value(2, 100))).expect("save after the fault");
}

#[test]
fn a_disk_that_stays_full_fails_every_save_until_it_clears() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let store = open(dir.path(), &faults);
    block_on(store.save("a", &value(1, 100))).expect("save");
    faults.fail_always(FaultOp::Write, Fault::NoSpace);
    for age in 2..6 {
        assert_eq!(
            block_on(store.save("a", &value(age, 100))),
            Err(PersistError::NoSpace)
        );
    }
    // The truncations after each failed write worked: nothing is left behind.
    assert_eq!(block_on(store.load("a")), Ok(Some(value(1, 100))));
    faults.clear();
    block_on(store.save("a", &value(6, 100))).expect("save after the disk has room");
    drop(store);
    let store = open(dir.path(), &faults);
    assert_eq!(block_on(store.load("a")), Ok(Some(value(6, 100))));
}

#[test]
fn failed_truncations_hold_back_appends_until_the_disk_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let store = open(dir.path(), &faults);
    block_on(store.save("a", &value(1, 100))).expect("save");
    let good_len = wal_len(dir.path());
    faults.fail_always(FaultOp::SetLen, Fault::Io);
    faults.fail_next(FaultOp::Write, Fault::Io, 1);
    assert!(block_on(store.save("a", &value(2, 100))).is_err());
    // The half-written batch could not be cut: later saves are refused rather than appended
    // after it.
    assert!(wal_len(dir.path()) > good_len);
    assert!(block_on(store.save("a", &value(3, 100))).is_err());
    faults.clear();
    block_on(store.save("a", &value(4, 100))).expect("save once truncation works");
    drop(store);
    let store = open(dir.path(), &faults);
    assert_eq!(block_on(store.load("a")), Ok(Some(value(4, 100))));
}

#[test]
fn compaction_failures_leave_the_data_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let store = open(dir.path(), &faults);
    for age in 1..=5 {
        block_on(store.save("a", &value(age, 1000))).expect("save");
    }
    for (op, fault) in [
        (FaultOp::Create, Fault::NoSpace),
        (FaultOp::Write, Fault::NoSpace),
        (FaultOp::Sync, Fault::Io),
        (FaultOp::Rename, Fault::Io),
        (FaultOp::SyncDir, Fault::Io),
    ] {
        faults.fail_next(op, fault, 1);
        assert!(block_on(store.compact()).is_err(), "{op:?}");
        faults.clear();
        assert_eq!(
            block_on(store.load("a")),
            Ok(Some(value(5, 1000))),
            "{op:?}"
        );
        block_on(store.save("b", &value(1, 10))).expect("save after a failed compaction");
    }
    assert!(store.stats().failed_compactions >= 5);
    block_on(store.compact()).expect("compaction once the disk works");
    drop(store);
    let store = open(dir.path(), &faults);
    assert_eq!(block_on(store.load("a")), Ok(Some(value(5, 1000))));
    assert_eq!(block_on(store.load("b")), Ok(Some(value(1, 10))));
}

#[test]
fn read_errors_during_load_are_typed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let store = open(dir.path(), &faults);
    block_on(store.save("a", &value(1, 100))).expect("save");
    faults.fail_next(FaultOp::Read, Fault::Io, 1);
    assert!(matches!(
        block_on(store.load("a")),
        Err(PersistError::Io { .. })
    ));
    assert_eq!(block_on(store.load("a")), Ok(Some(value(1, 100))));
}
