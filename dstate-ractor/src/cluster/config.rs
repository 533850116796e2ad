//! The cluster builder and its validated settings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU64;
use std::time::Duration;

use dstate::NodeId;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::cluster::RactorCluster;
use crate::error::ClusterError;
use crate::RactorRuntime;

/// Acknowledge after this many frames from one peer (the sender's window must be larger).
pub(crate) const ACK_EVERY_FRAMES: u64 = 32;
/// Acknowledge after this many bytes from one peer (the sender's window must be larger).
pub(crate) const ACK_EVERY_BYTES: u64 = 256 * 1024;

/// Room kept below the inbound frame limit for ractor_cluster's own envelope and our token.
const ENVELOPE_HEADROOM: u64 = 4096;

/// TLS for node-to-node connections (ractor_cluster's `IncomingEncryptionMode::Tls` on the
/// accepting side, a `tokio_rustls` client on the dialling side).
///
/// Every node presents the certificate in `acceptor` and checks peers with `connector`
/// against `server_name` (one cluster-wide name, e.g. `dstate.internal`, since dialled
/// addresses are IPs). Cookie authentication still runs inside TLS. Build both configs with
/// the re-exported [`tokio_rustls`](crate::tokio_rustls); if the build links more than one
/// rustls crypto provider (for example together with libp2p), install one explicitly with
/// `CryptoProvider::install_default` before building them.
#[derive(Clone)]
pub struct TlsSettings {
    /// Server side: accepts inbound connections.
    pub acceptor: TlsAcceptor,
    /// Client side: dials peers.
    pub connector: TlsConnector,
    /// Name the peers' certificates are checked against.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`RactorCluster`]; start it with [`start`](Self::start).
#[derive(Debug, Clone)]
pub struct RactorClusterBuilder {
    pub(crate) node: NodeId,
    pub(crate) cookie: String,
    pub(crate) label: String,
    pub(crate) listen: SocketAddr,
    pub(crate) advertise: Option<SocketAddr>,
    pub(crate) outbound_source: Option<IpAddr>,
    pub(crate) seeds: Vec<String>,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) dial_defer: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) window_frames: u64,
    pub(crate) window_bytes: u64,
    pub(crate) max_inbound_frame_bytes: u64,
    pub(crate) tick: Duration,
    pub(crate) tls: Option<TlsSettings>,
}

impl RactorClusterBuilder {
    pub(crate) fn new(node: NodeId, cookie: String) -> Self {
        RactorClusterBuilder {
            node,
            cookie,
            // Shows up in ractor_cluster's logs next to the node id.
            label: String::from("dstate"),
            // Loopback and an OS-chosen port: safe by default, the bound address is reported.
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            advertise: None,
            // The OS picks the source address of outbound connections by routing.
            outbound_source: None,
            seeds: Vec::new(),
            // Quick first retry: a restarting peer is usually back within a few hundred ms.
            min_backoff: Duration::from_millis(100),
            // Caps the cost of dialling a dead address while bounding rejoin latency.
            max_backoff: Duration::from_secs(2),
            // Towards a higher node id, wait this long for it to dial first: a few handshake
            // round trips, so two nodes rarely dial each other at once.
            dial_defer: Duration::from_millis(300),
            // A LAN connect that takes longer is as good as failed.
            connect_timeout: Duration::from_secs(3),
            // Cookie challenge + process-group sync + hello take milliseconds; 5 s tolerates
            // a loaded machine while freeing hung half-open sessions.
            handshake_timeout: Duration::from_secs(5),
            // 256 frames / 8 MiB in flight per peer: several round trips of traffic on a LAN;
            // beyond that, changes collapse into snapshots (measured: 256 vs 1024 loses no
            // throughput and keeps a slow peer's backlog small).
            window_frames: 256,
            window_bytes: 8 * 1024 * 1024,
            // ractor_cluster's own default; a larger frame kills the session, so the
            // transport reports a slightly smaller maximum to the core, which chunks.
            max_inbound_frame_bytes: ractor_cluster::DEFAULT_MAX_INBOUND_FRAME_SIZE,
            // Housekeeping period: dial scheduling and handshake deadlines.
            tick: Duration::from_millis(50),
            tls: None,
        }
    }

    /// A human-readable label put in front of the ractor_cluster node name.
    pub fn name(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Address to accept connections on; port 0 lets the OS choose (see
    /// [`RactorCluster::local_addr`]). Default `127.0.0.1:0`.
    pub fn listen(mut self, address: SocketAddr) -> Self {
        self.listen = address;
        self
    }

    /// Address peers should dial to reach this node (told to them in the handshake).
    /// Default: the bound address, unless it is unspecified (`0.0.0.0`), in which case
    /// nothing is advertised and peers only reach this node through their seeds.
    pub fn advertise(mut self, address: SocketAddr) -> Self {
        self.advertise = Some(address);
        self
    }

    /// Bind outbound connections to this local address (multi-homed hosts, or several
    /// nodes on distinct loopback addresses of one machine).
    pub fn outbound_source(mut self, address: IpAddr) -> Self {
        self.outbound_source = Some(address);
        self
    }

    /// A peer address (`host:port`) to dial at start and to redial whenever it is lost.
    pub fn seed(mut self, address: impl Into<String>) -> Self {
        self.seeds.push(address.into());
        self
    }

    /// Several seed addresses.
    pub fn seeds<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.seeds.extend(addresses.into_iter().map(Into::into));
        self
    }

    /// Redial delays: the first retry after `min`, doubling up to `max` (±20% jitter).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min.max(Duration::from_millis(1));
        self.max_backoff = max.max(self.min_backoff);
        self
    }

    /// Longest wait for a TCP (and TLS) connect.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Longest wait from an opened session to a joined peer; slower sessions are closed.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Per-peer bound on unacknowledged outbound traffic. Values below twice the receiver's
    /// acknowledgement interval (32 frames, 256 KiB) are raised to it so the window can
    /// never stall.
    pub fn outbound_window(mut self, frames: NonZeroU64, bytes: NonZeroU64) -> Self {
        self.window_frames = frames.get().max(2 * ACK_EVERY_FRAMES);
        self.window_bytes = bytes.get().max(2 * ACK_EVERY_BYTES);
        self
    }

    /// Largest ractor_cluster frame accepted from a peer (default 16 MiB). Configure the
    /// same value on every node: a peer that sends a larger one loses its whole session.
    pub fn max_inbound_frame_bytes(mut self, bytes: NonZeroU64) -> Self {
        self.max_inbound_frame_bytes = bytes.get().max(2 * ENVELOPE_HEADROOM);
        self
    }

    /// Encrypt node-to-node connections with TLS.
    pub fn tls(mut self, settings: TlsSettings) -> Self {
        self.tls = Some(settings);
        self
    }

    /// Bind the listener, start ractor_cluster's `NodeServer` and this node's endpoint, and
    /// start dialling the seeds. Peers join once [`RactorCluster::attach`] was called.
    pub async fn start(self, runtime: &RactorRuntime) -> Result<RactorCluster, ClusterError> {
        RactorCluster::start(self, runtime).await
    }

    /// Largest dstate frame the transport carries.
    pub(crate) fn max_frame_bytes(&self) -> usize {
        usize::try_from(self.max_inbound_frame_bytes - ENVELOPE_HEADROOM).unwrap_or(usize::MAX)
    }
}
