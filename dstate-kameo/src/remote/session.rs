//! Handshake and session handling of the driver: who a peer is, when it joins and leaves.

use std::time::Instant;

use dstate::{ClusterEvent, LeaveReason};
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::PeerId;

use super::control::{
    decode_addrs, encode_addrs, ControlRequest, ControlResponse, Hello, PeerRecord, Rejection,
    SessionToken, HELLO_VERSION, MAX_PEER_RECORDS,
};
use super::driver::{Driver, Resolved, Session, REJECT_GRACE};
use super::link::LinkHandle;
use super::shared::SessionPeer;
use super::stats::bump;

impl Driver {
    pub(super) fn on_control_request(
        &mut self,
        peer: PeerId,
        request: ControlRequest,
        channel: ResponseChannel<ControlResponse>,
    ) {
        match request {
            ControlRequest::Hello(hello) => {
                if self.incarnation.is_none() {
                    // Not joined yet: answer once the node's incarnation is known.
                    self.pending_hellos.push((peer, hello, channel));
                } else {
                    self.answer_hello(peer, hello, channel);
                }
            }
            ControlRequest::Peers(records) => {
                if self.has_session(&peer) {
                    self.learn_peers(&records);
                }
                self.respond(channel, ControlResponse::Ack);
            }
            ControlRequest::Goodbye => {
                self.on_goodbye(peer);
                self.respond(channel, ControlResponse::Ack);
            }
        }
    }

    pub(super) fn on_control_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: ControlResponse,
    ) {
        let was_hello = self.hello_requests.remove(&request_id).is_some();
        if let Some(state) = self.peers.get_mut(&peer) {
            if was_hello {
                state.hello_pending = false;
            }
        }
        if let Some(goodbyes) = self.leaving.as_mut().and_then(|l| l.goodbyes.as_mut()) {
            goodbyes.remove(&request_id);
        }
        match response {
            ControlResponse::Welcome(hello) if was_hello => {
                if let Err(rejection) = self.accept_hello(peer, hello) {
                    self.refuse(peer, rejection);
                }
            }
            ControlResponse::Rejected(rejection) => {
                bump(&self.shared.counters.handshakes_rejected);
                tracing::warn!(%peer, ?rejection, "peer refused our handshake");
                if rejection != Rejection::ShuttingDown {
                    self.book.forget(&peer);
                }
                self.disconnect_at.push((Instant::now(), peer));
            }
            _ => {}
        }
    }

    /// Answers a hello request once this node has joined.
    pub(super) fn answer_hello(
        &mut self,
        peer: PeerId,
        hello: Hello,
        channel: ResponseChannel<ControlResponse>,
    ) {
        if self.leaving.is_some() {
            self.respond(channel, ControlResponse::Rejected(Rejection::ShuttingDown));
            return;
        }
        match self.accept_hello(peer, hello) {
            Ok(()) => {
                let welcome = self.our_hello(peer);
                self.respond(channel, ControlResponse::Welcome(welcome));
            }
            Err(rejection) => {
                self.respond(channel, ControlResponse::Rejected(rejection));
                self.refuse(peer, rejection);
            }
        }
    }

    /// Sends our hello on a connection that has no session yet.
    pub(super) fn send_hello(&mut self, peer: PeerId) {
        let hello = self.our_hello(peer);
        let request_id = self
            .swarm
            .behaviour_mut()
            .control
            .send_request(&peer, ControlRequest::Hello(hello));
        self.hello_requests.insert(request_id, peer);
        let state = self.peers.entry(peer).or_default();
        state.hello_pending = true;
        state.hello_after = None;
    }

    /// Checks a peer's hello and establishes (or confirms) its session.
    fn accept_hello(&mut self, peer: PeerId, hello: Hello) -> Result<(), Rejection> {
        if hello.version != HELLO_VERSION {
            return Err(Rejection::Version);
        }
        if hello.node == self.local.node {
            return Err(Rejection::OwnNodeId);
        }
        if let Some(session) = self.peers.get(&peer).and_then(|s| s.session.as_ref()) {
            if session.node == hello.node && session.remote_session == hello.session {
                // The same session announced again (both sides said hello at once).
                return Ok(());
            }
            self.end_session(peer, LeaveReason::Disconnected);
        }
        if let Some(holder) = self.nodes.get(&hello.node).copied() {
            let held = self
                .peers
                .get(&holder)
                .and_then(|state| state.session.as_ref())
                .map(|session| session.incarnation);
            match held {
                Some(incarnation) if hello.incarnation <= incarnation => {
                    return Err(Rejection::NodeIdTaken);
                }
                _ => {
                    // A newer incarnation of that node (it restarted under a new identity):
                    // the old peer is a ghost.
                    tracing::info!(node = %hello.node, old = %holder, new = %peer, "node restarted; retiring its old connection");
                    self.end_session(holder, LeaveReason::Disconnected);
                    self.book.forget(&holder);
                    let _ = self.swarm.disconnect_peer_id(holder);
                }
            }
        }
        self.establish(peer, hello);
        Ok(())
    }

    fn establish(&mut self, peer: PeerId, hello: Hello) {
        let listen = decode_addrs(&hello.listen);
        self.book.learn(peer, &listen);
        for addr in &listen {
            // Feeds kameo's registry (Kademlia) with where the peer is.
            self.swarm.add_peer_address(peer, addr.clone());
        }
        self.learn_peers(&hello.peers);
        let resolver = self.spawn_resolver(peer, hello.session);
        let state = self.peers.entry(peer).or_default();
        let our_token = *state.offered.get_or_insert_with(SessionToken::generate);
        self.shared.open_session(
            our_token,
            SessionPeer {
                node: hello.node,
                peer,
            },
        );
        state.session = Some(Session {
            node: hello.node,
            incarnation: hello.incarnation,
            remote_session: hello.session,
            their_token: hello.token,
            our_token,
            joined: false,
            left: false,
            resolver: Some(resolver),
        });
        self.nodes.insert(hello.node, peer);
        self.book.on_session(&peer);
        tracing::info!(node = %hello.node, %peer, incarnation = ?hello.incarnation, "handshake complete");
        self.announce(peer, &listen);
    }

    /// The peer's endpoint was found (or not): bring the link up and report the join.
    pub(super) fn on_resolved(&mut self, resolved: Resolved) {
        let Resolved {
            peer,
            remote_session,
            endpoint,
        } = resolved;
        let Some(session) = self
            .peers
            .get_mut(&peer)
            .and_then(|state| state.session.as_mut())
            .filter(|session| session.remote_session == remote_session && !session.joined)
        else {
            return;
        };
        session.resolver = None;
        let Some(endpoint) = endpoint else {
            tracing::warn!(%peer, "peer endpoint not found in the registry; resetting the connection");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        let link = LinkHandle::spawn(
            &self.handle,
            session.node,
            peer,
            endpoint,
            session.their_token,
            self.shared.clone(),
        );
        session.joined = true;
        let event = ClusterEvent::NodeJoined {
            node: session.node,
            incarnation: session.incarnation,
        };
        self.shared.set_link(session.node, link);
        bump(&self.shared.counters.sessions_opened);
        tracing::info!(node = %session.node, %peer, "node joined");
        self.bus.emit(event);
    }

    /// The last connection to `peer` closed.
    pub(super) fn on_peer_down(&mut self, peer: PeerId) {
        self.end_session(peer, LeaveReason::Disconnected);
        self.peers.remove(&peer);
        self.hello_requests.retain(|_, p| *p != peer);
        self.book
            .on_disconnected(&peer, Instant::now(), rand::random());
    }

    fn on_goodbye(&mut self, peer: PeerId) {
        let Some(session) = self
            .peers
            .get_mut(&peer)
            .and_then(|state| state.session.as_mut())
        else {
            return;
        };
        let node = session.node;
        self.shared.remove_link(node, peer);
        if session.joined && !session.left {
            session.left = true;
            tracing::info!(%node, %peer, "node left gracefully");
            self.bus.emit(ClusterEvent::NodeLeft {
                node,
                reason: LeaveReason::Graceful,
            });
        }
        // Seeds stay in the book by address; the learned entry goes.
        self.book.forget(&peer);
    }

    /// Tears a session down and reports the node gone (unless it said goodbye already).
    fn end_session(&mut self, peer: PeerId, reason: LeaveReason) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.offered = None;
        state.hello_pending = false;
        let Some(mut session) = state.session.take() else {
            return;
        };
        if let Some(resolver) = session.resolver.take() {
            resolver.abort();
        }
        self.shared.close_session(&session.our_token);
        self.shared.remove_link(session.node, peer);
        if self.nodes.get(&session.node) == Some(&peer) {
            self.nodes.remove(&session.node);
        }
        if session.joined && !session.left {
            tracing::info!(node = %session.node, %peer, ?reason, "node left");
            self.bus.emit(ClusterEvent::NodeLeft {
                node: session.node,
                reason,
            });
        }
    }

    /// Refuses `peer`: counted, disconnected after a short grace.
    fn refuse(&mut self, peer: PeerId, rejection: Rejection) {
        bump(&self.shared.counters.handshakes_rejected);
        tracing::warn!(%peer, ?rejection, "handshake refused");
        self.disconnect_at
            .push((Instant::now() + REJECT_GRACE, peer));
    }

    /// Tells every other session about a newly joined peer.
    fn announce(&mut self, joined: PeerId, listen: &[libp2p::Multiaddr]) {
        if listen.is_empty() {
            return;
        }
        let record = PeerRecord::new(joined, listen);
        let others: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(peer, state)| **peer != joined && state.session.is_some())
            .map(|(peer, _)| *peer)
            .collect();
        for peer in others {
            self.swarm
                .behaviour_mut()
                .control
                .send_request(&peer, ControlRequest::Peers(vec![record.clone()]));
        }
    }

    /// Learns peers from a hello or exchange; unknown ones are dialed soon.
    fn learn_peers(&mut self, records: &[PeerRecord]) {
        let now = Instant::now();
        for record in records.iter().take(MAX_PEER_RECORDS) {
            let Some((peer, addrs)) = record.decode() else {
                continue;
            };
            if peer == self.local.peer || addrs.is_empty() {
                continue;
            }
            self.book.learn(peer, &addrs);
            if !self.swarm.is_connected(&peer) {
                self.book.dial_soon(&peer, now);
            }
        }
    }

    /// Our hello for `peer`, with the token it must present to us.
    fn our_hello(&mut self, peer: PeerId) -> Hello {
        let state = self.peers.entry(peer).or_default();
        let token = *state.offered.get_or_insert_with(SessionToken::generate);
        let peers = self
            .peers
            .iter()
            .filter(|(other, state)| **other != peer && state.session.is_some())
            .map(|(other, _)| PeerRecord::new(*other, self.book.addrs(other)))
            .filter(|record| !record.addrs.is_empty())
            .take(MAX_PEER_RECORDS)
            .collect();
        let addrs = if self.advertise.is_empty() {
            &self.listen
        } else {
            &self.advertise
        };
        Hello {
            version: HELLO_VERSION,
            node: self.local.node,
            // Hellos go out only after join, which sets the incarnation.
            incarnation: self.incarnation.unwrap_or_default(),
            session: self.local.session,
            token,
            listen: encode_addrs(addrs),
            peers,
        }
    }

    fn has_session(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|state| state.session.is_some())
    }

    fn respond(&mut self, channel: ResponseChannel<ControlResponse>, response: ControlResponse) {
        if self
            .swarm
            .behaviour_mut()
            .control
            .send_response(channel, response)
            .is_err()
        {
            tracing::debug!("control response not sent: the connection closed");
        }
    }
}
