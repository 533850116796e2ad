//! Frames that pass the checksum but carry anything, from any sender, fed to an engine: it
//! never panics and never changes the own shard. The first input byte picks a simple or a
//! delta state; the rest is a list of records `[sender byte][length byte][body]`, each body
//! sealed with magic, format and a valid checksum so the fuzzer explores what lies behind.
#![no_main]

use std::time::{Duration, Instant};

use dstate::engine::{Engine, EngineLimits, Start};
use dstate::test_support::{
    apply_test_change, seal_frame_body, TestDeltaChange, TestDeltaState, TestState,
};
use dstate::wire;
use dstate::{
    Age, DeltaDistributedState, Generation, Incarnation, NodeId, Simple, StateConfig,
    SyncStrategy,
};
use libfuzzer_sys::fuzz_target;

const OWN: Generation = Generation::new(Incarnation(3), Age(5));

fn engine<D: DeltaDistributedState>(state: D::State, strategy: SyncStrategy) -> Engine<D, ()> {
    let start = Instant::now();
    let initial = Start {
        state,
        generation: OWN,
        persistent: false,
    };
    let config = StateConfig::new(strategy);
    let mut engine = Engine::new(NodeId(1), config, EngineLimits::default(), initial, start);
    engine.handle_peer_up(start, NodeId(2), Incarnation(1));
    engine.handle_peer_up(start, NodeId(3), Incarnation(1));
    engine
}

fn feed<D: DeltaDistributedState>(mut engine: Engine<D, ()>, mut rest: &[u8]) {
    let start = Instant::now();
    let mut step = 0u64;
    while let [from, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        step += 1;
        let now = start + Duration::from_millis(step * 150);
        if let Ok(frame) = wire::decode(&seal_frame_body(body), 1 << 20) {
            engine.handle_frame(now, NodeId(u64::from(*from % 5)), frame);
        }
        engine.handle_timeout(now);
        while engine.poll_transmit().is_some() {}
        while engine.poll_persist().is_some() {}
        while engine.poll_event().is_some() {}
        assert_eq!(engine.generation(), OWN, "a peer changed the own shard");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else {
        return;
    };
    if pick % 2 == 0 {
        let own = TestState {
            value: 7,
            label: "own".into(),
        };
        let strategy = SyncStrategy::feed_with_periodic_sync(Duration::from_secs(1));
        feed(engine::<Simple<TestState>>(own, strategy), rest);
    } else {
        let mut own = Default::default();
        apply_test_change(&mut own, &TestDeltaChange::Put("k".into(), 1));
        feed(engine::<TestDeltaState>(own, SyncStrategy::active_push()), rest);
    }
});
