//! The core's replication scenarios over real processes, each a dstate node on ractor with
//! the ractor_cluster transport (127.0.0.1, OS-chosen ports, parallel-safe).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use dstate::test_support::process::{scenarios, ProcessCluster, StateKind};

static CLUSTERS: AtomicU64 = AtomicU64::new(0);

/// A cluster of `dstate-ractor-node --scenario` processes with a cookie of its own.
fn cluster(strategy: &str) -> ProcessCluster {
    let cookie = format!(
        "scenario-{}-{}",
        std::process::id(),
        CLUSTERS.fetch_add(1, Ordering::Relaxed)
    );
    ProcessCluster::new(strategy, move |spec| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dstate-ractor-node"));
        command.args([
            "--scenario",
            "--cookie",
            &cookie,
            "--strategy",
            &spec.strategy,
        ]);
        command.args(["--node", &spec.id.to_string()]);
        for seed in &spec.seeds {
            command.args(["--seed", seed]);
        }
        command
    })
}

#[test]
fn simple_state_converges_with_active_push() {
    scenarios::converge(&mut cluster("push"), StateKind::Simple, 3).expect("converges");
}

#[test]
fn delta_state_converges_with_active_push() {
    scenarios::converge(&mut cluster("push"), StateKind::Delta, 4).expect("converges");
}

#[test]
fn simple_state_converges_with_feed_and_periodic_repair() {
    scenarios::converge(&mut cluster("feed"), StateKind::Simple, 3).expect("converges");
}

#[test]
fn delta_state_converges_with_feed_and_periodic_repair() {
    scenarios::converge(&mut cluster("feed"), StateKind::Delta, 3).expect("converges");
}

#[test]
fn simple_state_converges_with_periodic_sync() {
    scenarios::converge(&mut cluster("periodic"), StateKind::Simple, 3).expect("converges");
}

#[test]
fn delta_state_converges_with_periodic_sync() {
    scenarios::converge(&mut cluster("periodic"), StateKind::Delta, 3).expect("converges");
}

#[test]
fn a_killed_node_is_kept_down_and_its_restart_replaces_it() {
    scenarios::kill_and_restart(&mut cluster("push"), StateKind::Simple, false)
        .expect("kill and restart");
}

#[test]
fn a_killed_delta_node_restarts_without_a_ghost() {
    scenarios::kill_and_restart(&mut cluster("push"), StateKind::Delta, false)
        .expect("kill and restart");
}

#[test]
fn a_graceful_leave_removes_the_views_everywhere() {
    scenarios::graceful_leave(&mut cluster("push"), StateKind::Simple).expect("leave");
}

#[test]
fn a_burst_of_ten_thousand_mutations_reaches_every_peer_in_bounded_memory() {
    // 32 MiB of growth at most per process: the transport's window and the engine's
    // coalescing keep queues bounded; a queue per mutation would grow far beyond.
    scenarios::burst(&mut cluster("push"), StateKind::Simple, 10_000, 32 * 1024).expect("burst");
}

#[test]
fn a_delta_burst_reaches_every_peer_in_bounded_memory() {
    // As `scenarios::burst`, but with the expected final value computed here: the child's
    // burst reply for delta states reads the local view, which may trail the last commit.
    let mut cluster = cluster("push");
    for id in 1..=3 {
        cluster.start(id).expect("start");
    }
    let mut expected = BTreeMap::from([(1, 0), (2, 0), (3, 0)]);
    scenarios::wait_converged(&mut cluster, StateKind::Delta, &expected).expect("joined");
    let before: Vec<u64> = (1..=3)
        .map(|id| cluster.resident_kib(id).expect("mem"))
        .collect();
    cluster.burst(1, StateKind::Delta, 10_000).expect("burst");
    expected.insert(1, 10_000);
    scenarios::wait_converged(&mut cluster, StateKind::Delta, &expected).expect("converges");
    for (index, id) in (1..=3).enumerate() {
        let growth = cluster
            .resident_kib(id)
            .expect("mem")
            .saturating_sub(before[index]);
        assert!(growth <= 32 * 1024, "node {id} grew by {growth} KiB");
    }
}

#[test]
fn nodes_started_together_converge_on_their_initial_views() {
    let mut cluster = cluster("push");
    for id in 1..=5 {
        cluster.start(id).expect("start");
    }
    let expected: BTreeMap<u64, u64> = (1..=5).map(|id| (id, 0)).collect();
    scenarios::wait_converged(&mut cluster, StateKind::Simple, &expected).expect("converges");
}
