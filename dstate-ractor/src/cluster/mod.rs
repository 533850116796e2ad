//! Membership and transport over `ractor_cluster`.

mod address_book;
mod config;
mod endpoint;
mod membership;
mod net;
mod protocol;
mod stats;
mod transport;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dstate::{Incarnation, NodeId};
use ractor::ActorRef;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use config::{RactorClusterBuilder, TlsSettings};
pub use stats::ClusterStats;
pub use transport::{PeerInfo, RactorTransport};

use crate::error::ClusterError;
use crate::RactorRuntime;
use endpoint::{Endpoint, EndpointArgs, SocketAddrs};
use protocol::{EndpointMsg, LocalMsg};
use transport::Shared;

/// Where inbound frames go: `(authenticated sender, frame)`.
pub(crate) type FrameSink = Arc<dyn Fn(NodeId, Bytes) + Send + Sync>;

/// This process's membership in a ractor_cluster cluster, and the dstate transport over it.
///
/// Start one per process (ractor's process groups and registry are process-global) with
/// [`RactorCluster::builder`], hand [`transport`](Self::transport) to the dstate node, then
/// [`attach`](Self::attach) the node's incarnation and inbound side. From then on:
///
/// * **Membership.** Every ractor_cluster session that authenticates (cookie challenge) and
///   becomes ready carries a dstate handshake in both directions (`NodeId`, incarnation,
///   a per-session token). When both are done the peer is reported as
///   [`ClusterEvent::NodeJoined`](dstate::ClusterEvent::NodeJoined) on the runtime's
///   [`cluster_events`](dstate::ActorRuntime::cluster_events); when its session closes, as
///   `NodeLeft { reason: Disconnected }`. A restarted peer (new incarnation) replaces the old
///   session at once. ractor's own per-session node ids are never used as identity.
/// * **Reconnection.** Seeds, and addresses peers advertise, are dialled with exponential
///   backoff whenever they are not connected; [`Transport::reconnect`](dstate::Transport::reconnect)
///   (called by the core's heartbeat for a silent peer) closes the session so it is redialled.
/// * **Authentication of frames.** A frame is delivered tagged with the node whose session
///   token it carries; tokens are handed out only over that node's authenticated session.
///   Anything else is dropped and counted ([`ClusterStats::rejected_unknown_token`]).
///   Limitation: every process holding the cookie is trusted to run this protocol; the
///   cookie keeps other processes out, TLS ([`RactorClusterBuilder::tls`]) keeps the wire
///   private.
///
/// Dropping the handle stops the cluster; [`shutdown`](Self::shutdown) first waits for peers
/// to acknowledge what was sent.
pub struct RactorCluster {
    node: NodeId,
    attached: AtomicBool,
    local_addr: SocketAddr,
    endpoint: ActorRef<EndpointMsg>,
    shared: Arc<Shared>,
    transport: RactorTransport,
}

impl RactorCluster {
    /// A builder for node `node`; peers must use the same `cookie`.
    pub fn builder(node: NodeId, cookie: impl Into<String>) -> RactorClusterBuilder {
        RactorClusterBuilder::new(node, cookie.into())
    }

    pub(crate) async fn start(
        config: RactorClusterBuilder,
        runtime: &RactorRuntime,
    ) -> Result<Self, ClusterError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ClusterError::Bind {
                    address: config.listen,
                    source,
                })?;
        let bound = listener.local_addr().map_err(|source| ClusterError::Bind {
            address: config.listen,
            source,
        })?;
        let advertised = config
            .advertise
            .or_else(|| (!bound.ip().is_unspecified()).then_some(bound));
        let shared = Arc::new(Shared::new(
            config.window_frames,
            config.window_bytes,
            config.max_frame_bytes(),
        ));
        let node = config.node;
        let args = EndpointArgs {
            config,
            shared: shared.clone(),
            events: runtime.event_bus().clone(),
            listener,
            local_addr: SocketAddrs { bound, advertised },
            nonce: launch_nonce(),
        };
        let (endpoint, _) = ractor::Actor::spawn(None, Endpoint, args)
            .await
            .map_err(|err| ClusterError::Spawn {
                actor: "endpoint",
                reason: err.to_string(),
            })?;
        shared.set_endpoint(endpoint.clone());
        tracing::info!(%node, address = %bound, "ractor cluster listening");
        Ok(RactorCluster {
            node,
            attached: AtomicBool::new(false),
            local_addr: bound,
            endpoint,
            transport: RactorTransport::new(shared.clone()),
            shared,
        })
    }

    /// This node's dstate identity.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The address the listener is bound to (with the OS-chosen port when configured as 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The dstate [`Transport`](dstate::Transport) over this cluster.
    pub fn transport(&self) -> Arc<RactorTransport> {
        Arc::new(self.transport.clone())
    }

    /// Start the handshakes: peers learn `incarnation`, and every frame from a joined peer
    /// is passed to `sink` together with the peer's authenticated identity (for the dstate
    /// host: `move |from, frame| inbound.deliver(from, frame)`). Called once; the sink runs
    /// inside the endpoint actor and must not block. A second call returns
    /// [`ClusterError::AlreadyAttached`].
    pub async fn attach<F>(&self, incarnation: Incarnation, sink: F) -> Result<(), ClusterError>
    where
        F: Fn(NodeId, Bytes) + Send + Sync + 'static,
    {
        if self.attached.swap(true, Ordering::AcqRel) {
            return Err(ClusterError::AlreadyAttached);
        }
        let msg = LocalMsg::Attach {
            incarnation,
            sink: Arc::new(sink),
        };
        self.endpoint
            .cast(EndpointMsg::Local(msg))
            .map_err(|_| ClusterError::Stopped)
    }

    /// [`attach`](Self::attach) a dstate node: its incarnation for the handshake, its
    /// [`Inbound`](dstate::Inbound) for received frames.
    pub async fn attach_node<R: dstate::ActorRuntime>(
        &self,
        node: &dstate::Node<R>,
    ) -> Result<(), ClusterError> {
        let inbound = node.inbound();
        self.attach(node.incarnation(), move |from, frame| {
            inbound.deliver(from, frame)
        })
        .await
    }

    /// Connected peers, ordered by node id.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.transport.peers()
    }

    /// Counters of the cluster layer.
    pub fn stats(&self) -> ClusterStats {
        self.shared.counters.snapshot()
    }

    /// Wait until every peer acknowledged every frame sent so far, or `deadline` passed;
    /// returns how many peers acknowledged.
    pub async fn flush(&self, deadline: Duration) -> usize {
        let (reply, done) = oneshot::channel();
        if self
            .endpoint
            .cast(EndpointMsg::Local(LocalMsg::Flush(reply)))
            .is_err()
        {
            return 0;
        }
        match tokio::time::timeout(deadline, done).await {
            Ok(Ok(acknowledged)) => acknowledged,
            _ => 0,
        }
    }

    /// Flush outbound frames (up to one second), then close every session and stop.
    pub async fn shutdown(self) {
        let acknowledged = self.flush(Duration::from_secs(1)).await;
        tracing::debug!(acknowledged, "flushed before shutdown");
        if let Err(err) = self
            .endpoint
            .stop_and_wait(Some(String::from("shutdown")), Some(Duration::from_secs(3)))
            .await
        {
            tracing::debug!(error = %err, "endpoint did not stop cleanly");
        }
    }
}

impl Drop for RactorCluster {
    fn drop(&mut self) {
        // Idempotent: after `shutdown` the actor is already gone.
        self.endpoint
            .stop(Some(String::from("cluster handle dropped")));
    }
}

impl std::fmt::Debug for RactorCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RactorCluster")
            .field("node", &self.node)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Distinguishes this process's ractor_cluster name from earlier runs of the same node, so
/// a restarted node is a new name (ractor_cluster treats same-name sessions inconsistently).
fn launch_nonce() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ rand::random::<u64>()
}
