//! Scenarios every adapter runs over real processes (see [`ProcessCluster`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{NetLab, ProcessCluster, ProcessError, StateKind, ViewReport};

/// How long a cluster may take to converge after a change (covers a liveness deadline and
/// periodic sync rounds of the strategies the scenarios use).
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(30);

/// Start nodes `1..=count`, set a distinct value on each, and wait until every node holds
/// every value, all up.
pub fn converge(
    cluster: &mut ProcessCluster,
    kind: StateKind,
    count: u64,
) -> Result<(), ProcessError> {
    for id in 1..=count {
        cluster.start(id)?;
    }
    let mut expected = BTreeMap::new();
    for id in 1..=count {
        cluster.mutate(id, kind, id * 100)?;
        expected.insert(id, id * 100);
    }
    wait_converged(cluster, kind, &expected)
}

/// Wait until every running node holds exactly `expected` (owner → value), all up.
pub fn wait_converged(
    cluster: &mut ProcessCluster,
    kind: StateKind,
    expected: &BTreeMap<u64, u64>,
) -> Result<(), ProcessError> {
    cluster.wait_until("every node holds every value", CONVERGE_WITHIN, |cluster| {
        let mut observed = String::new();
        let mut done = true;
        for id in cluster.running() {
            let views = cluster.read(id, kind)?;
            let values: BTreeMap<u64, u64> = views.iter().map(|(n, v)| (*n, v.value)).collect();
            done &= values == *expected && views.values().all(|v| v.up);
            observed.push_str(&format!("node {id}: {views:?}; "));
        }
        Ok((done, observed))
    })
}

/// Three nodes; node 3 is killed (SIGKILL): the others keep its last view marked down; it
/// restarts: the new incarnation replaces the old view everywhere (no ghost) and it re-syncs.
/// With `persisted`, node 3 resumes its own shard (same incarnation, same value).
pub fn kill_and_restart(
    cluster: &mut ProcessCluster,
    kind: StateKind,
    persisted: bool,
) -> Result<(), ProcessError> {
    converge(cluster, kind, 3)?;
    let before = cluster.read(1, kind)?.get(&3).copied();
    let Some(before) = before else {
        return Err(ProcessError::Timeout {
            what: "node 1 to hold node 3".into(),
            last: String::new(),
        });
    };
    cluster.kill(3)?;
    cluster.wait_until(
        "nodes 1 and 2 mark node 3 down, keeping its value",
        CONVERGE_WITHIN,
        |cluster| views_of_node_3(cluster, kind, |v| !v.up && v.value == before.value),
    )?;
    cluster.start(3)?;
    let value = if persisted { before.value } else { 0 };
    cluster.wait_until(
        "every node holds node 3's new lifetime",
        CONVERGE_WITHIN,
        |cluster| {
            let renewed = |v: &ViewReport| {
                if persisted {
                    v.incarnation == before.incarnation
                } else {
                    v.incarnation > before.incarnation
                }
            };
            let (mut done, mut observed) =
                views_of_node_3(cluster, kind, |v| v.up && v.value == value && renewed(v))?;
            let own = cluster.read(3, kind)?;
            done &= own.get(&1).is_some_and(|v| v.value == 100)
                && own.get(&2).is_some_and(|v| v.value == 200);
            observed.push_str(&format!("node 3 holds {own:?}"));
            Ok((done, observed))
        },
    )
}

/// Whether nodes 1 and 2 both hold a view of node 3 that passes `check`, and what they hold.
fn views_of_node_3(
    cluster: &mut ProcessCluster,
    kind: StateKind,
    check: impl Fn(&ViewReport) -> bool,
) -> Result<(bool, String), ProcessError> {
    let mut done = true;
    let mut observed = String::new();
    for id in [1, 2] {
        let view = cluster.read(id, kind)?.get(&3).copied();
        done &= view.as_ref().is_some_and(&check);
        observed.push_str(&format!("node {id} holds {view:?}; "));
    }
    Ok((done, observed))
}

/// Three nodes; node 3 leaves gracefully: its views disappear on the others.
pub fn graceful_leave(cluster: &mut ProcessCluster, kind: StateKind) -> Result<(), ProcessError> {
    converge(cluster, kind, 3)?;
    cluster.leave(3)?;
    cluster.wait_until(
        "node 3's views removed",
        Duration::from_secs(10),
        |cluster| {
            let one = cluster.read(1, kind)?;
            let two = cluster.read(2, kind)?;
            let observed = format!("{one:?} {two:?}");
            Ok((!one.contains_key(&3) && !two.contains_key(&3), observed))
        },
    )
}

/// An observer and the `(owner, value, up)` views it must hold.
type Held<'a> = (u64, &'a [(u64, u64, bool)]);

/// Three nodes, each in its own namespace of `lab` (the cluster's command must start node
/// `n` in `lab.ns(n)`); node 3 is cut off entirely. Both sides mark the other down and keep
/// their last views; every node keeps committing; the majority (1 and 2) still replicates
/// between itself; after the heal every view converges.
pub fn isolate_one_and_heal(
    cluster: &mut ProcessCluster,
    kind: StateKind,
    lab: &NetLab,
) -> Result<(), ProcessError> {
    converge(cluster, kind, 3)?;
    lab.cut(3)?;
    // Per observer: the (owner, value, up) entries it must hold.
    let holds = |cluster: &mut ProcessCluster, expected: &[Held<'_>]| {
        let mut done = true;
        let mut observed = String::new();
        for (observer, views) in expected {
            let held = cluster.read(*observer, kind)?;
            for (owner, value, up) in *views {
                done &= held
                    .get(owner)
                    .is_some_and(|v| v.value == *value && v.up == *up);
            }
            observed.push_str(&format!("node {observer}: {held:?}; "));
        }
        Ok((done, observed))
    };
    let majority_sees_3_down: &[(u64, u64, bool)] = &[(3, 300, false)];
    let three_sees_both_down: &[(u64, u64, bool)] = &[(1, 100, false), (2, 200, false)];
    cluster.wait_until("both sides see the other down", CONVERGE_WITHIN, |c| {
        holds(
            c,
            &[
                (1, majority_sees_3_down),
                (2, majority_sees_3_down),
                (3, three_sees_both_down),
            ],
        )
    })?;
    for id in 1..=3 {
        cluster.mutate(id, kind, id * 111)?;
    }
    let majority: &[(u64, u64, bool)] = &[(1, 111, true), (2, 222, true), (3, 300, false)];
    let isolated: &[(u64, u64, bool)] = &[(1, 100, false), (2, 200, false), (3, 333, true)];
    cluster.wait_until(
        "the majority replicates, the isolated node keeps its own",
        CONVERGE_WITHIN,
        |c| holds(c, &[(1, majority), (2, majority), (3, isolated)]),
    )?;
    lab.heal(3)?;
    let expected = BTreeMap::from([(1, 111), (2, 222), (3, 333)]);
    wait_converged(cluster, kind, &expected)
}

/// Three nodes; node 1 commits `count` mutations one after the other: the final value
/// reaches every peer, and no node's resident memory grows by more than `max_growth_kib`.
pub fn burst(
    cluster: &mut ProcessCluster,
    kind: StateKind,
    count: u64,
    max_growth_kib: u64,
) -> Result<(), ProcessError> {
    for id in 1..=3 {
        cluster.start(id)?;
    }
    let mut expected = BTreeMap::from([(1, 0), (2, 0), (3, 0)]);
    wait_converged(cluster, kind, &expected)?;
    let before: Vec<u64> = (1..=3)
        .map(|id| cluster.resident_kib(id))
        .collect::<Result<_, _>>()?;
    let last = cluster.burst(1, kind, count)?;
    expected.insert(1, last);
    wait_converged(cluster, kind, &expected)?;
    for (index, id) in (1..=3).enumerate() {
        let after = cluster.resident_kib(id)?;
        let growth = after.saturating_sub(before[index]);
        if growth > max_growth_kib {
            return Err(ProcessError::Failed {
                id,
                command: "burst".into(),
                reason: format!("resident memory grew by {growth} KiB (limit {max_growth_kib})"),
            });
        }
    }
    Ok(())
}

/// Pure change feed with lazy pull (run the cluster with the `feed` strategy mapped to
/// `feed_lazy_pull`): after each node changes its value, a query with a bound on every node
/// pulls what is pending and returns every value with no stale view.
pub fn lazy_pull(cluster: &mut ProcessCluster, kind: StateKind) -> Result<(), ProcessError> {
    for id in 1..=3 {
        cluster.start(id)?;
    }
    let initial = BTreeMap::from([(1, 0), (2, 0), (3, 0)]);
    wait_converged(cluster, kind, &initial)?;
    let mut expected = BTreeMap::new();
    for id in 1..=3 {
        cluster.mutate(id, kind, id * 7)?;
        expected.insert(id, id * 7);
    }
    cluster.wait_until(
        "a bounded query on every node returns every value",
        CONVERGE_WITHIN,
        |cluster| {
            let mut done = true;
            let mut observed = String::new();
            for id in cluster.running() {
                let (views, stale) = cluster.query(id, kind, Duration::from_secs(30))?;
                let values: BTreeMap<u64, u64> = views.iter().map(|(n, v)| (*n, v.value)).collect();
                done &= values == expected && stale.is_empty();
                observed.push_str(&format!("node {id}: {values:?} stale {stale:?}; "));
            }
            Ok((done, observed))
        },
    )
}
