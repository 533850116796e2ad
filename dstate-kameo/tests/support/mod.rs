//! Multi-process test harness: cluster nodes as child processes driven over stdin/stdout,
//! and a TCP proxy that can cut and restore connections.
#![allow(dead_code)] // each test binary uses a different part

pub(crate) mod proxy;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Generous deadline for anything a cluster does on localhost (debug builds, 2 cores
/// shared with other builds).
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A fresh cluster key (64 hex digits).
pub(crate) fn cluster_key() -> String {
    dstate_kameo::ClusterKey::generate().to_hex()
}

/// A fresh temp directory for one test.
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dstate-kameo-{tag}-{}-{:x}",
        std::process::id(),
        rand_u64()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

/// How to start one node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Opts {
    pub(crate) node: u64,
    pub(crate) key: String,
    pub(crate) seeds: Vec<SocketAddr>,
    pub(crate) advertise: Vec<SocketAddr>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) incarnation: Option<u64>,
    pub(crate) identity: Option<PathBuf>,
    pub(crate) allow: Vec<String>,
    pub(crate) extra: Vec<String>,
}

impl Opts {
    pub(crate) fn new(node: u64, key: &str) -> Self {
        Opts {
            node,
            key: key.to_owned(),
            ..Opts::default()
        }
    }

    /// Scenario mode (a dstate node) with `strategy`, not persisted.
    pub(crate) fn scenario(mut self, strategy: &str, dir: &std::path::Path) -> Self {
        self.extra.extend([
            "--scenario".to_owned(),
            strategy.to_owned(),
            "--data-dir".to_owned(),
            dir.display().to_string(),
            "--no-persist".to_owned(),
        ]);
        self
    }

    pub(crate) fn seed(mut self, addr: SocketAddr) -> Self {
        self.seeds.push(addr);
        self
    }
}

/// A node process. Killed (SIGKILL) on drop.
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) peer: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Event lines seen so far (JOINED, LEFT, ...), in order.
    pub(crate) events: Vec<String>,
    /// Last scenario-protocol sequence number used.
    seq: u64,
}

impl Node {
    pub(crate) fn start(opts: Opts) -> Node {
        Node::start_bin(env!("CARGO_BIN_EXE_dstate-kameo-testnode"), opts)
    }

    pub(crate) fn start_bin(bin: &str, opts: Opts) -> Node {
        let mut cmd = Command::new(bin);
        cmd.arg("--node")
            .arg(opts.node.to_string())
            .arg("--key")
            .arg(&opts.key);
        for seed in &opts.seeds {
            cmd.arg("--seed").arg(seed.to_string());
        }
        for addr in &opts.advertise {
            cmd.arg("--advertise").arg(addr.to_string());
        }
        if let Some(listen) = opts.listen {
            cmd.arg("--listen").arg(listen.to_string());
        }
        if let Some(incarnation) = opts.incarnation {
            cmd.arg("--incarnation").arg(incarnation.to_string());
        }
        if let Some(identity) = &opts.identity {
            cmd.arg("--identity").arg(identity);
        }
        for peer in &opts.allow {
            cmd.arg("--allow").arg(peer);
        }
        cmd.args(&opts.extra);
        let stderr = if std::env::var_os("DSTATE_TEST_STDERR").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start test node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = Node {
            id: opts.node,
            addr: "0.0.0.0:0".parse().unwrap(),
            peer: String::new(),
            child,
            stdin,
            lines,
            events: Vec::new(),
            seq: 0,
        };
        if opts.extra.iter().any(|arg| arg == "--scenario") {
            // Scenario mode: `ready <node> <address>`.
            let ready = node.reply("ready ");
            let addr = ready.split_whitespace().nth(2);
            node.addr = addr.and_then(|a| a.parse().ok()).expect("ready address");
        } else {
            let ready = node.reply("READY");
            let mut words = ready.split_whitespace().skip(1);
            let addr = words.next().and_then(|a| a.parse().ok());
            node.addr = addr.expect("READY address");
            node.peer = words.next().expect("READY peer").to_owned();
        }
        node
    }

    /// Sends a command line.
    pub(crate) fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to test node");
        self.stdin.flush().expect("flush test node stdin");
    }

    /// The next line starting with `prefix`; other lines are kept as events.
    pub(crate) fn reply(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let line = self.next_line(deadline).unwrap_or_else(|| {
                panic!(
                    "node {}: no {prefix} line before the deadline; events: {:?}",
                    self.id, self.events
                )
            });
            if line.starts_with(prefix) {
                return line;
            }
            self.events.push(line);
        }
    }

    /// Runs a command and returns its answer line.
    pub(crate) fn cmd(&mut self, line: &str, prefix: &str) -> String {
        self.send(line);
        self.reply(prefix)
    }

    /// Waits until an event line equal to `event` was seen (before or now).
    pub(crate) fn wait_event(&mut self, event: &str) {
        self.wait_events(|events| events.iter().any(|e| e == event), event);
    }

    /// Waits until `cond` holds over the events seen.
    pub(crate) fn wait_events(&mut self, cond: impl Fn(&[String]) -> bool, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !cond(&self.events) {
            match self.next_line(deadline) {
                Some(line) => self.events.push(line),
                None => panic!(
                    "node {}: {what} not seen before the deadline; events: {:?}",
                    self.id, self.events
                ),
            }
        }
    }

    /// Polls `line` until its answer satisfies `cond`.
    pub(crate) fn poll(&mut self, line: &str, prefix: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let answer = self.cmd(line, prefix);
            if cond(&answer) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "node {}: {line:?} never satisfied the condition; last answer {answer:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Scenario mode: `mutate` of the simple test state.
    pub(crate) fn scenario_mutate(&mut self, value: u64) {
        self.seq += 1;
        let seq = self.seq;
        let answer = self.cmd(
            &format!("mutate {seq} simple {value}"),
            &format!("ok {seq} "),
        );
        assert!(answer.starts_with("ok"), "{answer}");
    }

    /// Scenario mode: the simple test state's views, owner -> (value, up).
    pub(crate) fn scenario_views(&mut self) -> std::collections::BTreeMap<u64, (u64, bool)> {
        self.seq += 1;
        let seq = self.seq;
        let answer = self.cmd(&format!("read {seq} simple"), &format!("views {seq}"));
        answer
            .split_whitespace()
            .skip(2)
            .filter_map(|entry| {
                let parts: Vec<&str> = entry.split(':').collect();
                Some((
                    parts.first()?.parse().ok()?,
                    (parts.get(1)?.parse().ok()?, *parts.get(2)? == "up"),
                ))
            })
            .collect()
    }

    /// Scenario mode: waits until the views satisfy `cond`.
    pub(crate) fn wait_views(
        &mut self,
        what: &str,
        cond: impl Fn(&std::collections::BTreeMap<u64, (u64, bool)>) -> bool,
    ) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let views = self.scenario_views();
            if cond(&views) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {}: {what} not reached; views {views:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Members as node ids.
    pub(crate) fn members(&mut self) -> Vec<u64> {
        parse_members(&self.cmd("members", "MEMBERS"))
    }

    /// Waits until the members are exactly `expected`.
    pub(crate) fn wait_members(&mut self, expected: &[u64]) {
        let expected = expected.to_vec();
        self.poll("members", "MEMBERS", |line| parse_members(line) == expected);
    }

    /// One counter from `stats`.
    pub(crate) fn stat(&mut self, name: &str) -> u64 {
        let line = self.cmd("stats", "STATS");
        stat_value(&line, name)
    }

    /// SIGKILL, no goodbye.
    pub(crate) fn kill(&mut self) {
        // Already dead is fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks for a graceful leave and waits for the process to end.
    pub(crate) fn shutdown(&mut self) {
        self.cmd("shutdown", "BYE");
        self.wait_exit();
    }

    /// Waits for the process to end on its own.
    pub(crate) fn wait_exit(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "node {} did not exit", self.id);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                panic!("node {} exited; events: {:?}", self.id, self.events)
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn parse_members(line: &str) -> Vec<u64> {
    line.trim_start_matches("MEMBERS")
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Reads `name: value` out of a `Debug`-printed stats struct.
pub(crate) fn stat_value(line: &str, name: &str) -> u64 {
    let pattern = format!("{name}: ");
    let start = line
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + pattern.len();
    line[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .expect("counter value")
}
