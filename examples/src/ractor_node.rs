//! Starting a dstate node on ractor from command-line arguments, and stopping it cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dstate::{Node, NodeId};
use dstate_ractor::{RactorCluster, RactorRuntime};

/// Common options of the ractor example binaries.
#[derive(Debug, Clone)]
pub struct NodeArgs {
    /// `--node N`: the dstate node id.
    pub node: NodeId,
    /// `--listen ADDR`: where to accept peers (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// `--seed ADDR` (repeatable): peers to dial.
    pub seeds: Vec<String>,
    /// `--cookie C`: shared secret of the cluster (default `dstate-example`).
    pub cookie: String,
    /// `--for SECS`: stop by itself after this long (default: run until Ctrl-C).
    pub run_for: Option<Duration>,
    /// `--period MS`: how often to publish and print (default 1000).
    pub period: Duration,
    /// `--stdin`: also stop on `quit` or end of stdin (how the demo controls its nodes).
    pub stdin_control: bool,
}

impl NodeArgs {
    /// Parse the arguments after the program name; unknown flags are returned.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
    ) -> Result<(NodeArgs, Vec<String>), String> {
        let mut parsed = NodeArgs {
            node: NodeId(1),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seeds: Vec::new(),
            cookie: String::from("dstate-example"),
            run_for: None,
            period: Duration::from_secs(1),
            stdin_control: false,
        };
        let mut rest = Vec::new();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--node" => {
                    parsed.node = NodeId(value()?.parse().map_err(|e| format!("--node: {e}"))?)
                }
                "--listen" => {
                    parsed.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?
                }
                "--seed" => parsed.seeds.push(value()?),
                "--cookie" => parsed.cookie = value()?,
                "--for" => {
                    let secs: f64 = value()?.parse().map_err(|e| format!("--for: {e}"))?;
                    parsed.run_for = Some(Duration::from_secs_f64(secs.max(0.0)));
                }
                "--period" => {
                    let ms: u64 = value()?.parse().map_err(|e| format!("--period: {e}"))?;
                    parsed.period = Duration::from_millis(ms.max(10));
                }
                "--stdin" => parsed.stdin_control = true,
                _ => rest.push(flag),
            }
        }
        Ok((parsed, rest))
    }
}

/// The `main` of a ractor example program: tracing, the common options (no others),
/// `run`, and exit code 2 with `program: message` on any failure.
pub async fn main_with<F, Fut>(program: &str, run: F)
where
    F: FnOnce(NodeArgs) -> Fut,
    Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    init_tracing();
    let exit = |message: &str| -> ! {
        eprintln!("{program}: {message}");
        std::process::exit(2)
    };
    let args = match NodeArgs::parse(std::env::args().skip(1)) {
        Ok((args, rest)) if rest.is_empty() => args,
        Ok((_, rest)) => exit(&format!("unknown arguments: {rest:?}")),
        Err(err) => exit(&err),
    };
    if let Err(err) = run(args).await {
        exit(&err.to_string());
    }
}

/// A running node: the dstate host and the ractor cluster under it.
pub struct RactorNode {
    /// The dstate node.
    pub node: Node<RactorRuntime>,
    /// Its cluster membership and transport.
    pub cluster: RactorCluster,
}

impl RactorNode {
    /// Start the cluster layer and the node, and connect them.
    pub async fn start(args: &NodeArgs) -> Result<RactorNode, Box<dyn std::error::Error>> {
        let runtime = RactorRuntime::new();
        let cluster = RactorCluster::builder(args.node, args.cookie.clone())
            .listen(args.listen)
            .seeds(args.seeds.clone())
            .start(&runtime)
            .await?;
        let transport: Arc<dyn dstate::Transport> = cluster.transport();
        let node = Node::builder(args.node, runtime)
            .transport(transport)
            .start();
        cluster.attach_node(&node).await?;
        Ok(RactorNode { node, cluster })
    }

    /// Leave gracefully (peers drop this node's views at once) and close the sessions.
    pub async fn stop(self) {
        self.node.shutdown().await;
        self.cluster.shutdown().await;
    }
}

/// Resolves when the node should stop: Ctrl-C (SIGINT), SIGTERM, the `--for` duration
/// passing, or (with `--stdin`) `quit` or the end of stdin.
pub async fn stop_requested(args: &NodeArgs) {
    let run_for = args.run_for;
    let watch_stdin = args.stdin_control;
    let stdin = async move {
        if !watch_stdin {
            return std::future::pending().await;
        }
        use tokio::io::AsyncBufReadExt as _;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "quit" {
                return;
            }
        }
        // End of stdin: a terminal user pressing Ctrl-D, or the parent (demo) going away.
    };
    let timer = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
        _ = stdin => {}
        _ = timer => {}
    }
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await
}

/// Log to stderr when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}
