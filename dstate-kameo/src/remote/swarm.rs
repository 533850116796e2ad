//! The libp2p swarm of a cluster node: TCP, the cluster key (pnet), noise, yamux; kameo's
//! remote behaviour, the dstate control protocol and an optional allow-list.

use std::collections::HashSet;
use std::time::Duration;

use libp2p::allow_block_list::{self, AllowedPeers};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{noise, pnet, tcp, yamux, PeerId, Swarm, Transport};

use crate::error::ClusterError;

use super::control::{self, ControlBehaviour};
use super::keys::{ClusterKey, NodeIdentity};
use super::shared::Limits;

/// Connections stay open while idle: libp2p's default (10 s) would close quiet links, which
/// looks like a peer leaving. Liveness is the core's heartbeat's job.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);
/// Time to set up a connection (pnet, noise, yamux) before the dial fails.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// A kameo request unanswered for this long fails (and is retried by the link).
const KAMEO_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent kameo request streams per connection: two directions of a full window plus
/// registry and control traffic.
const KAMEO_MAX_STREAMS: usize = 256;

/// Everything the swarm runs.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) allow: Toggle<allow_block_list::Behaviour<AllowedPeers>>,
    pub(crate) kameo: kameo::remote::Behaviour,
    pub(crate) control: ControlBehaviour,
}

/// Builds the swarm; `allowed` restricts connections to those peers when set.
pub(crate) fn build(
    identity: &NodeIdentity,
    key: &ClusterKey,
    allowed: Option<&HashSet<PeerId>>,
    limits: &Limits,
) -> Result<Swarm<Behaviour>, ClusterError> {
    let keypair = identity.keypair().clone();
    let local_peer_id = keypair.public().to_peer_id();
    let transport = transport(identity, key)?;

    let messaging = kameo::remote::messaging::Config::default()
        .with_request_timeout(KAMEO_REQUEST_TIMEOUT)
        .with_max_concurrent_streams(KAMEO_MAX_STREAMS)
        .with_request_size_maximum(limits.request_size_maximum())
        .with_response_size_maximum(64 * 1024);
    let kameo = kameo::remote::Behaviour::new(local_peer_id, messaging);
    kameo
        .try_init_global()
        .map_err(|_| ClusterError::AlreadyRunning)?;

    let allow = allowed.map(|peers| {
        let mut list = allow_block_list::Behaviour::<AllowedPeers>::default();
        list.allow_peer(local_peer_id);
        for peer in peers {
            list.allow_peer(*peer);
        }
        list
    });
    let behaviour = Behaviour {
        allow: Toggle::from(allow),
        kameo,
        control: control::behaviour(),
    };
    let config = libp2p::swarm::Config::with_tokio_executor()
        .with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT);
    Ok(Swarm::new(transport, behaviour, local_peer_id, config))
}

fn transport(
    identity: &NodeIdentity,
    key: &ClusterKey,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, ClusterError> {
    let noise = noise::Config::new(identity.keypair()).map_err(|err| ClusterError::Transport {
        reason: err.to_string(),
    })?;
    let psk = key.to_psk();
    Ok(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .and_then(move |socket, _| pnet::PnetConfig::new(psk).handshake(socket))
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .timeout(UPGRADE_TIMEOUT)
            .boxed(),
    )
}
