//! Group commit: concurrent saves share one `fdatasync`, and each caller is answered only
//! once its own batch is durable.
#![cfg(all(feature = "durable", unix))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dstate::{
    Age, DurableOptions, DurablePersistence, FaultInjector, FaultOp, Incarnation, PersistedShard,
    StatePersistence,
};
use futures::executor::block_on;
use futures::task::noop_waker;

fn value(caller: usize, age: u64) -> PersistedShard {
    PersistedShard {
        incarnation: Incarnation(3),
        age: Age(age),
        storage_version: 1,
        state: format!("caller {caller} age {age}").into_bytes(),
    }
}

fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    let waker = noop_waker();
    future.poll(&mut Context::from_waker(&waker))
}

#[test]
fn saves_queued_during_a_sync_share_the_next_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let options = DurableOptions::default().fault_injector(faults.clone());
    let store = DurablePersistence::open_with(dir.path(), options).expect("open");
    let names: Vec<String> = (0..64).map(|i| format!("state-{i}")).collect();
    let values: Vec<PersistedShard> = (0..64).map(|i| value(i, 1)).collect();

    // Hold the first batch inside its fdatasync.
    faults.pause(FaultOp::Sync);
    let mut first = store.save(&names[0], &values[0]);
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(faults.wait_until_paused(FaultOp::Sync, Duration::from_secs(20)));

    // 63 more saves queue up meanwhile; none can be answered before its own sync.
    let mut rest: Vec<_> = (1..64).map(|i| store.save(&names[i], &values[i])).collect();
    for save in &mut rest {
        assert!(poll_once(save.as_mut()).is_pending());
    }
    assert!(poll_once(first.as_mut()).is_pending());
    assert_eq!(store.stats().commits, 0);

    faults.resume(FaultOp::Sync);
    block_on(first).expect("first save");
    for result in block_on(futures::future::join_all(rest)) {
        result.expect("queued save");
    }
    let stats = store.stats();
    assert_eq!(stats.saves, 64);
    assert_eq!(stats.commits, 2, "{stats:?}");
    for (name, value) in names.iter().zip(&values) {
        assert_eq!(block_on(store.load(name)), Ok(Some(value.clone())));
    }
}

#[test]
fn many_concurrent_callers_all_get_durable_acknowledgements() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(DurablePersistence::open(dir.path()).expect("open"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    const CALLERS: usize = 64;
    const SAVES: u64 = 10;
    runtime.block_on(async {
        let tasks: Vec<_> = (0..CALLERS)
            .map(|caller| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let name = format!("state-{caller}");
                    for age in 1..=SAVES {
                        store.save(&name, &value(caller, age)).await.expect("save");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    let stats = store.stats();
    assert_eq!(stats.saves, CALLERS as u64 * SAVES);
    // Each commit took at least one save; concurrency can only lower the count.
    assert!(stats.commits <= stats.saves, "{stats:?}");
    drop(store);
    let store = DurablePersistence::open(dir.path()).expect("reopen");
    for caller in 0..CALLERS {
        let loaded = block_on(store.load(&format!("state-{caller}")));
        assert_eq!(loaded, Ok(Some(value(caller, SAVES))));
    }
}
