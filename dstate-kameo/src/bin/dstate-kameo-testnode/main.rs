//! A cluster node driven over stdin/stdout, for dstate-kameo's multi-process tests.
//!
//! Not a user tool: the line protocol follows the tests. Common arguments:
//! `--node N --key HEX [--listen ADDR] [--seed ADDR]... [--advertise ADDR]
//! [--identity FILE] [--allow PEER]...`
//!
//! Without `--scenario` (frames mode, [`frames`]): output `READY <addr> <peer>`,
//! `JOINED <node> <incarnation>`, `LEFT <node> <graceful|disconnected>` and one answer per
//! command: `send <to> <count> <size>`, `received <from>`, `members`, `stats`,
//! `reconnect <node>`, `maxframe`, `shutdown`. `--incarnation N` fixes the incarnation.
//!
//! With `--scenario <push|feed|feed-only|periodic> --data-dir DIR` (scenario mode, [`scenario`]): a
//! dstate node speaking the core's process-scenario protocol
//! (`dstate::test_support::process`), with its shards persisted under `DIR` unless
//! `--no-persist`. Frames mode also takes `frame <to> <source> <value>`: a `TestState`
//! snapshot claiming `source`.
//!
//! With `--bench-echo` (bench mode, [`echo`]): a dstate node echoing node 1's bench states
//! and a raw kameo echo actor, for `benches/replication.rs`; runs until stdin closes.

mod bench_types;
mod echo;
mod frames;
mod scenario;

use std::net::SocketAddr;
use std::path::PathBuf;

use dstate::NodeId;
use dstate_kameo::{ClusterKey, KameoCluster, KameoRuntime, NodeIdentity, PeerIdentity};

/// Parsed command line.
#[derive(Default)]
pub(crate) struct Args {
    node: u64,
    key: String,
    listen: Option<SocketAddr>,
    seeds: Vec<SocketAddr>,
    advertise: Vec<SocketAddr>,
    pub(crate) incarnation: Option<u64>,
    identity: Option<PathBuf>,
    allow: Vec<String>,
    pub(crate) scenario: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) no_persist: bool,
    bench_echo: bool,
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
            "--scenario" => args.scenario = Some(value()?),
            "--data-dir" => args.data_dir = Some(PathBuf::from(value()?)),
            "--no-persist" => args.no_persist = true,
            "--bench-echo" => args.bench_echo = true,
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("testnode: tokio runtime: {err}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        if args.bench_echo {
            echo::run(args).await
        } else if args.scenario.is_some() {
            scenario::run(args).await
        } else {
            frames::run(args).await
        }
    });
    if let Err(err) = result {
        eprintln!("testnode: {err}");
        std::process::exit(1);
    }
}

/// Builds and starts the cluster node from the common arguments.
pub(crate) async fn start_cluster(
    args: &Args,
    runtime: &KameoRuntime,
) -> Result<KameoCluster, String> {
    let key = ClusterKey::from_hex(&args.key).map_err(|e| e.to_string())?;
    let mut builder = KameoCluster::builder(NodeId(args.node), key);
    if let Some(listen) = args.listen {
        builder = builder.listen(listen);
    }
    builder = builder.seeds(args.seeds.iter().copied());
    for addr in &args.advertise {
        builder = builder.advertise(*addr);
    }
    if let Some(path) = &args.identity {
        let identity = NodeIdentity::load_or_generate(path).map_err(|e| e.to_string())?;
        builder = builder.identity(identity);
    }
    if !args.allow.is_empty() {
        let peers: Result<Vec<PeerIdentity>, _> = args.allow.iter().map(|p| p.parse()).collect();
        builder = builder.allow_peers(peers.map_err(|e| e.to_string())?);
    }
    builder.start(runtime).await.map_err(|e| e.to_string())
}

/// Wall-clock milliseconds.
pub(crate) fn wall_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
