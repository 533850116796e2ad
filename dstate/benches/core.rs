//! Core benchmarks: local query vs plain shared maps, engine mutation cost, frame size and
//! codec cost, change-feed message rate vs active push.
//!
//! Run with `cargo bench -p dstate --bench core`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use dstate::engine::{Engine, EngineLimits, Start};
use dstate::feed::ChangeFeed;
use dstate::test_support::{InMemoryNetwork, TestRuntime};
use dstate::wire::{self, Frame, FrameKind};
use dstate::{
    Age, ClusterEvent, DeserializeError, DistributedState, Generation, Incarnation, Node, NodeId,
    Simple, StateConfig, SyncStrategy,
};

#[derive(Clone, Debug, Default)]
struct Counter {
    value: u64,
}

impl DistributedState for Counter {
    fn name() -> &'static str {
        "counter"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;
    fn serialize_state(&self) -> Vec<u8> {
        self.value.to_le_bytes().to_vec()
    }
    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
        let raw: [u8; 8] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
        Ok(Counter {
            value: u64::from_le_bytes(raw),
        })
    }
}

fn counter_snapshot(source: u64, value: u64) -> bytes::Bytes {
    wire::encode(&snapshot_frame(source, 1, value), usize::MAX).expect("encodes")
}

/// A snapshot of `source`'s counter at age `age`.
fn snapshot_frame(source: u64, age: u64, value: u64) -> Frame {
    Frame {
        kind: FrameKind::Snapshot { ack: false },
        state: "counter".into(),
        source: NodeId(source),
        generation: Generation::new(Incarnation(1), Age(age)),
        payload_version: 1,
        payload: value.to_le_bytes().to_vec(),
    }
}

/// A node whose counter handle holds `peers` peer views plus its own.
fn node_with_peers(rt: &tokio::runtime::Runtime, peers: u64) -> dstate::SimpleHandle<Counter> {
    rt.block_on(async {
        let runtime = TestRuntime::new();
        let network = InMemoryNetwork::new();
        let node = Node::builder(NodeId(0), runtime.clone())
            .transport(network.transport(NodeId(0)))
            .start();
        let handle = node
            .register::<Counter>(StateConfig::new(SyncStrategy::active_push()))
            .await
            .unwrap();
        let inbound = node.inbound();
        for peer in 1..=peers {
            runtime.emit(ClusterEvent::NodeJoined {
                node: NodeId(peer),
                incarnation: Incarnation(1),
            });
            inbound.deliver(NodeId(peer), counter_snapshot(peer, peer));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while handle.read(|v| v.len() as u64) < peers + 1 {
            assert!(Instant::now() < deadline, "views did not arrive");
            tokio::task::yield_now().await;
        }
        std::mem::forget(node); // keep the node's actors alive for the benchmark's lifetime
        handle
    })
}

fn query(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("query_sum_u64");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    // Peer views; every map also holds the node's own entry, so all hold `peers + 1`.
    for peers in [1u64, 16, 128] {
        let handle = node_with_peers(&rt, peers);
        let plain: HashMap<NodeId, u64> = (0..=peers).map(|n| (NodeId(n), n)).collect();
        let arc_swap = Arc::new(ArcSwap::from_pointee(plain.clone()));
        let rw_lock = Arc::new(RwLock::new(plain));
        let bound = Duration::from_secs(3600);
        for threads in [1usize, 2] {
            let id = |name: &str| BenchmarkId::new(format!("{name}/{threads}t"), peers);
            // `query` is async: measured the way an application calls it, awaited in a loop
            // inside one async task per thread (views fresh, so it never waits).
            group.bench_function(id("dstate_query"), |b| {
                b.iter_custom(|iters| {
                    parallel_async(threads, iters, || async {
                        let result = handle
                            .query(bound, |v| v.values().map(|c| c.value).sum::<u64>())
                            .await;
                        black_box(result.ok().map(|r| r.value));
                    })
                })
            });
            group.bench_function(id("dstate_try_query"), |b| {
                b.iter_custom(|iters| {
                    parallel(threads, iters, || {
                        black_box(
                            handle
                                .try_query(bound, |v| v.values().map(|c| c.value).sum::<u64>())
                                .ok(),
                        );
                    })
                })
            });
            group.bench_function(id("arc_swap_hashmap"), |b| {
                b.iter_custom(|iters| {
                    parallel(threads, iters, || {
                        black_box(arc_swap.load().values().sum::<u64>());
                    })
                })
            });
            group.bench_function(id("rwlock_hashmap"), |b| {
                b.iter_custom(|iters| {
                    parallel(threads, iters, || {
                        black_box(rw_lock.read().map(|m| m.values().sum::<u64>()).unwrap_or(0));
                    })
                })
            });
        }
    }
    group.finish();
}

/// Run `op` `iters` times on each of `threads` threads; the time per op of one thread.
fn parallel(threads: usize, iters: u64, op: impl Fn() + Sync) -> Duration {
    on_threads(threads, || {
        for _ in 0..iters {
            op();
        }
    })
}

/// Await `op()` `iters` times in one task on each of `threads` threads; the time per op.
fn parallel_async<F: Future<Output = ()>>(
    threads: usize,
    iters: u64,
    op: impl Fn() -> F + Sync,
) -> Duration {
    on_threads(threads, || {
        futures::executor::block_on(async {
            for _ in 0..iters {
                op().await;
            }
        })
    })
}

/// Run `work` once on each of `threads` threads; the wall time until all finished.
fn on_threads(threads: usize, work: impl Fn() + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(&work);
        }
    });
    start.elapsed()
}

/// Node 0's engine for the counter, active push, view events off (the host's setting when
/// nobody subscribed).
fn counter_engine(now: Instant) -> Engine<Simple<Counter>, ()> {
    let start = Start {
        state: Counter::default(),
        generation: Generation::new(Incarnation(1), Age(0)),
        persistent: false,
    };
    let config = StateConfig::new(SyncStrategy::active_push());
    let mut engine = Engine::new(NodeId(0), config, EngineLimits::default(), start, now);
    engine.set_view_events(false);
    engine
}

fn engine_mutation(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_mutation_active_push");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for peers in [1u64, 4] {
        let now = Instant::now();
        let mut engine = counter_engine(now);
        for peer in 1..=peers {
            engine.handle_peer_up(now, NodeId(peer), Incarnation(1));
        }
        while engine.poll_transmit().is_some() {}
        while engine.poll_event().is_some() {}
        group.bench_function(BenchmarkId::new("u64_counter", peers), |b| {
            b.iter(|| {
                engine.handle_mutation(now, |c: &mut Counter| {
                    c.value += 1;
                    (Arc::new(c.clone()), ())
                });
                while let Some(t) = engine.poll_transmit() {
                    black_box(t);
                }
                while let Some(e) = engine.poll_event() {
                    black_box(e);
                }
            })
        });
    }
    group.finish();
}

/// An inbound change from one of `peers` peers, applied and published: the receive path
/// plus the copy-on-write of the view map a reader still holds (what the host does per
/// frame). Shows how the per-frame cost grows with the cluster.
fn engine_receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_receive_and_publish");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for peers in [1u64, 16, 128] {
        let now = Instant::now();
        let mut engine = counter_engine(now);
        for peer in 1..=peers {
            engine.handle_peer_up(now, NodeId(peer), Incarnation(1));
            engine.handle_frame(now, NodeId(peer), snapshot_frame(peer, 1, peer));
        }
        while engine.poll_transmit().is_some() {}
        while engine.poll_event().is_some() {}
        let mut published = engine.views();
        let mut age = 1;
        group.bench_function(BenchmarkId::new("u64_counter", peers), |b| {
            b.iter(|| {
                age += 1;
                let from = 1 + age % peers;
                engine.handle_frame(now, NodeId(from), snapshot_frame(from, age, age));
                while let Some(t) = engine.poll_transmit() {
                    black_box(t);
                }
                // Readers hold the previous map, so publishing copies it.
                published = engine.views();
                black_box(&published);
            })
        });
    }
    group.finish();
}

fn frame_codec(c: &mut Criterion) {
    let frame = Frame {
        kind: FrameKind::Snapshot { ack: false },
        state: "counter".into(),
        source: NodeId(3),
        generation: Generation::new(Incarnation(1_763_700_000_000), Age(123_456)),
        payload_version: 1,
        payload: u64::MAX.to_le_bytes().to_vec(),
    };
    let bytes = wire::encode(&frame, usize::MAX).expect("encodes");
    println!(
        "u64 counter frame: {} bytes including the 4-byte checksum",
        bytes.len()
    );
    c.bench_function("frame_u64_encode_decode", |b| {
        b.iter(|| {
            let encoded = wire::encode(black_box(&frame), usize::MAX).expect("encodes");
            black_box(wire::decode(&encoded, usize::MAX).expect("decodes"))
        })
    });
}

fn change_feed(c: &mut Criterion) {
    // 10 state types x 100 mutations/s each, 100 ms batches, for 10 simulated seconds.
    let names: [&'static str; 10] = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"];
    let simulate = || {
        let start = Instant::now();
        let mut feed = ChangeFeed::new(NodeId(0), Duration::from_millis(100));
        let mut messages = 0u64;
        for tick in 0..1000u64 {
            let now = start + Duration::from_millis(tick * 10);
            feed.handle_timeout(now);
            while feed.poll_batch().is_some() {
                messages += 1;
            }
            for name in names {
                feed.handle_notice(now, name, Generation::new(Incarnation(1), Age(tick + 1)));
            }
        }
        messages
    };
    let feed_per_second = simulate() as f64 / 10.0;
    let push_per_second = 10.0 * 100.0;
    println!(
        "change feed: {feed_per_second:.1} messages/s per peer vs active push {push_per_second:.0} \
         (ratio {:.0}x fewer)",
        push_per_second / feed_per_second
    );
    c.bench_function("change_feed_10_states_10s", |b| {
        b.iter(|| black_box(simulate()))
    });
}

criterion_group!(
    benches,
    query,
    engine_mutation,
    engine_receive,
    frame_codec,
    change_feed
);
criterion_main!(benches);
