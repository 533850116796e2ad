//! Every example runs: the demo and the counter, as real processes on 127.0.0.1.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

/// A child process whose stdout lines arrive on a channel; killed on drop.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn start(program: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn example");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        if let Some(line) = self.seen.iter().find(|l| pred(l)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("timed out; output:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Wait for exit and the end of output; returns success.
    fn wait_exit(&mut self) -> bool {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "did not exit:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sees_all_up(line: &str, nodes: usize) -> bool {
    line.contains(&format!(" sees {nodes}: ")) && line.matches(" up").count() == nodes
}

#[test]
fn the_demo_replicates_across_three_processes_and_stops_cleanly_on_ctrl_c() {
    let mut demo = Proc::start(env!("CARGO_BIN_EXE_demo"), &["--period", "200"]);
    let mut pids = Vec::new();
    for id in 1..=3 {
        let line = demo.wait_for(|l| l.starts_with(&format!("demo: node {id} is process ")));
        pids.push(line.rsplit(' ').next().unwrap_or_default().to_string());
    }
    for id in 1..=3 {
        demo.wait_for(|l| l.starts_with(&format!("node {id} sees 3: ")) && sees_all_up(l, 3));
    }
    // Ctrl-C: SIGINT to the demo process only (a terminal would signal the whole group).
    let status = Command::new("kill")
        .args(["-INT", &demo.child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    assert!(demo.wait_exit(), "demo exits 0:\n{}", demo.seen.join("\n"));
    for id in 1..=3 {
        assert!(
            demo.seen.iter().any(|l| *l == format!("node {id} stopped")),
            "node {id} left gracefully:\n{}",
            demo.seen.join("\n")
        );
    }
    assert!(demo.seen.iter().any(|l| l == "demo: all nodes stopped"));
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "node process {pid} is gone"
        );
    }
}

/// Nodes 1 and 2 of `program` (100 ms period, stdin control), node 2 seeded from the
/// address node 1 reports.
fn start_pair(program: &str, cookie: &str) -> [Proc; 2] {
    let mut one = Proc::start(
        program,
        &[
            "--node", "1", "--cookie", cookie, "--period", "100", "--stdin",
        ],
    );
    let line = one.wait_for(|l| l.contains(" listening on "));
    let address = line.rsplit(' ').next().unwrap_or_default().to_string();
    let two = Proc::start(
        program,
        &[
            "--node", "2", "--cookie", cookie, "--seed", &address, "--period", "100", "--stdin",
        ],
    );
    [one, two]
}

#[test]
fn two_counter_nodes_see_the_cluster_total() {
    let program = env!("CARGO_BIN_EXE_ractor_counter");
    let cookie = format!("counter-test-{}", std::process::id());
    let [mut one, mut two] = start_pair(program, &cookie);
    for node in [&mut one, &mut two] {
        node.wait_for(|l| l.ends_with("over 2 nodes"));
    }
    for node in [&mut one, &mut two] {
        writeln!(node.child.stdin.as_mut().expect("stdin"), "quit").expect("quit");
        assert!(node.wait_exit(), "{}", node.seen.join("\n"));
    }
}

#[test]
fn two_node_resource_processes_print_each_others_load() {
    let program = env!("CARGO_BIN_EXE_ractor_node_resource");
    let cookie = format!("resource-test-{}", std::process::id());
    let [mut one, mut two] = start_pair(program, &cookie);
    one.wait_for(|l| l.starts_with("node 1 sees 2: ") && sees_all_up(l, 2));
    two.wait_for(|l| l.starts_with("node 2 sees 2: ") && sees_all_up(l, 2));
    writeln!(two.child.stdin.as_mut().expect("stdin"), "quit").expect("quit");
    assert!(two.wait_exit(), "{}", two.seen.join("\n"));
    // Graceful leave: node 1 drops node 2's row.
    one.wait_for(|l| l.starts_with("node 1 sees 1: "));
    writeln!(one.child.stdin.as_mut().expect("stdin"), "quit").expect("quit");
    assert!(one.wait_exit(), "{}", one.seen.join("\n"));
}
