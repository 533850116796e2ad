//! Replication between OS processes on this machine, over ractor_cluster on 127.0.0.1.
//!
//! * `latency/*`: one mutation on node A (this process) until it is visible in a local read
//!   on node B (a `dstate-ractor-node --bench-peer` process), one at a time; against the
//!   floor, a raw ractor_cluster cast of the same size between the same two processes over
//!   the same session. One-way times use the wall clock both processes share (stamp taken
//!   by A just before the call, read by B when the change is visible). Criterion reports
//!   the mean; p50/p99 of every measured operation are printed after each benchmark.
//! * `throughput/*`: bursts of mutations on A, issued by one caller (`sequential`) or by
//!   many (`pipelined_64`: up to 64 in flight), first with no peer (the host on ractor
//!   alone), then with two peer processes (B, C) connected; with peers, the time from the
//!   end of each burst until the final value is visible on both is printed.
//!
//! `cargo bench -p dstate-ractor --bench replication`

#[path = "../src/bin/dstate-ractor-node/bench_states.rs"]
mod bench_states;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_states::{now_ns, BenchBlob, BenchBurst, BenchCounter, MARK};
use criterion::{Criterion, Throughput};
use dstate::{Node, NodeId, SimpleHandle, StateConfig, SyncStrategy};
use dstate_ractor::{RactorCluster, RactorRuntime};
use ractor::ActorRef;
use tokio::runtime::Runtime;

const COOKIE: &str = "dstate-bench";
const WAIT: Duration = Duration::from_secs(10);

/// A peer process; killed on drop.
struct Peer {
    child: Child,
    _stdin: ChildStdin,
    lines: Receiver<String>,
    address: String,
}

impl Peer {
    fn start(id: u64, seed: &str) -> Peer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dstate-ractor-node"))
            .args([
                "--bench-peer",
                "--node",
                &id.to_string(),
                "--cookie",
                COOKIE,
            ])
            .args(["--seed", seed])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bench peer");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take().expect("stdin");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Peer {
            child,
            _stdin: stdin,
            lines,
            address: String::new(),
        };
        let ready = peer.next(|l| l.starts_with("ready "));
        peer.address = ready
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string();
        peer
    }

    /// The next line matching `pred` (others are skipped).
    fn next(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("peer answered in time");
            if pred(&line) {
                return line;
            }
        }
    }

    /// Latency (ns) reported on a line `... <stamp> <latency>` for `stamp`.
    fn latency_of(&mut self, prefix: &str, stamp: u64) -> u64 {
        let stamp = format!(" {stamp} ");
        let line = self.next(|l| l.starts_with(prefix) && l.contains(&stamp));
        last_number(&line)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn last_number(line: &str) -> u64 {
    line.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Latencies of one benchmark, for percentiles.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn report(&mut self, name: &str) {
        self.0.sort_unstable();
        let at = |q: f64| {
            let index = ((self.0.len() as f64 - 1.0) * q).round() as usize;
            self.0.get(index).copied().unwrap_or(0) as f64 / 1000.0
        };
        println!(
            "{name}: n={} p50={:.1}us p99={:.1}us max={:.1}us",
            self.0.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}

struct Local {
    rt: Runtime,
    cluster: RactorCluster,
    node: Node<RactorRuntime>,
    counter: SimpleHandle<BenchCounter>,
    blob: SimpleHandle<BenchBlob>,
    burst: SimpleHandle<BenchBurst>,
}

fn start_local() -> Local {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (cluster, node, counter, blob, burst) = rt.block_on(async {
        let runtime = RactorRuntime::new();
        let cluster = RactorCluster::builder(NodeId(1), COOKIE)
            .start(&runtime)
            .await
            .expect("cluster");
        let transport: Arc<dyn dstate::Transport> = cluster.transport();
        let node = Node::builder(NodeId(1), runtime)
            .transport(transport)
            .start();
        cluster.attach_node(&node).await.expect("attach");
        let config = StateConfig::new(SyncStrategy::active_push());
        let counter = node
            .register::<BenchCounter>(config.clone())
            .await
            .expect("register");
        let blob = node
            .register::<BenchBlob>(config.clone())
            .await
            .expect("register");
        let burst = node.register::<BenchBurst>(config).await.expect("register");
        (cluster, node, counter, blob, burst)
    });
    Local {
        rt,
        cluster,
        node,
        counter,
        blob,
        burst,
    }
}

impl Local {
    fn wait_peers(&self, count: usize) {
        let deadline = Instant::now() + WAIT;
        while self.cluster.peers().len() < count {
            assert!(Instant::now() < deadline, "peers did not join");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn mutate_counter(&self, stamp: u64) {
        self.rt
            .block_on(self.counter.mutate(move |c| c.stamp_ns = stamp))
            .expect("mutate");
    }

    fn mutate_blob(&self, stamp: u64) {
        let blob = BenchBlob::stamped(stamp);
        self.rt
            .block_on(self.blob.mutate(move |b| *b = blob))
            .expect("mutate");
    }

    /// The raw echo actor of the peer, as seen through this process's ractor_cluster session.
    fn raw_target(&self) -> ActorRef<Vec<u8>> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(cell) = ractor::pg::get_members(&"dstate.bench.raw".to_string()).pop() {
                return cell.into();
            }
            assert!(Instant::now() < deadline, "raw actor not visible");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn latency(c: &mut Criterion, local: &Local, peer: &mut Peer) {
    let raw = local.raw_target();
    // Warm the path (views exist on both sides).
    let warm = now_ns();
    local.mutate_counter(warm);
    peer.latency_of("seen counter", warm);

    let mut group = c.benchmark_group("latency");
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));

    for (name, size) in [("u64", 8usize), ("16KiB", bench_states::BLOB_BYTES)] {
        let mut samples = Samples::default();
        group.bench_function(format!("raw_ractor_cluster_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stamp = now_ns();
                    let mut msg = vec![0x5a; size];
                    msg[..8].copy_from_slice(&stamp.to_le_bytes());
                    raw.cast(msg).expect("cast");
                    let line = peer.next(|l| l.starts_with("raw "));
                    let ns = last_number(&line);
                    samples.0.push(ns);
                    total += Duration::from_nanos(ns);
                }
                total
            })
        });
        samples.report(&format!("latency/raw_ractor_cluster_{name}"));

        let mut samples = Samples::default();
        group.bench_function(format!("dstate_mutation_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stamp = now_ns();
                    let ns = if size == 8 {
                        local.mutate_counter(stamp);
                        peer.latency_of("seen counter", stamp)
                    } else {
                        local.mutate_blob(stamp);
                        peer.latency_of("seen blob", stamp)
                    };
                    samples.0.push(ns);
                    total += Duration::from_nanos(ns);
                }
                total
            })
        });
        samples.report(&format!("latency/dstate_mutation_{name}"));
    }
    group.finish();
}

/// How the burst's mutations are issued.
#[derive(Clone, Copy)]
enum Issue {
    /// One caller awaiting each mutation before the next.
    Sequential,
    /// Many callers: up to this many mutations in flight.
    Pipelined(usize),
}

/// `count` mutations of the burst state, the last one marked and stamped; runs on a task of
/// the runtime (as application code would). Returns the final stamp.
fn burst(local: &Local, count: u64, issue: Issue, sequence: &mut u64) -> u64 {
    let handle = local.burst.clone();
    let first = *sequence;
    *sequence += count;
    let task = async move {
        match issue {
            Issue::Sequential => {
                for i in 1..count {
                    let value = first + i;
                    handle
                        .mutate(move |s| s.stamp_ns = value)
                        .await
                        .expect("mutate");
                }
            }
            Issue::Pipelined(depth) => {
                use futures::stream::{self, StreamExt as _};
                stream::iter(1..count)
                    .map(|i| {
                        let handle = handle.clone();
                        async move {
                            let value = first + i;
                            handle
                                .mutate(move |s| s.stamp_ns = value)
                                .await
                                .expect("mutate");
                        }
                    })
                    .buffer_unordered(depth)
                    .for_each(|()| async {})
                    .await;
            }
        }
        let last = now_ns();
        handle
            .mutate(move |s| s.stamp_ns = last | MARK)
            .await
            .expect("mutate");
        last
    };
    local.rt.block_on(local.rt.spawn(task)).expect("burst task")
}

fn throughput(c: &mut Criterion, local: &Local, peers: &mut [Peer], sequence: &mut u64) {
    const BURST: u64 = 20_000;
    let mut group = c.benchmark_group("throughput");
    group.throughput(Throughput::Elements(BURST));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.warm_up_time(Duration::from_secs(1));
    let label = if peers.is_empty() {
        "no_peers"
    } else {
        "2_peers"
    };
    for (name, issue) in [
        ("sequential", Issue::Sequential),
        ("pipelined_64", Issue::Pipelined(64)),
    ] {
        let mut arrivals = Samples::default();
        group.bench_function(format!("{name}_to_{label}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let last = burst(local, BURST, issue, sequence);
                    total += start.elapsed();
                    let end_ns = now_ns();
                    let mut worst = 0u64;
                    for peer in peers.iter_mut() {
                        let latency = peer.latency_of("seen burst", last);
                        // Arrival after the burst ended = stamp + latency - end.
                        worst = worst.max((last + latency).saturating_sub(end_ns));
                    }
                    arrivals.0.push(worst);
                }
                total
            })
        });
        if !peers.is_empty() {
            arrivals.report(&format!(
                "throughput/{name}_to_{label}: final value visible on both peers after the burst"
            ));
        }
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let local = start_local();
    let mut sequence = 0;
    // The host on ractor alone, for reference: nothing to replicate to.
    throughput(&mut c, &local, &mut [], &mut sequence);
    let address = local.cluster.local_addr().to_string();
    let mut b = Peer::start(2, &address);
    local.wait_peers(1);
    latency(&mut c, &local, &mut b);
    let mut peers = vec![b, Peer::start(3, &address)];
    local.wait_peers(2);
    throughput(&mut c, &local, &mut peers, &mut sequence);
    let Local {
        rt, cluster, node, ..
    } = local;
    rt.block_on(async {
        node.shutdown().await;
        cluster.shutdown().await;
    });
    drop(peers);
    c.final_summary();
}
