//! Durable saves per second with 1, 8 and 64 concurrent callers for 100 B and 64 KB states,
//! beside a naive "write + fdatasync per save" baseline and the raw fdatasync latency of the
//! same disk, plus the recovery time of a 100 MB shard.
//!
//! `cargo bench -p dstate --bench durable` (about three minutes). After the criterion groups,
//! two passes print figures measured outside criterion, interleaving the durable store with
//! its baseline so that both see the same disk: saves/s against the naive baseline, and
//! 1-caller latency percentiles against raw append + fdatasync.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use dstate::{Age, DurablePersistence, Incarnation, PersistedShard, StatePersistence};

const SIZES: [(&str, usize); 2] = [("100B", 100), ("64KB", 64 << 10)];
const CALLERS: [usize; 3] = [1, 8, 64];

fn shard(len: usize) -> PersistedShard {
    PersistedShard {
        incarnation: Incarnation(1),
        age: Age(0),
        storage_version: 1,
        state: (0..len).map(|i| i as u8).collect(),
    }
}

/// `iters` saves spread over `callers` concurrent tasks, each saving its own state.
fn durable_run(
    runtime: &tokio::runtime::Runtime,
    store: &Arc<DurablePersistence>,
    callers: usize,
    len: usize,
    iters: u64,
) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|caller| {
                let share =
                    iters / callers as u64 + u64::from((caller as u64) < iters % callers as u64);
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    let name = format!("state-{caller}");
                    let mut value = shard(len);
                    for _ in 0..share {
                        value.age = value.age.next();
                        store.save(&name, &value).await.expect("save");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        start.elapsed()
    })
}

/// The naive baseline: one log file behind a mutex, each save appended and synced alone.
fn naive_run(file: &Arc<Mutex<File>>, callers: usize, len: usize, iters: u64) -> Duration {
    let record = vec![7u8; len + 54];
    let barrier = Arc::new(Barrier::new(callers + 1));
    let threads: Vec<_> = (0..callers)
        .map(|caller| {
            let share =
                iters / callers as u64 + u64::from((caller as u64) < iters % callers as u64);
            let (file, barrier, record) = (Arc::clone(file), Arc::clone(&barrier), record.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..share {
                    let mut file = file.lock().expect("lock");
                    file.write_all(&record).expect("write");
                    file.sync_data().expect("sync");
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for thread in threads {
        thread.join().expect("thread");
    }
    let elapsed = start.elapsed();
    // Keep the file bounded, but rarely: a truncation makes the next syncs costlier.
    let file = file.lock().expect("lock");
    if file.metadata().expect("metadata").len() > 256 << 20 {
        file.set_len(0).expect("reset");
    }
    elapsed
}

fn open_log(dir: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("naive.log"))
        .expect("open naive log")
}

/// Whether a benchmark named `name` passes the command-line filter (substrings separated by
/// `|`, a subset of criterion's regular expressions), so that setup is skipped when not.
fn wanted(filters: &[String], name: &str) -> bool {
    filters.is_empty()
        || filters
            .iter()
            .flat_map(|f| f.split('|'))
            .any(|f| name.contains(f))
}

fn saves(c: &mut Criterion, filters: &[String]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    for (label, len) in SIZES {
        let mut group = c.benchmark_group(format!("saves_{label}"));
        group
            .throughput(Throughput::Elements(1))
            .sample_size(15)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for callers in CALLERS {
            if !wanted(filters, &format!("saves_{label}/durable/{callers}"))
                && !wanted(filters, &format!("saves_{label}/naive/{callers}"))
            {
                continue;
            }
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Arc::new(DurablePersistence::open(dir.path()).expect("open"));
            group.bench_function(BenchmarkId::new("durable", callers), |b| {
                b.iter_custom(|iters| durable_run(&runtime, &store, callers, len, iters))
            });
            drop(store);
            let file = Arc::new(Mutex::new(open_log(dir.path())));
            group.bench_function(BenchmarkId::new("naive", callers), |b| {
                b.iter_custom(|iters| naive_run(&file, callers, len, iters))
            });
        }
        group.finish();
    }
}

fn raw_fsync(c: &mut Criterion, filters: &[String]) {
    if !wanted(filters, "raw_fdatasync/append_100B")
        && !wanted(filters, "raw_fdatasync/overwrite_4KB")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("raw_fdatasync");
    group
        .sample_size(15)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let mut append = open_log(dir.path());
    group.bench_function("append_100B", |b| {
        b.iter(|| {
            append.write_all(&[1u8; 100]).expect("write");
            append.sync_data().expect("sync");
        })
    });
    let overwrite = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.path().join("overwrite"))
        .expect("open");
    overwrite.set_len(4096).expect("size");
    overwrite.sync_all().expect("sync");
    group.bench_function("overwrite_4KB", |b| {
        b.iter(|| {
            overwrite.write_all_at(&[2u8; 4096], 0).expect("write");
            overwrite.sync_data().expect("sync");
        })
    });
    group.finish();
}

fn recovery(c: &mut Criterion, filters: &[String]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("recovery_100MB");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    // One copy in the log (with a warm and a cold page cache); two copies (the most the log
    // holds before compaction with one such state); and the copy in a snapshot after
    // compaction.
    let cases = [
        ("log_1_copy", 1, false, false),
        ("log_1_copy_cold_cache", 1, false, true),
        ("log_2_copies", 2, false, false),
        ("snapshot", 1, true, false),
    ];
    for (label, copies, compact, cold) in cases {
        if !wanted(filters, &format!("recovery_100MB/{label}")) {
            continue;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut value = shard(100 << 20);
        {
            let store = DurablePersistence::open(dir.path()).expect("open");
            for _ in 0..copies {
                value.age = value.age.next();
                runtime.block_on(store.save("big", &value)).expect("save");
            }
            if compact {
                runtime.block_on(store.compact()).expect("compact");
            }
        }
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if cold {
                        evict_from_page_cache(dir.path());
                    }
                    let start = Instant::now();
                    let store = DurablePersistence::open(dir.path()).expect("open");
                    let loaded = runtime.block_on(store.load("big")).expect("load");
                    total += start.elapsed();
                    assert_eq!(loaded.map(|s| s.state.len()), Some(100 << 20));
                    drop(store);
                }
                total
            })
        });
    }
    group.finish();
}

/// Drop the (clean) pages of every file in `dir` from the page cache, so that the next read
/// comes from the disk. Affects only these files.
fn evict_from_page_cache(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list") {
        let file = File::open(entry.expect("entry").path()).expect("open");
        file.sync_all().expect("sync");
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
    }
}

/// p50/p90/p99 of single-caller durable saves against raw append + fdatasync of the same
/// size, outside criterion. The two are interleaved sample by sample, so that both see the same
/// disk: on a shared machine fdatasync latency drifts by an order of magnitude over seconds.
fn latency_percentiles(samples: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = DurablePersistence::open(dir.path()).expect("open");
    let mut raw = open_log(dir.path());
    for (label, len) in SIZES {
        let mut value = shard(len);
        let record = vec![3u8; len + 54];
        let mut durable = Vec::with_capacity(samples);
        let mut naive = Vec::with_capacity(samples);
        for _ in 0..samples {
            value.age = value.age.next();
            let start = Instant::now();
            runtime.block_on(store.save("one", &value)).expect("save");
            durable.push(start.elapsed());
            let start = Instant::now();
            raw.write_all(&record).expect("write");
            raw.sync_data().expect("sync");
            naive.push(start.elapsed());
        }
        let d = percentiles(durable);
        let n = percentiles(naive);
        println!(
            "latency {label:>4} durable 1 caller p50 {:>7.1} us p90 {:>7.1} us p99 {:>7.1} us | \
             raw append+fdatasync p50 {:>7.1} us p90 {:>7.1} us p99 {:>7.1} us | p50 ratio {:.2}",
            d[0],
            d[1],
            d[2],
            n[0],
            n[1],
            n[2],
            d[0] / n[0]
        );
    }
}

/// p50, p90 and p99 in microseconds.
fn percentiles(mut samples: Vec<Duration>) -> [f64; 3] {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    [at(0.5), at(0.9), at(0.99)]
}

/// Saves/s of the durable store and of the naive baseline, measured in alternating slices of
/// `slice` each, `rounds` times; prints the medians and their ratio.
fn interleaved_throughput(rounds: usize, slice: Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    for (label, len) in SIZES {
        for callers in CALLERS {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Arc::new(DurablePersistence::open(dir.path()).expect("open"));
            let file = Arc::new(Mutex::new(open_log(dir.path())));
            let chunk = (callers * 4) as u64;
            let rate = |run: &dyn Fn(u64) -> Duration| {
                let (mut spent, mut done) = (Duration::ZERO, 0u64);
                while spent < slice {
                    spent += run(chunk);
                    done += chunk;
                }
                done as f64 / spent.as_secs_f64()
            };
            let mut durable = Vec::with_capacity(rounds);
            let mut naive = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                durable.push(rate(&|n| durable_run(&runtime, &store, callers, len, n)));
                naive.push(rate(&|n| naive_run(&file, callers, len, n)));
            }
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (d, n) = (median(durable), median(naive));
            println!(
                "interleaved {label:>4} {callers:>2} callers: durable {d:>9.0} saves/s, \
                 naive {n:>8.0} saves/s, ratio {:.1}",
                d / n
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--test" || a == "--list");
    let filters: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let mut criterion = Criterion::default().configure_from_args();
    saves(&mut criterion, &filters);
    raw_fsync(&mut criterion, &filters);
    recovery(&mut criterion, &filters);
    criterion.final_summary();
    let listing = args.iter().any(|a| a == "--list");
    if !listing && wanted(&filters, "interleaved_throughput") {
        let (rounds, slice) = if quick {
            (1, Duration::from_nanos(1))
        } else {
            (21, Duration::from_millis(50))
        };
        interleaved_throughput(rounds, slice);
    }
    if !listing && wanted(&filters, "latency_percentiles") {
        latency_percentiles(if quick { 10 } else { 1000 });
    }
}
