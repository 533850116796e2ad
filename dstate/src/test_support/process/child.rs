//! The child side: a node answering the parent's commands on stdin/stdout.

use std::io::{BufRead, Write};

use tokio::sync::mpsc;

use crate::config::StateConfig;
use crate::node::{Node, SimpleHandle, StateHandle};
use crate::object::{PeerStatus, ViewMap};
use crate::runtime::ActorRuntime;
use crate::test_support::{TestDeltaChange, TestDeltaInner, TestDeltaState, TestState};

/// Register [`TestState`] and [`TestDeltaState`] on `node` with `config`, print
/// `ready <node-id> <address>`, then answer commands from stdin until it closes or `leave`.
pub async fn serve_commands<R: ActorRuntime>(node: Node<R>, config: StateConfig, address: &str) {
    let simple = match node.register::<TestState>(config.clone()).await {
        Ok(handle) => handle,
        Err(error) => return println!("fatal register simple: {error}"),
    };
    let delta = match node
        .register_delta::<TestDeltaState>(TestDeltaInner::default(), config)
        .await
    {
        Ok(handle) => handle,
        Err(error) => return println!("fatal register delta: {error}"),
    };
    say(&format!("ready {} {address}", node.id().0));
    let (lines, mut commands) = mpsc::channel::<String>(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = commands.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(command), Some(seq)) = (words.first(), words.get(1)) else {
            continue;
        };
        let reply = match *command {
            "mutate" => mutate(&simple, &delta, words.get(2), parse(words.get(3))).await,
            "burst" => burst(&simple, &delta, words.get(2), parse(words.get(3))).await,
            "read" => Ok(read(&simple, &delta, words.get(2))),
            "query" => query(&simple, &delta, words.get(2), parse(words.get(3))).await,
            "diag" => diag(&simple, &delta, words.get(2)).await,
            "mem" => Ok(resident_kib().to_string()),
            "leave" => {
                node.shutdown().await;
                say(&format!("ok {seq} 0"));
                return;
            }
            other => Err(format!("unknown command {other}")),
        };
        match reply {
            Ok(body) if matches!(*command, "read" | "query") => say(&format!("views {seq} {body}")),
            Ok(body) => say(&format!("ok {seq} {body}")),
            Err(reason) => say(&format!("err {seq} {reason}")),
        }
    }
}

async fn mutate(
    simple: &SimpleHandle<TestState>,
    delta: &StateHandle<TestDeltaState>,
    kind: Option<&&str>,
    value: Option<u64>,
) -> Result<String, String> {
    let value = value.ok_or("missing value")?;
    match kind.copied() {
        Some("simple") => simple
            .mutate(move |s| s.value = value)
            .await
            .map(|()| simple.generation().age.0.to_string())
            .map_err(|e| e.to_string()),
        Some("delta") => delta
            .mutate_with_delta(move |s| {
                let add = value.wrapping_sub(s.total);
                s.total = value;
                TestDeltaChange::Add(add)
            })
            .await
            .map(|g| g.age.0.to_string())
            .map_err(|e| e.to_string()),
        _ => Err("unknown state kind".to_owned()),
    }
}

async fn burst(
    simple: &SimpleHandle<TestState>,
    delta: &StateHandle<TestDeltaState>,
    kind: Option<&&str>,
    count: Option<u64>,
) -> Result<String, String> {
    let count = count.ok_or("missing count")?;
    let mut last = 0;
    for _ in 0..count {
        last = match kind.copied() {
            Some("simple") => simple
                .mutate(|s| {
                    s.value += 1;
                    s.value
                })
                .await
                .map_err(|e| e.to_string())?,
            Some("delta") => {
                delta
                    .mutate_with_delta(|s| {
                        s.total += 1;
                        TestDeltaChange::Add(1)
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                delta.local_view().map_or(0, |v| v.total)
            }
            _ => return Err("unknown state kind".to_owned()),
        };
    }
    Ok(last.to_string())
}

fn read(
    simple: &SimpleHandle<TestState>,
    delta: &StateHandle<TestDeltaState>,
    kind: Option<&&str>,
) -> String {
    match kind.copied() {
        Some("simple") => simple.read(|views| report(views, |v| v.value)),
        _ => delta.read(|views| report(views, |v| v.total)),
    }
}

async fn query(
    simple: &SimpleHandle<TestState>,
    delta: &StateHandle<TestDeltaState>,
    kind: Option<&&str>,
    max_staleness_ms: Option<u64>,
) -> Result<String, String> {
    let bound = std::time::Duration::from_millis(max_staleness_ms.ok_or("missing bound")?);
    let result = match kind.copied() {
        Some("simple") => {
            simple
                .query(bound, |views| report(views, |v| v.value))
                .await
        }
        _ => delta.query(bound, |views| report(views, |v| v.total)).await,
    }
    .map_err(|e| e.to_string())?;
    let stale: Vec<String> = result.stale.iter().map(|n| n.0.to_string()).collect();
    Ok(format!("{}|{}", result.value, stale.join(" ")))
}

async fn diag(
    simple: &SimpleHandle<TestState>,
    delta: &StateHandle<TestDeltaState>,
    kind: Option<&&str>,
) -> Result<String, String> {
    let diagnostics = match kind.copied() {
        Some("simple") => simple.diagnostics().await,
        _ => delta.diagnostics().await,
    }
    .map_err(|e| e.to_string())?;
    let backpressure: u64 = diagnostics
        .peers
        .values()
        .map(|p| p.counters.backpressure)
        .sum();
    Ok(format!(
        "rejected={} backpressure={backpressure}",
        diagnostics.rejected_frames
    ))
}

fn report<V>(views: &ViewMap<V>, value: impl Fn(&V) -> u64) -> String {
    let mut entries: Vec<String> = views
        .iter()
        .map(|v| {
            let status = if v.status == PeerStatus::Up {
                "up"
            } else {
                "down"
            };
            let g = v.generation;
            format!(
                "{}:{}:{status}:{}:{}",
                v.source.0,
                value(&v.view),
                g.incarnation.0,
                g.age.0
            )
        })
        .collect();
    entries.sort();
    entries.join(" ")
}

fn parse(word: Option<&&str>) -> Option<u64> {
    word.and_then(|w| w.parse().ok())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // The parent reads line by line; a closed pipe means it is gone and nothing is lost.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn resident_kib() -> u64 {
    // /proc/self/statm: size resident ... in pages.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}
