//! Crash test through the host: a child process runs a `Node` with `DurablePersistence`,
//! performs concurrent `mutate` calls and prints each acknowledged value; the parent kills it
//! with SIGKILL at random moments and, after every restart, checks that every acknowledged
//! mutation is present and that the shard's incarnation was kept.
//!
//! The child is this test binary re-run with `DSTATE_HOST_CRASH_DIR` set.
#![cfg(all(feature = "durable", unix))]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use dstate::test_support::{TestRuntime, TestState};
use dstate::{DurablePersistence, Node, NodeId, StateConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "DSTATE_HOST_CRASH_DIR";
const ROUNDS: usize = 12;
const CALLERS: u64 = 8;

/// The child: load the shard, report its generation, then increment from 8 concurrent
/// callers, printing `ACK <value>` for each acknowledged mutation.
#[test]
fn host_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Not running as a child: nothing to do.
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Arc::new(DurablePersistence::open(&dir).expect("open store"));
        let node = Node::builder(NodeId(1), TestRuntime::new())
            .persistence(store)
            .start();
        let handle = node
            .register::<TestState>(StateConfig::default())
            .await
            .expect("register");
        let generation = handle.generation();
        let value = handle.local_view().map_or(0, |v| v.value);
        println!(
            "START {} {} {value}",
            generation.incarnation.0, generation.age.0
        );
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let handle = handle.clone();
                tokio::spawn(async move {
                    for _ in 0..100_000 {
                        let value = handle
                            .mutate(|s| {
                                s.value += 1;
                                s.value
                            })
                            .await
                            .expect("durable mutation");
                        println!("ACK {value}");
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
}

#[test]
fn every_acknowledged_mutation_survives_sigkill_and_the_incarnation_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = SmallRng::seed_from_u64(0x5eed_c4a5);
    let mut acked_max = 0u64;
    let mut incarnation = None;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "host_crash_child",
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
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let start = loop {
            let line = received
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("child reports its start");
            // libtest prints "test host_crash_child ... " on the same line first.
            if let Some((_, rest)) = line.split_once("START ") {
                let fields: Vec<u64> = rest.split(' ').filter_map(|f| f.parse().ok()).collect();
                break fields;
            }
        };
        let (started_incarnation, started_value) = (start[0], start[2]);
        assert!(
            started_value >= acked_max,
            "round {round}: restarted at {started_value} but {acked_max} was acknowledged"
        );
        match incarnation {
            None => incarnation = Some(started_incarnation),
            Some(kept) => assert_eq!(
                kept, started_incarnation,
                "round {round}: incarnation changed"
            ),
        }
        // Let it acknowledge a random number of mutations, then kill it mid-flight.
        let wanted = rng.gen_range(20..400u64);
        let mut seen = 0;
        while seen < wanted {
            match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(value) = line
                        .strip_prefix("ACK ")
                        .and_then(|v| v.parse::<u64>().ok())
                    {
                        acked_max = acked_max.max(value);
                        seen += 1;
                    }
                }
                Err(_) => panic!("round {round}: child stopped acknowledging"),
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        // Acks printed before the kill but not yet read still count as acknowledged.
        while let Ok(line) = received.recv_timeout(Duration::from_millis(200)) {
            if let Some(value) = line
                .strip_prefix("ACK ")
                .and_then(|v| v.parse::<u64>().ok())
            {
                acked_max = acked_max.max(value);
            }
        }
    }
    assert!(acked_max > 0);
}
