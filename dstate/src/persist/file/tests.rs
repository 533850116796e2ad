//! Power-loss tests on the simulated disk, and the property test: any sequence of saves,
//! compactions, faults and crashes recovers the last acknowledged value of every state.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::executor::block_on;
use futures::task::noop_waker;
use proptest::prelude::*;

use super::fault::{Fault, FaultInjector, FaultOp, FaultyFs};
use super::fs::Fs;
use super::sim_fs::SimFs;
use super::{DurableOptions, DurablePersistence};
use crate::error::PersistError;
use crate::ids::{Age, Incarnation};
use crate::persist::{PersistedShard, StatePersistence};

const DIR: &str = "/sim/store";
const STATES: [&str; 3] = ["alpha", "beta", "gamma"];

fn open(disk: &SimFs, faults: &FaultInjector) -> Result<DurablePersistence, PersistError> {
    let fs: Arc<dyn Fs> = Arc::new(FaultyFs::new(Arc::new(disk.clone()), faults.clone()));
    // A tiny threshold so that background compactions run (and get crashed) often.
    let options = DurableOptions::default().compaction_threshold(4 << 10);
    DurablePersistence::open_on(fs, Path::new(DIR), options)
}

fn value(state: usize, age: u64, len: usize) -> PersistedShard {
    PersistedShard {
        incarnation: Incarnation(1000 + state as u64),
        age: Age(age),
        storage_version: 1 + (age % 3) as u32,
        state: (0..len).map(|i| (i as u64 * 31 + age) as u8).collect(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Save one state and wait for the answer.
    Save { state: usize, len: usize },
    /// Save several states concurrently (one group commit).
    SaveConcurrently { len: usize },
    /// Compact and wait.
    Compact,
    /// Make the next file operation `op` fail once.
    Fail { op: FaultOp, fault: Fault },
    /// Power loss while idle (a compaction may be running).
    Crash { seed: u64 },
    /// Power loss while a save is queued or being written: either value may survive.
    CrashDuringSave { state: usize, len: usize, seed: u64 },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let fault_op = prop_oneof![
        Just(FaultOp::Write),
        Just(FaultOp::Sync),
        Just(FaultOp::SyncDir),
        Just(FaultOp::Create),
        Just(FaultOp::Rename),
    ];
    let fault = prop_oneof![Just(Fault::NoSpace), Just(Fault::Io)];
    prop_oneof![
        8 => (0..STATES.len(), 0usize..1500).prop_map(|(state, len)| Op::Save { state, len }),
        3 => (0usize..1500).prop_map(|len| Op::SaveConcurrently { len }),
        1 => Just(Op::Compact),
        2 => (fault_op, fault).prop_map(|(op, fault)| Op::Fail { op, fault }),
        2 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        2 => (0..STATES.len(), 0usize..1500, any::<u64>())
            .prop_map(|(state, len, seed)| Op::CrashDuringSave { state, len, seed }),
    ]
}

/// The model: last acknowledged value of each state, and the next age to use.
struct Model {
    acked: HashMap<usize, PersistedShard>,
    next_age: u64,
}

impl Model {
    fn next(&mut self, state: usize, len: usize) -> PersistedShard {
        self.next_age += 1;
        value(state, self.next_age, len)
    }

    fn check(&self, store: &DurablePersistence) -> Result<(), TestCaseError> {
        for (i, name) in STATES.iter().enumerate() {
            let loaded = block_on(store.load(name));
            prop_assert_eq!(loaded, Ok(self.acked.get(&i).cloned()), "state {}", name);
        }
        Ok(())
    }
}

/// Poll `future` once, so that its request is queued, and hand it back.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    std::pin::Pin::new(future).poll(&mut cx)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut disk = SimFs::new();
    let faults = FaultInjector::new();
    let mut store = open(&disk, &faults).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let mut model = Model {
        acked: HashMap::new(),
        next_age: 0,
    };
    let mut armed = false;
    for op in ops {
        match op {
            Op::Save { state, len } => {
                let shard = model.next(state, len);
                match block_on(store.save(STATES[state], &shard)) {
                    Ok(()) => {
                        model.acked.insert(state, shard);
                    }
                    Err(err) => prop_assert!(armed, "save failed without a fault: {}", err),
                }
            }
            Op::SaveConcurrently { len } => {
                let shards: Vec<_> = (0..STATES.len()).map(|s| model.next(s, len + s)).collect();
                let results = block_on(futures::future::join_all(
                    shards
                        .iter()
                        .enumerate()
                        .map(|(s, shard)| store.save(STATES[s], shard)),
                ));
                for (s, result) in results.into_iter().enumerate() {
                    match result {
                        Ok(()) => {
                            model.acked.insert(s, shards[s].clone());
                        }
                        Err(err) => prop_assert!(armed, "save failed without a fault: {}", err),
                    }
                }
            }
            Op::Compact => {
                let result = block_on(store.compact());
                prop_assert!(result.is_ok() || armed, "compaction failed: {:?}", result);
                model.check(&store)?;
            }
            Op::Fail { op, fault } => {
                faults.fail_next(op, fault, 1);
                armed = true;
            }
            Op::Crash { seed } => {
                disk = crash_and_reopen(&mut store, &disk, &faults, seed)?;
                armed = false;
                model.check(&store)?;
            }
            Op::CrashDuringSave { state, len, seed } => {
                let shard = model.next(state, len);
                let mut acknowledged = false;
                {
                    let mut save = pin!(store.save(STATES[state], &shard));
                    if let Poll::Ready(result) = poll_once(&mut save) {
                        // The writer was quick enough to answer before the crash.
                        prop_assert!(result.is_ok() || armed, "save failed: {:?}", result);
                        acknowledged = result.is_ok();
                    }
                    // Crash while the save is in the queue or in flight.
                    disk = disk.crash(seed);
                    faults.clear();
                }
                drop(std::mem::replace(
                    &mut store,
                    open(&disk, &faults).map_err(|e| TestCaseError::fail(format!("{e}")))?,
                ));
                armed = false;
                let loaded = block_on(store.load(STATES[state]))
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
                let before = model.acked.get(&state).cloned();
                prop_assert!(
                    (loaded == before && !acknowledged) || loaded.as_ref() == Some(&shard),
                    "after a crash during a save, {:?} is neither the old nor the new value",
                    loaded
                );
                match loaded {
                    Some(loaded) => model.acked.insert(state, loaded),
                    None => model.acked.remove(&state),
                };
                model.check(&store)?;
            }
        }
    }
    faults.clear();
    model.check(&store)?;
    let _final = crash_and_reopen(&mut store, &disk, &faults, 7)?;
    model.check(&store)
}

/// Crash the disk, drop the old store (its threads now fail every operation), reopen.
fn crash_and_reopen(
    store: &mut DurablePersistence,
    disk: &SimFs,
    faults: &FaultInjector,
    seed: u64,
) -> Result<SimFs, TestCaseError> {
    let survivor = disk.crash(seed);
    faults.clear();
    let reopened = open(&survivor, faults).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    drop(std::mem::replace(store, reopened));
    Ok(survivor)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn crashes_recover_the_last_acknowledged_state(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        run(ops)?;
    }
}

#[test]
fn power_loss_after_acknowledgement_keeps_the_save() {
    let disk = SimFs::new();
    let faults = FaultInjector::new();
    let store = open(&disk, &faults).expect("open");
    let shard = value(0, 1, 100);
    block_on(store.save("alpha", &shard)).expect("save");
    for seed in 0..20 {
        let survivor = disk.crash(seed);
        let reopened = open(&survivor, &faults).expect("reopen");
        assert_eq!(block_on(reopened.load("alpha")), Ok(Some(shard.clone())));
    }
}

#[test]
fn a_failed_write_is_truncated_before_the_next_batch() {
    let disk = SimFs::new();
    let faults = FaultInjector::new();
    let store = open(&disk, &faults).expect("open");
    let first = value(0, 1, 300);
    block_on(store.save("alpha", &first)).expect("save");
    let segment = Path::new(DIR).join(super::format::segment_name(1));
    let len_before = disk.contents(&segment).expect("segment").len();
    faults.fail_next(FaultOp::Write, Fault::NoSpace, 1);
    let failed = block_on(store.save("alpha", &value(0, 2, 300)));
    assert_eq!(failed, Err(PersistError::NoSpace));
    assert_eq!(disk.contents(&segment).expect("segment").len(), len_before);
    let third = value(0, 3, 300);
    block_on(store.save("alpha", &third)).expect("save after the disk has room again");
    let survivor = disk.crash(1);
    let reopened = open(&survivor, &faults).expect("reopen");
    assert_eq!(block_on(reopened.load("alpha")), Ok(Some(third)));
}

#[test]
fn a_failed_truncation_blocks_appends_until_it_succeeds() {
    let disk = SimFs::new();
    let faults = FaultInjector::new();
    let store = open(&disk, &faults).expect("open");
    let first = value(0, 1, 300);
    block_on(store.save("alpha", &first)).expect("save");
    faults.fail_next(FaultOp::Sync, Fault::Io, 1);
    faults.fail_next(FaultOp::SetLen, Fault::Io, 2);
    assert!(block_on(store.save("alpha", &value(0, 2, 300))).is_err());
    // The repair before this batch fails too: the batch is refused, not appended after garbage.
    assert!(block_on(store.save("alpha", &value(0, 3, 300))).is_err());
    faults.clear();
    let fourth = value(0, 4, 300);
    block_on(store.save("alpha", &fourth)).expect("save once the disk works");
    for seed in 0..10 {
        let reopened = open(&disk.crash(seed), &faults).expect("reopen");
        assert_eq!(block_on(reopened.load("alpha")), Ok(Some(fourth.clone())));
    }
}

#[test]
fn a_batch_whose_sync_failed_never_resurfaces_after_a_crash() {
    // The failed sync may have made the batch durable; the truncation that follows must be
    // durable too, or a crash would bring back a save its caller was told had failed.
    for seed in 0..64 {
        let disk = SimFs::new();
        let faults = FaultInjector::new();
        let store = open(&disk, &faults).expect("open");
        let kept = value(1, 1, 700);
        block_on(store.save("beta", &kept)).expect("save");
        faults.fail_next(FaultOp::Sync, Fault::Io, 1);
        let failed = block_on(store.save("beta", &value(1, 2, 700)));
        assert!(matches!(failed, Err(PersistError::Io { .. })), "{failed:?}");
        let reopened = open(&disk.crash(seed), &faults).expect("reopen");
        assert_eq!(
            block_on(reopened.load("beta")),
            Ok(Some(kept.clone())),
            "seed {seed}"
        );
    }
}
