//! Frames in flight between simulated nodes, each with its delivery time.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::Rng;

use super::faults::LinkFaults;
use crate::ids::{Incarnation, NodeId};

/// One frame on its way.
#[derive(Debug, Clone)]
pub(super) struct Message {
    pub(super) from: NodeId,
    /// The sending process: the receiver only takes frames from the process its membership
    /// layer knows (a connection of a previous process is closed).
    pub(super) from_incarnation: Incarnation,
    pub(super) to: NodeId,
    /// The receiving process it was sent to: a restarted node never gets frames addressed to
    /// its previous process.
    pub(super) to_incarnation: Incarnation,
    pub(super) bytes: Bytes,
    /// A byte was flipped on the way.
    pub(super) corrupted: bool,
}

/// What a link did with one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Sent {
    pub(super) lost: bool,
    pub(super) duplicated: bool,
    pub(super) corrupted: u32,
}

/// The frames in flight, ordered by delivery time then send order.
#[derive(Debug, Default)]
pub(super) struct Network {
    queue: BTreeMap<(Duration, u64), Message>,
    seq: u64,
    /// Latest delivery time scheduled per directed link (for in-order links).
    last: BTreeMap<(NodeId, NodeId), Duration>,
}

impl Network {
    /// Put `message` on the link at `now`, applying `faults`.
    pub(super) fn send(
        &mut self,
        now: Duration,
        message: Message,
        faults: &LinkFaults,
        rng: &mut SmallRng,
    ) -> Sent {
        let arrivals = faults.roll(rng);
        let mut sent = Sent {
            lost: arrivals.is_empty(),
            duplicated: arrivals.len() > 1,
            corrupted: 0,
        };
        let link = (message.from, message.to);
        for arrival in arrivals {
            let mut at = now.saturating_add(arrival.delay);
            if faults.is_in_order() {
                at = at.max(self.last.get(&link).copied().unwrap_or_default());
            }
            let last = self.last.entry(link).or_default();
            *last = (*last).max(at);
            let mut copy = message.clone();
            if arrival.corrupt {
                copy.bytes = flip_one_byte(&copy.bytes, rng);
                copy.corrupted = true;
                sent.corrupted += 1;
            }
            self.queue.insert((at, self.seq), copy);
            self.seq += 1;
        }
        sent
    }

    /// When the next frame arrives.
    pub(super) fn next_at(&self) -> Option<Duration> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// The next frame due at or before `now`.
    pub(super) fn pop_due(&mut self, now: Duration) -> Option<Message> {
        let key = *self.queue.keys().next()?;
        if key.0 > now {
            return None;
        }
        self.queue.remove(&key)
    }

    /// Number of frames in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.queue.len()
    }
}

/// A copy of `bytes` with one byte changed (XOR with a non-zero value).
fn flip_one_byte(bytes: &Bytes, rng: &mut SmallRng) -> Bytes {
    if bytes.is_empty() {
        return bytes.clone();
    }
    let mut copy = bytes.to_vec();
    let index = rng.gen_range(0..copy.len());
    copy[index] ^= rng.gen_range(1..=u8::MAX);
    Bytes::from(copy)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn message(n: u8) -> Message {
        Message {
            from: NodeId(1),
            from_incarnation: Incarnation(1),
            to: NodeId(2),
            to_incarnation: Incarnation(1),
            bytes: Bytes::from(vec![n; 8]),
            corrupted: false,
        }
    }

    fn drain(network: &mut Network) -> Vec<u8> {
        std::iter::from_fn(|| network.pop_due(Duration::MAX))
            .map(|m| m.bytes[0])
            .collect()
    }

    #[test]
    fn in_order_links_never_let_a_frame_overtake() {
        let mut rng = SmallRng::seed_from_u64(3);
        let faults = LinkFaults::in_order().with_delay(Duration::ZERO, Duration::from_secs(1));
        let mut network = Network::default();
        for n in 0..50 {
            network.send(
                Duration::from_millis(u64::from(n)),
                message(n),
                &faults,
                &mut rng,
            );
        }
        assert_eq!(drain(&mut network), (0..50).collect::<Vec<u8>>());
    }

    #[test]
    fn unordered_links_reorder() {
        let mut rng = SmallRng::seed_from_u64(3);
        let faults = LinkFaults::lossy_reordering()
            .with_loss(0.0)
            .with_duplication(0.0);
        let mut network = Network::default();
        for n in 0..50 {
            network.send(Duration::ZERO, message(n), &faults, &mut rng);
        }
        let arrived = drain(&mut network);
        assert_eq!(arrived.len(), 50);
        assert_ne!(arrived, (0..50).collect::<Vec<u8>>());
    }

    #[test]
    fn corruption_changes_exactly_one_byte() {
        let mut rng = SmallRng::seed_from_u64(3);
        let faults = LinkFaults::reliable().with_corruption(1.0);
        let mut network = Network::default();
        for _ in 0..50 {
            let sent = network.send(Duration::ZERO, message(0), &faults, &mut rng);
            assert_eq!(sent.corrupted, 1);
        }
        while let Some(m) = network.pop_due(Duration::MAX) {
            assert!(m.corrupted);
            assert_eq!(m.bytes.iter().filter(|b| **b != 0).count(), 1);
        }
    }
}
