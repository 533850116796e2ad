//! Which addresses to dial, and when: seeds, gossip-learned peers, backoff after failures.
//!
//! Pure bookkeeping: the endpoint actor feeds it events with `now` and carries out the dials
//! it asks for. ractor_cluster itself never redials; this is the adapter's reconnection.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use dstate::NodeId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Consecutive failures after which a gossip-learned address is forgotten (seeds stay).
const LEARNED_FAILURE_LIMIT: u32 = 8;

/// Result of one dial attempt, as the dial task reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DialOutcome {
    /// TCP (and TLS) connected to `peer`; the stream is being handed to the NodeServer.
    Connected { peer: String },
    /// The address resolves to this node's own listener.
    OwnAddress,
    /// Resolution, connection or TLS failed.
    Failed(String),
}

/// Where an address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Configured: dialled forever.
    Seed,
    /// Advertised by a peer: forgotten after repeated failures.
    Learned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle {
        next: Instant,
    },
    Dialing {
        since: Instant,
    },
    Connected,
    /// This node's own address: never dialled.
    Own,
}

#[derive(Debug, Clone)]
struct Entry {
    origin: Origin,
    owner: Option<NodeId>,
    state: State,
    backoff: Duration,
    failures: u32,
}

/// The adapter's address book.
///
/// Two nodes that know each other's address would dial each other at the same moment, and
/// ractor_cluster then closes one of the two sessions, possibly one that already carried
/// the peer. So an address whose owner has a *higher* node id is dialled only after
/// `defer` (the owner is expected to dial first); towards lower ids, at once.
#[derive(Debug)]
pub(crate) struct AddressBook {
    me: NodeId,
    defer: Duration,
    entries: HashMap<String, Entry>,
    min_backoff: Duration,
    max_backoff: Duration,
    rng: SmallRng,
}

impl AddressBook {
    /// An empty book for node `me`; `seed` feeds the backoff jitter.
    pub(crate) fn new(
        me: NodeId,
        min_backoff: Duration,
        max_backoff: Duration,
        defer: Duration,
        seed: u64,
    ) -> Self {
        AddressBook {
            me,
            defer,
            entries: HashMap::new(),
            min_backoff,
            max_backoff: max_backoff.max(min_backoff),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// A configured address, dialled at once and after every failure.
    pub(crate) fn add_seed(&mut self, address: String, now: Instant) {
        let backoff = self.min_backoff;
        self.entries
            .entry(address)
            .and_modify(|entry| entry.origin = Origin::Seed)
            .or_insert(Entry {
                origin: Origin::Seed,
                owner: None,
                state: State::Idle { next: now },
                backoff,
                failures: 0,
            });
    }

    /// The address `owner` advertises (in its hello, or gossiped by another peer).
    pub(crate) fn learn(&mut self, address: String, owner: NodeId, now: Instant) {
        if owner == self.me {
            return;
        }
        // A node advertises one address per lifetime: drop what it advertised before.
        self.entries.retain(|addr, entry| {
            entry.origin == Origin::Seed || entry.owner != Some(owner) || *addr == address
        });
        let backoff = self.min_backoff;
        let next = now + self.first_delay(owner);
        let entry = self.entries.entry(address).or_insert(Entry {
            origin: Origin::Learned,
            owner: None,
            state: State::Idle { next },
            backoff,
            failures: 0,
        });
        entry.owner = Some(owner);
    }

    /// Addresses due for a dial now; they move to "dialing". Addresses of nodes in
    /// `connected` are marked connected instead, and a node is dialled on one address at a
    /// time.
    pub(crate) fn poll_dials(&mut self, now: Instant, connected: &HashSet<NodeId>) -> Vec<String> {
        let mut busy: HashSet<NodeId> = self
            .entries
            .values()
            .filter(|e| matches!(e.state, State::Dialing { .. }))
            .filter_map(|e| e.owner)
            .collect();
        let mut due: Vec<String> = Vec::new();
        let mut keys: Vec<&String> = self.entries.keys().collect();
        keys.sort();
        let keys: Vec<String> = keys.into_iter().cloned().collect();
        for address in keys {
            let Some(entry) = self.entries.get_mut(&address) else {
                continue;
            };
            let State::Idle { next } = entry.state else {
                continue;
            };
            if let Some(owner) = entry.owner {
                if connected.contains(&owner) {
                    entry.state = State::Connected;
                    continue;
                }
                if next > now || !busy.insert(owner) {
                    continue;
                }
            } else if next > now {
                continue;
            }
            entry.state = State::Dialing { since: now };
            due.push(address);
        }
        due
    }

    /// A dial (or the session it opened) failed before the peer joined.
    pub(crate) fn on_dial_failed(&mut self, address: &str, now: Instant) {
        let Some(entry) = self.entries.get_mut(address) else {
            return;
        };
        if entry.state == State::Own {
            return;
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.origin == Origin::Learned && entry.failures >= LEARNED_FAILURE_LIMIT {
            tracing::debug!(address, "forgetting unreachable learned address");
            self.entries.remove(address);
            return;
        }
        let delay = jitter(&mut self.rng, entry.backoff);
        entry.backoff = (entry.backoff * 2).min(self.max_backoff);
        entry.state = State::Idle { next: now + delay };
    }

    /// The address is this node's own listener.
    pub(crate) fn on_own_address(&mut self, address: &str) {
        if let Some(entry) = self.entries.get_mut(address) {
            entry.state = State::Own;
        }
    }

    /// `node` joined; `addresses` (the dialled one and/or the one it advertises) reach it.
    pub(crate) fn on_joined(&mut self, node: NodeId, addresses: &[&str]) {
        for address in addresses {
            if let Some(entry) = self.entries.get_mut(*address) {
                if entry.state != State::Own {
                    entry.owner = Some(node);
                    entry.state = State::Connected;
                    entry.failures = 0;
                    entry.backoff = self.min_backoff;
                }
            }
        }
    }

    /// `node`'s session dropped: redial its addresses soon.
    pub(crate) fn on_left(&mut self, node: NodeId, now: Instant) {
        let delay = jitter(&mut self.rng, self.min_backoff) + self.first_delay(node);
        for entry in self.entries.values_mut() {
            if entry.owner == Some(node) && entry.state == State::Connected {
                entry.state = State::Idle { next: now + delay };
            }
        }
    }

    /// Dials without any outcome for `timeout` count as failed.
    pub(crate) fn expire_dials(&mut self, now: Instant, timeout: Duration) -> Vec<String> {
        let stuck: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e.state, State::Dialing { since } if now.saturating_duration_since(since) >= timeout)
            })
            .map(|(address, _)| address.clone())
            .collect();
        for address in &stuck {
            self.on_dial_failed(address, now);
        }
        stuck
    }

    /// Delay before dialling `owner` on its own initiative: see the type's docs.
    fn first_delay(&self, owner: NodeId) -> Duration {
        if owner > self.me {
            self.defer
        } else {
            Duration::ZERO
        }
    }
}

/// A delay in `[0.8, 1.2] * base`, so nodes that lost each other do not redial in lockstep.
fn jitter(rng: &mut SmallRng, base: Duration) -> Duration {
    base.mul_f64(rng.gen_range(0.8..=1.2))
}

#[cfg(test)]
mod tests;
