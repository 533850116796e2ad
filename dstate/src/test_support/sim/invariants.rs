//! What must hold after every step of a simulated run, and what "converged" means.
//!
//! The invariants themselves are listed and numbered in the `sim` module docs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Duration;

use super::node::{NodeStatus, SimNode};
use crate::ids::{Generation, Incarnation, NodeId};
use crate::object::PeerStatus;
use crate::state::DeltaDistributedState;

/// A failed check of a simulated run: an invariant broken after a step, or views that did
/// not converge. Carries the seed that replays the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("simulation seed {seed}, step {step}, t = {elapsed:?}: {}", problems.join("; "))]
pub struct Violation {
    /// Seed of the run.
    pub seed: u64,
    /// Steps taken when the check failed.
    pub step: u64,
    /// Virtual time since the start of the run.
    pub elapsed: Duration,
    /// What went wrong, one entry per problem.
    pub problems: Vec<String>,
}

/// Tracks what every node committed and held, to check the invariants.
pub(super) struct Checker<D: DeltaDistributedState> {
    /// The view each owner had at each generation it committed.
    history: BTreeMap<NodeId, BTreeMap<Generation, D::View>>,
    /// Newest generation `(observer, source)` ever held in the observer's current lifetime.
    held: BTreeMap<(NodeId, NodeId), Generation>,
    /// Newest shard incarnation of `source` delivered to `observer`.
    heard: BTreeMap<(NodeId, NodeId), Incarnation>,
    /// `(observer, source)`: the observer processed the source's graceful leave.
    departed: BTreeSet<(NodeId, NodeId)>,
    problems: Vec<String>,
}

impl<D: DeltaDistributedState> Checker<D>
where
    D::View: PartialEq + Debug,
{
    pub(super) fn new() -> Self {
        Checker {
            history: BTreeMap::new(),
            held: BTreeMap::new(),
            heard: BTreeMap::new(),
            departed: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    /// `owner` committed (or loaded) `generation` with `view`.
    pub(super) fn record(&mut self, owner: NodeId, generation: Generation, view: D::View) {
        let history = self.history.entry(owner).or_default();
        match history.get(&generation) {
            Some(known) if *known != view => self.problems.push(format!(
                "{owner} committed two different views at {generation}: {known:?} and {view:?}"
            )),
            Some(_) => {}
            None => {
                history.insert(generation, view);
            }
        }
    }

    /// Something of `source`'s shard incarnation `incarnation` reached `observer`'s engine.
    pub(super) fn heard(&mut self, observer: NodeId, source: NodeId, incarnation: Incarnation) {
        let entry = self.heard.entry((observer, source)).or_default();
        *entry = (*entry).max(incarnation);
    }

    /// `observer` processed the graceful leave of `source`.
    pub(super) fn left(&mut self, observer: NodeId, source: NodeId) {
        self.departed.insert((observer, source));
    }

    /// `observer` processed `source` joining (again).
    pub(super) fn joined(&mut self, observer: NodeId, source: NodeId) {
        self.departed.remove(&(observer, source));
    }

    /// `node` started a new process: as an observer it starts from nothing.
    pub(super) fn restarted(&mut self, node: NodeId) {
        self.departed.retain(|(o, _)| *o != node);
        self.held.retain(|(o, _), _| *o != node);
        self.heard.retain(|(o, _), _| *o != node);
    }

    pub(super) fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    /// Problems found since the last call.
    pub(super) fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.problems)
    }

    /// Check invariants 1 to 5 on every running or hung node.
    pub(super) fn check(&mut self, nodes: &mut BTreeMap<NodeId, SimNode<D>>) {
        for (observer, node) in nodes.iter_mut() {
            if !node.status.is_member() {
                continue;
            }
            let views = node.engine.views();
            let generation = node.engine.generation();
            let projected = D::project_view(node.engine.shard().state);
            match views.get(*observer) {
                Some(own) if own.generation == generation && *own.view == projected => {}
                Some(own) => self.problems.push(format!(
                    "{observer}'s own view {:?} at {} differs from its projected state {projected:?} at {generation}",
                    own.view, own.generation
                )),
                None => self.problems.push(format!("{observer} holds no view of itself")),
            }
            for view in views.iter().filter(|v| v.source != *observer) {
                self.check_held(*observer, view.source, view.generation, &view.view);
            }
        }
    }

    fn check_held(
        &mut self,
        observer: NodeId,
        source: NodeId,
        generation: Generation,
        view: &D::View,
    ) {
        match self.history.get(&source).and_then(|h| h.get(&generation)) {
            Some(committed) if committed != view => self.problems.push(format!(
                "{observer} holds {source} at {generation} as {view:?}, but the owner committed {committed:?}"
            )),
            Some(_) => {}
            None => self.problems.push(format!(
                "{observer} holds {source} at {generation}, a generation the owner never committed"
            )),
        }
        let newest = self.held.entry((observer, source)).or_insert(generation);
        if generation < *newest {
            self.problems.push(format!(
                "{observer}'s view of {source} went back from {newest} to {generation}"
            ));
        }
        *newest = (*newest).max(generation);
        if let Some(heard) = self.heard.get(&(observer, source)) {
            if generation.incarnation < *heard {
                self.problems.push(format!(
                    "ghost: {observer} holds {source} at {generation} after receiving incarnation {}",
                    heard.0
                ));
            }
        }
        if self.departed.contains(&(observer, source)) {
            self.problems.push(format!(
                "{observer} holds a view of {source} after processing its graceful leave"
            ));
        }
    }
}

/// Why the views have not converged (empty when they have): every running node holds, for
/// every other running node, an up, non-pending view at that node's generation equal to
/// `project_view` of its state; views of crashed nodes are marked down or gone; views of
/// nodes that left are gone.
pub(super) fn divergences<D: DeltaDistributedState>(
    nodes: &mut BTreeMap<NodeId, SimNode<D>>,
) -> Vec<String>
where
    D::View: PartialEq + Debug,
{
    let truth: BTreeMap<NodeId, (NodeStatus, Generation, D::View)> = nodes
        .iter()
        .map(|(id, node)| {
            let view = D::project_view(node.engine.shard().state);
            (*id, (node.status, node.engine.generation(), view))
        })
        .collect();
    let mut problems = Vec::new();
    for (observer, node) in nodes.iter_mut() {
        if node.status != NodeStatus::Running {
            continue;
        }
        let views = node.engine.views();
        for (source, (status, generation, expected)) in &truth {
            if source == observer {
                continue;
            }
            let held = views.get(*source);
            let problem = match (status, held) {
                (NodeStatus::Running, None) => {
                    Some(format!("{observer} holds no view of {source}"))
                }
                (NodeStatus::Running, Some(v)) => {
                    let wrong = v.generation != *generation
                        || *v.view != *expected
                        || v.status != PeerStatus::Up
                        || v.pending.is_some();
                    wrong.then(|| {
                        format!(
                            "{observer} holds {source} at {} ({:?}, pending {:?}) = {:?}; \
                             the owner is at {generation} = {expected:?}",
                            v.generation, v.status, v.pending, v.view
                        )
                    })
                }
                (NodeStatus::Crashed, Some(v)) if v.status == PeerStatus::Up => Some(format!(
                    "{observer} holds a view of crashed {source} marked up"
                )),
                (NodeStatus::Left, Some(_)) => {
                    Some(format!("{observer} holds a view of {source}, which left"))
                }
                _ => None,
            };
            problems.extend(problem);
        }
    }
    problems
}
