//! The parent side: start, drive, kill and restart node processes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Which test state a command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// [`TestState`](crate::test_support::TestState): `value`.
    Simple,
    /// [`TestDeltaState`](crate::test_support::TestDeltaState): `total`.
    Delta,
}

impl StateKind {
    fn word(self) -> &'static str {
        match self {
            StateKind::Simple => "simple",
            StateKind::Delta => "delta",
        }
    }
}

/// What the parent tells the child-making function about a node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// dstate node id.
    pub id: u64,
    /// Addresses of the nodes already running, to dial.
    pub seeds: Vec<String>,
    /// A directory for this node's data, kept across restarts of the node.
    pub data_dir: PathBuf,
    /// The sync strategy name the cluster runs (`push`, `feed`, `periodic`).
    pub strategy: String,
}

/// One view as a child reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewReport {
    /// The state's value (`value` or `total`).
    pub value: u64,
    /// The owner is up.
    pub up: bool,
    /// Incarnation of the view held.
    pub incarnation: u64,
    /// Age of the view held.
    pub age: u64,
}

/// A process-cluster operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The child could not be started.
    #[error("node {id} did not start: {reason}")]
    Start {
        /// Node id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// The child did not answer in time or its pipe closed.
    #[error("node {id} did not answer `{command}`")]
    NoAnswer {
        /// Node id.
        id: u64,
        /// The command.
        command: String,
    },
    /// The child answered with an error.
    #[error("node {id} failed `{command}`: {reason}")]
    Failed {
        /// Node id.
        id: u64,
        /// The command.
        command: String,
        /// Its error.
        reason: String,
    },
    /// A condition was not met before its deadline.
    #[error("timed out waiting for {what}; last state: {last}")]
    Timeout {
        /// The condition.
        what: String,
        /// What was last observed.
        last: String,
    },
    /// No such running node.
    #[error("node {0} is not running")]
    NotRunning(u64),
    /// Setting up or changing the test network failed (namespaces need root and iproute2).
    #[error("test network: {0}")]
    Network(String),
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    address: String,
}

type MakeCommand = Box<dyn Fn(&NodeSpec) -> Command>;

/// A cluster of node processes on this machine. Every child is killed when the cluster is
/// dropped, even when a test fails.
pub struct ProcessCluster {
    make: MakeCommand,
    strategy: String,
    dir: PathBuf,
    nodes: BTreeMap<u64, Running>,
    seq: u64,
    answer_timeout: Duration,
}

static CLUSTERS: AtomicU64 = AtomicU64::new(0);

impl ProcessCluster {
    /// A cluster whose nodes run `strategy` and are started by the command `make` builds.
    pub fn new(strategy: &str, make: impl Fn(&NodeSpec) -> Command + 'static) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "dstate-cluster-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        ProcessCluster {
            make: Box::new(make),
            strategy: strategy.to_owned(),
            dir,
            nodes: BTreeMap::new(),
            seq: 0,
            answer_timeout: Duration::from_secs(60),
        }
    }

    /// Start (or restart) node `id`, seeded with every running node; returns its address.
    pub fn start(&mut self, id: u64) -> Result<String, ProcessError> {
        let start_error = |reason: String| ProcessError::Start { id, reason };
        let spec = NodeSpec {
            id,
            seeds: self.nodes.values().map(|n| n.address.clone()).collect(),
            data_dir: self.dir.join(format!("node-{id}")),
            strategy: self.strategy.clone(),
        };
        std::fs::create_dir_all(&spec.data_dir).map_err(|e| start_error(e.to_string()))?;
        let log = std::fs::File::create(spec.data_dir.join("stderr.log"))
            .map_err(|e| start_error(e.to_string()))?;
        let mut child = (self.make)(&spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| start_error(e.to_string()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            // Invariant: both pipes were requested above; kill the child if the OS lied.
            let _ = child.kill();
            return Err(start_error("no pipes".to_owned()));
        };
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + self.answer_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.starts_with("ready ") => {
                    let address = line
                        .split_whitespace()
                        .nth(2)
                        .unwrap_or_default()
                        .to_owned();
                    self.nodes.insert(
                        id,
                        Running {
                            child,
                            stdin,
                            lines,
                            address: address.clone(),
                        },
                    );
                    return Ok(address);
                }
                Ok(_) => continue,
                Err(_) => {
                    // The child is useless without its ready line.
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(spec.data_dir.join("stderr.log"))
                        .unwrap_or_default();
                    let tail: String = log
                        .chars()
                        .rev()
                        .take(2000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    return Err(start_error(format!("no ready line; stderr tail:\n{tail}")));
                }
            }
        }
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&mut self, id: u64) -> Result<(), ProcessError> {
        let mut running = self.nodes.remove(&id).ok_or(ProcessError::NotRunning(id))?;
        // Already exited is fine: the point is that it is gone.
        let _ = running.child.kill();
        let _ = running.child.wait();
        Ok(())
    }

    /// Ask node `id` to leave gracefully, then reap it.
    pub fn leave(&mut self, id: u64) -> Result<(), ProcessError> {
        self.request(id, "leave", "")?;
        if let Some(mut running) = self.nodes.remove(&id) {
            // It exits on its own after answering (its goodbyes flushed); give it time, and
            // kill it only if it lingers.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(running.child.try_wait(), Ok(Some(_))) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
        Ok(())
    }

    /// Set node `id`'s value of `kind`; returns the new age.
    pub fn mutate(&mut self, id: u64, kind: StateKind, value: u64) -> Result<u64, ProcessError> {
        let body = self.request(id, "mutate", &format!("{} {value}", kind.word()))?;
        Ok(body.trim().parse().unwrap_or(0))
    }

    /// `count` increments on node `id`, one after the other; returns the final value.
    pub fn burst(&mut self, id: u64, kind: StateKind, count: u64) -> Result<u64, ProcessError> {
        let body = self.request(id, "burst", &format!("{} {count}", kind.word()))?;
        Ok(body.trim().parse().unwrap_or(0))
    }

    /// The views node `id` holds for `kind`, by owner.
    pub fn read(
        &mut self,
        id: u64,
        kind: StateKind,
    ) -> Result<BTreeMap<u64, ViewReport>, ProcessError> {
        let body = self.request(id, "read", kind.word())?;
        Ok(parse_views(&body))
    }

    /// Like [`read`](Self::read), but through `query` with `max_staleness`: stale views are
    /// pulled first. Returns the views and the owners still reported stale.
    pub fn query(
        &mut self,
        id: u64,
        kind: StateKind,
        max_staleness: Duration,
    ) -> Result<(BTreeMap<u64, ViewReport>, Vec<u64>), ProcessError> {
        let args = format!("{} {}", kind.word(), max_staleness.as_millis());
        let body = self.request(id, "query", &args)?;
        let (views, stale) = body.split_once('|').unwrap_or((body.as_str(), ""));
        let stale = stale
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        Ok((parse_views(views), stale))
    }

    /// Node `id`'s counters for `kind`: rejected frames (all causes) and backpressure events.
    pub fn diagnostics(&mut self, id: u64, kind: StateKind) -> Result<(u64, u64), ProcessError> {
        let body = self.request(id, "diag", kind.word())?;
        let mut numbers = body
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(_, v)| v.parse().unwrap_or(0));
        Ok((numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)))
    }

    /// Resident memory of node `id` in KiB.
    pub fn resident_kib(&mut self, id: u64) -> Result<u64, ProcessError> {
        Ok(self.request(id, "mem", "")?.trim().parse().unwrap_or(0))
    }

    /// The running nodes.
    pub fn running(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// The address node `id` reported.
    pub fn address(&self, id: u64) -> Option<String> {
        self.nodes.get(&id).map(|n| n.address.clone())
    }

    /// Poll `condition` until it holds or `within` passes.
    pub fn wait_until(
        &mut self,
        what: &str,
        within: Duration,
        mut condition: impl FnMut(&mut Self) -> Result<(bool, String), ProcessError>,
    ) -> Result<(), ProcessError> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < deadline {
            let (done, observed) = condition(self)?;
            if done {
                return Ok(());
            }
            last = observed;
            // Children work meanwhile; re-check at a short, bounded interval.
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(ProcessError::Timeout {
            what: what.to_owned(),
            last,
        })
    }

    fn request(&mut self, id: u64, command: &str, args: &str) -> Result<String, ProcessError> {
        self.seq += 1;
        let seq = self.seq;
        let timeout = self.answer_timeout;
        let running = self
            .nodes
            .get_mut(&id)
            .ok_or(ProcessError::NotRunning(id))?;
        let no_answer = || ProcessError::NoAnswer {
            id,
            command: command.to_owned(),
        };
        writeln!(running.stdin, "{command} {seq} {args}").map_err(|_| no_answer())?;
        running.stdin.flush().map_err(|_| no_answer())?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = running.lines.recv_timeout(left).map_err(|_| no_answer())?;
            let mut words = line.splitn(3, ' ');
            let (kind, got, body) = (words.next(), words.next(), words.next().unwrap_or(""));
            if got != Some(seq.to_string().as_str()) {
                continue;
            }
            return match kind {
                Some("ok") | Some("views") => Ok(body.to_owned()),
                _ => Err(ProcessError::Failed {
                    id,
                    command: command.to_owned(),
                    reason: body.to_owned(),
                }),
            };
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for running in self.nodes.values_mut() {
            // Best effort: the child may already be gone.
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
        // Leave the data of a failed run for inspection only when asked.
        if std::env::var_os("DSTATE_KEEP_CLUSTER_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl std::fmt::Debug for ProcessCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCluster")
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

fn parse_views(body: &str) -> BTreeMap<u64, ViewReport> {
    body.split_whitespace()
        .filter_map(|entry| {
            let parts: Vec<&str> = entry.split(':').collect();
            let [node, value, status, incarnation, age] = parts.as_slice() else {
                return None;
            };
            Some((
                node.parse().ok()?,
                ViewReport {
                    value: value.parse().ok()?,
                    up: *status == "up",
                    incarnation: incarnation.parse().ok()?,
                    age: age.parse().ok()?,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_reports_parse_and_garbage_is_skipped() {
        let views = parse_views("1:10:up:5:2 2:0:down:6:0 junk 3:x:up:1:1");
        assert_eq!(views.len(), 2);
        assert_eq!(
            views[&1],
            ViewReport {
                value: 10,
                up: true,
                incarnation: 5,
                age: 2
            }
        );
        assert!(!views[&2].up);
    }
}
