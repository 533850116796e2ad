//! Engine scenarios: every row of the receive table, urgencies, mismatch policies,
//! persistence batches, backpressure.

use std::time::{Duration, Instant};

use super::send::kind_of;
use super::*;
use crate::config::{StateConfig, SyncStrategy, VersionMismatchPolicy};
use crate::error::{MutationError, PersistError, RejectReason};
use crate::ids::{Age, Incarnation};
use crate::test_support::{apply_test_change, TestDeltaChange, TestDeltaInner, TestDeltaState};
use crate::wire::{self, Frame, FrameKind};

type TestEngine = Engine<TestDeltaState, u32>;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

fn engine(local: NodeId, config: StateConfig, incarnation: u64, now: Instant) -> TestEngine {
    let start = Start {
        state: TestDeltaInner::default(),
        generation: Generation::new(Incarnation(incarnation), Age(0)),
        persistent: false,
    };
    Engine::new(local, config, EngineLimits::default(), start, now)
}

fn mutate(engine: &mut TestEngine, now: Instant, change: TestDeltaChange, tag: u32) {
    engine.handle_mutation(now, move |state: &mut TestDeltaInner| {
        apply_test_change(state, &change);
        (change, tag)
    });
}

fn transmits(engine: &mut TestEngine) -> Vec<Transmit> {
    std::iter::from_fn(|| engine.poll_transmit()).collect()
}

fn events(engine: &mut TestEngine) -> Vec<EngineEvent<crate::test_support::TestDeltaView, u32>> {
    std::iter::from_fn(|| engine.poll_event()).collect()
}

fn frames(engine: &mut TestEngine) -> Vec<Frame> {
    transmits(engine)
        .iter()
        .map(|t| wire::decode(&t.frame, usize::MAX).unwrap())
        .collect()
}

/// Deliver everything `from` wants to send to `to` (as many rounds as it takes).
fn pump(from: &mut TestEngine, to: &mut TestEngine, now: Instant) {
    for _ in 0..10 {
        let out: Vec<Transmit> = transmits(from)
            .into_iter()
            .filter(|t| t.to == to.local())
            .collect();
        let back: Vec<Transmit> = transmits(to)
            .into_iter()
            .filter(|t| t.to == from.local())
            .collect();
        if out.is_empty() && back.is_empty() {
            return;
        }
        for t in out {
            to.handle_frame(
                now,
                from.local(),
                wire::decode(&t.frame, usize::MAX).unwrap(),
            );
        }
        for t in back {
            from.handle_frame(now, to.local(), wire::decode(&t.frame, usize::MAX).unwrap());
        }
    }
}

fn pair(config: StateConfig) -> (TestEngine, TestEngine, Instant) {
    let now = Instant::now();
    let mut a = engine(A, config.clone(), 10, now);
    let mut b = engine(B, config, 20, now);
    a.handle_peer_up(now, B, Incarnation(20));
    b.handle_peer_up(now, A, Incarnation(10));
    pump(&mut a, &mut b, now);
    (a, b, now)
}

fn held_total(engine: &TestEngine, source: NodeId) -> Option<u64> {
    engine.views.view(source).map(|v| v.total)
}

#[test]
fn join_exchanges_snapshots_both_ways() {
    let (a, b, _) = pair(StateConfig::default());
    assert_eq!(held_total(&a, B), Some(0));
    assert_eq!(held_total(&b, A), Some(0));
    assert!(a.is_synced() && b.is_synced());
}

#[test]
fn active_push_sends_one_delta_per_change_and_applies_in_order() {
    let (mut a, mut b, now) = pair(StateConfig::default());
    mutate(&mut a, now, TestDeltaChange::Add(3), 1);
    let sent = transmits(&mut a);
    assert_eq!(sent.len(), 1);
    assert_eq!(kind_of(&sent[0]), FrameKind::Delta);
    b.handle_frame(now, A, wire::decode(&sent[0].frame, usize::MAX).unwrap());
    assert_eq!(held_total(&b, A), Some(3));
    assert!(events(&mut a).iter().any(|e| matches!(
        e,
        EngineEvent::MutationDone {
            tag: 1,
            result: Ok(_)
        }
    )));
}

#[test]
fn snapshot_newer_replaces_older_or_equal_is_discarded() {
    let (mut a, mut b, now) = pair(StateConfig::default());
    mutate(&mut a, now, TestDeltaChange::Add(1), 0);
    let _ = transmits(&mut a);
    a.send_snapshot(B, false);
    let snapshot = frames(&mut a).remove(0);
    b.handle_frame(now, A, snapshot.clone());
    assert_eq!(held_total(&b, A), Some(1));
    let before = b.diagnostics(now).peers[&A].counters.stale_discarded;
    b.handle_frame(now, A, snapshot.clone());
    let mut older = snapshot;
    older.generation = Generation::new(Incarnation(10), Age(0));
    older.payload = TestDeltaState::serialize_view(&Default::default());
    b.handle_frame(now, A, older);
    assert_eq!(held_total(&b, A), Some(1));
    assert_eq!(
        b.diagnostics(now).peers[&A].counters.stale_discarded,
        before + 2
    );
}

#[test]
fn duplicate_delta_is_discarded_and_a_gap_asks_for_a_snapshot() {
    let (mut a, mut b, now) = pair(StateConfig::default());
    mutate(&mut a, now, TestDeltaChange::Add(1), 0);
    let first = frames(&mut a).remove(0);
    mutate(&mut a, now, TestDeltaChange::Add(1), 0);
    let _lost = frames(&mut a).remove(0);
    mutate(&mut a, now, TestDeltaChange::Add(1), 0);
    let third = frames(&mut a).remove(0);
    b.handle_frame(now, A, first.clone());
    b.handle_frame(now, A, first);
    assert_eq!(held_total(&b, A), Some(1), "duplicate not applied twice");
    b.handle_frame(now, A, third);
    assert_eq!(held_total(&b, A), Some(1), "gap keeps the view");
    assert!(
        b.views.get(A).unwrap().pending.is_some(),
        "newer data marked pending"
    );
    let asked = frames(&mut b);
    assert_eq!(asked[0].kind, FrameKind::SnapshotRequest);
    assert_eq!(b.diagnostics(now).peers[&A].counters.gaps, 1);
    a.handle_frame(now, B, asked[0].clone());
    pump(&mut a, &mut b, now);
    assert_eq!(held_total(&b, A), Some(3), "snapshot repairs the gap");
    assert!(b.views.get(A).unwrap().pending.is_none());
}

#[test]
fn a_newer_incarnation_retires_the_old_view_at_once() {
    let (mut a, mut b, now) = pair(StateConfig::default());
    mutate(&mut a, now, TestDeltaChange::Add(50), 0);
    pump(&mut a, &mut b, now);
    assert_eq!(held_total(&b, A), Some(50));
    // A restarts without persistence: new incarnation, empty state; its first frame is a delta.
    let mut a2 = engine(A, StateConfig::default(), 11, now);
    a2.handle_peer_up(now, B, Incarnation(20));
    let _ = transmits(&mut a2);
    mutate(&mut a2, now, TestDeltaChange::Add(1), 0);
    let delta = frames(&mut a2).remove(0);
    b.handle_frame(now, A, delta);
    assert_eq!(held_total(&b, A), None, "old incarnation retired, no ghost");
    let asked = frames(&mut b);
    assert_eq!(asked[0].kind, FrameKind::SnapshotRequest);
    pump(&mut a2, &mut b, now);
    a2.handle_frame(now, B, asked[0].clone());
    pump(&mut a2, &mut b, now);
    assert_eq!(held_total(&b, A), Some(1));
}

#[test]
fn anything_from_an_older_incarnation_is_discarded() {
    let (mut a, mut b, now) = pair(StateConfig::default());
    mutate(&mut a, now, TestDeltaChange::Add(1), 0);
    let old_delta = frames(&mut a).remove(0);
    let mut a2 = engine(A, StateConfig::default(), 11, now);
    a2.handle_peer_up(now, B, Incarnation(20));
    pump(&mut a2, &mut b, now);
    b.handle_frame(now, A, old_delta);
    assert_eq!(
        b.views.get(A).unwrap().generation.incarnation,
        Incarnation(11)
    );
    assert_eq!(held_total(&b, A), Some(0));
}

#[test]
fn a_late_frame_of_a_retired_incarnation_does_not_resurrect_it() {
    // Found by the simulated cluster (late frames of a previous process on a reordering
    // link): once a newer incarnation retired the view, the engine had no view left to
    // compare with and installed the old incarnation again: a ghost.
    let (mut a, mut b, now) = pair(StateConfig::default());
    mutate(&mut a, now, TestDeltaChange::Add(5), 0);
    pump(&mut a, &mut b, now);
    a.send_snapshot(B, false);
    let old_snapshot = frames(&mut a).remove(0);
    let old_notice = a.generation();
    // A restarts without persistence: its first delta retires the old view at once.
    let mut a2 = engine(A, StateConfig::default(), 11, now);
    a2.handle_peer_up(now, B, Incarnation(20));
    let _ = transmits(&mut a2);
    mutate(&mut a2, now, TestDeltaChange::Add(1), 0);
    b.handle_frame(now, A, frames(&mut a2).remove(0));
    assert_eq!(held_total(&b, A), None, "retired");
    let _ = frames(&mut b);
    // Frames of the previous lifetime still in flight arrive late.
    b.handle_frame(now, A, old_snapshot);
    assert_eq!(
        held_total(&b, A),
        None,
        "no ghost of the retired incarnation"
    );
    b.handle_notice(now, A, old_notice);
    assert!(
        frames(&mut b).is_empty(),
        "a notice of the old lifetime asks for nothing"
    );
    // The new lifetime is still accepted.
    pump(&mut a2, &mut b, now);
    a2.send_snapshot(B, false);
    pump(&mut a2, &mut b, now);
    assert_eq!(held_total(&b, A), Some(1));
    assert_eq!(
        b.views.get(A).unwrap().generation.incarnation,
        Incarnation(11)
    );
}

#[test]
fn a_late_frame_of_a_peer_that_left_and_rejoined_does_not_take_its_view_back() {
    // Found by the simulated cluster (late frames of a previous process): a graceful leave
    // forgot the peer entirely, so after it rejoined with its persisted shard (same
    // incarnation) a late frame of its previous process installed an older generation.
    let (mut a, mut b, now) = pair(StateConfig::default());
    a.send_snapshot(B, false);
    let late = frames(&mut a).remove(0);
    mutate(&mut a, now, TestDeltaChange::Add(1), 0);
    pump(&mut a, &mut b, now);
    let left_at = b.views.get(A).unwrap().generation;
    assert!(late.generation < left_at);
    b.handle_peer_left(now, A);
    assert_eq!(held_total(&b, A), None);
    // A's new process loads its shard (same incarnation and age) and rejoins.
    let start = Start {
        state: a.shard().state.clone(),
        generation: a.generation(),
        persistent: true,
    };
    let mut a2: TestEngine = Engine::new(
        A,
        StateConfig::default(),
        EngineLimits::default(),
        start,
        now,
    );
    b.handle_peer_up(now, A, Incarnation(99));
    a2.handle_peer_up(now, B, Incarnation(20));
    b.handle_frame(now, A, late);
    assert_eq!(
        held_total(&b, A),
        None,
        "an older generation than the one held before the leave"
    );
    pump(&mut a2, &mut b, now);
    assert_eq!(b.views.get(A).unwrap().generation, left_at);
    assert_eq!(held_total(&b, A), Some(1));
}

#[test]
fn a_frame_claiming_another_source_is_rejected_and_counted() {
    let (mut a, mut b, now) = pair(StateConfig::default());
    mutate(&mut a, now, TestDeltaChange::Add(7), 0);
    let mut spoofed = frames(&mut a).remove(0);
    spoofed.source = NodeId(3);
    b.handle_frame(now, A, spoofed);
    assert!(b.views.get(NodeId(3)).is_none());
    assert!(events(&mut b).iter().any(|e| matches!(
        e,
        EngineEvent::Rejected {
            reason: RejectReason::SpoofedSource { .. },
            ..
        }
    )));
    assert_eq!(b.diagnostics(now).rejected_frames, 1);
    // A peer can never write this node's own shard either.
    let mut own = frames(&mut a).into_iter().next().unwrap_or_else(|| {
        a.send_snapshot(B, false);
        frames(&mut a).remove(0)
    });
    own.source = B;
    b.handle_frame(now, A, own);
    assert_eq!(b.diagnostics(now).rejected_frames, 2);
    assert_eq!(held_total(&b, B), Some(0));
}

#[test]
fn urgency_immediate_pushes_under_the_feed_strategy() {
    let (mut a, _b, now) = pair(StateConfig::new(SyncStrategy::feed_lazy_pull()));
    mutate(&mut a, now, TestDeltaChange::Add(1), 0);
    assert!(transmits(&mut a).is_empty(), "feed strategy pushes nothing");
    assert!(events(&mut a)
        .iter()
        .any(|e| matches!(e, EngineEvent::FeedNotice { .. })));
    mutate(&mut a, now, TestDeltaChange::Urgent(1), 0);
    let sent = transmits(&mut a);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        kind_of(&sent[0]),
        FrameKind::Snapshot { ack: false },
        "catches up with a snapshot"
    );
}

#[test]
fn urgency_suppress_sends_nothing_and_the_next_send_carries_it() {
    let (mut a, mut b, now) = pair(StateConfig::default());
    mutate(&mut a, now, TestDeltaChange::Secret(5), 0);
    assert!(transmits(&mut a).is_empty());
    mutate(&mut a, now, TestDeltaChange::Add(2), 0);
    let sent = transmits(&mut a);
    assert_eq!(kind_of(&sent[0]), FrameKind::Snapshot { ack: false });
    b.handle_frame(now, A, wire::decode(&sent[0].frame, usize::MAX).unwrap());
    assert_eq!(b.views.get(A).unwrap().generation.age, Age(2));
    assert_eq!(held_total(&b, A), Some(2));
}

#[test]
fn urgency_delayed_pushes_once_within_the_delay() {
    let (mut a, _b, now) = pair(StateConfig::default());
    let delay = Duration::from_millis(200);
    mutate(&mut a, now, TestDeltaChange::Delayed(1, delay), 0);
    mutate(&mut a, now, TestDeltaChange::Delayed(1, delay), 0);
    assert!(transmits(&mut a).is_empty());
    assert_eq!(a.poll_timeout(), Some(now + delay));
    a.handle_timeout(now + delay);
    let sent = transmits(&mut a);
    assert_eq!(sent.len(), 1, "two changes, one snapshot");
}

#[test]
fn periodic_sync_is_skipped_once_every_peer_acknowledged() {
    let config = StateConfig::new(SyncStrategy::periodic_only(Duration::from_secs(1)));
    let (mut a, mut b, now) = pair(config);
    mutate(&mut a, now, TestDeltaChange::Add(4), 0);
    assert!(transmits(&mut a).is_empty());
    let t1 = now + Duration::from_secs(1);
    a.handle_timeout(t1);
    pump(&mut a, &mut b, t1);
    assert_eq!(held_total(&b, A), Some(4));
    let t2 = t1 + Duration::from_secs(1);
    a.handle_timeout(t2);
    assert!(
        transmits(&mut a).is_empty(),
        "nothing changed and b acknowledged"
    );
}

#[test]
fn mismatch_keep_stale_marks_the_view_and_drop_and_wait_does_not() {
    for (policy, pending, request) in [
        (VersionMismatchPolicy::KeepStale, true, false),
        (VersionMismatchPolicy::DropAndWait, false, false),
        (VersionMismatchPolicy::RequestSnapshot, false, true),
    ] {
        let (mut a, mut b, now) = pair(StateConfig::default().with_mismatch_policy(policy));
        mutate(&mut a, now, TestDeltaChange::Add(1), 0);
        let mut future = frames(&mut a).remove(0);
        future.payload_version = 2;
        b.handle_frame(now, A, future);
        assert_eq!(
            held_total(&b, A),
            Some(0),
            "{policy:?}: last good view kept"
        );
        assert_eq!(
            b.views.get(A).unwrap().pending.is_some(),
            pending,
            "{policy:?}"
        );
        let asked = frames(&mut b)
            .iter()
            .any(|f| f.kind == FrameKind::SnapshotRequest);
        assert_eq!(asked, request, "{policy:?}");
        assert_eq!(b.diagnostics(now).peers[&A].counters.version_mismatches, 1);
    }
}

#[test]
fn a_failed_save_rolls_back_state_age_and_view() {
    let now = Instant::now();
    let start = Start {
        state: TestDeltaInner::default(),
        generation: Generation::new(Incarnation(1), Age(0)),
        persistent: true,
    };
    let mut a: TestEngine = Engine::new(
        A,
        StateConfig::default(),
        EngineLimits::default(),
        start,
        now,
    );
    a.handle_peer_up(now, B, Incarnation(2));
    let _ = transmits(&mut a);
    mutate(&mut a, now, TestDeltaChange::Add(5), 1);
    mutate(&mut a, now, TestDeltaChange::Add(6), 2);
    let first = a.poll_persist().expect("first batch saved");
    assert!(a.poll_persist().is_none(), "second waits for the first");
    assert!(
        transmits(&mut a).is_empty(),
        "nothing published before the save"
    );
    a.handle_persisted(
        now,
        first.generation,
        Err(PersistError::Injected("disk".into())),
    );
    assert_eq!(a.generation().age, Age(0));
    assert_eq!(a.views.view(A).map(|v| v.total), Some(0));
    let done = events(&mut a);
    assert!(done.iter().any(|e| matches!(
        e,
        EngineEvent::MutationDone {
            tag: 1,
            result: Err(MutationError::Persist(_))
        }
    )));
    let second = a.poll_persist().expect("queued mutation goes next");
    a.handle_persisted(now, second.generation, Ok(()));
    assert_eq!(a.generation().age, Age(1));
    assert_eq!(a.views.view(A).map(|v| v.total), Some(6));
    assert_eq!(transmits(&mut a).len(), 1, "published after the save");
}

#[test]
fn backpressure_collapses_pending_changes_into_one_snapshot() {
    let (mut a, mut b, now) = pair(StateConfig::default());
    mutate(&mut a, now, TestDeltaChange::Add(1), 0);
    let _ = transmits(&mut a);
    a.handle_send_failed(now, B);
    for _ in 0..100 {
        mutate(&mut a, now, TestDeltaChange::Add(1), 0);
    }
    assert!(
        transmits(&mut a).is_empty(),
        "nothing queued for the slow peer"
    );
    let later = a.poll_timeout().expect("retry scheduled");
    a.handle_timeout(later);
    let sent = transmits(&mut a);
    assert_eq!(sent.len(), 1, "one snapshot");
    b.handle_frame(later, A, wire::decode(&sent[0].frame, usize::MAX).unwrap());
    assert_eq!(held_total(&b, A), Some(101));
}

#[test]
fn a_query_pulls_stale_views_once_and_times_out() {
    let (mut a, mut b, now) = pair(StateConfig::new(SyncStrategy::feed_lazy_pull()));
    mutate(&mut a, now, TestDeltaChange::Add(2), 0);
    b.handle_notice(now, A, a.generation());
    b.handle_query(now, 1, Duration::from_secs(10));
    b.handle_query(now, 2, Duration::from_secs(10));
    let requests = frames(&mut b);
    assert_eq!(
        requests
            .iter()
            .filter(|f| f.kind == FrameKind::SnapshotRequest)
            .count(),
        1,
        "coalesced"
    );
    a.handle_frame(now, B, requests[0].clone());
    pump(&mut a, &mut b, now);
    let ready: Vec<u64> = events(&mut b)
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::QueryReady { id } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ready, vec![1, 2]);
    assert_eq!(held_total(&b, A), Some(2));
    // A peer that never answers: the query is released at the pull timeout.
    b.handle_notice(now, A, a.generation().next());
    b.handle_query(now, 3, Duration::from_secs(10));
    let deadline = b.poll_timeout().unwrap();
    b.handle_timeout(deadline);
    assert!(events(&mut b)
        .iter()
        .any(|e| matches!(e, EngineEvent::QueryReady { id: 3 })));
}

#[test]
fn a_snapshot_larger_than_a_frame_travels_in_chunks() {
    let config =
        StateConfig::default().with_max_frame_bytes(std::num::NonZeroUsize::new(300).unwrap());
    let (mut a, mut b, now) = pair(config);
    for i in 0..40 {
        mutate(
            &mut a,
            now,
            TestDeltaChange::Put(format!("key-{i:03}"), i),
            0,
        );
    }
    let _ = transmits(&mut a);
    a.send_snapshot(B, false);
    let chunks = frames(&mut a);
    assert!(chunks.len() > 1, "chunked");
    assert!(chunks
        .iter()
        .all(|f| matches!(f.kind, FrameKind::SnapshotChunk { .. })));
    for chunk in chunks.into_iter().rev() {
        b.handle_frame(now, A, chunk);
    }
    assert_eq!(b.views.view(A).map(|v| v.entries.len()), Some(40));
}
