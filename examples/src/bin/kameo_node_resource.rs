//! Node resources on kameo: every node publishes its load and memory (read from `/proc`,
//! zeros elsewhere) with periodic sync, and prints the cluster table as it sees it.
//!
//! Three terminals:
//!
//! ```sh
//! cargo run -p dstate-examples --bin kameo_node_resource -- --node 1 --listen 127.0.0.1:7101
//! cargo run -p dstate-examples --bin kameo_node_resource -- --node 2 --seed 127.0.0.1:7101
//! cargo run -p dstate-examples --bin kameo_node_resource -- --node 3 --seed 127.0.0.1:7101
//! ```
//!
//! Or one command that starts three processes and checks every node sees every other:
//! `cargo run -p dstate-examples --bin kameo_node_resource -- --cluster 3`.
//!
//! Options: `--key PASSPHRASE` (all nodes must share it), `--period-ms MS` (default 500),
//! `--expect-nodes N` (leave once all N nodes hold a view of all N).

use std::collections::BTreeSet;
use std::time::Duration;

use dstate::{DeserializeError, DistributedState, StateConfig, SyncStrategy};
use dstate_examples::kameo_node::{exit, parse_value, run_local_cluster, start_node, KameoArgs};

/// What one node publishes about itself.
#[derive(Clone, Debug, Default, PartialEq)]
struct NodeResource {
    /// One-minute load average, in thousandths.
    load_milli: u64,
    /// Memory in use, KiB.
    mem_used_kib: u64,
    /// Memory installed, KiB.
    mem_total_kib: u64,
    /// This node holds a view of every expected node.
    complete: bool,
}

impl DistributedState for NodeResource {
    fn name() -> &'static str {
        "kameo_example_node_resource"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(25);
        for word in [self.load_milli, self.mem_used_kib, self.mem_total_kib] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.push(u8::from(self.complete));
        bytes
    }

    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
        let raw: [u8; 25] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&raw[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Ok(NodeResource {
            load_milli: word(0),
            mem_used_kib: word(1),
            mem_total_kib: word(2),
            complete: raw[24] != 0,
        })
    }
}

/// Periods a node keeps publishing after it is done, before it leaves.
const LINGER_PERIODS: u32 = 10;

const PROGRAM: &str = "kameo_node_resource";

#[tokio::main]
async fn main() {
    // This program's own option: `--period-ms MS` (default 500).
    let mut period = Duration::from_millis(500);
    let args = KameoArgs::parse(std::env::args().skip(1), |flag, value| {
        if flag != "--period-ms" {
            return Ok(false);
        }
        period = Duration::from_millis(parse_value(flag, value)?);
        Ok(true)
    })
    .unwrap_or_else(|err| exit(PROGRAM, 2, &err));
    let result = match args.cluster {
        Some(count) => run_cluster(&args, period, count).await,
        None => run_node(&args, period).await,
    };
    if let Err(err) = result {
        exit(PROGRAM, 1, &err);
    }
}

/// One node: publish own resources every period, print the table.
async fn run_node(args: &KameoArgs, period: Duration) -> Result<(), String> {
    let (cluster, node) = start_node(args.node, &args.key, args.listen, &args.seeds).await?;
    let resources = node
        .register::<NodeResource>(StateConfig::new(SyncStrategy::periodic_only(period)))
        .await
        .map_err(|e| e.to_string())?;

    let mut complete = BTreeSet::new();
    let mut ticks = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let (table, held) = resources.read(|views| {
            for view in views.iter().filter(|v| v.view.complete) {
                complete.insert(view.source);
            }
            let rows: Vec<String> = views
                .iter()
                .map(|v| {
                    format!(
                        "  {:>8} load {:>5.2}  mem {:>7} / {:>7} MiB  {:?}",
                        v.source.to_string(),
                        v.view.load_milli as f64 / 1000.0,
                        v.view.mem_used_kib / 1024,
                        v.view.mem_total_kib / 1024,
                        v.status
                    )
                })
                .collect();
            (rows.join("\n"), views.len())
        });
        println!("node {} sees {held} nodes:\n{table}", args.node);
        let mut now = sample();
        now.complete =
            args.expect_nodes.is_some_and(|n| held >= n) || complete.contains(&node.id());
        resources
            .mutate(move |r| *r = now)
            .await
            .map_err(|e| e.to_string())?;
        if args.expect_nodes.is_some_and(|n| complete.len() >= n) {
            println!(
                "node {}: every node holds every node's resources",
                args.node
            );
            break;
        }
    }
    // Stay a little before leaving: a peer that has not yet read this node's last change
    // would otherwise lose it with this node's views when it leaves.
    tokio::time::sleep(LINGER_PERIODS * period).await;
    node.shutdown().await;
    cluster.shutdown().await;
    Ok(())
}

/// This machine's load and memory, from `/proc` (zeros where it does not exist).
fn sample() -> NodeResource {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: f64 = loadavg
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total = field("MemTotal:");
    NodeResource {
        load_milli: (load * 1000.0) as u64,
        mem_used_kib: total.saturating_sub(field("MemAvailable:")),
        mem_total_kib: total,
        complete: false,
    }
}

/// Starts `count` node processes of this program on 127.0.0.1 and waits until all agree.
async fn run_cluster(args: &KameoArgs, period: Duration, count: u64) -> Result<(), String> {
    let extra = vec![
        "--key".to_owned(),
        args.key.clone(),
        "--period-ms".to_owned(),
        period.as_millis().to_string(),
    ];
    run_local_cluster(count, &extra).await?;
    println!("all {count} nodes saw every node's resources");
    Ok(())
}
