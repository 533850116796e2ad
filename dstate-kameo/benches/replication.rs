//! Replication over kameo between real processes, against raw kameo remote messages of the
//! same size in the same run.
//!
//! This process is node 1; nodes 2 and 3 are `dstate-kameo-testnode --bench-echo` children
//! that copy node 1's bench states into their own shards. A dstate round trip is: node 1
//! commits a mutation, node 2 sees it and commits the same value, node 1 sees that (two
//! replications). The raw baseline is a kameo `ask` to node 2's echo actor carrying the same
//! payload both ways, and a one-way acknowledged `tell` (`send_ack`).
//!
//! Mutation-to-visible latency is measured one way: node 1 stamps the value with the wall
//! clock (the same clock for every process of one machine), node 2 records the difference
//! when the view reaches it; the raw baseline is an acknowledged `tell` stamped the same
//! way. Besides criterion's round-trip report, the run prints p50/p90/p99 of every series
//! and the sustained rate (mutations committed one after the other on node 1 until both
//! peers hold the last one).

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

#[path = "../src/bin/dstate-kameo-testnode/bench_types.rs"]
mod bench_types;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dstate::{Node, NodeId, SimpleHandle, StateConfig, Subscription, SyncStrategy};
use dstate_kameo::{ClusterKey, KameoCluster, KameoRuntime};
use kameo::actor::RemoteActorRef;

use bench_types::{
    echo_name, wall_nanos, BenchEcho, BenchLarge, BenchSmall, Ping, Push, TakeSamples,
    SERIES_DSTATE_LARGE, SERIES_DSTATE_SMALL, SERIES_RAW_LARGE, SERIES_RAW_SMALL,
};

const LARGE_BYTES: usize = 16 * 1024;
/// Mutations per sustained-throughput sample.
const SUSTAINED_MUTATIONS: u64 = 20_000;
/// Round trips per percentile summary.
const SUMMARY_ROUNDS: usize = 1_000;

struct Setup {
    _cluster: KameoCluster,
    _node: Node<KameoRuntime>,
    small: SimpleHandle<BenchSmall>,
    large: SimpleHandle<BenchLarge>,
    small_events: Subscription<BenchSmall>,
    large_events: Subscription<BenchLarge>,
    echo: RemoteActorRef<BenchEcho>,
    seq: u64,
    _children: Children,
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // Already gone is fine.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Setup {
    async fn start() -> Setup {
        let key = ClusterKey::generate();
        let runtime = KameoRuntime::new();
        let cluster = KameoCluster::builder(NodeId(1), key.clone())
            .start(&runtime)
            .await
            .expect("start node 1");
        let node = Node::builder(NodeId(1), runtime.clone())
            .transport(cluster.transport())
            .start();
        cluster.join_node(&node).await.expect("join");
        let config = StateConfig::new(SyncStrategy::active_push());
        let small = node.register::<BenchSmall>(config.clone()).await.unwrap();
        let large = node.register::<BenchLarge>(config).await.unwrap();
        let mut children = Children(Vec::new());
        for id in [2u64, 3] {
            let mut child = Command::new(env!("CARGO_BIN_EXE_dstate-kameo-testnode"))
                .args([
                    "--node",
                    &id.to_string(),
                    "--key",
                    &key.to_hex(),
                    "--bench-echo",
                ])
                .args(["--seed", &cluster.local_addr().to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(if std::env::var_os("DSTATE_BENCH_STDERR").is_some() {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                })
                .spawn()
                .expect("start echo node");
            let stdout = child.stdout.take().expect("stdout");
            children.0.push(child);
            let mut lines = BufReader::new(stdout).lines();
            // `ready`, then `echo registered`.
            for _ in 0..2 {
                lines
                    .next()
                    .expect("echo node line")
                    .expect("echo node output");
            }
        }
        let echo = lookup_echo().await;
        let mut setup = Setup {
            small_events: small.subscribe(),
            large_events: large.subscribe(),
            small,
            large,
            echo,
            seq: 0,
            _cluster: cluster,
            _node: node,
            _children: children,
        };
        // Warm up both paths and wait until both peers echo.
        setup.small_round_trip().await;
        setup.large_round_trip().await;
        setup.sustained(100).await;
        setup
    }

    async fn small_round_trip(&mut self) -> Duration {
        self.seq += 1;
        let seq = self.seq;
        let start = Instant::now();
        let sent_at = wall_nanos();
        self.small
            .mutate(move |s| {
                s.seq = seq;
                s.sent_at = sent_at;
            })
            .await
            .unwrap();
        if !wait_echo(&self.small, &mut self.small_events, seq, |v| v.seq).await {
            let remote = self.echo.ask(&bench_types::Inspect).send().await;
            let views = self.small.read(|views| {
                views
                    .iter()
                    .map(|v| format!("{}={}@{}", v.source, v.view.seq, v.generation))
                    .collect::<Vec<_>>()
            });
            panic!("no echo of {seq}: node 1 holds {views:?}; node 2 says {remote:?}");
        }
        start.elapsed()
    }

    async fn large_round_trip(&mut self) -> Duration {
        self.seq += 1;
        let seq = self.seq;
        let start = Instant::now();
        self.large
            .mutate(move |s| {
                s.seq = seq;
                s.sent_at = wall_nanos();
                s.body = vec![(seq % 251) as u8; LARGE_BYTES];
            })
            .await
            .unwrap();
        assert!(
            wait_echo(&self.large, &mut self.large_events, seq, |v| v.seq).await,
            "no echo of {seq}"
        );
        start.elapsed()
    }

    async fn raw_ask(&mut self, bytes: usize) -> Duration {
        self.seq += 1;
        let ping = Ping {
            seq: self.seq,
            body: vec![7; bytes],
        };
        let start = Instant::now();
        let pong = self.echo.ask(&ping).send().await.expect("raw ask");
        let elapsed = start.elapsed();
        assert_eq!(pong.seq, ping.seq);
        elapsed
    }

    async fn raw_tell_ack(&mut self, bytes: usize) -> Duration {
        let mut push = Push {
            sent_at: 0,
            body: vec![7; bytes],
        };
        let start = Instant::now();
        push.sent_at = wall_nanos();
        self.echo.tell(&push).send_ack().await.expect("raw tell");
        start.elapsed()
    }

    /// The one-way samples node 2 recorded for `series` since the last call.
    async fn take_samples(&self, series: usize) -> Vec<Duration> {
        let nanos = self
            .echo
            .ask(&TakeSamples { series })
            .send()
            .await
            .expect("samples");
        nanos.into_iter().map(Duration::from_nanos).collect()
    }

    /// `count` mutations one after the other; done when both peers echo the last one.
    async fn sustained(&mut self, count: u64) -> Duration {
        let first = self.seq + 1;
        let last = self.seq + count;
        self.seq = last;
        let start = Instant::now();
        for seq in first..=last {
            self.small
                .mutate(move |s| {
                    s.seq = seq;
                    s.sent_at = 0;
                })
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let done = self.small.read(|views| {
                [2, 3]
                    .iter()
                    .all(|n| views.get(NodeId(*n)).is_some_and(|v| v.view.seq == last))
            });
            if done {
                break;
            }
            if Instant::now() >= deadline {
                let views = self.small.read(|views| {
                    views
                        .iter()
                        .map(|v| {
                            format!(
                                "{}={}@{}:{:?}",
                                v.source, v.view.seq, v.generation, v.status
                            )
                        })
                        .collect::<Vec<_>>()
                });
                let diagnostics = self.small.diagnostics().await;
                let remote = self.echo.ask(&bench_types::Inspect).send().await;
                println!("node 2 says: {remote:?}");
                panic!(
                    "peers never echoed {last}: views {views:?}\nstats {:?}\ndiagnostics {diagnostics:?}",
                    self._cluster.stats()
                );
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), self.small_events.recv()).await;
        }
        start.elapsed()
    }
}

/// Waits until node 2's view holds `seq`: from the change event (a `read` right after the
/// event may still show the previous view), or from the view itself (a lagging subscriber
/// may have lost the event).
async fn wait_echo<S: dstate::DistributedState>(
    handle: &SimpleHandle<S>,
    events: &mut Subscription<S>,
    seq: u64,
    seq_of: impl Fn(&S) -> u64,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if handle.read(|views| views.get(NodeId(2)).is_some_and(|v| seq_of(&v.view) >= seq)) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let Ok(Some(event)) = tokio::time::timeout(left, events.recv()).await else {
            continue;
        };
        if event.source == NodeId(2) && event.view.is_some_and(|v| seq_of(&v) >= seq) {
            return true;
        }
    }
}

async fn lookup_echo() -> RemoteActorRef<BenchEcho> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(echo)) = RemoteActorRef::<BenchEcho>::lookup(echo_name(2)).await {
            return echo;
        }
        assert!(Instant::now() < deadline, "echo actor not found");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<28} p50 {:>8.1?}  p90 {:>8.1?}  p99 {:>8.1?}  (n = {})",
        at(0.5),
        at(0.9),
        at(0.99),
        samples.len()
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut setup = rt.block_on(Setup::start());

    rt.block_on(async {
        for series in 0..4 {
            setup.take_samples(series).await; // drop the warm-up's samples
        }
        let mut small_rtt = Vec::new();
        let mut large_rtt = Vec::new();
        let mut ask_small = Vec::new();
        let mut ask_large = Vec::new();
        for _ in 0..SUMMARY_ROUNDS {
            small_rtt.push(setup.small_round_trip().await);
            ask_small.push(setup.raw_ask(8).await);
            large_rtt.push(setup.large_round_trip().await);
            ask_large.push(setup.raw_ask(LARGE_BYTES).await);
            setup.raw_tell_ack(8).await;
            setup.raw_tell_ack(LARGE_BYTES).await;
        }
        println!("\none way, node 1 -> node 2, measured on node 2 (same run, interleaved):");
        let series = [
            ("dstate mutation->visible u64", SERIES_DSTATE_SMALL),
            ("raw kameo tell (acked) 8 B", SERIES_RAW_SMALL),
            ("dstate mutation->visible 16K", SERIES_DSTATE_LARGE),
            ("raw kameo tell (acked) 16K", SERIES_RAW_LARGE),
        ];
        for (name, id) in series {
            percentiles(name, setup.take_samples(id).await);
        }
        println!("round trips measured on node 1:");
        percentiles("dstate u64 (2 replications)", small_rtt);
        percentiles("raw kameo ask 8 B", ask_small);
        percentiles("dstate 16 KiB (2 repl.)", large_rtt);
        percentiles("raw kameo ask 16 KiB", ask_large);
        for round in 0..3 {
            let elapsed = setup.sustained(SUSTAINED_MUTATIONS).await;
            println!(
                "sustained round {round}: {SUSTAINED_MUTATIONS} mutations to 2 peers in \
                 {elapsed:.2?} = {:.0}/s",
                SUSTAINED_MUTATIONS as f64 / elapsed.as_secs_f64()
            );
        }
        println!();
    });

    let mut group = c.benchmark_group("kameo_round_trip");
    group.bench_function("dstate_u64", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += setup.small_round_trip().await;
                }
                total
            })
        })
    });
    group.bench_function("raw_ask_8B", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += setup.raw_ask(8).await;
                }
                total
            })
        })
    });
    group.bench_function("dstate_16KiB", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += setup.large_round_trip().await;
                }
                total
            })
        })
    });
    group.bench_function("raw_ask_16KiB", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += setup.raw_ask(LARGE_BYTES).await;
                }
                total
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("kameo_sustained");
    group.throughput(Throughput::Elements(SUSTAINED_MUTATIONS));
    group.sample_size(10);
    group.bench_function("mutations_to_2_peers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += setup.sustained(SUSTAINED_MUTATIONS).await;
                }
                total
            })
        })
    });
    group.finish();
    drop(setup);
}

criterion_group!(benches, bench);
criterion_main!(benches);
