//! A cluster counter on kameo: every node counts its own increments (its shard), the
//! cluster total is the sum of all shards, read locally on every node.
//!
//! Three terminals:
//!
//! ```sh
//! cargo run -p dstate-examples --bin kameo_counter -- --node 1 --listen 127.0.0.1:7001
//! cargo run -p dstate-examples --bin kameo_counter -- --node 2 --seed 127.0.0.1:7001
//! cargo run -p dstate-examples --bin kameo_counter -- --node 3 --seed 127.0.0.1:7001
//! ```
//!
//! Or one command that starts three processes and checks they agree:
//! `cargo run -p dstate-examples --bin kameo_counter -- --cluster 3`.
//!
//! Options: `--key PASSPHRASE` (all nodes must share it), `--increments N` (default 10),
//! `--interval-ms MS` (default 200), `--expect-nodes N` (leave once all N nodes have seen the
//! total `N * increments`).

use std::collections::BTreeSet;
use std::time::Duration;

use dstate::{DeserializeError, DistributedState, StateConfig, SyncStrategy};
use dstate_examples::kameo_node::{exit, parse_value, run_local_cluster, start_node, KameoArgs};

/// One node's shard: its own count, and whether it has seen the expected cluster total.
#[derive(Clone, Debug, Default)]
struct Counter {
    value: u64,
    agreed: bool,
}

impl DistributedState for Counter {
    fn name() -> &'static str {
        "kameo_example_counter"
    }
    const WIRE_VERSION: u32 = 1;
    const STORAGE_VERSION: u32 = 1;

    fn serialize_state(&self) -> Vec<u8> {
        let mut bytes = self.value.to_le_bytes().to_vec();
        bytes.push(u8::from(self.agreed));
        bytes
    }

    fn deserialize_state(bytes: &[u8], _version: u32) -> Result<Self, DeserializeError> {
        let raw: [u8; 9] = bytes.try_into().map_err(DeserializeError::malformed_len)?;
        let mut value = [0u8; 8];
        value.copy_from_slice(&raw[..8]);
        Ok(Counter {
            value: u64::from_le_bytes(value),
            agreed: raw[8] != 0,
        })
    }
}

/// Periods a node keeps publishing after it is done, before it leaves.
const LINGER_PERIODS: u32 = 10;

const PROGRAM: &str = "kameo_counter";

/// This program's own options.
struct Options {
    /// `--increments N` (default 10).
    increments: u64,
    /// `--interval-ms MS` (default 200).
    interval: Duration,
}

fn parse_args() -> Result<(KameoArgs, Options), String> {
    let mut options = Options {
        increments: 10,
        interval: Duration::from_millis(200),
    };
    let args = KameoArgs::parse(std::env::args().skip(1), |flag, value| {
        match flag {
            "--increments" => options.increments = parse_value(flag, value)?,
            "--interval-ms" => options.interval = Duration::from_millis(parse_value(flag, value)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((args, options))
}

#[tokio::main]
async fn main() {
    let (args, options) = parse_args().unwrap_or_else(|err| exit(PROGRAM, 2, &err));
    let result = match args.cluster {
        Some(count) => run_cluster(&args, &options, count).await,
        None => run_node(&args, &options).await,
    };
    if let Err(err) = result {
        exit(PROGRAM, 1, &err);
    }
}

/// One node: count, print the cluster total, leave once everyone finished.
async fn run_node(args: &KameoArgs, options: &Options) -> Result<(), String> {
    let (cluster, node) = start_node(args.node, &args.key, args.listen, &args.seeds).await?;
    let counter = node
        .register::<Counter>(StateConfig::new(SyncStrategy::active_push()))
        .await
        .map_err(|e| e.to_string())?;

    let expected = args.expect_nodes.map(|n| n as u64 * options.increments);
    let mut agreed = BTreeSet::new();
    let mut ticks = tokio::time::interval(options.interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let (own, total, nodes) = counter.read(|views| {
            for view in views.iter().filter(|v| v.view.agreed) {
                agreed.insert(view.source);
            }
            let own = views.get(node.id()).map_or(0, |v| v.view.value);
            (
                own,
                views.iter().map(|v| v.view.value).sum::<u64>(),
                views.len(),
            )
        });
        println!(
            "node {}: own {own}, cluster total {total} over {nodes} nodes",
            args.node
        );
        if own < options.increments {
            counter
                .mutate(|c| c.value += 1)
                .await
                .map_err(|e| e.to_string())?;
        } else if Some(total) == expected && !agreed.contains(&node.id()) {
            counter
                .mutate(|c| c.agreed = true)
                .await
                .map_err(|e| e.to_string())?;
        }
        if args.expect_nodes.is_some_and(|n| agreed.len() >= n) {
            println!("node {}: every node saw the total {total}", args.node);
            break;
        }
    }
    // Stay a little before leaving: a peer that has not yet read this node's last change
    // would otherwise lose it with this node's views when it leaves.
    tokio::time::sleep(LINGER_PERIODS * options.interval).await;
    node.shutdown().await;
    cluster.shutdown().await;
    Ok(())
}

/// Starts `count` node processes of this program on 127.0.0.1 and waits until all agree.
async fn run_cluster(args: &KameoArgs, options: &Options, count: u64) -> Result<(), String> {
    let extra = vec![
        "--key".to_owned(),
        args.key.clone(),
        "--increments".to_owned(),
        options.increments.to_string(),
        "--interval-ms".to_owned(),
        options.interval.as_millis().to_string(),
    ];
    run_local_cluster(count, &extra).await?;
    println!(
        "all {count} nodes agreed on the total {}",
        count * options.increments
    );
    Ok(())
}
