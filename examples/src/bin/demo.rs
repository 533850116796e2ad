//! The README's demo: a real 3-node dstate cluster on this machine, over TCP, in one command.
//!
//! ```text
//! cargo run -p dstate-examples --bin demo [-- --nodes N] [--period MS] [--for SECS]
//! ```
//!
//! Starts N node processes (this program again, in `--child` mode) on 127.0.0.1 with
//! OS-chosen ports; node 1 is the seed of the others and the rest find each other through
//! it. Each node runs dstate on ractor with the ractor_cluster transport, publishes its load
//! and prints the table of every node's load as it sees it. Ctrl-C (or `--for`) stops the
//! nodes: each leaves the cluster gracefully, and the demo waits for all of them.

use std::process::Stdio;
use std::time::Duration;

use dstate_examples::ractor_node::{init_tracing, NodeArgs};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long a node may take to leave before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

struct Options {
    nodes: u64,
    period_ms: u64,
    run_for: Option<Duration>,
}

struct Running {
    id: u64,
    child: Child,
    stdin: Option<ChildStdin>,
}

#[tokio::main]
async fn main() {
    init_tracing();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--child") {
        let args = match NodeArgs::parse(argv.into_iter().skip(1)) {
            Ok((args, rest)) if rest.is_empty() => args,
            Ok((_, rest)) => fail(&format!("unknown arguments: {rest:?}")),
            Err(err) => fail(&err),
        };
        if let Err(err) = dstate_examples::resource::run(args).await {
            fail(&err.to_string());
        }
        return;
    }
    let options = match parse(argv) {
        Ok(options) => options,
        Err(err) => fail(&err),
    };
    std::process::exit(run(options).await);
}

fn parse(argv: Vec<String>) -> Result<Options, String> {
    let mut options = Options {
        nodes: 3,
        period_ms: 1000,
        run_for: None,
    };
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--nodes" => {
                options.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?;
                if !(1..=16).contains(&options.nodes) {
                    return Err(String::from("--nodes must be 1..=16"));
                }
            }
            "--period" => {
                options.period_ms = value()?.parse().map_err(|e| format!("--period: {e}"))?
            }
            "--for" => {
                let secs: f64 = value()?.parse().map_err(|e| format!("--for: {e}"))?;
                options.run_for = Some(Duration::from_secs_f64(secs.max(0.0)));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

async fn run(options: Options) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => fail(&format!("cannot find this program: {err}")),
    };
    // A cookie of its own, so two demos on one machine never join each other.
    let cookie = format!("dstate-demo-{}", std::process::id());
    println!(
        "demo: starting {} dstate nodes on 127.0.0.1 (ractor + ractor_cluster over TCP); Ctrl-C stops them",
        options.nodes
    );
    let (lines, mut output) = mpsc::unbounded_channel::<String>();
    let mut running: Vec<Running> = Vec::new();
    let mut seed: Option<String> = None;
    for id in 1..=options.nodes {
        let mut command = Command::new(&exe);
        command
            .args([
                "--child",
                "--stdin",
                "--node",
                &id.to_string(),
                "--cookie",
                &cookie,
            ])
            .args(["--period", &options.period_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(seed) = &seed {
            command.args(["--seed", seed]);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                eprintln!("demo: cannot start node {id}: {err}");
                stop_all(&mut running).await;
                return 1;
            }
        };
        println!(
            "demo: node {id} is process {}",
            child.id().unwrap_or_default()
        );
        let stdout = child.stdout.take();
        let stdin = child.stdin.take();
        running.push(Running { id, child, stdin });
        let Some(stdout) = stdout else { continue };
        let mut reader = BufReader::new(stdout).lines();
        if seed.is_none() {
            // Node 1's address seeds the others.
            while let Ok(Some(line)) = reader.next_line().await {
                println!("{line}");
                if let Some(address) = line.split(" listening on ").nth(1) {
                    seed = Some(address.trim().to_string());
                    break;
                }
            }
            if seed.is_none() {
                eprintln!("demo: node 1 did not report its address");
                stop_all(&mut running).await;
                return 1;
            }
        }
        let lines = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(lines);
    // Print every node's lines as they come; ends when every node's output has closed.
    let mut printer = tokio::spawn(async move {
        while let Some(line) = output.recv().await {
            println!("{line}");
        }
    });
    let timer = async {
        match options.run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let printer_done = tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            println!("demo: Ctrl-C, stopping every node");
            false
        }
        _ = timer => {
            println!("demo: time is up, stopping every node");
            false
        }
        _ = &mut printer => {
            eprintln!("demo: the nodes' output closed");
            true
        }
    };
    let clean = stop_all(&mut running).await;
    // The nodes have exited: their last lines are flushed once their pipes close.
    if !printer_done && tokio::time::timeout(STOP_GRACE, printer).await.is_err() {
        eprintln!("demo: node output did not close");
    }
    if clean {
        println!("demo: all nodes stopped");
        0
    } else {
        1
    }
}

/// Ask every node to leave, wait for each (killing it after [`STOP_GRACE`]); true when
/// all exited successfully on their own.
async fn stop_all(running: &mut [Running]) -> bool {
    for node in running.iter_mut() {
        if let Some(mut stdin) = node.stdin.take() {
            // A node that already stopped (Ctrl-C reaches the whole process group) has
            // closed its stdin; that is fine.
            let _ = stdin.write_all(b"quit\n").await;
        }
    }
    let mut clean = true;
    for node in running.iter_mut() {
        match tokio::time::timeout(STOP_GRACE, node.child.wait()).await {
            Ok(Ok(status)) => {
                clean &= status.success();
                println!("demo: node {} exited ({status})", node.id);
            }
            Ok(Err(err)) => {
                clean = false;
                eprintln!("demo: node {}: {err}", node.id);
            }
            Err(_) => {
                clean = false;
                eprintln!("demo: node {} did not stop in time; killing it", node.id);
                // Kill and reap: a failure means it is already gone.
                let _ = node.child.kill().await;
            }
        }
    }
    clean
}

fn fail(message: &str) -> ! {
    eprintln!("demo: {message}");
    std::process::exit(2);
}
