//! Multi-process test support: child node processes driven over stdin/stdout, and a TCP
//! proxy the test controls. Every child is killed when its handle drops (also on panic).

#![allow(dead_code)] // Each test binary uses a different subset.

pub(crate) mod proxy;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Generous: debug builds on a loaded 2-core machine.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// A unique cookie per test, so parallel tests never join each other's clusters.
pub(crate) fn cookie(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// One child node process.
pub(crate) struct Node {
    pub(crate) label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    pub(crate) addr: String,
    pub(crate) incarnation: u64,
}

impl Node {
    /// Start `dstate-ractor-node` with `args` and wait for its listening address.
    pub(crate) fn start(label: &str, args: &[&str]) -> Node {
        let mut node = Node::spawn(label, args);
        let listening = node.wait_for(0, |l| l.starts_with("LISTENING "));
        node.addr = listening["LISTENING ".len()..].to_string();
        if node.addr != "spoofer" {
            let inc = node.wait_for(0, |l| l.starts_with("INCARNATION "));
            node.incarnation = inc["INCARNATION ".len()..].parse().expect("incarnation");
        }
        node
    }

    /// Start `dstate-ractor-node --scenario` with `args` and wait for its `ready` line.
    pub(crate) fn start_scenario(label: &str, args: &[&str]) -> Node {
        let mut all = vec!["--scenario"];
        all.extend_from_slice(args);
        let mut node = Node::spawn(label, &all);
        let ready = node.wait_for(0, |l| l.starts_with("ready "));
        node.addr = ready
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string();
        node
    }

    fn spawn(label: &str, args: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dstate-ractor-node"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dstate-ractor-node");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Node {
            label: label.to_string(),
            child,
            stdin,
            lines,
            seen: Vec::new(),
            addr: String::new(),
            incarnation: 0,
        }
    }

    /// Index of the next line: `wait_for(mark, ..)` only looks at lines from there on.
    pub(crate) fn mark(&self) -> usize {
        self.seen.len()
    }

    /// Write one command line.
    pub(crate) fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").expect("write command");
        stdin.flush().expect("flush command");
    }

    /// Send `command` and return the first later line starting with `reply`.
    pub(crate) fn request(&mut self, command: &str, reply: &str) -> String {
        let mark = self.mark();
        self.send(command);
        self.wait_for(mark, |l| l.starts_with(reply))
    }

    /// The first line at or after `from` matching `pred`, waiting up to [`DEADLINE`].
    pub(crate) fn wait_for(&mut self, from: usize, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut index = from;
        loop {
            while index < self.seen.len() {
                if pred(&self.seen[index]) {
                    return self.seen[index].clone();
                }
                index += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: timed out; output so far:\n{}",
                        self.label,
                        self.seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: exited; output:\n{}", self.label, self.seen.join("\n"))
                }
            }
        }
    }

    /// Poll `command` until its reply satisfies `pred`.
    pub(crate) fn poll(
        &mut self,
        command: &str,
        reply: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let line = self.request(command, reply);
            if pred(&line) {
                return line;
            }
            if Instant::now() > deadline {
                panic!("{}: {command} never satisfied; last: {line}", self.label);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line received so far.
    pub(crate) fn output(&self) -> &[String] {
        &self.seen
    }

    /// Read whatever arrived without waiting.
    pub(crate) fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Counters from the `stats` command.
    pub(crate) fn stats(&mut self) -> HashMap<String, u64> {
        parse_stats(&self.request("stats", "STATS "))
    }

    /// SIGKILL, no goodbye.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ask the node to quit and wait for it to exit.
    pub(crate) fn quit(&mut self) {
        self.send("quit");
        self.wait_exit();
    }

    /// Close stdin and wait for the process to exit by itself (killed after the deadline).
    pub(crate) fn wait_exit(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    self.kill();
                    panic!("{}: did not quit", self.label);
                }
            }
        }
    }

    /// Unix pid, for signals.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `key=value` pairs of a stats line.
pub(crate) fn parse_stats(line: &str) -> HashMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}
