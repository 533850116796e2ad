//! Frames that pass the checksum but carry anything, from any sender, fed to an engine: it
//! never panics and never changes the own shard. The input is a list of records
//! `[sender byte][length byte][body]`; each body is sealed with magic, format and a valid
//! checksum so the fuzzer explores what lies behind them.
#![no_main]

use std::time::{Duration, Instant};

use dstate::engine::{Engine, EngineLimits, Start};
use dstate::test_support::{seal_frame_body, TestState};
use dstate::wire;
use dstate::{Age, Generation, Incarnation, NodeId, Simple, StateConfig, SyncStrategy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let own = Generation::new(Incarnation(3), Age(5));
    let initial = Start {
        state: TestState { value: 7, label: "own".into() },
        generation: own,
        persistent: false,
    };
    let config = StateConfig::new(SyncStrategy::feed_with_periodic_sync(Duration::from_secs(1)));
    let mut engine: Engine<Simple<TestState>, ()> =
        Engine::new(NodeId(1), config, EngineLimits::default(), initial, start);
    engine.handle_peer_up(start, NodeId(2), Incarnation(1));
    engine.handle_peer_up(start, NodeId(3), Incarnation(1));

    let mut rest = data;
    let mut step = 0u64;
    while let [from, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        step += 1;
        let bytes = seal_frame_body(body);
        let now = start + Duration::from_millis(step * 150);
        if let Ok(frame) = wire::decode(&bytes, 1 << 20) {
            engine.handle_frame(now, NodeId(u64::from(*from % 5)), frame);
        }
        engine.handle_timeout(now);
        while engine.poll_transmit().is_some() {}
        while engine.poll_persist().is_some() {}
        while engine.poll_event().is_some() {}
        assert_eq!(engine.generation(), own, "a peer changed the own shard");
    }
});
