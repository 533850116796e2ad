//! Domain identifiers: nodes, incarnations, ages and generations.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identity of one dstate node in the cluster.
///
/// Chosen by the application (or derived by an adapter from its configuration) and carried in
/// the adapters' handshake. An actor framework's own session or peer ids are never used as a
/// `NodeId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// One lifetime of a shard (or of a node process): wall-clock milliseconds at its start,
/// strictly increasing across the lifetimes of the same node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Incarnation(pub u64);

impl Incarnation {
    /// The incarnation that follows `previous` given the wall clock `now_millis`: the clock
    /// value if it moved forward, otherwise one past `previous` (the clock went backwards).
    pub fn next_after(previous: Option<Incarnation>, now_millis: u64) -> Incarnation {
        match previous {
            Some(prev) if now_millis <= prev.0 => Incarnation(prev.0.saturating_add(1)),
            _ => Incarnation(now_millis),
        }
    }
}

/// Number of committed mutations of a shard within one incarnation.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Age(pub u64);

impl Age {
    /// The age after one more committed mutation.
    pub fn next(self) -> Age {
        Age(self.0.saturating_add(1))
    }
}

/// Version of a shard: `(incarnation, age)`, ordered lexicographically.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Generation {
    /// Lifetime of the shard that produced this version.
    pub incarnation: Incarnation,
    /// Mutations committed in that lifetime.
    pub age: Age,
}

impl Generation {
    /// A generation from its parts.
    pub const fn new(incarnation: Incarnation, age: Age) -> Self {
        Generation { incarnation, age }
    }

    /// The generation after one more committed mutation.
    pub fn next(self) -> Generation {
        Generation {
            incarnation: self.incarnation,
            age: self.age.next(),
        }
    }

    /// True when `other` is the immediate successor of `self` in the same incarnation.
    pub fn is_followed_by(self, other: Generation) -> bool {
        self.incarnation == other.incarnation && other.age.0 == self.age.0.wrapping_add(1)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.incarnation.0, self.age.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_order_by_incarnation_then_age() {
        let a = Generation::new(Incarnation(1), Age(9));
        let b = Generation::new(Incarnation(2), Age(0));
        assert!(a < b);
        assert!(a < a.next());
        assert!(a.is_followed_by(a.next()));
        assert!(!a.is_followed_by(b));
    }

    #[test]
    fn next_incarnation_survives_a_clock_going_backwards() {
        assert_eq!(Incarnation::next_after(None, 50), Incarnation(50));
        assert_eq!(
            Incarnation::next_after(Some(Incarnation(10)), 50),
            Incarnation(50)
        );
        assert_eq!(
            Incarnation::next_after(Some(Incarnation(80)), 50),
            Incarnation(81)
        );
        assert_eq!(
            Incarnation::next_after(Some(Incarnation(50)), 50),
            Incarnation(51)
        );
    }
}
