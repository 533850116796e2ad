//! A cluster node driven over stdin/stdout, for dstate-kameo's multi-process tests.
//!
//! Not a user tool: the line protocol may change with the tests. Arguments:
//! `--node N --key HEX [--listen ADDR] [--seed ADDR]... [--advertise ADDR]
//! [--incarnation N] [--identity FILE] [--allow PEER]...`
//!
//! Output lines: `READY <addr> <peer>`, `JOINED <node> <incarnation>`,
//! `LEFT <node> <graceful|disconnected>`, and one answer line per command.
//! Commands: `send <to> <count> <size>`, `received <from>`, `members`, `stats`,
//! `reconnect <node>`, `shutdown`.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dstate::{ActorRuntime, ClusterEvent, Incarnation, LeaveReason, NodeId, Transport};
use dstate_kameo::{ClusterKey, KameoCluster, KameoRuntime, NodeIdentity, PeerIdentity};

#[derive(Default)]
struct Args {
    node: u64,
    key: String,
    listen: Option<SocketAddr>,
    seeds: Vec<SocketAddr>,
    advertise: Vec<SocketAddr>,
    incarnation: Option<u64>,
    identity: Option<PathBuf>,
    allow: Vec<String>,
}

/// Frames received from one peer: count, how many came in sequence order, bytes.
#[derive(Default, Clone, Copy)]
struct Received {
    count: u64,
    in_order: u64,
    bytes: u64,
    next: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--node" => args.node = value()?.parse().map_err(|e| format!("--node: {e}"))?,
            "--key" => args.key = value()?,
            "--listen" => {
                args.listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?)
            }
            "--seed" => args
                .seeds
                .push(value()?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--advertise" => args
                .advertise
                .push(value()?.parse().map_err(|e| format!("--advertise: {e}"))?),
            "--incarnation" => {
                args.incarnation = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--incarnation: {e}"))?,
                )
            }
            "--identity" => args.identity = Some(PathBuf::from(value()?)),
            "--allow" => args.allow.push(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("testnode: {err}");
            std::process::exit(2);
        }
    };
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(err) = runtime.block_on(run(args)) {
        eprintln!("testnode: {err}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let key = ClusterKey::from_hex(&args.key).map_err(|e| e.to_string())?;
    let runtime = KameoRuntime::new();
    let mut builder = KameoCluster::builder(NodeId(args.node), key);
    if let Some(listen) = args.listen {
        builder = builder.listen(listen);
    }
    builder = builder.seeds(args.seeds.iter().copied());
    for addr in &args.advertise {
        builder = builder.advertise(*addr);
    }
    if let Some(path) = &args.identity {
        builder =
            builder.identity(NodeIdentity::load_or_generate(path).map_err(|e| e.to_string())?);
    }
    if !args.allow.is_empty() {
        let peers: Result<Vec<PeerIdentity>, _> = args.allow.iter().map(|p| p.parse()).collect();
        builder = builder.allow_peers(peers.map_err(|e| e.to_string())?);
    }
    let cluster = builder.start(&runtime).await.map_err(|e| e.to_string())?;
    println!("READY {} {}", cluster.local_addr(), cluster.peer_identity());

    let mut events = runtime.cluster_events();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ClusterEvent::NodeJoined { node, incarnation } => {
                    println!("JOINED {} {}", node.0, incarnation.0)
                }
                ClusterEvent::NodeLeft { node, reason } => {
                    let reason = if reason == LeaveReason::Graceful {
                        "graceful"
                    } else {
                        "disconnected"
                    };
                    println!("LEFT {} {reason}", node.0)
                }
                _ => {}
            }
        }
    });

    let received: Arc<Mutex<HashMap<NodeId, Received>>> = Arc::default();
    let sink_received = received.clone();
    let sink = move |from: NodeId, frame: Bytes| {
        let mut map = sink_received.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(from).or_default();
        entry.count += 1;
        entry.bytes += frame.len() as u64;
        let seq = frame
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes);
        if seq == Some(entry.next) {
            entry.in_order += 1;
        }
        if let Some(seq) = seq {
            entry.next = seq + 1;
        }
    };
    let incarnation = Incarnation(args.incarnation.unwrap_or_else(wall_millis));
    cluster
        .join(incarnation, sink)
        .await
        .map_err(|e| e.to_string())?;

    let (line_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let transport = cluster.transport();
    let mut next_seq: HashMap<u64, u64> = HashMap::new();
    while let Some(line) = lines.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["send", to, count, size] => {
                let (to, count, size): (u64, u64, usize) = (
                    to.parse().unwrap_or(0),
                    count.parse().unwrap_or(0),
                    size.parse().unwrap_or(8),
                );
                let (mut ok, mut refused, mut last_err) = (0u64, 0u64, String::new());
                let seq = next_seq.entry(to).or_insert(0);
                for _ in 0..count {
                    let mut frame = vec![0u8; size.max(8)];
                    frame[..8].copy_from_slice(&seq.to_be_bytes());
                    match transport.send(NodeId(to), Bytes::from(frame)) {
                        Ok(()) => {
                            ok += 1;
                            *seq += 1;
                        }
                        Err(err) => {
                            refused += 1;
                            last_err = err.to_string();
                        }
                    }
                }
                println!("SENT {ok} {refused} {last_err}");
            }
            ["received", from] => {
                let from = NodeId(from.parse().unwrap_or(0));
                let r = received
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&from)
                    .copied()
                    .unwrap_or_default();
                println!("RECEIVED {} {} {} {}", from.0, r.count, r.in_order, r.bytes);
            }
            ["members"] => {
                let members = cluster.members().await.unwrap_or_default();
                let list: Vec<String> = members.iter().map(|n| n.0.to_string()).collect();
                println!("MEMBERS {}", list.join(","));
            }
            ["stats"] => println!("STATS {:?}", cluster.stats()),
            ["reconnect", node] => {
                transport.reconnect(NodeId(node.parse().unwrap_or(0)));
                println!("OK");
            }
            ["maxframe"] => println!("MAXFRAME {}", transport.max_frame_bytes()),
            ["shutdown"] => {
                cluster.shutdown().await;
                println!("BYE");
                return Ok(());
            }
            _ => println!("ERR unknown command {line:?}"),
        }
    }
    Ok(())
}

fn wall_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// Keep the runtime trait in scope for `cluster_events`.
const _: fn(&KameoRuntime) = |r| drop(r.cluster_events());
