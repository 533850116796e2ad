//! Properties of the replication model under random operation sequences and fault schedules,
//! run in the simulated cluster. Every failure names the simulation seed (in the panic
//! message) and proptest prints the minimal failing input, which replays the run.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::subsequence;

use dstate::engine::EngineLimits;
use dstate::test_support::sim::{check_delta_law, ApplyFn, LinkFaults, Op, Sim, SimConfig};
use dstate::test_support::{
    apply_test_change, TestDeltaChange, TestDeltaInner, TestDeltaState, TestState,
};
use dstate::{DeltaDistributedState, Generation, NodeId, Simple, StateConfig, SyncStrategy};

const NODES: u64 = 3;

fn apply_simple(state: &mut TestState, add: &u64) -> Arc<TestState> {
    state.value = state.value.wrapping_add(*add);
    // Labels up to 300 bytes: with small frames, simple snapshots travel in chunks too.
    state.label = "x".repeat((state.value % 300) as usize);
    Arc::new(state.clone())
}

fn apply_delta(state: &mut TestDeltaInner, change: &TestDeltaChange) -> TestDeltaChange {
    apply_test_change(state, change);
    change.clone()
}

fn strategy(index: u8) -> SyncStrategy {
    let period = Duration::from_millis(700);
    match index % 4 {
        0 => SyncStrategy::active_push(),
        1 => SyncStrategy::feed_lazy_pull(),
        2 => SyncStrategy::feed_with_periodic_sync(period),
        _ => SyncStrategy::periodic_only(period),
    }
}

fn delta_change() -> impl Strategy<Value = TestDeltaChange> {
    // Up to 40 keys of 20 bytes: views large enough to travel in chunks when frames are small.
    let key = (0u8..40).prop_map(|k| format!("a-rather-long-key-{k:02}"));
    prop_oneof![
        3 => (1u64..100).prop_map(TestDeltaChange::Add),
        3 => (key.clone(), any::<u64>()).prop_map(|(k, v)| TestDeltaChange::Put(k, v)),
        2 => key.prop_map(TestDeltaChange::Remove),
        1 => (1u64..100).prop_map(TestDeltaChange::Urgent),
        1 => (1u64..100, 0u64..500)
            .prop_map(|(n, ms)| TestDeltaChange::Delayed(n, Duration::from_millis(ms))),
        1 => (1u64..100).prop_map(TestDeltaChange::Secret),
    ]
}

fn link_faults() -> impl Strategy<Value = LinkFaults> {
    (
        0.0..0.5f64,
        0.0..0.3f64,
        0.0..0.1f64,
        0u64..20,
        0u64..300,
        any::<bool>(),
    )
        .prop_map(|(loss, duplication, corruption, min, max, in_order)| {
            LinkFaults::reliable()
                .with_loss(loss)
                .with_duplication(duplication)
                .with_corruption(corruption)
                .with_delay(Duration::from_millis(min), Duration::from_millis(max))
                .with_in_order(in_order)
        })
}

fn node() -> impl Strategy<Value = NodeId> {
    (1..=NODES).prop_map(NodeId)
}

fn op<C: Clone + Debug + 'static>(
    change: impl Strategy<Value = C> + 'static,
) -> impl Strategy<Value = Op<C>> {
    let all: Vec<NodeId> = (1..=NODES).map(NodeId).collect();
    let partition = subsequence(all.clone(), 1..NODES as usize).prop_map(move |a| {
        let b = all.iter().copied().filter(|n| !a.contains(n)).collect();
        Op::Partition { a, b }
    });
    prop_oneof![
        8 => (node(), change).prop_map(|(node, change)| Op::Mutate { node, change }),
        1 => (node(), 0u64..2000).prop_map(|(node, ms)| Op::Query {
            node,
            max_staleness: Duration::from_millis(ms),
        }),
        2 => partition,
        1 => Just(Op::Heal),
        2 => link_faults().prop_map(Op::SetFaults),
        1 => (node(), node(), link_faults())
            .prop_map(|(from, to, faults)| Op::SetLinkFaults { from, to, faults }),
        1 => (node(), 1usize..3).prop_map(|(node, count)| Op::FailSaves { node, count }),
        1 => node().prop_map(|node| Op::Crash { node }),
        1 => node().prop_map(|node| Op::Hang { node }),
        1 => node().prop_map(|node| Op::Resume { node }),
        2 => (node(), any::<bool>()).prop_map(|(node, persisted)| Op::Restart { node, persisted }),
        1 => node().prop_map(|node| Op::Leave { node }),
        5 => (0u64..4000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
    ]
}

/// One random run: a seed, the cluster settings and the operations.
#[derive(Debug, Clone)]
struct Run<C> {
    seed: u64,
    strategy: u8,
    persistence: bool,
    /// Frames of at most 256 bytes: larger snapshots travel in chunks.
    small_frames: bool,
    /// Views of peers down for more than 2 s are evicted (instead of 60 s).
    short_retention: bool,
    /// Pulls time out after 50 ms (instead of 500 ms).
    short_pull_timeout: bool,
    /// Frames of a node's previous process may arrive after its new process joined.
    late_frames: bool,
    links: LinkFaults,
    ops: Vec<Op<C>>,
}

fn run<C: Clone + Debug + 'static>(
    change: impl Strategy<Value = C> + 'static,
) -> impl Strategy<Value = Run<C>> {
    (
        any::<u64>(),
        0u8..4,
        any::<[bool; 5]>(),
        link_faults(),
        vec(op(change), 1..16),
    )
        .prop_map(|(seed, strategy, flags, links, ops)| {
            let [persistence, small_frames, short_retention, short_pull_timeout, late_frames] =
                flags;
            Run {
                seed,
                strategy,
                persistence,
                small_frames,
                short_retention,
                short_pull_timeout,
                late_frames,
                links,
                ops,
            }
        })
}

fn sim_for<D, C>(run: &Run<C>, initial: D::State) -> Sim<D>
where
    D: DeltaDistributedState<View: PartialEq + Debug>,
{
    let mut state = StateConfig::new(strategy(run.strategy));
    if run.short_retention {
        state = state.with_down_retention(Duration::from_secs(2));
    }
    if run.short_pull_timeout {
        state = state.with_pull_timeout(Duration::from_millis(50));
    }
    let mut limits = EngineLimits::default();
    if run.small_frames {
        limits.transport_frame_bytes = 256;
    }
    let config = SimConfig::new(NODES as usize, run.seed)
        .with_state_config(state)
        .with_engine_limits(limits)
        .with_persistence(run.persistence)
        .with_late_frames_from_previous_processes(run.late_frames)
        .with_links(run.links.clone());
    Sim::new(config, initial)
}

/// Once faults stop, every running node's view of every running peer equals the peer's
/// projected state (the sim also checks every invariant after every step of the run).
fn converges<D, C>(run: &Run<C>, initial: D::State, apply: ApplyFn<D, C>)
where
    D: DeltaDistributedState<View: PartialEq + Debug>,
    C: Clone + Send + 'static,
{
    let mut sim = sim_for::<D, C>(run, initial);
    sim.run_ops(&run.ops, apply);
    sim.settle();
    if let Err(violation) = sim.check_converged() {
        panic!("not converged once faults stopped: {violation}");
    }
}

/// Drive the run one step at a time and check from outside, after every step, that the
/// generation each node holds for each peer never goes backwards within an incarnation.
fn generations_never_go_backwards<D, C>(run: &Run<C>, initial: D::State, apply: ApplyFn<D, C>)
where
    D: DeltaDistributedState<View: PartialEq + Debug>,
    C: Clone + Send + 'static,
{
    let mut sim = sim_for::<D, C>(run, initial);
    let mut newest: BTreeMap<(NodeId, NodeId), Generation> = BTreeMap::new();
    let observe = |sim: &mut Sim<D>, newest: &mut BTreeMap<(NodeId, NodeId), Generation>| {
        for observer in sim.node_ids() {
            let Some(views) = sim.views(observer) else {
                continue;
            };
            for view in views.iter().filter(|v| v.source != observer) {
                let key = (observer, view.source);
                if let Some(before) = newest.get(&key) {
                    let same_lifetime = before.incarnation == view.generation.incarnation;
                    assert!(
                        !same_lifetime || before.age <= view.generation.age,
                        "seed {}: {observer}'s view of {} went back from {before} to {}",
                        sim.seed(),
                        view.source,
                        view.generation
                    );
                }
                newest.insert(key, view.generation);
            }
        }
    };
    for op in &run.ops {
        match op {
            Op::Advance(by) => {
                let deadline = sim.now() + *by;
                while sim.next_event_at().is_some_and(|at| at <= deadline) {
                    sim.step();
                    observe(&mut sim, &mut newest);
                }
                sim.run_until(deadline);
            }
            Op::Restart { node, .. } => {
                // A new process starts with no views: its history starts over.
                newest.retain(|(observer, _), _| observer != node);
                sim.run_ops(std::slice::from_ref(op), apply);
            }
            _ => {
                sim.run_ops(std::slice::from_ref(op), apply);
            }
        }
        observe(&mut sim, &mut newest);
    }
    let stats = sim.stats();
    assert_eq!(
        stats.invariant_checks,
        stats.steps,
        "seed {}: every step checked",
        sim.seed()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn simple_state_views_converge_once_faults_stop(run in run(1u64..1000)) {
        converges::<Simple<TestState>, u64>(&run, TestState::default(), apply_simple);
    }

    #[test]
    fn delta_state_views_converge_once_faults_stop(run in run(delta_change())) {
        converges::<TestDeltaState, TestDeltaChange>(&run, TestDeltaInner::default(), apply_delta);
    }

    #[test]
    fn held_generations_never_go_backwards_within_an_incarnation(run in run(delta_change())) {
        generations_never_go_backwards::<TestDeltaState, TestDeltaChange>(
            &run,
            TestDeltaInner::default(),
            apply_delta,
        );
    }

    #[test]
    fn delta_apply_equals_snapshot_apply(changes in vec(delta_change(), 0..64)) {
        let checked = check_delta_law::<TestDeltaState, TestDeltaChange>(
            &TestDeltaInner::default(),
            &changes,
            apply_delta,
        );
        prop_assert_eq!(checked, Ok(()));
    }

    #[test]
    fn simple_states_obey_the_same_law(adds in vec(any::<u64>(), 0..32)) {
        let checked = check_delta_law::<Simple<TestState>, u64>(
            &TestState::default(),
            &adds,
            apply_simple,
        );
        prop_assert_eq!(checked, Ok(()));
    }
}
