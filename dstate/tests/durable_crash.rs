//! Crash test: a child process saves and reports every acknowledgement on stdout; the parent
//! kills it with SIGKILL at seeded random points, many times, and checks after each kill that
//! every acknowledged save is there and the incarnation was kept.
//!
//! The child is this test binary itself, re-run with `DSTATE_CRASH_CHILD_DIR` set so that
//! only `crash_child` does anything.
#![cfg(all(feature = "durable", unix))]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dstate::{
    Age, DurableOptions, DurablePersistence, Incarnation, PersistedShard, StatePersistence,
};
use futures::executor::block_on;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "DSTATE_CRASH_CHILD_DIR";
const INCARNATION: Incarnation = Incarnation(1_700_000_000_123);
/// States of different sizes: small ones and one of 40 KB.
const STATES: [(&str, usize); 4] = [
    ("tiny", 16),
    ("small", 100),
    ("medium", 2000),
    ("large", 40_000),
];
const ROUNDS: usize = 30;
/// Bound on a child's lifetime, so that the test ends even if a kill never comes.
const CHILD_SAVES: u64 = 5_000;
const DEADLINE: Duration = Duration::from_secs(60);

/// The bytes of `state` at `age`: every acknowledged value can be recomputed and checked.
fn content(name: &str, size: usize, age: u64) -> Vec<u8> {
    let seed = name.len() as u64 * 1_000_003 + age;
    (0..size)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

fn options() -> DurableOptions {
    // Small threshold: compactions run often, so kills land in them too.
    DurableOptions::default().compaction_threshold(128 << 10)
}

/// The child: resume every state from the store, then save concurrently, printing
/// `ACK <state> <age>` once each save returned `Ok`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Not running as a child: nothing to do.
    };
    let store = Arc::new(DurablePersistence::open_with(&dir, options()).expect("child open"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tasks: Vec<_> = STATES
            .iter()
            .map(|&(name, size)| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let loaded = store.load(name).await.expect("child load");
                    let (incarnation, mut age) = match loaded {
                        Some(shard) => (shard.incarnation, shard.age.0),
                        None => (INCARNATION, 0),
                    };
                    for _ in 0..CHILD_SAVES {
                        age += 1;
                        let shard = PersistedShard {
                            incarnation,
                            age: Age(age),
                            storage_version: 1,
                            state: content(name, size, age),
                        };
                        store.save(name, &shard).await.expect("child save");
                        println!("ACK {name} {age}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("child task");
        }
    });
}

#[test]
fn acknowledged_saves_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = SmallRng::seed_from_u64(0xC0FFEE);
    let mut acked: HashMap<String, u64> = HashMap::new();
    for round in 0..ROUNDS {
        // Kill right away (during recovery) in some rounds, after some acks in others.
        let kill_after = if round % 5 == 0 {
            0
        } else {
            rng.gen_range(1..120)
        };
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + DEADLINE;
        let mut seen = 0;
        while seen < kill_after {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => seen += record_ack(&line, &mut acked),
                Err(mpsc::RecvTimeoutError::Disconnected) => break, // child finished or died
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("round {round}: child stalled"),
            }
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        // Acks printed before the kill are still in the pipe: they count too.
        reader.join().expect("reader");
        for line in lines.try_iter() {
            record_ack(&line, &mut acked);
        }
        assert!(
            status.code().is_none() || status.success(),
            "round {round}: child failed: {status}"
        );
        verify(dir.path(), &acked, round);
    }
    assert!(
        acked.values().sum::<u64>() > ROUNDS as u64,
        "too few acks: {acked:?}"
    );
}

fn record_ack(line: &str, acked: &mut HashMap<String, u64>) -> usize {
    let mut parts = line.split_whitespace();
    let (Some("ACK"), Some(name), Some(age)) = (parts.next(), parts.next(), parts.next()) else {
        return 0;
    };
    let age: u64 = age.parse().expect("age");
    let entry = acked.entry(name.to_owned()).or_default();
    *entry = (*entry).max(age);
    1
}

/// Every acknowledged save is present (a later, unacknowledged one may be too), with the
/// original incarnation and the exact bytes of its age.
fn verify(dir: &Path, acked: &HashMap<String, u64>, round: usize) {
    let store = DurablePersistence::open_with(dir, options()).expect("parent open");
    for &(name, size) in &STATES {
        let loaded = block_on(store.load(name)).expect("parent load");
        let Some(&acked_age) = acked.get(name) else {
            continue;
        };
        let shard = loaded.unwrap_or_else(|| panic!("round {round}: {name} lost"));
        assert_eq!(shard.incarnation, INCARNATION, "round {round}: {name}");
        assert!(
            shard.age.0 >= acked_age,
            "round {round}: {name} at age {} but age {acked_age} was acknowledged",
            shard.age.0
        );
        assert_eq!(
            shard.state,
            content(name, size, shard.age.0),
            "round {round}: {name}"
        );
    }
}
