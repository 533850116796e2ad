//! [`KameoCluster`]: one node of a dstate cluster over kameo's remote layer.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dstate::{Incarnation, NodeId};
use futures::StreamExt;
use kameo::actor::{ActorRef, Spawn};
use kameo::mailbox;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::error::ClusterError;
use crate::runtime::KameoRuntime;

use super::driver::{Driver, DriverConfig, LocalInfo};
use super::endpoint::{AttachSink, Endpoint};
use super::keys::{ClusterKey, NodeIdentity, PeerIdentity};
use super::shared::{Command, FrameSink, Limits, Shared};
use super::stats::TransportStats;
use super::swarm::{self, Behaviour};
use super::transport::KameoTransport;

/// Default largest frame: kameo's default request limit is 1 MiB and CBOR doubles byte
/// payloads, so about half a MiB fits; the core chunks larger snapshots.
const DEFAULT_MAX_FRAME_BYTES: usize = 512 * 1024;
/// Default queued bytes per peer: a few large snapshots, or thousands of small deltas.
const DEFAULT_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// Default queued frames per peer.
const DEFAULT_QUEUE_FRAMES: usize = 16 * 1024;
/// Default batches in flight per peer: 64 delivered everything in measurements, more
/// risks exhausting yamux streams.
const DEFAULT_IN_FLIGHT: usize = 32;
/// Hard cap on batches in flight (see above).
const MAX_IN_FLIGHT: usize = 64;
/// Default unacknowledged frame bytes per peer.
const DEFAULT_IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;
/// Frames per batch: amortises per-request cost without delaying small frames.
const MAX_BATCH_FRAMES: usize = 512;
/// Smallest batch byte budget (when frames are small).
const MIN_BATCH_BYTES: usize = 256 * 1024;
/// Attempts per batch before the link resets.
const SEND_ATTEMPTS: u32 = 4;
/// Default first redial delay.
const DEFAULT_REDIAL_MIN: Duration = Duration::from_millis(100);
/// Default longest redial delay.
const DEFAULT_REDIAL_MAX: Duration = Duration::from_secs(5);
/// Batches waiting in the endpoint's mailbox before senders wait (backpressure).
const ENDPOINT_MAILBOX: usize = 256;
/// Driver commands waiting.
const COMMAND_QUEUE: usize = 1024;
/// How long `start` waits for the listener to report its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Configures and starts a [`KameoCluster`] node.
#[derive(Debug, Clone)]
pub struct KameoClusterBuilder {
    node: NodeId,
    key: ClusterKey,
    listen: SocketAddr,
    seeds: Vec<SocketAddr>,
    advertise: Vec<SocketAddr>,
    identity: Option<NodeIdentity>,
    allowed: Option<HashSet<PeerIdentity>>,
    max_frame_bytes: usize,
    queue_bytes: usize,
    in_flight: usize,
    redial_min: Duration,
    redial_max: Duration,
}

impl KameoClusterBuilder {
    /// Where to listen (TCP). Port 0 picks a free port; see [`KameoCluster::local_addr`].
    /// Default `127.0.0.1:0`: nothing is exposed unless asked for.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// A node to dial at start and whenever the connection to it is down (with backoff).
    /// One reachable seed is enough: peers tell each other about the rest.
    pub fn seed(mut self, addr: SocketAddr) -> Self {
        self.seeds.push(addr);
        self
    }

    /// Several seeds at once.
    pub fn seeds(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.seeds.extend(addrs);
        self
    }

    /// Addresses peers should dial to reach this node, when the listen address is not
    /// reachable as such (NAT, port forwarding, a proxy). Default: the bound addresses.
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.advertise.push(addr);
        self
    }

    /// The key that authenticates this node's connections. Default: a fresh one per start
    /// (the node then looks like a new peer after a restart, which dstate handles through
    /// the incarnation). Load a stored one with [`NodeIdentity::load_or_generate`] to keep
    /// it, which an allow-list needs.
    pub fn identity(mut self, identity: NodeIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Accept connections only from these peers (and this node). Without an allow-list,
    /// every process holding the cluster key is accepted.
    pub fn allow_peers(mut self, peers: impl IntoIterator<Item = PeerIdentity>) -> Self {
        self.allowed.get_or_insert_with(HashSet::new).extend(peers);
        self
    }

    /// Largest frame the transport carries (default 512 KiB). Every node of a cluster must
    /// use the same value: it sets the request size a node accepts.
    pub fn max_frame_bytes(mut self, bytes: NonZeroUsize) -> Self {
        self.max_frame_bytes = bytes.get();
        self
    }

    /// Queued bytes per peer before sends report backpressure (default 8 MiB).
    pub fn peer_queue_bytes(mut self, bytes: NonZeroUsize) -> Self {
        self.queue_bytes = bytes.get();
        self
    }

    /// Batches awaiting acknowledgement per peer (default 32, at most 64).
    pub fn max_in_flight(mut self, batches: NonZeroUsize) -> Self {
        self.in_flight = batches.get().min(MAX_IN_FLIGHT);
        self
    }

    /// Redial delays after a lost connection: the first `min`, doubling up to `max`
    /// (defaults 100 ms and 5 s).
    pub fn redial_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.redial_min = min.max(Duration::from_millis(1));
        self.redial_max = max.max(self.redial_min);
        self
    }

    /// Starts the node: builds the swarm, binds the listen address and returns once it is
    /// bound. Peers are dialed (and answered) only after [`KameoCluster::join`].
    ///
    /// kameo allows one remote swarm per process: a second start in the same process fails
    /// with [`ClusterError::AlreadyRunning`], even after the first node shut down.
    pub async fn start(self, runtime: &KameoRuntime) -> Result<KameoCluster, ClusterError> {
        let identity = self.identity.clone().unwrap_or_else(NodeIdentity::generate);
        let limits = self.limits();
        let allowed = self
            .allowed
            .as_ref()
            .map(|peers| peers.iter().map(|peer| peer.0).collect::<HashSet<_>>());
        let mut swarm = swarm::build(&identity, &self.key, allowed.as_ref(), &limits)?;
        swarm
            .listen_on(to_multiaddr(self.listen))
            .map_err(|err| ClusterError::Listen {
                addr: self.listen,
                reason: err.to_string(),
            })?;
        let (first, early) = wait_listening(&mut swarm, self.listen).await?;
        let local_addr = match first.iter().find_map(tcp_port) {
            Some(port) => SocketAddr::new(self.listen.ip(), port),
            None => self.listen,
        };

        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let shared = Shared::new(self.node, limits, commands_tx);
        let endpoint = {
            let _entered = runtime.handle().enter();
            Endpoint::spawn_with_mailbox(
                Endpoint::new(shared.clone()),
                mailbox::bounded(ENDPOINT_MAILBOX),
            )
        };
        let local = LocalInfo {
            node: self.node,
            peer: *swarm.local_peer_id(),
            session: rand::random(),
        };
        let config = DriverConfig {
            local,
            seeds: self.seeds.iter().copied().map(to_multiaddr).collect(),
            advertise: self.advertise.iter().copied().map(to_multiaddr).collect(),
            redial_min: self.redial_min,
            redial_max: self.redial_max,
        };
        let driver = Driver::new(
            swarm,
            shared.clone(),
            runtime.event_bus().clone(),
            runtime.handle().clone(),
            config,
            vec![first],
            endpoint.clone(),
            commands_rx,
        );
        runtime.handle().spawn(driver.run_with(early));
        tracing::info!(node = %self.node, %local_addr, peer = %identity.peer(), key = %self.key.fingerprint(), "cluster node started");
        Ok(KameoCluster {
            transport: Arc::new(KameoTransport::new(shared.clone())),
            shared,
            endpoint,
            local_addr,
            peer: identity.peer(),
            joined: AtomicBool::new(false),
        })
    }

    fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_batch_bytes: self.max_frame_bytes.max(MIN_BATCH_BYTES),
            max_batch_frames: MAX_BATCH_FRAMES,
            queue_bytes: self.queue_bytes.max(self.max_frame_bytes),
            queue_frames: DEFAULT_QUEUE_FRAMES,
            max_in_flight: self.in_flight,
            max_in_flight_bytes: DEFAULT_IN_FLIGHT_BYTES,
            max_send_attempts: SEND_ATTEMPTS,
        }
    }
}

/// One node of a dstate cluster over kameo's remote layer (libp2p).
///
/// Start it with [`KameoCluster::builder`], hand [`KameoCluster::transport`] to the dstate
/// node, then [`join`](KameoCluster::join) with the node's incarnation and inbound side.
/// Membership events reach the dstate host through the [`KameoRuntime`] given to `start`.
pub struct KameoCluster {
    shared: Arc<Shared>,
    endpoint: ActorRef<Endpoint>,
    local_addr: SocketAddr,
    peer: PeerIdentity,
    joined: AtomicBool,
    transport: Arc<KameoTransport>,
}

impl KameoCluster {
    /// A builder for node `node` of the cluster sharing `key`.
    pub fn builder(node: NodeId, key: ClusterKey) -> KameoClusterBuilder {
        KameoClusterBuilder {
            node,
            key,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            seeds: Vec::new(),
            advertise: Vec::new(),
            identity: None,
            allowed: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            in_flight: DEFAULT_IN_FLIGHT,
            redial_min: DEFAULT_REDIAL_MIN,
            redial_max: DEFAULT_REDIAL_MAX,
        }
    }

    /// This node's dstate identity.
    pub fn node_id(&self) -> NodeId {
        self.shared.local
    }

    /// The bound listen address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The public identity of this node's connections.
    pub fn peer_identity(&self) -> PeerIdentity {
        self.peer
    }

    /// The transport to give the dstate node.
    pub fn transport(&self) -> Arc<KameoTransport> {
        self.transport.clone()
    }

    /// Starts dialing seeds and exchanging handshakes, announcing `incarnation`, with
    /// inbound frames going to `sink` (the node's inbound side).
    pub async fn join(
        &self,
        incarnation: Incarnation,
        sink: impl FrameSink,
    ) -> Result<(), ClusterError> {
        if self.joined.swap(true, Ordering::AcqRel) {
            return Err(ClusterError::AlreadyJoined);
        }
        self.endpoint
            .tell(AttachSink(Arc::new(sink)))
            .await
            .map_err(|_| ClusterError::Closed)?;
        self.shared
            .commands
            .send(Command::Join(incarnation))
            .await
            .map_err(|_| ClusterError::Closed)
    }

    /// [`join`](KameoCluster::join) for a dstate node started with this cluster's
    /// transport: announces its incarnation and delivers frames to its inbound side.
    pub async fn join_node<R: dstate::ActorRuntime>(
        &self,
        node: &dstate::Node<R>,
    ) -> Result<(), ClusterError> {
        self.join(node.incarnation(), node.inbound()).await
    }

    /// Nodes joined right now (handshake done, link up), in order.
    pub async fn members(&self) -> Result<Vec<NodeId>, ClusterError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Members(tx))
            .await
            .map_err(|_| ClusterError::Closed)?;
        rx.await.map_err(|_| ClusterError::Closed)
    }

    /// Transport and membership counters.
    pub fn stats(&self) -> TransportStats {
        self.shared.counters.snapshot()
    }

    /// Leaves gracefully: tells every peer goodbye (they report this node as left at once),
    /// waits briefly for their acknowledgements, closes all connections and stops.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self
            .shared
            .commands
            .send(Command::Shutdown(tx))
            .await
            .is_ok()
        {
            // The driver answers when done; if it is gone already there is nothing to wait for.
            let _ = rx.await;
        }
    }
}

impl fmt::Debug for KameoCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KameoCluster")
            .field("node", &self.shared.local)
            .field("local_addr", &self.local_addr)
            .field("peer", &self.peer)
            .finish()
    }
}

fn to_multiaddr(addr: SocketAddr) -> Multiaddr {
    Multiaddr::empty()
        .with(Protocol::from(addr.ip()))
        .with(Protocol::Tcp(addr.port()))
}

fn tcp_port(protocol: Protocol<'_>) -> Option<u16> {
    match protocol {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    }
}

/// Polls the swarm until the listener reports its first address; other events seen
/// meanwhile are returned for the driver to handle first.
async fn wait_listening(
    swarm: &mut Swarm<Behaviour>,
    addr: SocketAddr,
) -> Result<(Multiaddr, Vec<SwarmEvent<swarm::BehaviourEvent>>), ClusterError> {
    let mut early = Vec::new();
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerError { error, .. } => return Err(error.to_string()),
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(match reason {
                        Ok(()) => "listener closed".to_owned(),
                        Err(err) => err.to_string(),
                    })
                }
                other => early.push(other),
            }
        }
    };
    match tokio::time::timeout(LISTEN_TIMEOUT, wait).await {
        Ok(Ok(address)) => Ok((address, early)),
        Ok(Err(reason)) => Err(ClusterError::Listen { addr, reason }),
        Err(_) => Err(ClusterError::Listen {
            addr,
            reason: "no listen address reported in time".to_owned(),
        }),
    }
}
