//! The address book: seeds and learned peers, and when to dial them again.
//!
//! Neither libp2p nor kameo redials a lost peer (and kameo's registry forgets an address
//! after a failed dial), so the driver keeps its own book and asks it each tick which
//! dials are due. Pure state: time and jitter come in as arguments.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use super::control::MAX_ADDRS_PER_PEER;

/// Exponential backoff with jitter between two bounds.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    due: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            current: min,
            due: None,
        }
    }

    /// Due at once.
    pub(crate) fn now(min: Duration, max: Duration, now: Instant) -> Self {
        let mut backoff = Backoff::new(min, max);
        backoff.due = Some(now);
        backoff
    }

    /// Schedules the next attempt one (jittered) step from `now` and widens the step.
    /// `jitter` in `[0, 1)` takes up to half the step off, so peers do not redial in step.
    pub(crate) fn schedule(&mut self, now: Instant, jitter: f64) {
        let cut = self.current.mul_f64(jitter.clamp(0.0, 1.0) * 0.5);
        self.due = Some(now + (self.current - cut));
        self.current = (self.current * 2).min(self.max);
    }

    /// Back to the shortest step; nothing scheduled.
    pub(crate) fn reset(&mut self) {
        self.current = self.min;
        self.due = None;
    }

    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.due.is_some_and(|due| due <= now)
    }
}

/// A configured seed: dialed by address until a connection to it is up.
#[derive(Debug)]
struct Seed {
    addr: Multiaddr,
    /// The peer the seed turned out to be.
    peer: Option<PeerId>,
    backoff: Backoff,
}

/// A peer learned from a handshake or a peer exchange.
#[derive(Debug)]
struct Known {
    addrs: Vec<Multiaddr>,
    backoff: Backoff,
}

/// A dial the driver should start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dial {
    /// Seed number `index`, by address.
    Seed { index: usize, addr: Multiaddr },
    /// A known peer at its addresses.
    Peer { peer: PeerId, addrs: Vec<Multiaddr> },
}

/// Seeds and known peers with their redial schedules.
#[derive(Debug)]
pub(crate) struct AddressBook {
    local: PeerId,
    seeds: Vec<Seed>,
    peers: HashMap<PeerId, Known>,
    min: Duration,
    max: Duration,
}

impl AddressBook {
    pub(crate) fn new(local: PeerId, min: Duration, max: Duration) -> Self {
        AddressBook {
            local,
            seeds: Vec::new(),
            peers: HashMap::new(),
            min,
            max,
        }
    }

    /// Adds a seed, due at once.
    pub(crate) fn add_seed(&mut self, addr: Multiaddr, now: Instant) {
        if self.seeds.iter().any(|seed| seed.addr == addr) {
            return;
        }
        self.seeds.push(Seed {
            addr,
            peer: None,
            backoff: Backoff::now(self.min, self.max, now),
        });
    }

    /// Adds addresses of `peer` (not dialed until it is due).
    pub(crate) fn learn(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        if peer == self.local {
            return;
        }
        let (min, max) = (self.min, self.max);
        let known = self.peers.entry(peer).or_insert_with(|| Known {
            addrs: Vec::new(),
            backoff: Backoff::new(min, max),
        });
        for addr in addrs {
            if !known.addrs.contains(addr) && known.addrs.len() < MAX_ADDRS_PER_PEER {
                known.addrs.push(addr.clone());
            }
        }
    }

    /// Addresses known for `peer`.
    pub(crate) fn addrs(&self, peer: &PeerId) -> &[Multiaddr] {
        self.peers
            .get(peer)
            .map(|known| known.addrs.as_slice())
            .unwrap_or(&[])
    }

    /// `peer` is gone for good (left, or replaced by a newer incarnation): no redial.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Makes a learned peer due for a dial now (it is known but not connected).
    pub(crate) fn dial_soon(&mut self, peer: &PeerId, now: Instant) {
        if let Some(known) = self.peers.get_mut(peer) {
            if known.backoff.due.is_none() {
                known.backoff.due = Some(now);
            }
        }
    }

    /// The connection of seed `index` is up and leads to `peer`.
    pub(crate) fn seed_connected(&mut self, index: usize, peer: PeerId) {
        if let Some(seed) = self.seeds.get_mut(index) {
            seed.peer = Some(peer);
        }
    }

    /// A handshake with `peer` succeeded: its schedules start over.
    pub(crate) fn on_session(&mut self, peer: &PeerId) {
        if let Some(known) = self.peers.get_mut(peer) {
            known.backoff.reset();
        }
        for seed in self
            .seeds
            .iter_mut()
            .filter(|seed| seed.peer == Some(*peer))
        {
            seed.backoff.reset();
        }
    }

    /// The last connection to `peer` closed: redial it (and the seeds it was) after a step.
    pub(crate) fn on_disconnected(&mut self, peer: &PeerId, now: Instant, jitter: f64) {
        if let Some(known) = self.peers.get_mut(peer) {
            known.backoff.schedule(now, jitter);
        }
        for seed in self
            .seeds
            .iter_mut()
            .filter(|seed| seed.peer == Some(*peer))
        {
            seed.backoff.schedule(now, jitter);
        }
    }

    /// Dials due at `now` for peers that `is_connected` says are down; each returned dial
    /// is rescheduled one backoff step later (its outcome does not matter to the book).
    pub(crate) fn poll_dials(
        &mut self,
        now: Instant,
        jitter: f64,
        is_connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<Dial> {
        let mut dials = Vec::new();
        for (index, seed) in self.seeds.iter_mut().enumerate() {
            let up = seed.peer.as_ref().is_some_and(&is_connected);
            if up || !seed.backoff.is_due(now) {
                continue;
            }
            seed.backoff.schedule(now, jitter);
            dials.push(Dial::Seed {
                index,
                addr: seed.addr.clone(),
            });
        }
        for (peer, known) in self.peers.iter_mut() {
            if is_connected(peer) || known.addrs.is_empty() || !known.backoff.is_due(now) {
                continue;
            }
            known.backoff.schedule(now, jitter);
            dials.push(Dial::Peer {
                peer: *peer,
                addrs: known.addrs.clone(),
            });
        }
        dials
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(800);

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let t0 = Instant::now();
        let mut backoff = Backoff::new(MIN, MAX);
        assert!(!backoff.is_due(t0));
        let mut steps = Vec::new();
        let mut now = t0;
        for _ in 0..6 {
            backoff.schedule(now, 0.0);
            let due = backoff.due.unwrap();
            steps.push(due - now);
            now = due;
        }
        let ms: Vec<u128> = steps.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 800, 800]);
        backoff.reset();
        backoff.schedule(now, 0.0);
        assert_eq!(backoff.due.unwrap() - now, MIN);
    }

    #[test]
    fn jitter_only_shortens_the_step() {
        let t0 = Instant::now();
        let mut backoff = Backoff::new(MIN, MAX);
        backoff.schedule(t0, 0.999);
        let step = backoff.due.unwrap() - t0;
        assert!(step >= MIN / 2 && step <= MIN);
    }

    #[test]
    fn seeds_are_dialed_at_once_then_with_backoff_until_connected() {
        let t0 = Instant::now();
        let seed_peer = PeerId::random();
        let mut book = AddressBook::new(PeerId::random(), MIN, MAX);
        book.add_seed(addr(1), t0);
        book.add_seed(addr(1), t0);
        assert_eq!(
            book.poll_dials(t0, 0.0, |_| false),
            vec![Dial::Seed {
                index: 0,
                addr: addr(1)
            }]
        );
        assert!(book.poll_dials(t0, 0.0, |_| false).is_empty());
        assert_eq!(book.poll_dials(t0 + MIN, 0.0, |_| false).len(), 1);
        book.seed_connected(0, seed_peer);
        book.on_session(&seed_peer);
        assert!(book
            .poll_dials(t0 + MAX * 4, 0.0, |p| *p == seed_peer)
            .is_empty());
        // The seed's peer drops: redial after the shortest step.
        let t1 = t0 + MAX * 4;
        book.on_disconnected(&seed_peer, t1, 0.0);
        assert!(book.poll_dials(t1, 0.0, |_| false).is_empty());
        assert_eq!(book.poll_dials(t1 + MIN, 0.0, |_| false).len(), 1);
    }

    #[test]
    fn learned_peers_are_redialed_after_a_disconnect_and_not_after_forget() {
        let t0 = Instant::now();
        let local = PeerId::random();
        let peer = PeerId::random();
        let mut book = AddressBook::new(local, MIN, MAX);
        book.learn(local, &[addr(9)]);
        book.learn(peer, &[addr(2), addr(2), addr(3)]);
        assert_eq!(book.addrs(&peer), &[addr(2), addr(3)]);
        assert!(book.addrs(&local).is_empty());
        // Learned but never connected: not dialed until asked.
        assert!(book.poll_dials(t0, 0.0, |_| false).is_empty());
        book.dial_soon(&peer, t0);
        assert_eq!(book.poll_dials(t0, 0.0, |_| false).len(), 1);
        book.on_session(&peer);
        book.on_disconnected(&peer, t0, 0.0);
        assert_eq!(book.poll_dials(t0 + MIN, 0.0, |_| false).len(), 1);
        book.forget(&peer);
        assert!(book.poll_dials(t0 + MAX * 10, 0.0, |_| false).is_empty());
    }
}
