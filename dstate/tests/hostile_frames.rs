//! A hostile or broken peer: whatever frames arrive, from whichever sender, the engine never
//! panics, never changes this node's own shard, only installs a node's view from that node,
//! and keeps working afterwards.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dstate::engine::{Engine, EngineLimits, Start};
use dstate::test_support::{
    apply_test_change, TestDeltaChange, TestDeltaState, TestDeltaView, TestState, TestViewDelta,
};
use dstate::wire::{self, Frame, FrameKind, Notice};
use dstate::{
    Age, DeltaDistributedState, Generation, Incarnation, NodeId, Simple, StateConfig, SyncStrategy,
};
use proptest::prelude::*;

const LOCAL: NodeId = NodeId(1);

fn arb_kind() -> impl Strategy<Value = FrameKind> {
    prop_oneof![
        any::<bool>().prop_map(|ack| FrameKind::Snapshot { ack }),
        (0u32..6, 0u32..6, 0u64..4096, any::<bool>()).prop_map(
            |(index, count, total_bytes, ack)| FrameKind::SnapshotChunk {
                index,
                count,
                total_bytes,
                ack,
            }
        ),
        Just(FrameKind::Delta),
        Just(FrameKind::SnapshotRequest),
        Just(FrameKind::Current),
        Just(FrameKind::Ack),
        Just(FrameKind::Feed),
        Just(FrameKind::Heartbeat),
        Just(FrameKind::Goodbye),
    ]
}

/// Payloads: random bytes, or well-formed values of the test states' codecs (so frames get
/// past decoding and exercise the receive rules).
fn arb_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (any::<u64>(), "[a-z]{0,6}").prop_map(|(value, label)| postcard::to_allocvec(&TestState {
            value,
            label
        })
        .unwrap_or_default()),
        (any::<u64>(), "[a-z]{0,3}", any::<u64>()).prop_map(|(total, key, v)| {
            let view = TestDeltaView {
                total,
                entries: [(key, v)].into_iter().collect(),
            };
            postcard::to_allocvec(&view).unwrap_or_default()
        }),
        any::<u64>()
            .prop_map(|n| postcard::to_allocvec(&TestViewDelta::Add(n)).unwrap_or_default()),
        (any::<u64>(), any::<u64>()).prop_map(|(i, a)| postcard::to_allocvec(&vec![Notice {
            state: "test_state".into(),
            source: NodeId(2),
            generation: Generation::new(Incarnation(i), Age(a)),
        }])
        .unwrap_or_default()),
    ]
}

/// Small numbers collide with real generations; large ones test the extremes.
fn arb_number() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..5, Just(u64::MAX), any::<u64>()]
}

fn arb_frame(names: &'static [&'static str]) -> impl Strategy<Value = (NodeId, Frame)> {
    (
        1u64..=4,
        arb_kind(),
        prop_oneof![
            proptest::sample::select(names).prop_map(Cow::Borrowed),
            "[a-z_]{0,12}".prop_map(Cow::Owned)
        ],
        prop_oneof![1u64..=4, any::<u64>()],
        arb_number(),
        arb_number(),
        prop_oneof![Just(1u32), 0u32..4, any::<u32>()],
        arb_payload(),
    )
        .prop_map(
            |(from, kind, state, source, inc, age, payload_version, payload)| {
                let frame = Frame {
                    kind,
                    state,
                    source: NodeId(source),
                    generation: Generation::new(Incarnation(inc), Age(age)),
                    payload_version,
                    payload,
                };
                (NodeId(from), frame)
            },
        )
}

/// Feed `frames` to `engine`, checking after each that the own shard is untouched and that
/// every held view of another node came from a frame that node itself sent.
fn survive<D: DeltaDistributedState>(engine: &mut Engine<D, ()>, frames: Vec<(NodeId, Frame)>)
where
    D::View: PartialEq + std::fmt::Debug,
{
    let start = Instant::now();
    let own_generation = engine.generation();
    let own_view = engine.views().view(LOCAL).map(|v| D::serialize_view(v));
    let mut sent_by_owner = std::collections::BTreeSet::new();
    for (step, (from, frame)) in frames.into_iter().enumerate() {
        let now = start + Duration::from_millis(step as u64 * 150);
        if frame.source == from {
            sent_by_owner.insert(from);
        }
        // The bytes path too: encode, decode, hand over what decodes.
        if let Ok(bytes) = wire::encode(&frame, 1 << 20) {
            let decoded = wire::decode(&bytes, 1 << 20).expect("own encoding decodes");
            engine.handle_frame(now, from, decoded);
        }
        engine.handle_timeout(now);
        while engine.poll_transmit().is_some() {}
        while engine.poll_persist().is_some() {}
        while engine.poll_event().is_some() {}
        assert_eq!(
            engine.generation(),
            own_generation,
            "own shard changed by a peer"
        );
        let views = engine.views();
        assert_eq!(
            views.view(LOCAL).map(|v| D::serialize_view(v)),
            own_view,
            "own view changed by a peer"
        );
        for node in views.nodes().filter(|n| *n != LOCAL) {
            assert!(
                sent_by_owner.contains(&node),
                "view of {node} installed though {node} never sent one"
            );
        }
    }
}

fn simple_engine() -> Engine<Simple<TestState>, ()> {
    let now = Instant::now();
    let start = Start {
        state: TestState {
            value: 7,
            label: "own".into(),
        },
        generation: Generation::new(Incarnation(3), Age(5)),
        persistent: false,
    };
    let config = StateConfig::new(SyncStrategy::feed_with_periodic_sync(Duration::from_secs(
        1,
    )));
    let mut engine = Engine::new(LOCAL, config, EngineLimits::default(), start, now);
    for peer in 2..=3 {
        engine.handle_peer_up(now, NodeId(peer), Incarnation(1));
    }
    engine
}

fn delta_engine() -> Engine<TestDeltaState, ()> {
    let now = Instant::now();
    let mut state = Default::default();
    apply_test_change(&mut state, &TestDeltaChange::Put("k".into(), 1));
    let start = Start {
        state,
        generation: Generation::new(Incarnation(3), Age(5)),
        persistent: false,
    };
    let config = StateConfig::new(SyncStrategy::active_push());
    let mut engine = Engine::new(LOCAL, config, EngineLimits::default(), start, now);
    for peer in 2..=3 {
        engine.handle_peer_up(now, NodeId(peer), Incarnation(1));
    }
    engine
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_simple_state_engine_survives_any_frames_and_keeps_its_own_shard(
        frames in proptest::collection::vec(arb_frame(&["test_state"]), 1..40)
    ) {
        let mut engine = simple_engine();
        survive(&mut engine, frames);
        // Still works: a mutation commits on top of the untouched shard.
        engine.handle_mutation(Instant::now(), |s: &mut TestState| {
            s.value += 1;
            (Arc::new(s.clone()), ())
        });
        prop_assert_eq!(engine.shard().state.value, 8);
        prop_assert_eq!(engine.generation().age, Age(6));
    }

    #[test]
    fn a_delta_state_engine_survives_any_frames_and_keeps_its_own_shard(
        frames in proptest::collection::vec(arb_frame(&["test_delta_state"]), 1..40)
    ) {
        let mut engine = delta_engine();
        survive(&mut engine, frames);
        engine.handle_mutation(Instant::now(), |s: &mut _| {
            let change = TestDeltaChange::Add(2);
            apply_test_change(s, &change);
            (change, ())
        });
        prop_assert_eq!(engine.shard().state.total, 2);
        prop_assert_eq!(engine.generation().age, Age(6));
    }
}

/// The harness is not vacuous: a well-formed snapshot from its owner is installed through it,
/// and the same snapshot claimed by another sender is not.
#[test]
fn the_harness_installs_an_owners_snapshot_and_refuses_a_spoofed_one() {
    let snapshot = |source: u64| Frame {
        kind: FrameKind::Snapshot { ack: false },
        state: Cow::Borrowed("test_state"),
        source: NodeId(source),
        generation: Generation::new(Incarnation(1), Age(1)),
        payload_version: 1,
        payload: postcard::to_allocvec(&TestState {
            value: 42,
            label: "peer".into(),
        })
        .expect("serializes"),
    };
    let mut engine = simple_engine();
    survive(
        &mut engine,
        vec![(NodeId(3), snapshot(2)), (NodeId(2), snapshot(2))],
    );
    let views = engine.views();
    assert_eq!(views.view(NodeId(2)).map(|s| s.value), Some(42));
    assert_eq!(views.len(), 2, "only the own view and node 2's");
}
