//! Per-peer bookkeeping of one engine.

use std::time::Instant;

use crate::diagnostics::LinkCounters;
use crate::ids::{Generation, Incarnation};
use crate::object::PeerStatus;

/// What the engine knows about one peer besides its view.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) status: PeerStatus,
    /// Process incarnation from the membership handshake.
    pub(super) node_incarnation: Option<Incarnation>,
    /// When a down peer's view is evicted.
    pub(super) evict_at: Option<Instant>,
    /// The next push to this peer must be a snapshot (it fell behind or missed changes).
    pub(super) needs_snapshot: bool,
    /// Not before this instant (backoff after backpressure).
    pub(super) retry_at: Option<Instant>,
    /// Newest own generation the peer acknowledged.
    pub(super) acked: Option<Generation>,
    /// A snapshot request to this peer is outstanding until this instant.
    pub(super) pull_until: Option<Instant>,
    /// Newest shard incarnation heard from the peer: anything older is a previous lifetime,
    /// discarded even once its view was retired.
    pub(super) newest_incarnation: Option<Incarnation>,
    pub(super) counters: LinkCounters,
    pub(super) last_error: Option<String>,
}

impl Peer {
    pub(super) fn new() -> Self {
        Peer {
            status: PeerStatus::Up,
            node_incarnation: None,
            evict_at: None,
            needs_snapshot: false,
            retry_at: None,
            acked: None,
            pull_until: None,
            newest_incarnation: None,
            counters: LinkCounters::default(),
            last_error: None,
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.status == PeerStatus::Up
    }

    /// True when a snapshot request is outstanding at `now`.
    pub(super) fn pulling(&self, now: Instant) -> bool {
        self.pull_until.is_some_and(|until| until > now)
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let retry = if self.needs_snapshot && self.is_up() {
            self.retry_at
        } else {
            None
        };
        [self.evict_at, retry, self.pull_until]
            .into_iter()
            .flatten()
            .min()
    }
}
