//! Scenarios as data: an [`Op`] list and the one runner that plays it.

use std::fmt::Debug;
use std::time::Duration;

use super::faults::LinkFaults;
use super::{Sim, SimError};
use crate::ids::NodeId;
use crate::state::DeltaDistributedState;

/// How a scenario's change value `C` mutates the owner's state: change the state, return the
/// change the engine publishes. A plain function, so scenarios stay data.
pub type ApplyFn<D, C> = fn(
    &mut <D as DeltaDistributedState>::State,
    &C,
) -> <D as DeltaDistributedState>::StateDeltaChange;

/// One step of a scenario. `C` is the scenario's change type, turned into a mutation by the
/// [`ApplyFn`] given to [`Sim::run_ops`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Op<C> {
    /// Mutate `node`'s shard with `change`.
    Mutate {
        /// The owner.
        node: NodeId,
        /// The change.
        change: C,
    },
    /// Query on `node` with a staleness bound (pulls stale views).
    Query {
        /// Where the query runs.
        node: NodeId,
        /// Views older than this are pulled.
        max_staleness: Duration,
    },
    /// Cut every link between side `a` and side `b`.
    Partition {
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
    },
    /// Restore every cut link.
    Heal,
    /// Every link gets these faults.
    SetFaults(LinkFaults),
    /// The directed link `from -> to` gets these faults.
    SetLinkFaults {
        /// Sender side.
        from: NodeId,
        /// Receiver side.
        to: NodeId,
        /// Its faults.
        faults: LinkFaults,
    },
    /// The next `count` saves of `node` fail.
    FailSaves {
        /// The node.
        node: NodeId,
        /// How many saves fail.
        count: usize,
    },
    /// `node` crashes; peers are told it is down.
    Crash {
        /// The node.
        node: NodeId,
    },
    /// `node` freezes; nobody is told.
    Hang {
        /// The node.
        node: NodeId,
    },
    /// A hung `node` continues.
    Resume {
        /// The node.
        node: NodeId,
    },
    /// A new process for `node`, with or without its persisted shard.
    Restart {
        /// The node.
        node: NodeId,
        /// Load the shard from the node's disk (otherwise the disk is wiped).
        persisted: bool,
    },
    /// `node` leaves gracefully.
    Leave {
        /// The node.
        node: NodeId,
    },
    /// Let virtual time pass.
    Advance(Duration),
    /// Stop the faults and let the cluster repair itself ([`Sim::settle`]).
    Settle,
    /// Assert that the views converged ([`Sim::assert_converged`]).
    AssertConverged,
}

impl<D> Sim<D>
where
    D: DeltaDistributedState,
    D::View: PartialEq + Debug,
{
    /// Play `ops` in order, turning each change into a mutation with `apply`. Operations on
    /// a node that cannot take them (a mutation on a crashed node, an unknown id) are skipped
    /// and returned with their index and reason, so generated op lists need no filtering.
    ///
    /// # Panics
    ///
    /// When an invariant is violated during the run, or an [`Op::AssertConverged`] finds
    /// views that did not converge; the message carries the seed.
    pub fn run_ops<C>(&mut self, ops: &[Op<C>], apply: ApplyFn<D, C>) -> Vec<(usize, SimError)>
    where
        C: Clone + Send + 'static,
    {
        let mut skipped = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            if let Err(error) = self.run_op(op, apply) {
                skipped.push((index, error));
            }
        }
        skipped
    }

    fn run_op<C>(&mut self, op: &Op<C>, apply: ApplyFn<D, C>) -> Result<(), SimError>
    where
        C: Clone + Send + 'static,
    {
        match op {
            Op::Mutate { node, change } => {
                let change = change.clone();
                self.mutate(*node, move |state| apply(state, &change))
                    .map(|_| ())
            }
            Op::Query {
                node,
                max_staleness,
            } => self.query(*node, *max_staleness).map(|_| ()),
            Op::Partition { a, b } => {
                self.partition(a, b);
                Ok(())
            }
            Op::Heal => {
                self.heal();
                Ok(())
            }
            Op::SetFaults(faults) => {
                self.set_faults(faults.clone());
                Ok(())
            }
            Op::SetLinkFaults { from, to, faults } => {
                self.set_link_faults(*from, *to, faults.clone());
                Ok(())
            }
            Op::FailSaves { node, count } => self.fail_next_saves(*node, *count),
            Op::Crash { node } => self.crash(*node),
            Op::Hang { node } => self.hang(*node),
            Op::Resume { node } => self.resume(*node),
            Op::Restart { node, persisted } => self.restart(*node, *persisted),
            Op::Leave { node } => self.leave(*node),
            Op::Advance(by) => {
                self.advance(*by);
                Ok(())
            }
            Op::Settle => {
                self.settle();
                Ok(())
            }
            Op::AssertConverged => {
                self.assert_converged();
                Ok(())
            }
        }
    }
}
