//! Frames mode: a cluster node without a dstate node; frames are counted per sender.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dstate::{ActorRuntime, ClusterEvent, Incarnation, LeaveReason, NodeId, Transport};
use dstate_kameo::KameoRuntime;

use crate::{start_cluster, wall_millis, Args};

/// Frames received from one peer: count, how many came in sequence order, bytes.
#[derive(Default, Clone, Copy)]
struct Received {
    count: u64,
    in_order: u64,
    bytes: u64,
    next: u64,
}

/// Raw frames over the transport, without a dstate node.
pub(crate) async fn run(args: Args) -> Result<(), String> {
    let runtime = KameoRuntime::new();
    let cluster = start_cluster(&args, &runtime).await?;
    println!("READY {} {}", cluster.local_addr(), cluster.peer_identity());

    let mut events = runtime.cluster_events();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                ClusterEvent::NodeJoined { node, incarnation } => {
                    println!("JOINED {} {}", node.0, incarnation.0)
                }
                ClusterEvent::NodeLeft { node, reason } => {
                    let reason = if reason == LeaveReason::Graceful {
                        "graceful"
                    } else {
                        "disconnected"
                    };
                    println!("LEFT {} {reason}", node.0)
                }
                _ => {}
            }
        }
    });

    let received: Arc<Mutex<HashMap<NodeId, Received>>> = Arc::default();
    let sink_received = received.clone();
    let sink = move |from: NodeId, frame: Bytes| {
        let mut map = sink_received.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(from).or_default();
        entry.count += 1;
        entry.bytes += frame.len() as u64;
        let seq = frame
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes);
        if seq == Some(entry.next) {
            entry.in_order += 1;
        }
        if let Some(seq) = seq {
            entry.next = seq + 1;
        }
    };
    let incarnation = Incarnation(args.incarnation.unwrap_or_else(wall_millis));
    cluster
        .join(incarnation, sink)
        .await
        .map_err(|e| e.to_string())?;

    let (line_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let transport = cluster.transport();
    let mut next_seq: HashMap<u64, u64> = HashMap::new();
    while let Some(line) = lines.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["send", to, count, size] => {
                let (to, count, size): (u64, u64, usize) = (
                    to.parse().unwrap_or(0),
                    count.parse().unwrap_or(0),
                    size.parse().unwrap_or(8),
                );
                let (mut ok, mut refused, mut last_err) = (0u64, 0u64, String::new());
                let seq = next_seq.entry(to).or_insert(0);
                for _ in 0..count {
                    let mut frame = vec![0u8; size.max(8)];
                    frame[..8].copy_from_slice(&seq.to_be_bytes());
                    match transport.send(NodeId(to), Bytes::from(frame)) {
                        Ok(()) => {
                            ok += 1;
                            *seq += 1;
                        }
                        Err(err) => {
                            refused += 1;
                            last_err = err.to_string();
                        }
                    }
                }
                println!("SENT {ok} {refused} {last_err}");
            }
            ["received", from] => {
                let from = NodeId(from.parse().unwrap_or(0));
                let r = received
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&from)
                    .copied()
                    .unwrap_or_default();
                println!("RECEIVED {} {} {} {}", from.0, r.count, r.in_order, r.bytes);
            }
            ["members"] => {
                let members = cluster.members().await.unwrap_or_default();
                let list: Vec<String> = members.iter().map(|n| n.0.to_string()).collect();
                println!("MEMBERS {}", list.join(","));
            }
            ["stats"] => println!("STATS {:?}", cluster.stats()),
            ["reconnect", node] => {
                transport.reconnect(NodeId(node.parse().unwrap_or(0)));
                println!("OK");
            }
            ["frame", to, source, value] => {
                let frame = snapshot_frame(source.parse().unwrap_or(0), value.parse().unwrap_or(0));
                match transport.send(NodeId(to.parse().unwrap_or(0)), frame) {
                    Ok(()) => println!("OK"),
                    Err(err) => println!("ERR {err}"),
                }
            }
            ["maxframe"] => println!("MAXFRAME {}", transport.max_frame_bytes()),
            ["shutdown"] => {
                cluster.shutdown().await;
                println!("BYE");
                return Ok(());
            }
            _ => println!("ERR unknown command {line:?}"),
        }
    }
    Ok(())
}

/// A `TestState` snapshot frame claiming to come from `source` (which may be a lie: the
/// receiver must check it against the connection).
fn snapshot_frame(source: u64, value: u64) -> Bytes {
    use dstate::wire::{encode, Frame, FrameKind};
    use dstate::{Age, DistributedState, Generation};
    let state = dstate::test_support::TestState {
        value,
        label: String::new(),
    };
    let frame = Frame {
        kind: FrameKind::Snapshot { ack: false },
        state: dstate::test_support::TestState::name().into(),
        source: NodeId(source),
        // Far in the future: accepted over anything, were the source believed.
        generation: Generation::new(Incarnation(u64::MAX / 2), Age(1)),
        payload_version: dstate::test_support::TestState::WIRE_VERSION,
        payload: state.serialize_state(),
    };
    encode(&frame, usize::MAX).unwrap_or_default()
}
