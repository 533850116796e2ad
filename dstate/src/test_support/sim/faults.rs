//! The per-link fault model: loss, duplication, corruption, delay, ordering, partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::Rng;

use crate::ids::NodeId;

/// How one directed link between two simulated nodes behaves.
///
/// Built from a profile ([`reliable`](Self::reliable), [`in_order`](Self::in_order),
/// [`lossy_reordering`](Self::lossy_reordering)) and adjusted with the `with_*` setters.
/// Probabilities are clamped to `0.0..=1.0` (a NaN counts as `0.0`), and a delay range given
/// backwards is swapped, so a `LinkFaults` is always valid.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkFaults {
    loss: f64,
    duplication: f64,
    corruption: f64,
    delay_min: Duration,
    delay_max: Duration,
    in_order: bool,
}

/// What happens to one frame handed to a link: the copies that will arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Arrival {
    /// Delay from the send to the arrival.
    pub(super) delay: Duration,
    /// One byte of this copy is flipped.
    pub(super) corrupt: bool,
}

impl LinkFaults {
    /// A perfect link: in order, nothing lost, a fixed 1 ms delay.
    pub fn reliable() -> Self {
        LinkFaults {
            loss: 0.0,
            duplication: 0.0,
            corruption: 0.0,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(1),
            in_order: true,
        }
    }

    /// A session-oriented transport such as ractor_cluster's TCP sessions: frames arrive in
    /// the order they were sent, none is lost, the delay varies between 1 and 10 ms.
    pub fn in_order() -> Self {
        LinkFaults {
            delay_max: Duration::from_millis(10),
            ..Self::reliable()
        }
    }

    /// A transport that loses and reorders frames, such as kameo's remote layer: 10 % loss,
    /// 5 % duplication, independent delays of 1 to 40 ms (so frames overtake each other).
    pub fn lossy_reordering() -> Self {
        LinkFaults {
            loss: 0.1,
            duplication: 0.05,
            corruption: 0.0,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(40),
            in_order: false,
        }
    }

    /// Probability that a frame is lost.
    pub fn with_loss(mut self, probability: f64) -> Self {
        self.loss = clamp(probability);
        self
    }

    /// Probability that a frame arrives twice (each copy with its own delay).
    pub fn with_duplication(mut self, probability: f64) -> Self {
        self.duplication = clamp(probability);
        self
    }

    /// Probability that one byte of a frame is flipped on the way. The receiver's frame
    /// decoder must reject every such frame (the simulation checks it and counts them).
    pub fn with_corruption(mut self, probability: f64) -> Self {
        self.corruption = clamp(probability);
        self
    }

    /// Delay of each frame, drawn uniformly from `min..=max`.
    pub fn with_delay(mut self, min: Duration, max: Duration) -> Self {
        self.delay_min = min.min(max);
        self.delay_max = min.max(max);
        self
    }

    /// Whether frames arrive in the order they were sent (a later frame never overtakes an
    /// earlier one on this link, whatever their drawn delays).
    pub fn with_in_order(mut self, in_order: bool) -> Self {
        self.in_order = in_order;
        self
    }

    /// The same delays and ordering with no loss, duplication or corruption.
    pub fn without_failures(&self) -> Self {
        LinkFaults {
            loss: 0.0,
            duplication: 0.0,
            corruption: 0.0,
            ..self.clone()
        }
    }

    /// Probability that a frame is lost.
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// Probability that a frame arrives twice.
    pub fn duplication(&self) -> f64 {
        self.duplication
    }

    /// Probability that a frame is corrupted.
    pub fn corruption(&self) -> f64 {
        self.corruption
    }

    /// The delay range `(min, max)`.
    pub fn delay(&self) -> (Duration, Duration) {
        (self.delay_min, self.delay_max)
    }

    /// Whether the link keeps frames in order.
    pub fn is_in_order(&self) -> bool {
        self.in_order
    }

    /// The copies of one frame that will arrive (none when it is lost).
    pub(super) fn roll(&self, rng: &mut SmallRng) -> Vec<Arrival> {
        if rng.gen_bool(self.loss) {
            return Vec::new();
        }
        let copies = if rng.gen_bool(self.duplication) { 2 } else { 1 };
        (0..copies)
            .map(|_| Arrival {
                delay: self.draw_delay(rng),
                corrupt: rng.gen_bool(self.corruption),
            })
            .collect()
    }

    fn draw_delay(&self, rng: &mut SmallRng) -> Duration {
        if self.delay_min == self.delay_max {
            return self.delay_min;
        }
        let span = self.delay_max - self.delay_min;
        let micros = u64::try_from(span.as_micros()).unwrap_or(u64::MAX);
        self.delay_min + Duration::from_micros(rng.gen_range(0..=micros))
    }
}

impl Default for LinkFaults {
    /// A perfect link: the simplest baseline to add faults to.
    fn default() -> Self {
        Self::reliable()
    }
}

/// The fault settings of every link and the current partitions.
#[derive(Debug, Clone)]
pub(super) struct FaultModel {
    default: LinkFaults,
    links: BTreeMap<(NodeId, NodeId), LinkFaults>,
    cut: BTreeSet<(NodeId, NodeId)>,
}

impl FaultModel {
    pub(super) fn new(default: LinkFaults) -> Self {
        FaultModel {
            default,
            links: BTreeMap::new(),
            cut: BTreeSet::new(),
        }
    }

    /// The settings of the directed link `from -> to`.
    pub(super) fn link(&self, from: NodeId, to: NodeId) -> &LinkFaults {
        self.links.get(&(from, to)).unwrap_or(&self.default)
    }

    /// Every link gets `faults` (per-link overrides are dropped).
    pub(super) fn set_all(&mut self, faults: LinkFaults) {
        self.default = faults;
        self.links.clear();
    }

    /// The directed link `from -> to` gets `faults`.
    pub(super) fn set_link(&mut self, from: NodeId, to: NodeId, faults: LinkFaults) {
        self.links.insert((from, to), faults);
    }

    /// Cut every link between a node of `side_a` and a node of `side_b`, both ways.
    pub(super) fn partition(&mut self, side_a: &[NodeId], side_b: &[NodeId]) {
        for a in side_a {
            for b in side_b {
                if a != b {
                    self.cut.insert((*a, *b));
                    self.cut.insert((*b, *a));
                }
            }
        }
    }

    /// Restore every cut link.
    pub(super) fn heal(&mut self) {
        self.cut.clear();
    }

    pub(super) fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.contains(&(from, to))
    }

    /// Keep delays and ordering, stop losing, duplicating and corrupting frames.
    pub(super) fn calm(&mut self) {
        self.default = self.default.without_failures();
        for faults in self.links.values_mut() {
            *faults = faults.without_failures();
        }
    }

    /// The largest delay any link may add.
    pub(super) fn max_delay(&self) -> Duration {
        self.links
            .values()
            .chain(std::iter::once(&self.default))
            .map(|f| f.delay_max)
            .max()
            .unwrap_or_default()
    }
}

fn clamp(probability: f64) -> f64 {
    if probability.is_nan() {
        0.0
    } else {
        probability.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn settings_are_always_valid() {
        let faults = LinkFaults::reliable()
            .with_loss(2.0)
            .with_duplication(f64::NAN)
            .with_corruption(-1.0)
            .with_delay(Duration::from_millis(9), Duration::from_millis(3));
        assert_eq!(faults.loss(), 1.0);
        assert_eq!(faults.duplication(), 0.0);
        assert_eq!(faults.corruption(), 0.0);
        assert_eq!(
            faults.delay(),
            (Duration::from_millis(3), Duration::from_millis(9))
        );
    }

    #[test]
    fn rolls_follow_the_probabilities_and_stay_in_the_delay_range() {
        let faults = LinkFaults::lossy_reordering();
        let mut rng = SmallRng::seed_from_u64(7);
        let rolls: Vec<Vec<Arrival>> = (0..2000).map(|_| faults.roll(&mut rng)).collect();
        let lost = rolls.iter().filter(|r| r.is_empty()).count();
        let doubled = rolls.iter().filter(|r| r.len() == 2).count();
        assert!((120..280).contains(&lost), "{lost} lost of 2000 at 10 %");
        assert!(
            (40..170).contains(&doubled),
            "{doubled} doubled of 2000 at 5 %"
        );
        let (min, max) = faults.delay();
        assert!(rolls
            .iter()
            .flatten()
            .all(|c| c.delay >= min && c.delay <= max && !c.corrupt));
    }

    #[test]
    fn partitions_cut_both_ways_until_healed() {
        let mut model = FaultModel::new(LinkFaults::reliable());
        model.partition(&[NodeId(1)], &[NodeId(2), NodeId(3)]);
        assert!(model.is_cut(NodeId(1), NodeId(2)) && model.is_cut(NodeId(3), NodeId(1)));
        assert!(!model.is_cut(NodeId(2), NodeId(3)));
        model.heal();
        assert!(!model.is_cut(NodeId(1), NodeId(2)));
    }
}
