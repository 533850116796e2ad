//! A dstate-ractor cluster node driven by line commands on stdin, reporting on stdout.
//!
//! Used by the crate's multi-process tests (and handy for poking at a cluster by hand):
//!
//! ```text
//! dstate-ractor-node --node 1 --cookie secret [--listen 127.0.0.1:0] [--seed HOST:PORT]...
//! ```
//!
//! Output lines: `LISTENING <addr>`, `JOINED <node> <incarnation>`, `LEFT <node>`,
//! `FRAME <from> <len> <text>`, and one reply line per command. Commands:
//! `send <node> <text>`, `burst <node> <count> <bytes>`, `peers`, `stats`,
//! `reconnect <node>`, `flush`, `quit`. With `--spoof`, the process is instead a bare
//! ractor_cluster node holding the cookie that sends forged frames to every dstate endpoint
//! it sees (`spoof` command), for the rejection test.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dstate::{ActorRuntime as _, ClusterEvent, Incarnation, NodeId, Transport as _};
use dstate_ractor::{RactorCluster, RactorRuntime};
use tokio::io::{AsyncBufReadExt as _, BufReader};

mod spoof;

struct Args {
    node: NodeId,
    cookie: String,
    listen: SocketAddr,
    seeds: Vec<String>,
    advertise: Option<SocketAddr>,
    source: Option<std::net::IpAddr>,
    spoof: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        node: NodeId(0),
        cookie: String::new(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        seeds: Vec::new(),
        advertise: None,
        source: None,
        spoof: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--node" => args.node = NodeId(value()?.parse().map_err(|e| format!("--node: {e}"))?),
            "--cookie" => args.cookie = value()?,
            "--listen" => args.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--seed" => args.seeds.push(value()?),
            "--advertise" => {
                args.advertise = Some(value()?.parse().map_err(|e| format!("--advertise: {e}"))?)
            }
            "--source" => {
                args.source = Some(value()?.parse().map_err(|e| format!("--source: {e}"))?)
            }
            "--spoof" => args.spoof = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// One line to stdout, flushed (the parent reads line by line).
fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    // The parent went away: nothing left to report to.
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(2);
        }
    };
    if args.spoof {
        spoof::run(args.cookie, args.seeds).await;
        return;
    }
    let runtime = RactorRuntime::new();
    let mut events = runtime.cluster_events();
    let mut builder = RactorCluster::builder(args.node, args.cookie)
        .listen(args.listen)
        .seeds(args.seeds)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500));
    if let Some(address) = args.advertise {
        builder = builder.advertise(address);
    }
    if let Some(source) = args.source {
        builder = builder.outbound_source(source);
    }
    let cluster = match builder.start(&runtime).await {
        Ok(cluster) => cluster,
        Err(err) => {
            eprintln!("start failed: {err}");
            std::process::exit(1);
        }
    };
    let incarnation = Incarnation(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1),
    );
    let attached = cluster
        .attach(incarnation, |from, frame: Bytes| {
            say(format!(
                "FRAME {} {} {}",
                from.0,
                frame.len(),
                String::from_utf8_lossy(&frame[..frame.len().min(64)])
            ));
        })
        .await;
    if let Err(err) = attached {
        eprintln!("attach failed: {err}");
        std::process::exit(1);
    }
    say(format!("LISTENING {}", cluster.local_addr()));
    say(format!("INCARNATION {}", incarnation.0));
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ClusterEvent::NodeJoined { node, incarnation } => {
                    say(format!("JOINED {} {}", node.0, incarnation.0))
                }
                ClusterEvent::NodeLeft { node, reason } => {
                    say(format!("LEFT {} {reason:?}", node.0))
                }
                other => say(format!("EVENT {other:?}")),
            }
        }
    });

    let transport = cluster.transport();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["send", node, text @ ..] => {
                let Ok(node) = node.parse() else {
                    say("ERR bad node");
                    continue;
                };
                let frame = Bytes::from(text.join(" "));
                match transport.send(NodeId(node), frame) {
                    Ok(()) => say("SENT ok"),
                    Err(err) => say(format!("SENT err {err}")),
                }
            }
            ["burst", node, count, size] => {
                let (Ok(node), Ok(count), Ok(size)) =
                    (node.parse(), count.parse::<u64>(), size.parse::<usize>())
                else {
                    say("ERR bad burst");
                    continue;
                };
                let (mut sent, mut refused) = (0u64, 0u64);
                for i in 0..count {
                    let mut frame = format!("burst-{i}-").into_bytes();
                    frame.resize(size.max(frame.len()), b'.');
                    match transport.send(NodeId(node), Bytes::from(frame)) {
                        Ok(()) => sent += 1,
                        Err(_) => refused += 1,
                    }
                }
                say(format!("BURST sent={sent} refused={refused}"));
            }
            ["peers"] => {
                let peers: Vec<String> = cluster
                    .peers()
                    .iter()
                    .map(|p| format!("{}:{}:{}", p.node.0, p.incarnation.0, p.frames_in_flight))
                    .collect();
                say(format!("PEERS {}", peers.join(",")));
            }
            ["stats"] => {
                let s = cluster.stats();
                say(format!(
                    "STATS frames_sent={} frames_received={} backpressure={} rejected={} malformed={} dials={} dial_failures={} sessions={} joins={} leaves={}",
                    s.frames_sent,
                    s.frames_received,
                    s.backpressure,
                    s.rejected_unknown_token,
                    s.malformed,
                    s.dials,
                    s.dial_failures,
                    s.sessions_opened,
                    s.joins,
                    s.leaves
                ));
            }
            ["reconnect", node] => match node.parse() {
                Ok(node) => {
                    transport.reconnect(NodeId(node));
                    say("OK");
                }
                Err(_) => say("ERR bad node"),
            },
            ["flush"] => {
                let acked = cluster.flush(Duration::from_secs(5)).await;
                say(format!("FLUSHED {acked}"));
            }
            ["quit"] => break,
            _ => say(format!("ERR unknown command {line:?}")),
        }
    }
    cluster.shutdown().await;
    say("BYE");
}
