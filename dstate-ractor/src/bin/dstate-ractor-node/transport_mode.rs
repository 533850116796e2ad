//! Transport-level node: cluster membership and raw frames, no dstate engine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dstate::{ActorRuntime as _, ClusterEvent, Incarnation, NodeId, Transport as _};
use dstate_ractor::RactorRuntime;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::{builder, fail, say, Args};

pub(crate) async fn run(args: Args) {
    let runtime = RactorRuntime::new();
    let mut events = runtime.cluster_events();
    let cluster = match builder(&args).start(&runtime).await {
        Ok(cluster) => cluster,
        Err(err) => fail("start", err),
    };
    let incarnation = Incarnation(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1),
    );
    let attached = cluster
        .attach(incarnation, |from, frame: Bytes| {
            say(format!(
                "FRAME {} {} {}",
                from.0,
                frame.len(),
                String::from_utf8_lossy(&frame[..frame.len().min(64)])
            ));
        })
        .await;
    if let Err(err) = attached {
        fail("attach", err);
    }
    say(format!("LISTENING {}", cluster.local_addr()));
    say(format!("INCARNATION {}", incarnation.0));
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ClusterEvent::NodeJoined { node, incarnation } => {
                    say(format!("JOINED {} {}", node.0, incarnation.0))
                }
                ClusterEvent::NodeLeft { node, reason } => {
                    say(format!("LEFT {} {reason:?}", node.0))
                }
                other => say(format!("EVENT {other:?}")),
            }
        }
    });

    let transport = cluster.transport();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["send", node, text @ ..] => {
                let Ok(node) = node.parse() else {
                    say("ERR bad node");
                    continue;
                };
                let frame = Bytes::from(text.join(" "));
                match transport.send(NodeId(node), frame) {
                    Ok(()) => say("SENT ok"),
                    Err(err) => say(format!("SENT err {err}")),
                }
            }
            ["burst", node, count, size] => {
                let (Ok(node), Ok(count), Ok(size)) =
                    (node.parse(), count.parse::<u64>(), size.parse::<usize>())
                else {
                    say("ERR bad burst");
                    continue;
                };
                let (mut sent, mut refused) = (0u64, 0u64);
                for i in 0..count {
                    let mut frame = format!("burst-{i}-").into_bytes();
                    frame.resize(size.max(frame.len()), b'.');
                    match transport.send(NodeId(node), Bytes::from(frame)) {
                        Ok(()) => sent += 1,
                        Err(_) => refused += 1,
                    }
                }
                say(format!("BURST sent={sent} refused={refused}"));
            }
            ["forge", node, claimed, value, incarnation] => {
                let (Ok(node), Ok(claimed), Ok(value), Ok(incarnation)) = (
                    node.parse(),
                    claimed.parse(),
                    value.parse(),
                    incarnation.parse(),
                ) else {
                    say("ERR bad forge");
                    continue;
                };
                let frame = snapshot(NodeId(claimed), value, Incarnation(incarnation));
                match transport.send(NodeId(node), frame) {
                    Ok(()) => say("FORGED ok"),
                    Err(err) => say(format!("FORGED err {err}")),
                }
            }
            ["peers"] => {
                let peers: Vec<String> = cluster
                    .peers()
                    .iter()
                    .map(|p| format!("{}:{}:{}", p.node.0, p.incarnation.0, p.frames_in_flight))
                    .collect();
                say(format!("PEERS {}", peers.join(",")));
            }
            ["stats"] => {
                let s = cluster.stats();
                say(format!(
                    "STATS frames_sent={} frames_received={} backpressure={} rejected={} malformed={} dials={} dial_failures={} sessions={} joins={} leaves={}",
                    s.frames_sent,
                    s.frames_received,
                    s.backpressure,
                    s.rejected_unknown_token,
                    s.malformed,
                    s.dials,
                    s.dial_failures,
                    s.sessions_opened,
                    s.joins,
                    s.leaves
                ));
            }
            ["reconnect", node] => match node.parse() {
                Ok(node) => {
                    transport.reconnect(NodeId(node));
                    say("OK");
                }
                Err(_) => say("ERR bad node"),
            },
            ["flush"] => {
                let acked = cluster.flush(Duration::from_secs(5)).await;
                say(format!("FLUSHED {acked}"));
            }
            ["quit"] => break,
            _ => say(format!("ERR unknown command {line:?}")),
        }
    }
    cluster.shutdown().await;
    say("BYE");
}

/// A well-formed snapshot of the core's `TestState` that claims to come from `claimed`.
fn snapshot(claimed: NodeId, value: u64, incarnation: Incarnation) -> Bytes {
    use dstate::test_support::TestState;
    use dstate::wire::{encode, Frame, FrameKind};
    use dstate::{Age, DistributedState as _, Generation};
    let state = TestState {
        value,
        label: String::from("forged"),
    };
    let frame = Frame {
        kind: FrameKind::Snapshot { ack: false },
        state: TestState::name().into(),
        source: claimed,
        generation: Generation::new(incarnation, Age(1)),
        payload_version: TestState::WIRE_VERSION,
        payload: state.serialize_state(),
    };
    // A few dozen bytes: far below any limit.
    encode(&frame, usize::MAX).unwrap_or_default()
}
