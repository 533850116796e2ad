//! What the kameo example programs share: their common options, starting one node, and
//! running a local cluster of child processes of the same program (`--cluster N`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dstate::{Node, NodeId};
use dstate_kameo::{ClusterKey, KameoCluster, KameoRuntime};

/// Options every kameo example program takes.
#[derive(Debug, Clone)]
pub struct KameoArgs {
    /// `--node N` (default 1).
    pub node: u64,
    /// `--listen ADDR` (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// `--seed ADDR`, repeatable.
    pub seeds: Vec<SocketAddr>,
    /// `--key PASSPHRASE`: all nodes must share it (default `dstate-example`).
    pub key: String,
    /// `--expect-nodes N`: leave once all N nodes are done.
    pub expect_nodes: Option<usize>,
    /// `--cluster N`: start N local processes of this program instead of one node.
    pub cluster: Option<u64>,
}

impl KameoArgs {
    /// Parse `args` (without the program name). Every flag takes one value; flags this type
    /// does not know go to `other(flag, value)`, which returns `Ok(false)` for unknown ones.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        mut other: impl FnMut(&str, &str) -> Result<bool, String>,
    ) -> Result<KameoArgs, String> {
        let mut parsed = KameoArgs {
            node: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seeds: Vec::new(),
            key: "dstate-example".to_owned(),
            expect_nodes: None,
            cluster: None,
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--node" => parsed.node = value.parse().map_err(|e| bad(&e))?,
                "--listen" => parsed.listen = value.parse().map_err(|e| bad(&e))?,
                "--seed" => parsed.seeds.push(value.parse().map_err(|e| bad(&e))?),
                "--key" => parsed.key = value,
                "--expect-nodes" => parsed.expect_nodes = Some(value.parse().map_err(|e| bad(&e))?),
                "--cluster" => parsed.cluster = Some(value.parse().map_err(|e| bad(&e))?),
                _ if other(&flag, &value)? => {}
                unknown => return Err(format!("unknown option {unknown}")),
            }
        }
        Ok(parsed)
    }
}

/// `value` of `flag` parsed, or an error naming both.
pub fn parse_value<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| format!("{flag} {value}: {e}"))
}

/// End the program: print `program: message` and exit with `code`.
pub fn exit(program: &str, code: i32, message: &str) -> ! {
    eprintln!("{program}: {message}");
    std::process::exit(code)
}

/// Start node `id` of the cluster keyed by `key`: its swarm on `listen`, dialling `seeds`,
/// joined by a dstate node. Prints where it listens.
pub async fn start_node(
    id: u64,
    key: &str,
    listen: SocketAddr,
    seeds: &[SocketAddr],
) -> Result<(KameoCluster, Node<KameoRuntime>), String> {
    let runtime = KameoRuntime::new();
    let cluster = KameoCluster::builder(NodeId(id), ClusterKey::from_passphrase(key))
        .listen(listen)
        .seeds(seeds.iter().copied())
        .start(&runtime)
        .await
        .map_err(|e| e.to_string())?;
    println!("node {id} listening on {}", cluster.local_addr());
    let node = Node::builder(NodeId(id), runtime.clone())
        .transport(cluster.transport())
        .start();
    cluster.join_node(&node).await.map_err(|e| e.to_string())?;
    Ok((cluster, node))
}

/// Start `count` processes of this program on 127.0.0.1 (node 1 listens on a port the OS
/// picks and reports, the others seed from it), each with `--node <id> --expect-nodes
/// <count>` plus `args`, and wait until every one exited successfully (each exits once it
/// saw the whole cluster agree).
pub async fn run_local_cluster(count: u64, args: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Children(Vec::new());
    let mut seed: Option<String> = None;
    for id in 1..=count {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--node",
            &id.to_string(),
            "--expect-nodes",
            &count.to_string(),
        ])
        .args(args)
        .stdin(Stdio::null());
        match &seed {
            Some(seed) => {
                cmd.args(["--seed", seed]);
                children.0.push(cmd.spawn().map_err(|e| e.to_string())?);
            }
            None => {
                cmd.args(["--listen", "127.0.0.1:0"]);
                let (child, address) = spawn_reporting_address(cmd)?;
                children.0.push(child);
                seed = Some(address);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ok = 0;
    while ok < children.0.len() {
        ok = 0;
        for child in &mut children.0 {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) if status.success() => ok += 1,
                Some(status) => return Err(format!("a node failed: {status}")),
                None => {}
            }
        }
        if Instant::now() > deadline {
            return Err("the cluster did not finish in time".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Spawn `cmd` with its output passed through to ours, and wait (bounded) for the
/// `listening on <address>` line `start_node` prints.
fn spawn_reporting_address(mut cmd: Command) -> Result<(Child, String), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err("no stdout pipe".to_owned());
    };
    let (address, reported) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            if let Some(addr) = line.split(" listening on ").nth(1) {
                let _ = address.send(addr.trim().to_owned());
            }
        }
    });
    match reported.recv_timeout(Duration::from_secs(60)) {
        Ok(address) => Ok((child, address)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("node 1 did not report its address".to_owned())
        }
    }
}

/// Child processes, killed if this program stops early.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // Already exited is fine.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
