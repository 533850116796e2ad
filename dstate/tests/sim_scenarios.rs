//! Simulated-cluster scenarios, written as data and run by one runner, for every strategy,
//! both state flavours and both transport families (in-order lossless like ractor_cluster,
//! lossy and reordering like kameo).
#![allow(missing_docs)]

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use dstate::test_support::sim::{ApplyFn, LinkFaults, NodeStatus, Op, Sim, SimConfig};
use dstate::test_support::{
    apply_test_change, TestDeltaChange, TestDeltaInner, TestDeltaState, TestState,
};
use dstate::{DeltaDistributedState, NodeId, Simple, StateConfig, SyncStrategy};

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

/// A state type under test and how scenarios change it.
trait Model {
    type D: DeltaDistributedState<View: PartialEq + Debug>;
    type C: Clone + Debug + Send + 'static;
    const NAME: &'static str;
    fn initial() -> <Self::D as DeltaDistributedState>::State;
    /// The `n`-th change of a scenario.
    fn change(n: u64) -> Self::C;
    fn apply() -> ApplyFn<Self::D, Self::C>;
}

/// The simple `TestState`: each change adds to the value and relabels it.
struct SimpleModel;

fn apply_simple(state: &mut TestState, add: &u64) -> Arc<TestState> {
    state.value += add;
    state.label = format!("after +{add}");
    Arc::new(state.clone())
}

impl Model for SimpleModel {
    type D = Simple<TestState>;
    type C = u64;
    const NAME: &'static str = "simple";
    fn initial() -> TestState {
        TestState::default()
    }
    fn change(n: u64) -> u64 {
        n + 1
    }
    fn apply() -> ApplyFn<Self::D, u64> {
        apply_simple
    }
}

/// The delta-aware `TestDeltaState`: adds, puts, removes and private changes.
struct DeltaModel;

fn apply_delta(state: &mut TestDeltaInner, change: &TestDeltaChange) -> TestDeltaChange {
    apply_test_change(state, change);
    change.clone()
}

impl Model for DeltaModel {
    type D = TestDeltaState;
    type C = TestDeltaChange;
    const NAME: &'static str = "delta";
    fn initial() -> TestDeltaInner {
        TestDeltaInner::default()
    }
    fn change(n: u64) -> TestDeltaChange {
        match n % 4 {
            0 => TestDeltaChange::Add(n + 1),
            1 => TestDeltaChange::Put(format!("k{}", n % 3), n),
            2 => TestDeltaChange::Remove(format!("k{}", (n + 1) % 3)),
            _ => TestDeltaChange::Secret(n),
        }
    }
    fn apply() -> ApplyFn<Self::D, TestDeltaChange> {
        apply_delta
    }
}

fn strategies() -> [(&'static str, SyncStrategy); 4] {
    let period = Duration::from_secs(1);
    [
        ("active_push", SyncStrategy::active_push()),
        ("feed_lazy_pull", SyncStrategy::feed_lazy_pull()),
        (
            "feed_with_periodic_sync",
            SyncStrategy::feed_with_periodic_sync(period),
        ),
        ("periodic_only", SyncStrategy::periodic_only(period)),
    ]
}

fn families() -> [(&'static str, LinkFaults); 2] {
    [
        ("in_order_lossless", LinkFaults::in_order()),
        ("lossy_reordering", LinkFaults::lossy_reordering()),
    ]
}

/// A builder of scenario ops with numbered changes.
struct Script<C> {
    ops: Vec<Op<C>>,
    next: u64,
    change: fn(u64) -> C,
}

impl<C> Script<C> {
    fn new(change: fn(u64) -> C) -> Self {
        Script {
            ops: Vec::new(),
            next: 0,
            change,
        }
    }

    fn mutate(mut self, node: NodeId, times: u64) -> Self {
        for _ in 0..times {
            let change = (self.change)(self.next);
            self.next += 1;
            self.ops.push(Op::Mutate { node, change });
            self.ops.push(Op::Advance(Duration::from_millis(7)));
        }
        self
    }

    fn op(mut self, op: Op<C>) -> Self {
        self.ops.push(op);
        self
    }

    fn advance(self, millis: u64) -> Self {
        self.op(Op::Advance(Duration::from_millis(millis)))
    }

    fn converge(self) -> Vec<Op<C>> {
        self.op(Op::Settle).op(Op::AssertConverged).ops
    }
}

/// Run one scenario for every strategy and transport family of `M`; `check` runs after the
/// ops on each finished simulation.
fn run_matrix<M: Model>(
    scenario: &str,
    config: impl Fn(SimConfig) -> SimConfig,
    ops: impl Fn(fn(u64) -> M::C) -> Vec<Op<M::C>>,
    check: impl Fn(&mut Sim<M::D>),
) {
    for (seed, ((strategy_name, strategy), (family_name, links))) in strategies()
        .into_iter()
        .flat_map(|s| families().into_iter().map(move |f| (s, f)))
        .enumerate()
    {
        let seed = seed as u64 * 7919 + scenario.len() as u64;
        let base = SimConfig::new(3, seed)
            .with_state_config(StateConfig::new(strategy))
            .with_links(links.clone());
        let mut sim = Sim::<M::D>::new(config(base), M::initial());
        let skipped = sim.run_ops(&ops(M::change), M::apply());
        assert!(
            skipped.is_empty(),
            "{scenario}/{}/{strategy_name}/{family_name} seed {seed}: skipped {skipped:?}",
            M::NAME
        );
        check(&mut sim);
    }
}

/// Every scenario runs for both state flavours.
macro_rules! for_both_models {
    ($run:ident) => {
        $run::<SimpleModel>();
        $run::<DeltaModel>();
    };
}

#[test]
fn convergence_after_loss() {
    fn run<M: Model>() {
        let lossy = LinkFaults::in_order().with_loss(0.3);
        run_matrix::<M>(
            "loss",
            |c| c,
            |change| {
                Script::new(change)
                    .op(Op::SetFaults(lossy.clone()))
                    .mutate(N1, 4)
                    .mutate(N2, 3)
                    .advance(1500)
                    .mutate(N3, 2)
                    .converge()
            },
            |sim| assert!(sim.stats().frames_lost > 0, "seed {}", sim.seed()),
        );
    }
    for_both_models!(run);
}

#[test]
fn convergence_after_duplication() {
    fn run<M: Model>() {
        let doubling = LinkFaults::in_order().with_duplication(0.5);
        run_matrix::<M>(
            "duplication",
            |c| c,
            |change| {
                Script::new(change)
                    .op(Op::SetFaults(doubling.clone()))
                    .mutate(N1, 5)
                    .mutate(N2, 2)
                    .advance(2500)
                    .converge()
            },
            |sim| assert!(sim.stats().frames_duplicated > 0, "seed {}", sim.seed()),
        );
    }
    for_both_models!(run);
}

#[test]
fn convergence_after_reordering() {
    fn run<M: Model>() {
        let shuffling = LinkFaults::reliable()
            .with_in_order(false)
            .with_delay(Duration::from_millis(1), Duration::from_millis(120));
        run_matrix::<M>(
            "reordering",
            |c| c,
            |change| {
                // Changes every 7 ms overtake each other on 1-120 ms links.
                Script::new(change)
                    .op(Op::SetFaults(shuffling.clone()))
                    .mutate(N1, 8)
                    .mutate(N3, 4)
                    .converge()
            },
            |_| {},
        );
    }
    for_both_models!(run);
}

#[test]
fn convergence_after_long_delays() {
    fn run<M: Model>() {
        let slow =
            LinkFaults::in_order().with_delay(Duration::from_millis(200), Duration::from_secs(1));
        run_matrix::<M>(
            "delay",
            |c| c,
            |change| {
                Script::new(change)
                    .op(Op::SetFaults(slow.clone()))
                    .mutate(N2, 4)
                    .mutate(N1, 1)
                    .advance(300)
                    .mutate(N2, 2)
                    .converge()
            },
            |_| {},
        );
    }
    for_both_models!(run);
}

#[test]
fn corrupted_frames_are_rejected_and_repaired() {
    fn run<M: Model>() {
        let noisy = LinkFaults::in_order().with_corruption(0.2);
        run_matrix::<M>(
            "corruption",
            |c| c,
            |change| {
                Script::new(change)
                    .op(Op::SetFaults(noisy.clone()))
                    .mutate(N1, 4)
                    .mutate(N2, 4)
                    .advance(3000)
                    .converge()
            },
            |sim| {
                let stats = sim.stats();
                assert!(stats.frames_corrupted > 0, "seed {}", sim.seed());
                assert!(stats.corrupted_rejected > 0, "seed {}", sim.seed());
            },
        );
    }
    for_both_models!(run);
}

#[test]
fn partition_then_heal() {
    fn run<M: Model>() {
        run_matrix::<M>(
            "partition",
            |c| c,
            |change| {
                Script::new(change)
                    .mutate(N1, 1)
                    .advance(100)
                    .op(Op::Partition {
                        a: vec![N1],
                        b: vec![N2, N3],
                    })
                    .mutate(N1, 3)
                    .mutate(N2, 2)
                    // Past the liveness deadline: both sides mark the other down.
                    .advance(5000)
                    .mutate(N3, 1)
                    .op(Op::Heal)
                    .advance(3000)
                    .converge()
            },
            |sim| {
                let diagnostics = sim.diagnostics(N2).expect("n2 runs");
                assert!(
                    diagnostics.peers[&N1].counters.frames_in > 0,
                    "seed {}",
                    sim.seed()
                );
                assert!(sim.stats().sends_refused > 0, "seed {}", sim.seed());
            },
        );
    }
    for_both_models!(run);
}

#[test]
fn crash_and_restart_without_persistence_retires_the_old_incarnation() {
    fn run<M: Model>() {
        run_matrix::<M>(
            "restart_fresh",
            |c| c,
            |change| {
                Script::new(change)
                    .mutate(N1, 3)
                    .advance(500)
                    .op(Op::Crash { node: N1 })
                    .advance(2000)
                    .op(Op::Restart {
                        node: N1,
                        persisted: false,
                    })
                    .mutate(N1, 1)
                    .converge()
            },
            |sim| {
                let restarted = sim.shard(N1).expect("n1 runs").generation;
                assert_eq!(restarted.age.0, 1, "seed {}: fresh shard", sim.seed());
                for observer in [N2, N3] {
                    let held = sim.views(observer).expect("running");
                    let held = held.get(N1).expect("view of the new n1");
                    assert_eq!(
                        held.generation,
                        restarted,
                        "seed {}: {observer} holds the new incarnation only",
                        sim.seed()
                    );
                }
            },
        );
    }
    for_both_models!(run);
}

#[test]
fn crash_and_restart_with_persistence_keeps_the_incarnation() {
    fn run<M: Model>() {
        run_matrix::<M>(
            "restart_persisted",
            |c| c.with_persistence(true),
            |change| {
                Script::new(change)
                    .mutate(N1, 3)
                    .advance(500)
                    .op(Op::Crash { node: N1 })
                    .mutate(N2, 1)
                    .advance(2000)
                    .op(Op::Restart {
                        node: N1,
                        persisted: true,
                    })
                    .mutate(N1, 2)
                    .converge()
            },
            |sim| {
                let generation = sim.shard(N1).expect("n1 runs").generation;
                assert_eq!(generation.age.0, 5, "seed {}: 3 saved + 2 new", sim.seed());
                let stored = sim.stored(N1).expect("saved");
                assert_eq!(
                    stored.incarnation,
                    generation.incarnation,
                    "seed {}",
                    sim.seed()
                );
                assert!(sim.stats().saves >= 5, "seed {}", sim.seed());
            },
        );
    }
    for_both_models!(run);
}

#[test]
fn a_restart_in_the_same_millisecond_still_gets_a_newer_incarnation() {
    fn run<M: Model>() {
        run_matrix::<M>(
            "restart_at_once",
            |c| c,
            |change| {
                Script::new(change)
                    .mutate(N2, 2)
                    .op(Op::Restart {
                        node: N2,
                        persisted: false,
                    })
                    .op(Op::Restart {
                        node: N2,
                        persisted: false,
                    })
                    .mutate(N2, 1)
                    .converge()
            },
            |_| {},
        );
    }
    for_both_models!(run);
}

#[test]
fn graceful_leave_removes_the_views_everywhere() {
    fn run<M: Model>() {
        run_matrix::<M>(
            "leave",
            |c| c,
            |change| {
                Script::new(change)
                    .mutate(N3, 2)
                    .advance(500)
                    .op(Op::Leave { node: N3 })
                    .mutate(N1, 1)
                    .converge()
            },
            |sim| {
                assert_eq!(sim.status(N3), Some(NodeStatus::Left));
                for observer in [N1, N2] {
                    let views = sim.views(observer).expect("running");
                    assert!(views.get(N3).is_none(), "seed {}", sim.seed());
                }
            },
        );
    }
    for_both_models!(run);
}

#[test]
fn a_hung_node_is_marked_down_and_recovers_when_it_resumes() {
    fn run<M: Model>() {
        run_matrix::<M>(
            "hang",
            |c| c,
            |change| {
                Script::new(change)
                    .op(Op::Hang { node: N2 })
                    .mutate(N1, 2)
                    .advance(4000)
                    .op(Op::Resume { node: N2 })
                    .mutate(N2, 1)
                    .converge()
            },
            |_| {},
        );
    }
    for_both_models!(run);
}

#[test]
fn failed_saves_roll_back_and_the_cluster_still_converges() {
    fn run<M: Model>() {
        run_matrix::<M>(
            "save_failure",
            |c| c.with_persistence(true),
            |change| {
                Script::new(change)
                    .mutate(N1, 1)
                    .advance(50)
                    .op(Op::FailSaves { node: N1, count: 1 })
                    .mutate(N1, 1)
                    .advance(50)
                    .mutate(N1, 1)
                    .converge()
            },
            |sim| {
                assert_eq!(sim.stats().save_failures, 1, "seed {}", sim.seed());
                assert_eq!(sim.stats().mutations_failed, 1, "seed {}", sim.seed());
                assert_eq!(sim.shard(N1).expect("runs").generation.age.0, 2);
            },
        );
    }
    for_both_models!(run);
}

#[test]
fn the_checker_reports_views_that_did_not_converge() {
    // Under feed and lazy pull, a change only marks peers' views pending: without a query
    // (and without periodic sync) they are not converged, and the check says so.
    let config =
        SimConfig::new(2, 1).with_state_config(StateConfig::new(SyncStrategy::feed_lazy_pull()));
    let mut sim = Sim::<TestDeltaState>::new(config, TestDeltaInner::default());
    sim.advance(Duration::from_secs(1));
    sim.assert_converged();
    sim.mutate(N1, |s| {
        apply_test_change(s, &TestDeltaChange::Add(1));
        TestDeltaChange::Add(1)
    })
    .expect("running");
    sim.advance(Duration::from_secs(3));
    let violation = sim
        .check_converged()
        .expect_err("n2 only knows a newer one exists");
    assert_eq!(violation.seed, 1);
    assert!(violation.problems[0].contains("pending"), "{violation}");
    let query = sim.query(N2, Duration::ZERO).expect("running");
    sim.advance(Duration::from_millis(100));
    assert!(sim.is_query_ready(query));
    sim.assert_converged();
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let run = |seed| {
        let config = SimConfig::new(3, seed).with_links(LinkFaults::lossy_reordering());
        let mut sim = Sim::<TestDeltaState>::new(config, TestDeltaInner::default());
        let ops = Script::new(DeltaModel::change)
            .mutate(N1, 5)
            .op(Op::Partition {
                a: vec![N1],
                b: vec![N3],
            })
            .mutate(N3, 5)
            .advance(4000)
            .converge();
        sim.run_ops(&ops, apply_delta);
        (sim.stats().clone(), sim.elapsed())
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).0, run(12).0);
}

#[test]
fn late_frames_of_a_previous_process_never_bring_its_ghost_back() {
    fn run<M: Model>() {
        let discarded = std::cell::Cell::new(0);
        run_matrix::<M>(
            "late_frames",
            |c| c.with_late_frames_from_previous_processes(true),
            |change| {
                // n1 restarts while its first process's join snapshots are still in flight
                // (some twice): a new-incarnation delta can retire the old view before the
                // new snapshot replaces it, and a late old snapshot then arrives.
                let shuffling = LinkFaults::reliable()
                    .with_in_order(false)
                    .with_duplication(0.15)
                    .with_delay(Duration::from_millis(2), Duration::from_millis(285));
                Script::new(change)
                    .op(Op::SetFaults(shuffling))
                    .op(Op::Restart {
                        node: N1,
                        persisted: false,
                    })
                    .mutate(N1, 2)
                    .advance(500)
                    .converge()
            },
            |sim| {
                let restarted = sim.shard(N1).expect("runs").generation;
                for observer in [N2, N3] {
                    let views = sim.views(observer).expect("runs");
                    assert_eq!(views.get(N1).map(|v| v.generation), Some(restarted));
                    let diagnostics = sim.diagnostics(observer).expect("runs");
                    discarded
                        .set(discarded.get() + diagnostics.peers[&N1].counters.stale_discarded);
                }
            },
        );
        assert!(
            discarded.get() > 0,
            "late frames arrived and were discarded"
        );
    }
    for_both_models!(run);
}

#[test]
fn absurd_operations_are_skipped_or_bounded_never_a_panic() {
    use dstate::test_support::sim::SimError;
    let mut sim = Sim::<TestDeltaState>::new(SimConfig::new(0, 3), TestDeltaInner::default());
    assert_eq!(sim.node_ids(), vec![N1], "at least one node");
    sim.restart(N2, false).expect_err("unknown");
    let ops = vec![
        Op::Mutate {
            node: NodeId(99),
            change: TestDeltaChange::Add(1),
        },
        Op::Restart {
            node: NodeId(99),
            persisted: true,
        },
        Op::Resume { node: N1 },
        Op::SetFaults(LinkFaults::reliable().with_delay(Duration::MAX, Duration::MAX)),
        Op::Partition {
            a: vec![N1],
            b: vec![N1],
        },
        // Frames due past the horizon never arrive; time itself still moves.
        Op::Mutate {
            node: N1,
            change: TestDeltaChange::Add(1),
        },
        Op::Advance(Duration::from_secs(60)),
        Op::Leave { node: N1 },
        Op::Leave { node: N1 },
    ];
    let skipped = sim.run_ops(&ops, apply_delta);
    assert_eq!(
        skipped,
        vec![
            (0, SimError::UnknownNode(NodeId(99))),
            (1, SimError::UnknownNode(NodeId(99))),
            (2, SimError::NotRunning(N1)),
            (8, SimError::NotRunning(N1)),
        ]
    );
    assert_eq!(sim.elapsed(), Duration::from_secs(60));
}

#[test]
fn a_node_that_left_and_rejoined_is_never_seen_going_back_in_time() {
    // With late frames of previous processes, a frame of the old process (older age, same
    // incarnation: the shard was persisted) can arrive after peers forgot the node on its
    // leave. Each seed is a different interleaving; about one in a hundred hits it.
    let links = LinkFaults::reliable()
        .with_in_order(false)
        .with_duplication(0.3)
        .with_delay(Duration::from_millis(1), Duration::from_millis(300));
    let mut ops: Vec<Op<TestDeltaChange>> = Vec::new();
    for n in 0..4 {
        ops.push(Op::Mutate {
            node: N1,
            change: TestDeltaChange::Add(n),
        });
        ops.push(Op::Advance(Duration::from_millis(10)));
    }
    ops.extend([
        Op::Leave { node: N1 },
        Op::Restart {
            node: N1,
            persisted: true,
        },
        Op::Settle,
        Op::AssertConverged,
    ]);
    for seed in 0..250 {
        let config = SimConfig::new(3, seed)
            .with_links(links.clone())
            .with_persistence(true)
            .with_late_frames_from_previous_processes(true);
        let mut sim = Sim::<TestDeltaState>::new(config, TestDeltaInner::default());
        assert!(sim.run_ops(&ops, apply_delta).is_empty(), "seed {seed}");
        assert_eq!(
            sim.shard(N1).expect("rejoined").generation.age.0,
            4,
            "seed {seed}"
        );
    }
}
