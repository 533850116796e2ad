//! Sessions, handshakes and peers: which authenticated session speaks for which dstate node.
//!
//! Pure state: the endpoint actor feeds ractor_cluster's session events and received
//! [`Hello`]s, and carries out the returned [`Action`]s. `E` is the handle of a peer's
//! endpoint actor (a ractor `ActorRef` in production, anything in tests).
//!
//! A peer *joins* once its session is ready (ractor_cluster authenticated it with the cookie
//! and synced process groups), its endpoint was found in that session's process-group view,
//! this node sent its own hello over that session, and the peer's hello arrived. The peer's
//! identity (`NodeId`, incarnation) comes from its hello, never from ractor's per-session ids.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use dstate::{Incarnation, NodeId};

use crate::cluster::protocol::{Advert, Hello, Token};

/// ractor_cluster's per-session node id: meaningful inside this process only.
pub(crate) type SessionId = u64;

/// Hellos kept while their session is not ready yet (bounded against floods).
const EARLY_HELLO_LIMIT: usize = 64;

/// What the endpoint actor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action<E> {
    /// Send this node's handshake to a peer's endpoint.
    SendHello { endpoint: E, hello: Hello },
    /// A peer joined (or a new incarnation replaced the old one) on `session`.
    Join {
        node: NodeId,
        incarnation: Incarnation,
        session: SessionId,
        endpoint: E,
        send_token: Token,
        listen: Option<String>,
        known: Vec<Advert>,
    },
    /// The session that spoke for `node` is gone.
    Leave { node: NodeId, session: SessionId },
    /// Close a session (stale incarnation, replaced, or handshake timed out).
    StopSession(SessionId),
}

#[derive(Debug)]
struct Session<E> {
    opened_at: Instant,
    peer_name: Option<String>,
    ready: bool,
    endpoint: Option<E>,
    my_token: Option<Token>,
    hello_sent: bool,
    hello: Option<Hello>,
    joined: Option<NodeId>,
    /// Already reported as expired (the stop is under way).
    expired: bool,
}

#[derive(Debug, Clone)]
struct Peer {
    session: SessionId,
    incarnation: Incarnation,
    listen: Option<String>,
}

/// Identity of this node as the handshake states it.
#[derive(Debug, Clone)]
pub(crate) struct LocalIdentity {
    pub(crate) node: NodeId,
    /// Full ractor_cluster name, `name@host`.
    pub(crate) name: String,
    pub(crate) listen: Option<String>,
}

/// The membership state machine.
#[derive(Debug)]
pub(crate) struct Membership<E> {
    me: LocalIdentity,
    incarnation: Option<(Incarnation, Instant)>,
    sessions: HashMap<SessionId, Session<E>>,
    tokens: HashMap<Token, SessionId>,
    peers: HashMap<NodeId, Peer>,
    early_hellos: VecDeque<Hello>,
}

impl<E: Clone> Membership<E> {
    pub(crate) fn new(me: LocalIdentity) -> Self {
        Membership {
            me,
            incarnation: None,
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            peers: HashMap::new(),
            early_hellos: VecDeque::new(),
        }
    }

    /// This node knows its incarnation: handshakes can start.
    pub(crate) fn handle_attach(
        &mut self,
        incarnation: Incarnation,
        now: Instant,
    ) -> Vec<Action<E>> {
        self.incarnation = Some((incarnation, now));
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        ids.into_iter().flat_map(|id| self.progress(id)).collect()
    }

    /// A session (inbound or outbound) was opened; it is not authenticated yet.
    pub(crate) fn handle_opened(&mut self, id: SessionId, now: Instant) {
        self.sessions.entry(id).or_insert_with(|| Session {
            opened_at: now,
            peer_name: None,
            ready: false,
            endpoint: None,
            my_token: None,
            hello_sent: false,
            hello: None,
            joined: None,
            expired: false,
        });
    }

    /// ractor_cluster reports the session authenticated and synced. `endpoint` is the peer's
    /// endpoint as seen through this session (if already known); `token` is a fresh secret.
    pub(crate) fn handle_ready(
        &mut self,
        id: SessionId,
        peer_name: Option<String>,
        endpoint: Option<E>,
        token: Token,
        now: Instant,
    ) -> Vec<Action<E>> {
        self.handle_opened(id, now);
        let Some(session) = self.sessions.get_mut(&id) else {
            return Vec::new();
        };
        if session.ready {
            return Vec::new();
        }
        session.ready = true;
        session.peer_name = peer_name;
        session.endpoint = session.endpoint.take().or(endpoint);
        session.my_token = Some(token);
        self.tokens.insert(token, id);
        if let Some(name) = session.peer_name.clone() {
            if let Some(pos) = self.early_hellos.iter().position(|h| h.name == name) {
                session.hello = self.early_hellos.remove(pos);
            }
        }
        self.progress(id)
    }

    /// The peer's endpoint showed up in this session's process-group view.
    pub(crate) fn handle_endpoint(&mut self, id: SessionId, endpoint: E) -> Vec<Action<E>> {
        match self.sessions.get_mut(&id) {
            Some(session) if session.endpoint.is_none() => {
                session.endpoint = Some(endpoint);
                self.progress(id)
            }
            _ => Vec::new(),
        }
    }

    /// A peer's handshake arrived.
    pub(crate) fn handle_hello(&mut self, hello: Hello) -> Vec<Action<E>> {
        if hello.node == self.me.node || !name_claims(&hello.name, hello.node) {
            tracing::warn!(node = %hello.node, name = %hello.name, "rejected inconsistent hello");
            return Vec::new();
        }
        let target = self.sessions.iter().find_map(|(id, s)| {
            (s.ready && s.peer_name.as_deref() == Some(hello.name.as_str())).then_some(*id)
        });
        match target {
            Some(id) => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.hello = Some(hello);
                }
                self.progress(id)
            }
            None => {
                if self.early_hellos.len() >= EARLY_HELLO_LIMIT {
                    self.early_hellos.pop_front();
                }
                self.early_hellos.push_back(hello);
                Vec::new()
            }
        }
    }

    /// The session is gone (closed, failed authentication, lost an election, peer died).
    pub(crate) fn handle_disconnected(&mut self, id: SessionId) -> Vec<Action<E>> {
        let Some(session) = self.sessions.remove(&id) else {
            return Vec::new();
        };
        if let Some(token) = session.my_token {
            self.tokens.remove(&token);
        }
        match session.joined {
            Some(node) if self.peers.get(&node).is_some_and(|p| p.session == id) => {
                self.peers.remove(&node);
                vec![Action::Leave { node, session: id }]
            }
            _ => Vec::new(),
        }
    }

    /// Sessions that have not joined within `timeout` of being opened (or of attach); each
    /// is reported once.
    pub(crate) fn poll_expired(&mut self, now: Instant, timeout: Duration) -> Vec<Action<E>> {
        let Some((_, attached_at)) = self.incarnation else {
            return Vec::new();
        };
        self.sessions
            .iter_mut()
            .filter(|(_, s)| {
                s.joined.is_none()
                    && !s.expired
                    && now.saturating_duration_since(s.opened_at.max(attached_at)) >= timeout
            })
            .map(|(id, s)| {
                s.expired = true;
                Action::StopSession(*id)
            })
            .collect()
    }

    /// Ready sessions whose peer endpoint is still unknown.
    pub(crate) fn sessions_missing_endpoint(&self) -> Vec<SessionId> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.ready && s.endpoint.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The joined peer a message carrying this node's `token` came from.
    pub(crate) fn sender_of(&self, token: Token) -> Option<(NodeId, SessionId)> {
        let id = *self.tokens.get(&token)?;
        let node = self.sessions.get(&id)?.joined?;
        Some((node, id))
    }

    /// The session currently speaking for `node`.
    pub(crate) fn session_of(&self, node: NodeId) -> Option<SessionId> {
        self.peers.get(&node).map(|p| p.session)
    }

    /// Advertised addresses of joined peers (gossip).
    pub(crate) fn peer_addresses(&self) -> Vec<Advert> {
        let mut known: Vec<Advert> = self
            .peers
            .iter()
            .filter_map(|(node, p)| Some((*node, p.listen.clone()?)))
            .collect();
        known.sort();
        known
    }

    /// Joined peers.
    pub(crate) fn joined(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.keys().copied()
    }

    /// Move session `id` forward as far as it can go.
    fn progress(&mut self, id: SessionId) -> Vec<Action<E>> {
        let mut actions = Vec::new();
        let Some((incarnation, _)) = self.incarnation else {
            return actions;
        };
        let known = self.peer_addresses();
        let Some(session) = self.sessions.get_mut(&id) else {
            return actions;
        };
        if !session.ready {
            return actions;
        }
        if !session.hello_sent {
            if let (Some(endpoint), Some(token)) = (session.endpoint.clone(), session.my_token) {
                session.hello_sent = true;
                actions.push(Action::SendHello {
                    endpoint,
                    hello: Hello {
                        node: self.me.node,
                        incarnation,
                        name: self.me.name.clone(),
                        token,
                        listen: self.me.listen.clone(),
                        known,
                    },
                });
            }
        }
        if !session.hello_sent || session.joined.is_some() {
            return actions;
        }
        let (Some(hello), Some(endpoint)) = (session.hello.clone(), session.endpoint.clone())
        else {
            return actions;
        };
        let node = hello.node;
        if let Some(current) = self.peers.get(&node) {
            if hello.incarnation < current.incarnation {
                tracing::info!(%node, "closing session of a previous incarnation");
                actions.push(Action::StopSession(id));
                return actions;
            }
            // A newer incarnation (restart) or a fresh session of the same one replaces the
            // old session, which is closed.
            let old = current.session;
            if let Some(old_session) = self.sessions.get_mut(&old) {
                old_session.joined = None;
            }
            actions.push(Action::StopSession(old));
        }
        if let Some(session) = self.sessions.get_mut(&id) {
            session.joined = Some(node);
        }
        self.peers.insert(
            node,
            Peer {
                session: id,
                incarnation: hello.incarnation,
                listen: hello.listen.clone(),
            },
        );
        actions.push(Action::Join {
            node,
            incarnation: hello.incarnation,
            session: id,
            endpoint,
            send_token: hello.token,
            listen: hello.listen,
            known: hello.known,
        });
        actions
    }
}

/// The ractor_cluster node name this adapter gives a node: `label#node#nonce@host`.
pub(crate) fn node_name(label: &str, node: NodeId, nonce: u64) -> String {
    let label: String = label.chars().filter(|c| *c != '#' && *c != '@').collect();
    format!("{label}#{}#{nonce:016x}", node.0)
}

/// Whether a full ractor name (`name@host`) was built by [`node_name`] for `node`.
fn name_claims(full_name: &str, node: NodeId) -> bool {
    let name = full_name.split('@').next().unwrap_or_default();
    let mut parts = name.split('#');
    let (_label, id) = (parts.next(), parts.next());
    id.and_then(|id| id.parse::<u64>().ok()) == Some(node.0)
}

#[cfg(test)]
mod tests;
