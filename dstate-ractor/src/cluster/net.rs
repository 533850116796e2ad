//! Sockets: this node's own listener and outbound dials, both handed to the NodeServer.
//!
//! ractor_cluster's `NodeServer` does not report the port it binds, so the adapter binds
//! its own listener and passes accepted sockets in with `NodeServerMessage::ConnectionOpened`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{NetworkStream, NodeServerMessage};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::cluster::address_book::DialOutcome;
use crate::cluster::protocol::{EndpointMsg, LocalMsg};

/// Accept connections until the task is aborted; each goes to the NodeServer as a server
/// session (after the TLS handshake, when configured, in its own task).
pub(crate) fn spawn_listener(
    listener: TcpListener,
    node_server: ActorRef<NodeServerMessage>,
    tls: Option<TlsAcceptor>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, peer_addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Usually EMFILE or a reset before accept; keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let node_server = node_server.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match wrap_inbound(stream, peer_addr, tls).await {
                    Ok(stream) => {
                        let opened = NodeServerMessage::ConnectionOpened {
                            stream: Box::new(stream),
                            is_server: true,
                        };
                        if node_server.cast(opened).is_err() {
                            tracing::debug!(%peer_addr, "node server stopped; dropping connection");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%peer_addr, error = %err, "inbound connection refused")
                    }
                }
            });
        }
    })
}

async fn wrap_inbound(
    stream: TcpStream,
    peer_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<NetworkStream> {
    stream.set_nodelay(true)?;
    let local_addr = stream.local_addr()?;
    Ok(match tls {
        None => NetworkStream::Raw {
            peer_addr,
            local_addr,
            stream,
        },
        Some(acceptor) => NetworkStream::TlsServer {
            peer_addr,
            local_addr,
            stream: acceptor.accept(stream).await?,
        },
    })
}

/// Everything a dial needs.
#[derive(Clone)]
pub(crate) struct Dialer {
    pub(crate) node_server: ActorRef<NodeServerMessage>,
    pub(crate) endpoint: ActorRef<EndpointMsg>,
    pub(crate) own: Vec<SocketAddr>,
    pub(crate) source: Option<IpAddr>,
    pub(crate) timeout: Duration,
    pub(crate) tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Dialer {
    /// Dial `address` in the background; the outcome comes back as
    /// [`LocalMsg::DialFinished`]. A connected stream is reported *before* it is handed to
    /// the NodeServer, so the endpoint always knows the dial before its session opens.
    pub(crate) fn spawn(&self, address: String) {
        let dialer = self.clone();
        tokio::spawn(async move {
            let dialled = tokio::time::timeout(dialer.timeout, dialer.dial(&address)).await;
            let stream = match dialled {
                Ok(Ok(stream)) => stream,
                Ok(Err(outcome)) => return dialer.report(address, outcome),
                Err(_) => {
                    let outcome = DialOutcome::Failed(String::from("connect timed out"));
                    return dialer.report(address, outcome);
                }
            };
            let peer = match &*stream {
                NetworkStream::Raw { peer_addr, .. }
                | NetworkStream::TlsClient { peer_addr, .. }
                | NetworkStream::TlsServer { peer_addr, .. } => peer_addr.to_string(),
                NetworkStream::External { peer_label, .. } => {
                    peer_label.clone().unwrap_or_default()
                }
            };
            dialer.report(address.clone(), DialOutcome::Connected { peer });
            let opened = NodeServerMessage::ConnectionOpened {
                stream,
                is_server: false,
            };
            if dialer.node_server.cast(opened).is_err() {
                let outcome = DialOutcome::Failed(String::from("node server stopped"));
                dialer.report(address, outcome);
            }
        });
    }

    fn report(&self, address: String, outcome: DialOutcome) {
        let done = LocalMsg::DialFinished { address, outcome };
        // The endpoint stopped: the cluster is shutting down.
        let _ = self.endpoint.cast(EndpointMsg::Local(done));
    }

    async fn dial(&self, address: &str) -> Result<Box<NetworkStream>, DialOutcome> {
        let candidates = match tokio::net::lookup_host(address).await {
            Ok(found) => found.collect::<Vec<_>>(),
            Err(err) => return Err(DialOutcome::Failed(format!("resolve: {err}"))),
        };
        let Some(target) = candidates.first().copied() else {
            return Err(DialOutcome::Failed(String::from(
                "address resolves to nothing",
            )));
        };
        if self.is_own(target) {
            return Err(DialOutcome::OwnAddress);
        }
        match self.connect(target).await {
            Ok(stream) => Ok(Box::new(stream)),
            Err(err) => Err(DialOutcome::Failed(err.to_string())),
        }
    }

    async fn connect(&self, target: SocketAddr) -> std::io::Result<NetworkStream> {
        let stream = match self.source {
            None => TcpStream::connect(target).await?,
            Some(source) => {
                let socket = if target.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(source, 0))?;
                socket.connect(target).await?
            }
        };
        stream.set_nodelay(true)?;
        let local_addr = stream.local_addr()?;
        let peer_addr = stream.peer_addr()?;
        Ok(match &self.tls {
            None => NetworkStream::Raw {
                peer_addr,
                local_addr,
                stream,
            },
            Some((connector, name)) => NetworkStream::TlsClient {
                peer_addr,
                local_addr,
                stream: connector.connect(name.clone(), stream).await?,
            },
        })
    }

    fn is_own(&self, target: SocketAddr) -> bool {
        self.own.iter().any(|own| {
            own.port() == target.port()
                && (own.ip() == target.ip()
                    || (own.ip().is_unspecified()
                        && (target.ip().is_loopback() || target.ip().is_unspecified())))
        })
    }
}
