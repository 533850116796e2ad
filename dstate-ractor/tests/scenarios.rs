//! The core's replication scenarios over real processes, each a dstate node on ractor with
//! the ractor_cluster transport (127.0.0.1, OS-chosen ports, parallel-safe).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dstate::test_support::process::{scenarios, NetLab, ProcessCluster, StateKind};
use support::proxy::Proxy;

static CLUSTERS: AtomicU64 = AtomicU64::new(0);

/// A cookie no other cluster of this test run uses.
fn fresh_cookie() -> String {
    format!(
        "scenario-{}-{}",
        std::process::id(),
        CLUSTERS.fetch_add(1, Ordering::Relaxed)
    )
}

/// A cluster of `dstate-ractor-node --scenario` processes with a cookie of its own.
fn cluster(strategy: &str) -> ProcessCluster {
    cluster_with_cookie(strategy, fresh_cookie())
}

fn cluster_with_cookie(strategy: &str, cookie: String) -> ProcessCluster {
    cluster_with(strategy, cookie, false)
}

/// With `persist`, every node keeps its shards in the core's durable store in its data
/// directory (which survives its restarts).
fn cluster_with(strategy: &str, cookie: String, persist: bool) -> ProcessCluster {
    cluster_in(strategy, cookie, persist, None)
}

/// As [`cluster_with`]; with a lab, node `n` runs in its namespace and listens on its
/// address there.
fn cluster_in(
    strategy: &str,
    cookie: String,
    persist: bool,
    lab: Option<Arc<NetLab>>,
) -> ProcessCluster {
    ProcessCluster::new(strategy, move |spec| {
        let bin = env!("CARGO_BIN_EXE_dstate-ractor-node");
        let mut command = match &lab {
            Some(lab) => {
                let mut command = lab.command(spec.id, bin);
                command
                    .arg("--listen")
                    .arg(lab.addr(spec.id, 7000).to_string());
                command
            }
            None => Command::new(bin),
        };
        command.args(["--scenario", "--cookie", &cookie]);
        command.args(["--strategy", &spec.strategy, "--node", &spec.id.to_string()]);
        if persist {
            command.arg("--data-dir").arg(spec.data_dir.join("store"));
        }
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
fn a_killed_node_with_durable_state_resumes_its_own_shard() {
    let mut cluster = cluster_with("push", fresh_cookie(), true);
    scenarios::kill_and_restart(&mut cluster, StateKind::Simple, true).expect("resumes");
}

#[test]
fn a_killed_delta_node_with_durable_state_resumes_its_own_shard() {
    let mut cluster = cluster_with("push", fresh_cookie(), true);
    scenarios::kill_and_restart(&mut cluster, StateKind::Delta, true).expect("resumes");
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
fn pure_change_feed_queries_pull_every_pending_view() {
    scenarios::lazy_pull(&mut cluster("feed-only"), StateKind::Simple).expect("lazy pull");
}

#[test]
fn pure_change_feed_queries_pull_pending_delta_views() {
    scenarios::lazy_pull(&mut cluster("feed-only"), StateKind::Delta).expect("lazy pull");
}

#[test]
fn a_burst_of_ten_thousand_mutations_reaches_every_peer_in_bounded_memory() {
    // 32 MiB of growth at most per process: the transport's window and the engine's
    // coalescing keep queues bounded; a queue per mutation would grow far beyond.
    scenarios::burst(&mut cluster("push"), StateKind::Simple, 10_000, 32 * 1024).expect("burst");
}

#[test]
fn a_delta_burst_reaches_every_peer_in_bounded_memory() {
    scenarios::burst(&mut cluster("push"), StateKind::Delta, 10_000, 32 * 1024).expect("burst");
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

/// Nodes on private loopback addresses (`127.0.2.<id>`) behind proxies the test controls;
/// peers dial the proxies (the nodes advertise them), so a proxy can cut one pair of nodes.
struct Partitionable {
    cluster: ProcessCluster,
    proxies: Arc<Mutex<HashMap<u64, Proxy>>>,
}

fn ip(id: u64) -> IpAddr {
    format!("127.0.2.{id}").parse().expect("loopback address")
}

fn partitionable(strategy: &str) -> Partitionable {
    let proxies: Arc<Mutex<HashMap<u64, Proxy>>> = Arc::default();
    let cookie = fresh_cookie();
    let registry = proxies.clone();
    let cluster = ProcessCluster::new(strategy, move |spec| {
        // A port on this node's own address, free now; no other test uses the address.
        let port = TcpListener::bind((ip(spec.id), 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let listen = format!("{}:{port}", ip(spec.id));
        let proxy = Proxy::start("127.0.0.1".parse().expect("loopback"));
        proxy.forward_to(&listen);
        let advertise = proxy.addr.to_string();
        registry.lock().expect("proxies").insert(spec.id, proxy);
        let mut command = Command::new(env!("CARGO_BIN_EXE_dstate-ractor-node"));
        command.args([
            "--scenario",
            "--cookie",
            &cookie,
            "--strategy",
            &spec.strategy,
        ]);
        command.args(["--node", &spec.id.to_string(), "--listen", &listen]);
        command.args([
            "--source",
            &ip(spec.id).to_string(),
            "--advertise",
            &advertise,
        ]);
        for seed in &spec.seeds {
            command.args(["--seed", seed]);
        }
        command
    });
    Partitionable { cluster, proxies }
}

impl Partitionable {
    fn cut(&self, side_a: &[u64], side_b: &[u64]) {
        let proxies = self.proxies.lock().expect("proxies");
        for a in side_a {
            for b in side_b {
                proxies[a].block(ip(*b));
                proxies[b].block(ip(*a));
            }
        }
    }

    fn heal(&self) {
        for proxy in self.proxies.lock().expect("proxies").values() {
            proxy.heal();
        }
    }
}

#[test]
fn both_sides_of_a_partition_serve_reads_and_converge_after_the_heal() {
    let mut net = partitionable("push");
    let kind = StateKind::Simple;
    scenarios::converge(&mut net.cluster, kind, 3).expect("converges");

    net.cut(&[1, 2], &[3]);
    net.cluster
        .wait_until(
            "both sides see the other as down",
            Duration::from_secs(20),
            |c| {
                let one = c.read(1, kind)?;
                let three = c.read(3, kind)?;
                let done = one.get(&3).is_some_and(|v| !v.up && v.value == 300)
                    && three.get(&1).is_some_and(|v| !v.up && v.value == 100);
                Ok((done, format!("{one:?} {three:?}")))
            },
        )
        .expect("partition noticed");

    // Both sides keep committing and reading locally.
    net.cluster
        .mutate(1, kind, 111)
        .expect("mutate on the majority side");
    net.cluster
        .mutate(3, kind, 333)
        .expect("mutate on the minority side");
    // Polled, not read once: the core's engine actor answers a mutation before it
    // publishes the new view map, so a read right after `mutate` may still see the old one.
    net.cluster
        .wait_until(
            "each side reads its own new value",
            Duration::from_secs(20),
            |c| {
                let one = c.read(1, kind)?;
                let three = c.read(3, kind)?;
                let done = one.get(&1).is_some_and(|v| v.value == 111)
                    && three.get(&3).is_some_and(|v| v.value == 333);
                Ok((done, format!("{one:?} {three:?}")))
            },
        )
        .expect("local reads");
    let one = net.cluster.read(1, kind).expect("read");
    assert_eq!(
        one[&3].value, 300,
        "the last view from before the cut is served"
    );
    assert!(!one[&3].up);
    let three = net.cluster.read(3, kind).expect("read");
    assert_eq!(three[&1].value, 100);
    assert!(!three[&1].up);

    net.heal();
    let expected = BTreeMap::from([(1, 111), (2, 200), (3, 333)]);
    scenarios::wait_converged(&mut net.cluster, kind, &expected).expect("converges after heal");
}

#[test]
fn a_frame_claiming_another_source_is_rejected() {
    let cookie = fresh_cookie();
    let mut cluster = cluster_with_cookie("push", cookie.clone());
    let kind = StateKind::Simple;
    scenarios::converge(&mut cluster, kind, 2).expect("converges");
    // A cluster member (same cookie, real handshake) that forges node 2's shard.
    let seed = cluster.address(1).expect("node 1 address");
    let mut forger = support::Node::start(
        "forger",
        &["--node", "99", "--cookie", &cookie, "--seed", &seed],
    );
    forger.wait_for(0, |l| l.starts_with("JOINED 1 "));
    let incarnation = forger.incarnation.to_string();
    assert_eq!(
        forger.request(&format!("forge 1 2 999 {incarnation}"), "FORGED "),
        "FORGED ok"
    );
    // Control: the same path carries a snapshot of its own shard, which is accepted; frames
    // of one session arrive in order, so the forgery was handled before it.
    assert_eq!(
        forger.request(&format!("forge 1 99 4242 {incarnation}"), "FORGED "),
        "FORGED ok"
    );
    cluster
        .wait_until(
            "node 1 holds the forger's own view",
            Duration::from_secs(20),
            |c| {
                let views = c.read(1, kind)?;
                Ok((
                    views.get(&99).is_some_and(|v| v.value == 4242),
                    format!("{views:?}"),
                ))
            },
        )
        .expect("genuine frame accepted");
    let views = cluster.read(1, kind).expect("read");
    assert_eq!(
        views[&2].value, 200,
        "node 2's shard was not overwritten: {views:?}"
    );
}

/// Sends a signal to a child (`kill -<signal> <pid>`).
fn signal(node: &support::Node, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), node.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
}

/// ractor_cluster never notices a hung peer (its TCP connection stays up); the core's
/// heartbeat does, and asks this transport to drop and redial the session.
#[test]
fn a_hung_peer_is_marked_down_and_resyncs_when_it_resumes() {
    let cookie = fresh_cookie();
    let mut nodes: Vec<support::Node> = Vec::new();
    for id in 1..=3u64 {
        let id_text = id.to_string();
        let seeds: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
        let mut args = vec!["--cookie", cookie.as_str(), "--node", id_text.as_str()];
        for seed in &seeds {
            args.extend(["--seed", seed.as_str()]);
        }
        let mut node = support::Node::start_scenario(&format!("node-{id}"), &args);
        node.request(&format!("mutate 1 simple {}", id * 100), "ok 1 ");
        nodes.push(node);
    }
    for node in nodes.iter_mut() {
        node.poll("read 2 simple", "views 2 ", |l| {
            [" 1:100:up:", " 2:200:up:", " 3:300:up:"]
                .iter()
                .all(|v| l.contains(v))
        });
    }
    signal(&nodes[2], "STOP");
    for node in nodes[..2].iter_mut() {
        // Down (heartbeat deadline 4 x 250 ms), last value still served.
        node.poll("read 3 simple", "views 3 ", |l| l.contains(" 3:300:down:"));
    }
    signal(&nodes[2], "CONT");
    nodes[2].request("mutate 4 simple 333", "ok 4 ");
    for node in nodes[..2].iter_mut() {
        node.poll("read 5 simple", "views 5 ", |l| l.contains(" 3:333:up:"));
    }
}

/// Three nodes, each in its own network namespace; node 3 is cut off entirely (link down:
/// no reset, connections hang until the heartbeat gives up on them). Needs root and
/// iproute2; reports itself skipped otherwise.
#[test]
fn a_node_cut_off_in_its_own_network_namespace_rejoins_after_the_heal() {
    let lab = match NetLab::new(3) {
        Ok(lab) => Arc::new(lab),
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let mut cluster = cluster_in("push", fresh_cookie(), false, Some(lab.clone()));
    scenarios::isolate_one_and_heal(&mut cluster, StateKind::Simple, &lab).unwrap();
}
