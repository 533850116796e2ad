//! A node flooded with garbage and forged frames by a hostile member and a non-member keeps
//! its own shard, keeps the honest peer's view, and keeps replicating.

use std::borrow::Cow;

use bytes::Bytes;
use dstate::test_support::{seal_frame_body, TestState};
use dstate::wire::{self, Frame, FrameKind, Notice};
use dstate::{Age, ClusterEvent, Generation, Incarnation, NodeId, StateConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{eventually, Cluster};

const KINDS: usize = 9;

fn kind(rng: &mut SmallRng) -> FrameKind {
    match rng.gen_range(0..KINDS) {
        0 => FrameKind::Snapshot { ack: rng.gen() },
        1 => FrameKind::SnapshotChunk {
            index: rng.gen_range(0..4),
            count: rng.gen_range(0..4),
            total_bytes: rng.gen_range(0..1 << 20),
            ack: rng.gen(),
        },
        2 => FrameKind::Delta,
        3 => FrameKind::SnapshotRequest,
        4 => FrameKind::Current,
        5 => FrameKind::Ack,
        6 => FrameKind::Feed,
        7 => FrameKind::Heartbeat,
        _ => FrameKind::Goodbye,
    }
}

fn payload(rng: &mut SmallRng) -> Vec<u8> {
    match rng.gen_range(0..4) {
        0 => (0..rng.gen_range(0..48)).map(|_| rng.gen()).collect(),
        1 => postcard::to_allocvec(&TestState {
            value: rng.gen(),
            label: "forged".into(),
        })
        .unwrap_or_default(),
        2 => postcard::to_allocvec(&vec![Notice {
            state: "test_state".into(),
            source: NodeId(rng.gen_range(1..=4)),
            generation: Generation::new(Incarnation(rng.gen()), Age(rng.gen())),
        }])
        .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// One hostile byte string: random bytes, a checksummed random body, or a well-formed frame
/// with forged fields (any kind, any claimed source, any generation).
fn hostile_bytes(rng: &mut SmallRng) -> Bytes {
    match rng.gen_range(0..3) {
        0 => (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
        1 => {
            let body: Vec<u8> = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect();
            Bytes::from(seal_frame_body(&body))
        }
        _ => {
            let state = match rng.gen_range(0..3) {
                0 => Cow::Borrowed(""),
                1 => Cow::Borrowed("unknown_state"),
                _ => Cow::Borrowed("test_state"),
            };
            let frame = Frame {
                kind: kind(rng),
                state,
                source: NodeId(rng.gen_range(1..=4)),
                generation: Generation::new(
                    Incarnation(rng.gen_range(0..3)),
                    Age(rng.gen_range(0..1000)),
                ),
                payload_version: rng.gen_range(0..3),
                payload: payload(rng),
            };
            wire::encode(&frame, usize::MAX).unwrap_or_default()
        }
    }
}

#[tokio::test]
async fn a_flood_of_garbage_and_forgeries_changes_nothing_it_must_not() {
    let cluster = Cluster::new(2);
    let a = cluster.simple(0, StateConfig::default()).await;
    let b = cluster.simple(1, StateConfig::default()).await;
    a.mutate(|s| s.value = 10).await.unwrap();
    b.mutate(|s| s.value = 20).await.unwrap();
    eventually("a holds b's 20", || async {
        a.read(|v| v.view(NodeId(2)).map(|s| s.value)) == Some(20)
    })
    .await;
    let own_generation = a.generation();

    // Node 3 is a hostile member; node 4 never joined.
    cluster.nodes[0].runtime.emit(ClusterEvent::NodeJoined {
        node: NodeId(3),
        incarnation: Incarnation(1),
    });
    let inbound = cluster.nodes[0].node.inbound();
    let mut rng = SmallRng::seed_from_u64(0xD57A7E);
    for _ in 0..3000 {
        let from = NodeId(rng.gen_range(3..=4));
        inbound.deliver(from, hostile_bytes(&mut rng));
    }

    // A marker from node 3 after its flood, in a newer incarnation than any forgery: once it
    // shows, every frame node 3 sent before it has been handled.
    let marker = Frame {
        kind: FrameKind::Snapshot { ack: false },
        state: Cow::Borrowed("test_state"),
        source: NodeId(3),
        generation: Generation::new(Incarnation(5), Age(1)),
        payload_version: 1,
        payload: postcard::to_allocvec(&TestState {
            value: 99,
            label: "marker".into(),
        })
        .expect("serializes"),
    };
    // Node 3 may have said goodbye among its forgeries (it may: they are its own frames), so
    // it rejoins in that incarnation first; the marker is resent until it shows.
    cluster.nodes[0].runtime.emit(ClusterEvent::NodeJoined {
        node: NodeId(3),
        incarnation: Incarnation(5),
    });
    let marker = wire::encode(&marker, usize::MAX).expect("encodes");
    eventually("node 3's flood handled", || async {
        inbound.deliver(NodeId(3), marker.clone());
        a.read(|v| v.view(NodeId(3)).map(|s| s.value)) == Some(99)
    })
    .await;

    // The honest traffic after the flood still goes through, both ways.
    b.mutate(|s| s.value = 21).await.unwrap();
    a.mutate(|s| s.value = 11).await.unwrap();
    eventually("a holds b's 21", || async {
        a.read(|v| v.view(NodeId(2)).map(|s| s.value)) == Some(21)
    })
    .await;
    eventually("b holds a's 11", || async {
        b.read(|v| v.view(NodeId(1)).map(|s| s.value)) == Some(11)
    })
    .await;

    // Own shard: exactly the two own mutations, nothing forged.
    assert_eq!(a.generation().incarnation, own_generation.incarnation);
    assert_eq!(a.generation().age.0, own_generation.age.0 + 1);
    assert_eq!(a.local_view().map(|s| s.value), Some(11));
    // Node 2's view came only from node 2.
    assert_eq!(
        a.read(|v| v.get(NodeId(2)).map(|s| s.view.label.clone())),
        Some(String::new())
    );
    let diagnostics = a.diagnostics().await.unwrap();
    assert!(diagnostics.rejected_frames > 0, "forgeries are counted");
}
