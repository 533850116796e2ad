//! The endpoint actor: one per node, in the cluster-wide process group. It owns membership,
//! the address book and inbound frames; outbound frames bypass it (see the transport).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dstate::{ClusterEvent, ClusterEventBus, LeaveReason, NodeId};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::node::{NodeServerSessionInformation, NodeSessionMessage};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cluster::address_book::{AddressBook, DialOutcome};
use crate::cluster::config::RactorClusterBuilder;
use crate::cluster::membership::{Action, LocalIdentity, Membership, SessionId};
use crate::cluster::net::{spawn_listener, Dialer};
use crate::cluster::protocol::{EndpointMsg, Hello, LocalMsg, SessionEvent, Token, WireMsg};
use crate::cluster::stats::Counters;
use crate::cluster::transport::{PeerLink, Shared};
use crate::cluster::FrameSink;

mod inbound;

/// `ractor::pg` scope and group of the endpoint actors (synced by ractor_cluster).
pub(crate) const PG_SCOPE: &str = "dstate.cluster";
pub(crate) const PG_GROUP: &str = "dstate.endpoints";

/// Hard cap on how long a flush waits for acknowledgements.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

pub(crate) struct Endpoint;

/// Start-up inputs of the endpoint.
pub(crate) struct EndpointArgs {
    pub(crate) config: RactorClusterBuilder,
    pub(crate) shared: Arc<Shared>,
    pub(crate) events: ClusterEventBus,
    pub(crate) listener: TcpListener,
    pub(crate) local_addr: SocketAddrs,
    pub(crate) nonce: u64,
}

/// The bound and the advertised address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketAddrs {
    pub(crate) bound: std::net::SocketAddr,
    pub(crate) advertised: Option<std::net::SocketAddr>,
}

pub(crate) struct EndpointState {
    config: RactorClusterBuilder,
    shared: Arc<Shared>,
    events: ClusterEventBus,
    node_server: ActorRef<NodeServerMessage>,
    membership: Membership<ActorRef<EndpointMsg>>,
    book: AddressBook,
    dialer: Dialer,
    own_addresses: HashSet<String>,
    sessions: HashMap<SessionId, SessionHandle>,
    /// Outbound connections handed to the NodeServer, by peer socket address, until their
    /// session opens.
    pending_dials: HashMap<String, String>,
    sink: Option<FrameSink>,
    flushes: HashMap<u64, PendingFlush>,
    next_flush: u64,
    tasks: Vec<JoinHandle<()>>,
}

struct SessionHandle {
    actor: ActorRef<NodeSessionMessage>,
    /// The address-book entry this outbound session was dialled for.
    dialed: Option<String>,
    joined: bool,
    received_bytes: u64,
    received_frames: u64,
    acked_bytes: u64,
    acked_frames: u64,
}

struct PendingFlush {
    reply: oneshot::Sender<usize>,
    waiting: HashSet<NodeId>,
    acknowledged: usize,
}

/// Forwards ractor_cluster's session callbacks (which run inside the NodeServer actor) to
/// the endpoint without blocking.
struct Forwarder(ActorRef<EndpointMsg>);

impl Forwarder {
    fn forward(&self, event: SessionEvent, info: NodeServerSessionInformation) {
        let msg = EndpointMsg::Local(LocalMsg::Session(event, info));
        if self.0.cast(msg).is_err() {
            tracing::trace!("endpoint stopped; session event dropped");
        }
    }
}

impl NodeEventSubscription for Forwarder {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        self.forward(SessionEvent::Opened, ses);
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.forward(SessionEvent::Disconnected, ses);
    }

    fn node_session_authenticated(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        self.forward(SessionEvent::Ready, ses);
    }
}

impl Actor for Endpoint {
    type Msg = EndpointMsg;
    type State = EndpointState;
    type Arguments = EndpointArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EndpointMsg>,
        args: EndpointArgs,
    ) -> Result<EndpointState, ActorProcessingErr> {
        let EndpointArgs {
            config,
            shared,
            events,
            listener,
            local_addr,
            nonce,
        } = args;
        let name = crate::cluster::membership::node_name(&config.label, config.node, nonce);
        let host = local_addr
            .advertised
            .map_or_else(|| local_addr.bound.ip().to_string(), |a| a.ip().to_string());
        // ractor_cluster binds a listener of its own that nobody dials (peers use ours):
        // keep it on the same interface, on an OS-chosen port.
        let server = NodeServer::new(
            0,
            config.cookie.clone(),
            name.clone(),
            host.clone(),
            None,
            None,
        )
        .with_listen_addr(local_addr.bound.ip())
        .with_max_inbound_frame_size(config.max_inbound_frame_bytes);
        let (node_server, _) = Actor::spawn_linked(None, server, (), myself.get_cell()).await?;
        node_server.cast(NodeServerMessage::SubscribeToEvents {
            id: String::from("dstate"),
            subscription: Box::new(Forwarder(myself.clone())),
        })?;
        ractor::pg::join_scoped(
            PG_SCOPE.to_string(),
            PG_GROUP.to_string(),
            vec![myself.get_cell()],
        );

        let tls_acceptor = config.tls.as_ref().map(|t| t.acceptor.clone());
        let mut tasks = vec![spawn_listener(listener, node_server.clone(), tls_acceptor)];
        tasks.push(spawn_ticker(myself.clone(), config.tick));

        let now = Instant::now();
        let seed = config.node.0 ^ nonce;
        let mut book = AddressBook::new(
            config.node,
            config.min_backoff,
            config.max_backoff,
            config.dial_defer,
            seed,
        );
        for address in &config.seeds {
            book.add_seed(address.clone(), now);
        }
        let mut own: Vec<std::net::SocketAddr> = vec![local_addr.bound];
        own.extend(local_addr.advertised);
        let own_addresses = own.iter().map(ToString::to_string).collect();
        let dialer = Dialer {
            node_server: node_server.clone(),
            endpoint: myself.clone(),
            own,
            source: config.outbound_source,
            timeout: config.connect_timeout,
            tls: config
                .tls
                .as_ref()
                .map(|t| (t.connector.clone(), t.server_name.clone())),
        };
        let identity = LocalIdentity {
            node: config.node,
            name: format!("{name}@{host}"),
            listen: local_addr.advertised.map(|a| a.to_string()),
        };
        Ok(EndpointState {
            config,
            shared,
            events,
            node_server,
            membership: Membership::new(identity),
            book,
            dialer,
            own_addresses,
            sessions: HashMap::new(),
            pending_dials: HashMap::new(),
            sink: None,
            flushes: HashMap::new(),
            next_flush: 1,
            tasks,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<EndpointMsg>,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        for task in state.tasks.drain(..) {
            task.abort();
        }
        state.shared.close();
        // Stopping the NodeServer closes every session (its children).
        if let Err(err) = state
            .node_server
            .stop_and_wait(
                Some(String::from("dstate shutdown")),
                Some(Duration::from_secs(2)),
            )
            .await
        {
            tracing::debug!(error = %err, "node server did not stop cleanly");
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<EndpointMsg>,
        msg: EndpointMsg,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EndpointMsg::Wire(wire) => state.on_wire(wire),
            EndpointMsg::Local(local) => state.on_local(&myself, local),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<EndpointMsg>,
        event: SupervisionEvent,
        state: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(who, err)
                if who.get_id() == state.node_server.get_id() =>
            {
                tracing::error!(error = %err, "ractor_cluster NodeServer failed; stopping the cluster");
                myself.stop(Some(String::from("node server failed")));
            }
            SupervisionEvent::ActorTerminated(who, _, reason)
                if who.get_id() == state.node_server.get_id() =>
            {
                tracing::info!(?reason, "ractor_cluster NodeServer stopped");
                myself.stop(Some(String::from("node server stopped")));
            }
            _ => {}
        }
        Ok(())
    }
}

impl EndpointState {
    fn on_local(&mut self, myself: &ActorRef<EndpointMsg>, msg: LocalMsg) {
        let now = Instant::now();
        match msg {
            LocalMsg::Session(event, info) => self.on_session(event, info, now),
            LocalMsg::Attach { incarnation, sink } => {
                if self.sink.is_some() {
                    return;
                }
                self.sink = Some(sink);
                let actions = self.membership.handle_attach(incarnation, now);
                self.apply(actions, now);
            }
            LocalMsg::Tick => self.on_tick(now),
            LocalMsg::DialFinished { address, outcome } => match outcome {
                DialOutcome::Connected { peer } => {
                    self.pending_dials.insert(peer, address);
                }
                DialOutcome::OwnAddress => {
                    tracing::debug!(address, "seed is this node's own address");
                    self.book.on_own_address(&address);
                }
                DialOutcome::Failed(reason) => {
                    tracing::debug!(address, reason, "dial failed");
                    Counters::bump(&self.shared.counters.dial_failures);
                    self.pending_dials.retain(|_, a| *a != address);
                    self.book.on_dial_failed(&address, now);
                }
            },
            LocalMsg::Reconnect(node) => {
                if let Some(handle) = self
                    .membership
                    .session_of(node)
                    .and_then(|id| self.sessions.get(&id))
                {
                    tracing::info!(%node, "dropping the session of a silent peer");
                    handle.actor.stop(Some(String::from("dstate: peer silent")));
                }
            }
            LocalMsg::Flush(reply) => self.start_flush(myself, reply),
            LocalMsg::FlushDeadline(id) => {
                if let Some(flush) = self.flushes.remove(&id) {
                    let _ = flush.reply.send(flush.acknowledged);
                }
            }
        }
    }

    fn on_session(
        &mut self,
        event: SessionEvent,
        info: NodeServerSessionInformation,
        now: Instant,
    ) {
        let id = info.node_id;
        match event {
            SessionEvent::Opened => {
                Counters::bump(&self.shared.counters.sessions_opened);
                self.membership.handle_opened(id, now);
                let dialed = if info.is_server {
                    None
                } else {
                    self.pending_dials.remove(&info.peer_addr)
                };
                self.sessions.insert(
                    id,
                    SessionHandle {
                        actor: info.actor,
                        dialed,
                        joined: false,
                        received_bytes: 0,
                        received_frames: 0,
                        acked_bytes: 0,
                        acked_frames: 0,
                    },
                );
            }
            SessionEvent::Ready => {
                let endpoint = find_endpoint(id);
                let name = info.peer_name.map(|n| n.name);
                let actions =
                    self.membership
                        .handle_ready(id, name, endpoint, Token::random(), now);
                self.apply(actions, now);
            }
            SessionEvent::Disconnected => {
                let handle = self.sessions.remove(&id);
                let actions = self.membership.handle_disconnected(id);
                if let Some(handle) = handle {
                    if !handle.joined {
                        if let Some(address) = handle.dialed {
                            Counters::bump(&self.shared.counters.dial_failures);
                            self.book.on_dial_failed(&address, now);
                        }
                    }
                }
                self.apply(actions, now);
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        let expired = self
            .membership
            .poll_expired(now, self.config.handshake_timeout);
        if !expired.is_empty() {
            Counters::add(
                &self.shared.counters.handshake_timeouts,
                expired.len() as u64,
            );
            self.apply(expired, now);
        }
        for id in self.membership.sessions_missing_endpoint() {
            if let Some(endpoint) = find_endpoint(id) {
                let actions = self.membership.handle_endpoint(id, endpoint);
                self.apply(actions, now);
            }
        }
        for address in self.book.expire_dials(
            now,
            self.config.connect_timeout + self.config.handshake_timeout,
        ) {
            tracing::debug!(address, "dial produced no session in time");
            self.pending_dials.retain(|_, a| *a != address);
        }
        let connected: HashSet<NodeId> = self.membership.joined().collect();
        for address in self.book.poll_dials(now, &connected) {
            Counters::bump(&self.shared.counters.dials);
            tracing::debug!(address, "dialling");
            self.dialer.spawn(address);
        }
    }

    fn learn(&mut self, address: String, owner: NodeId, now: Instant) {
        if !self.own_addresses.contains(&address) {
            self.book.learn(address, owner, now);
        }
    }

    fn apply(&mut self, actions: Vec<Action<ActorRef<EndpointMsg>>>, now: Instant) {
        for action in actions {
            match action {
                Action::SendHello { endpoint, hello } => send_hello(&endpoint, hello),
                Action::Join {
                    node,
                    incarnation,
                    session,
                    endpoint,
                    send_token,
                    listen,
                    known,
                } => {
                    let link = Arc::new(PeerLink::new(incarnation, session, endpoint, send_token));
                    self.shared.insert(node, link.clone());
                    let mut reach: Vec<String> = Vec::new();
                    if let Some(handle) = self.sessions.get_mut(&session) {
                        handle.joined = true;
                        reach.extend(handle.dialed.clone());
                    }
                    if let Some(listen) = &listen {
                        self.learn(listen.clone(), node, now);
                        reach.push(listen.clone());
                    }
                    let reach: Vec<&str> = reach.iter().map(String::as_str).collect();
                    self.book.on_joined(node, &reach);
                    for (owner, address) in known {
                        self.learn(address, owner, now);
                    }
                    self.gossip(node, &link, listen);
                    Counters::bump(&self.shared.counters.joins);
                    tracing::info!(%node, incarnation = incarnation.0, "peer joined");
                    self.events
                        .emit(ClusterEvent::NodeJoined { node, incarnation });
                }
                Action::Leave { node, session } => {
                    self.shared.remove(node, session);
                    self.book.on_left(node, now);
                    Counters::bump(&self.shared.counters.leaves);
                    tracing::info!(%node, "peer disconnected");
                    self.events.emit(ClusterEvent::NodeLeft {
                        node,
                        reason: LeaveReason::Disconnected,
                    });
                }
                Action::StopSession(id) => {
                    if let Some(handle) = self.sessions.get(&id) {
                        handle
                            .actor
                            .stop(Some(String::from("dstate: session replaced or stale")));
                    }
                }
            }
        }
    }

    /// Tell the new peer every address this node knows, and the others the new address.
    fn gossip(&self, node: NodeId, link: &PeerLink, listen: Option<String>) {
        let known: Vec<_> = self
            .membership
            .peer_addresses()
            .into_iter()
            .filter(|(owner, _)| *owner != node)
            .collect();
        if !known.is_empty() {
            // A closed session is noticed through its disconnect event; gossip is best effort.
            let _ = link.cast(WireMsg::Peers {
                token: link.token,
                adverts: known,
            });
        }
        let Some(listen) = listen else {
            return;
        };
        for (other, other_link) in self.shared.links() {
            if other != node {
                // Best effort, as above.
                let _ = other_link.cast(WireMsg::Peers {
                    token: other_link.token,
                    adverts: vec![(node, listen.clone())],
                });
            }
        }
    }
}

fn send_hello(endpoint: &ActorRef<EndpointMsg>, hello: Hello) {
    if endpoint
        .cast(EndpointMsg::Wire(WireMsg::Hello(hello)))
        .is_err()
    {
        tracing::debug!("hello to a closed session");
    }
}

/// The peer endpoint reachable through session `id`: the group member that ractor_cluster
/// created for that session.
fn find_endpoint(id: SessionId) -> Option<ActorRef<EndpointMsg>> {
    ractor::pg::get_scoped_members(&PG_SCOPE.to_string(), &PG_GROUP.to_string())
        .into_iter()
        .find(|cell| matches!(cell.get_id(), ActorId::Remote { node_id, .. } if node_id == id))
        .map(ActorRef::from)
}

fn spawn_ticker(endpoint: ActorRef<EndpointMsg>, period: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if endpoint.cast(EndpointMsg::Local(LocalMsg::Tick)).is_err() {
                break;
            }
        }
    })
}
