//! The swarm driver: one task that owns the libp2p swarm, turns its connection events and
//! the control protocol into sessions, cluster events, links and redials.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dstate::{ClusterEventBus, Incarnation, NodeId};
use futures::StreamExt;
use kameo::actor::{ActorRef, RemoteActorRef};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::book::{AddressBook, Dial};
use super::control::{ControlRequest, ControlResponse, Hello, SessionToken};
use super::endpoint::{registry_name, Endpoint};
use super::shared::{Command, Shared};
use super::stats::bump;
use super::swarm::{Behaviour, BehaviourEvent};

/// How often due redials, handshake retries and deadlines are checked.
const TICK: Duration = Duration::from_millis(50);
/// How long a graceful shutdown waits for queued frames (the node's own goodbye frames
/// among them) to be acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a graceful shutdown waits for peers to acknowledge the goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// A refused peer is disconnected after this grace (lets the refusal reach it).
pub(super) const REJECT_GRACE: Duration = Duration::from_millis(500);
/// Pause before repeating a handshake that failed in transit.
const HELLO_RETRY: Duration = Duration::from_millis(500);
/// Registration attempts of the endpoint before giving up (peers then cannot resolve it).
const REGISTER_ATTEMPTS: u32 = 8;
/// How long the endpoint of a handshaken peer is looked up before the connection is reset.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(30);

/// Who this process is, as the handshake tells peers.
#[derive(Debug, Clone)]
pub(crate) struct LocalInfo {
    pub(crate) node: NodeId,
    pub(crate) peer: PeerId,
    /// Random per process; names the endpoint registration.
    pub(crate) session: u64,
}

/// Where a peer's handshake stands.
#[derive(Debug, Default)]
pub(super) struct PeerState {
    pub(super) connections: usize,
    /// This node dialed one of the connections: it speaks first (the listener only
    /// answers, so a refused handshake leaves no half-open session on either side).
    pub(super) dialer: bool,
    /// The token this node handed (or will hand) to the peer for this connection's life.
    pub(super) offered: Option<SessionToken>,
    /// A hello to this peer awaits its answer.
    pub(super) hello_pending: bool,
    /// Earliest time to send (again) a hello.
    pub(super) hello_after: Option<Instant>,
    pub(super) session: Option<Session>,
}

/// An established handshake with a peer.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) node: NodeId,
    pub(super) incarnation: Incarnation,
    pub(super) remote_session: u64,
    pub(super) their_token: SessionToken,
    pub(super) our_token: SessionToken,
    /// The link is up and `NodeJoined` was emitted.
    pub(super) joined: bool,
    /// `NodeLeft` was already emitted (graceful goodbye).
    pub(super) left: bool,
    pub(super) resolver: Option<AbortHandle>,
}

/// A peer's endpoint lookup finished.
pub(super) struct Resolved {
    pub(super) peer: PeerId,
    pub(super) remote_session: u64,
    pub(super) endpoint: Option<RemoteActorRef<Endpoint>>,
}

/// A shutdown in progress.
pub(super) struct Leaving {
    /// Goodbyes sent and not yet answered; `None` while queued frames still drain.
    pub(super) goodbyes: Option<HashSet<OutboundRequestId>>,
    deadline: Instant,
    done: oneshot::Sender<()>,
}

impl Leaving {
    fn is_done(&self, now: Instant) -> bool {
        self.goodbyes.as_ref().is_some_and(HashSet::is_empty) || self.deadline <= now
    }
}

/// Settings the driver needs from the builder.
pub(crate) struct DriverConfig {
    pub(crate) local: LocalInfo,
    pub(crate) seeds: Vec<Multiaddr>,
    pub(crate) advertise: Vec<Multiaddr>,
    pub(crate) redial_min: Duration,
    pub(crate) redial_max: Duration,
}

/// The task that owns the swarm.
pub(crate) struct Driver {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) shared: Arc<Shared>,
    pub(super) bus: ClusterEventBus,
    pub(super) handle: Handle,
    pub(super) local: LocalInfo,
    pub(super) incarnation: Option<Incarnation>,
    pub(super) listen: Vec<Multiaddr>,
    pub(super) advertise: Vec<Multiaddr>,
    pub(super) seeds: Vec<Multiaddr>,
    pub(super) book: AddressBook,
    pub(super) peers: HashMap<PeerId, PeerState>,
    pub(super) nodes: HashMap<NodeId, PeerId>,
    pub(super) seed_dials: HashMap<ConnectionId, usize>,
    pub(super) pending_hellos: Vec<(PeerId, Hello, ResponseChannel<ControlResponse>)>,
    pub(super) hello_requests: HashMap<OutboundRequestId, PeerId>,
    pub(super) disconnect_at: Vec<(Instant, PeerId)>,
    pub(super) endpoint: ActorRef<Endpoint>,
    registration: Option<AbortHandle>,
    resolved_tx: mpsc::Sender<Resolved>,
    resolved_rx: mpsc::Receiver<Resolved>,
    commands: mpsc::Receiver<Command>,
    pub(super) leaving: Option<Leaving>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        shared: Arc<Shared>,
        bus: ClusterEventBus,
        handle: Handle,
        config: DriverConfig,
        listen: Vec<Multiaddr>,
        endpoint: ActorRef<Endpoint>,
        commands: mpsc::Receiver<Command>,
    ) -> Self {
        let (resolved_tx, resolved_rx) = mpsc::channel(64);
        let book = AddressBook::new(config.local.peer, config.redial_min, config.redial_max);
        Driver {
            swarm,
            shared,
            bus,
            handle,
            local: config.local,
            incarnation: None,
            listen,
            advertise: config.advertise,
            seeds: config.seeds,
            book,
            peers: HashMap::new(),
            nodes: HashMap::new(),
            seed_dials: HashMap::new(),
            pending_hellos: Vec::new(),
            hello_requests: HashMap::new(),
            disconnect_at: Vec::new(),
            endpoint,
            registration: None,
            resolved_tx,
            resolved_rx,
            commands,
            leaving: None,
        }
    }

    /// Handles `early` (events seen while `start` waited for the listener), then runs.
    pub(crate) async fn run_with(mut self, early: Vec<SwarmEvent<BehaviourEvent>>) {
        for event in early {
            self.on_swarm_event(event);
        }
        self.run().await;
    }

    /// Runs until shutdown.
    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(resolved) = self.resolved_rx.recv() => self.on_resolved(resolved),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(Instant::now()),
            }
            if self
                .leaving
                .as_ref()
                .is_some_and(|leaving| leaving.is_done(Instant::now()))
            {
                break;
            }
        }
        self.finish();
    }

    /// Stops everything that could still talk to the swarm, then lets it drop.
    fn finish(mut self) {
        if let Some(registration) = self.registration.take() {
            registration.abort();
        }
        for state in self.peers.values_mut() {
            if let Some(resolver) = state.session.as_mut().and_then(|s| s.resolver.take()) {
                resolver.abort();
            }
        }
        self.shared.clear_links();
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            // Already disconnected is fine.
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        if let Some(leaving) = self.leaving.take() {
            // The caller may have stopped waiting.
            let _ = leaving.done.send(());
        }
        tracing::info!(node = %self.local.node, "cluster node stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Join(incarnation) => self.on_join(incarnation),
            Command::Reconnect(node) => {
                if let Some(peer) = self.nodes.get(&node).copied() {
                    tracing::info!(%node, %peer, "liveness check failed; reconnecting");
                    self.book.on_session(&peer);
                    // Not connected any more is fine: the redial follows either way.
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            Command::LinkFailed { peer, reason } => {
                tracing::info!(%peer, %reason, "resetting connection after link failure");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Members(reply) => {
                // The asker may have gone.
                let _ = reply.send(self.shared.linked_nodes());
            }
            Command::Shutdown(done) => self.on_shutdown(done),
        }
    }

    fn on_join(&mut self, incarnation: Incarnation) {
        if self.incarnation.is_some() {
            return;
        }
        tracing::info!(node = %self.local.node, ?incarnation, peer = %self.local.peer, "joining the cluster");
        self.incarnation = Some(incarnation);
        let now = Instant::now();
        for seed in self.seeds.clone() {
            if !self.listen.contains(&seed) && !self.advertise.contains(&seed) {
                self.book.add_seed(seed, now);
            }
        }
        for (peer, hello, channel) in std::mem::take(&mut self.pending_hellos) {
            self.answer_hello(peer, hello, channel);
        }
        self.on_tick(now);
    }

    fn on_shutdown(&mut self, done: oneshot::Sender<()>) {
        tracing::info!(node = %self.local.node, "leaving the cluster");
        self.leaving = Some(Leaving {
            goodbyes: None,
            deadline: Instant::now() + DRAIN_TIMEOUT,
            done,
        });
        self.on_tick(Instant::now());
    }

    /// Once queued frames are delivered (or the drain deadline passed), says goodbye.
    fn drive_leaving(&mut self, now: Instant) {
        let Some(leaving) = self.leaving.as_ref() else {
            return;
        };
        if leaving.goodbyes.is_some() {
            return;
        }
        if !self.shared.links_idle() && leaving.deadline > now {
            return;
        }
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, state)| state.session.is_some())
            .map(|(peer, _)| *peer)
            .collect();
        let goodbyes = peers
            .iter()
            .map(|peer| {
                self.swarm
                    .behaviour_mut()
                    .control
                    .send_request(peer, ControlRequest::Goodbye)
            })
            .collect();
        if let Some(leaving) = self.leaving.as_mut() {
            leaving.goodbyes = Some(goodbyes);
            leaving.deadline = now + GOODBYE_TIMEOUT;
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.drive_leaving(now);
        let leaving = self.leaving.is_some();
        let due: Vec<PeerId> = self
            .disconnect_at
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, peer)| *peer)
            .collect();
        self.disconnect_at.retain(|(at, _)| *at > now);
        for peer in due {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        if self.incarnation.is_none() || leaving {
            return;
        }
        let connected: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
        for dial in self
            .book
            .poll_dials(now, rand::random(), |peer| connected.contains(peer))
        {
            self.dial(dial);
        }
        let ready: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, state)| {
                state.connections > 0
                    && state.dialer
                    && state.session.is_none()
                    && !state.hello_pending
                    && state.hello_after.is_none_or(|after| after <= now)
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in ready {
            self.send_hello(peer);
        }
    }

    fn dial(&mut self, dial: Dial) {
        let opts = match dial {
            Dial::Seed { index, addr } => {
                let opts = DialOpts::unknown_peer_id().address(addr).build();
                self.seed_dials.insert(opts.connection_id(), index);
                opts
            }
            Dial::Peer { peer, addrs } => DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
        };
        if let Err(err) = self.swarm.dial(opts) {
            tracing::debug!(%err, "dial not started");
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                if !self.listen.contains(&address) {
                    self.listen.push(address);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if let Some(index) = self.seed_dials.remove(&connection_id) {
                    self.book.seed_connected(index, peer_id);
                }
                if endpoint.is_dialer() {
                    self.book
                        .learn(peer_id, std::slice::from_ref(endpoint.get_remote_address()));
                }
                let state = self.peers.entry(peer_id).or_default();
                state.connections += 1;
                state.dialer |= endpoint.is_dialer();
                tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connection up");
                self.ensure_registered();
                self.on_tick(Instant::now());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(peer = %peer_id, ?cause, num_established, "connection closed");
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    state.connections = num_established as usize;
                }
                if num_established == 0 {
                    self.on_peer_down(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                self.seed_dials.remove(&connection_id);
                match error {
                    DialError::Denied { .. } => bump(&self.shared.counters.connections_denied),
                    _ => tracing::debug!(peer = ?peer_id, %error, "dial failed"),
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => match error {
                ListenError::Denied { .. } => {
                    bump(&self.shared.counters.connections_denied);
                    tracing::warn!(from = %send_back_addr, "connection from a peer outside the allow-list refused");
                }
                _ => {
                    bump(&self.shared.counters.connections_failed);
                    tracing::info!(from = %send_back_addr, %error, "incoming connection failed (wrong cluster key?)");
                }
            },
            SwarmEvent::ListenerError { error, .. } => {
                tracing::error!(%error, "listener error");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Control(event)) => self.on_control(event),
            SwarmEvent::Behaviour(BehaviourEvent::Kameo(event)) => {
                tracing::trace!(?event, "kameo remote event");
            }
            _ => {}
        }
    }

    fn on_control(&mut self, event: request_response::Event<ControlRequest, ControlResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_control_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_control_response(peer, request_id, response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "control request failed");
                self.forget_request(peer, request_id);
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "control request from peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A control request got no answer: allow a new hello later, count a goodbye as done.
    fn forget_request(&mut self, peer: PeerId, request_id: OutboundRequestId) {
        if self.hello_requests.remove(&request_id).is_some() {
            if let Some(state) = self.peers.get_mut(&peer) {
                state.hello_pending = false;
                state.hello_after = Some(Instant::now() + HELLO_RETRY);
            }
        }
        if let Some(goodbyes) = self.leaving.as_mut().and_then(|l| l.goodbyes.as_mut()) {
            goodbyes.remove(&request_id);
        }
    }

    /// Registers the endpoint once the first connection is up: kameo publishes a
    /// registration made earlier only every 30 minutes.
    fn ensure_registered(&mut self) {
        if self.registration.is_some() {
            return;
        }
        let endpoint = self.endpoint.clone();
        let name = registry_name(&self.local.peer, self.local.session);
        let task = self.handle.spawn(async move {
            let mut delay = Duration::from_millis(100);
            for attempt in 1..=REGISTER_ATTEMPTS {
                match endpoint.register(name.clone()).await {
                    Ok(()) => {
                        tracing::debug!(%name, "endpoint registered");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(%name, attempt, %err, "registering the endpoint failed");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
            tracing::error!(%name, "endpoint not registered; peers cannot reach this node");
        });
        self.registration = Some(task.abort_handle());
    }

    /// Starts looking up `peer`'s endpoint in kameo's registry.
    pub(super) fn spawn_resolver(&self, peer: PeerId, remote_session: u64) -> AbortHandle {
        let tx = self.resolved_tx.clone();
        let name = registry_name(&peer, remote_session);
        self.handle
            .spawn(async move {
                let endpoint = resolve(&name, peer).await;
                let resolved = Resolved {
                    peer,
                    remote_session,
                    endpoint,
                };
                // The driver may be gone (shutdown).
                let _ = tx.send(resolved).await;
            })
            .abort_handle()
    }
}

/// Looks `name` up until an endpoint on `peer` is found or the deadline passes.
async fn resolve(name: &str, peer: PeerId) -> Option<RemoteActorRef<Endpoint>> {
    let deadline = tokio::time::Instant::now() + RESOLVE_DEADLINE;
    let mut delay = Duration::from_millis(20);
    loop {
        let mut found = RemoteActorRef::<Endpoint>::lookup_all(name);
        while let Some(item) = found.next().await {
            match item {
                Ok(endpoint) if endpoint.id().peer_id() == Some(&peer) => return Some(endpoint),
                Ok(endpoint) => {
                    tracing::warn!(%name, id = ?endpoint.id(), "registry entry on another peer ignored");
                }
                Err(err) => tracing::debug!(%name, %err, "endpoint lookup error"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}
