//! A dstate-ractor cluster node driven by line commands on stdin, reporting on stdout.
//!
//! Used by the crate's multi-process tests (and handy for poking at a cluster by hand):
//!
//! ```text
//! dstate-ractor-node [--scenario|--spoof] --node 1 --cookie secret [--listen 127.0.0.1:0]
//!     [--seed HOST:PORT]... [--advertise ADDR] [--source IP] [--strategy push|feed|periodic]
//!     [--data-dir DIR] [--tls CA.pem CERT.pem KEY.pem]
//! ```
//!
//! * default (transport mode): cluster membership and raw frames, no dstate engine.
//!   Output lines: `LISTENING <addr>`, `JOINED <node> <incarnation>`, `LEFT <node>`,
//!   `FRAME <from> <len> <text>`, and one reply line per command. Commands:
//!   `send <node> <text>`, `burst <node> <count> <bytes>`, `forge <node> <claimed-source>
//!   <value> <incarnation>` (a `TestState` snapshot frame), `peers`, `stats`,
//!   `reconnect <node>`, `flush`, `quit`.
//! * `--scenario`: a full dstate node with the core's test states, answering the core's
//!   process-cluster protocol (`dstate::test_support::process`); with `--data-dir DIR` its
//!   shards persist in the core's durable file store there.
//! * `--bench-peer`: the remote side of `benches/replication.rs` (reports one-way latencies).
//! * `--spoof`: a bare ractor_cluster node holding the cookie that sends forged frames to
//!   every dstate endpoint it sees (`spoof` command), for the rejection test.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dstate::NodeId;
use dstate_ractor::{RactorCluster, RactorClusterBuilder};

mod bench_peer;
mod bench_states;
mod scenario;
mod spoof;
mod tls;
mod transport_mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Transport,
    Scenario,
    Spoof,
    BenchPeer,
}

struct Args {
    mode: Mode,
    node: NodeId,
    cookie: String,
    listen: SocketAddr,
    seeds: Vec<String>,
    advertise: Option<SocketAddr>,
    source: Option<IpAddr>,
    strategy: String,
    data_dir: Option<std::path::PathBuf>,
    /// `--tls CA CERT KEY`: PEM files; peers are checked against the name `dstate.test`.
    tls: Option<[std::path::PathBuf; 3]>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mode: Mode::Transport,
        node: NodeId(0),
        cookie: String::new(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        seeds: Vec::new(),
        advertise: None,
        source: None,
        strategy: String::from("push"),
        data_dir: None,
        tls: None,
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
            "--strategy" => args.strategy = value()?,
            "--data-dir" => args.data_dir = Some(value()?.into()),
            "--tls" => args.tls = Some([value()?.into(), value()?.into(), value()?.into()]),
            "--scenario" => args.mode = Mode::Scenario,
            "--spoof" => args.mode = Mode::Spoof,
            "--bench-peer" => args.mode = Mode::BenchPeer,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// The cluster builder for `args`, with test-friendly fast redials.
fn builder(args: &Args) -> RactorClusterBuilder {
    let mut builder = RactorCluster::builder(args.node, args.cookie.clone())
        .listen(args.listen)
        .seeds(args.seeds.clone())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500));
    if let Some(address) = args.advertise {
        builder = builder.advertise(address);
    }
    if let Some(source) = args.source {
        builder = builder.outbound_source(source);
    }
    if let Some([ca, cert, key]) = &args.tls {
        match tls::settings(ca, cert, key, "dstate.test") {
            Ok(settings) => builder = builder.tls(settings),
            Err(err) => fail("tls", err),
        }
    }
    builder
}

/// One line to stdout, flushed (the parent reads line by line).
fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    // The parent went away: nothing left to report to.
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn fail(what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("{what}: {err}");
    std::process::exit(1);
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
    match args.mode {
        Mode::Transport => transport_mode::run(args).await,
        Mode::Scenario => scenario::run(args).await,
        Mode::Spoof => spoof::run(args.cookie, args.seeds).await,
        Mode::BenchPeer => bench_peer::run(args).await,
    }
}
