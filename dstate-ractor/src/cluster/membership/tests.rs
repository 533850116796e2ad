use super::*;

/// Endpoints in tests are just labels.
type Ep = &'static str;

fn me() -> LocalIdentity {
    LocalIdentity {
        node: NodeId(1),
        name: format!("{}@h", node_name("t", NodeId(1), 1)),
        listen: Some("127.0.0.1:1".into()),
    }
}

fn hello_from(node: u64, incarnation: u64, nonce: u64, token: u128) -> Hello {
    Hello {
        node: NodeId(node),
        incarnation: Incarnation(incarnation),
        name: peer_name(node, nonce),
        token: Token(token),
        listen: Some(format!("127.0.0.1:{node}")),
        known: vec![],
    }
}

fn peer_name(node: u64, nonce: u64) -> String {
    format!("{}@h", node_name("t", NodeId(node), nonce))
}

fn joins(actions: &[Action<Ep>]) -> Vec<(NodeId, Incarnation)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Join {
                node, incarnation, ..
            } => Some((*node, *incarnation)),
            _ => None,
        })
        .collect()
}

fn attached() -> Membership<Ep> {
    let mut m = Membership::new(me());
    assert!(m.handle_attach(Incarnation(100), Instant::now()).is_empty());
    m
}

#[test]
fn a_peer_joins_after_ready_hello_sent_and_hello_received() {
    let now = Instant::now();
    let mut m = attached();
    m.handle_opened(7, now);
    let actions = m.handle_ready(7, Some(peer_name(2, 9)), Some("ep2"), Token(11), now);
    match &actions[..] {
        [Action::SendHello { endpoint, hello }] => {
            assert_eq!(*endpoint, "ep2");
            assert_eq!(hello.node, NodeId(1));
            assert_eq!(hello.incarnation, Incarnation(100));
            assert_eq!(hello.token, Token(11));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(m.sender_of(Token(11)), None, "not joined yet");
    let actions = m.handle_hello(hello_from(2, 50, 9, 22));
    assert_eq!(joins(&actions), vec![(NodeId(2), Incarnation(50))]);
    match &actions[..] {
        [Action::Join {
            send_token,
            session,
            ..
        }] => {
            assert_eq!(*send_token, Token(22));
            assert_eq!(*session, 7);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(m.sender_of(Token(11)), Some((NodeId(2), 7)));
    assert_eq!(m.sender_of(Token(22)), None, "the peer's token is not ours");
}

#[test]
fn a_hello_before_the_ready_event_is_kept_until_then() {
    let now = Instant::now();
    let mut m = attached();
    assert!(m.handle_hello(hello_from(2, 50, 9, 22)).is_empty());
    let actions = m.handle_ready(7, Some(peer_name(2, 9)), Some("ep2"), Token(11), now);
    assert_eq!(joins(&actions), vec![(NodeId(2), Incarnation(50))]);
}

#[test]
fn nothing_is_sent_before_attach_and_everything_after() {
    let now = Instant::now();
    let mut m: Membership<Ep> = Membership::new(me());
    assert!(m
        .handle_ready(7, Some(peer_name(2, 9)), Some("ep2"), Token(11), now)
        .is_empty());
    assert!(m.handle_hello(hello_from(2, 50, 9, 22)).is_empty());
    let actions = m.handle_attach(Incarnation(100), now);
    assert!(matches!(actions[0], Action::SendHello { .. }));
    assert_eq!(joins(&actions), vec![(NodeId(2), Incarnation(50))]);
}

#[test]
fn the_endpoint_may_be_found_after_the_ready_event() {
    let now = Instant::now();
    let mut m = attached();
    assert!(m
        .handle_ready(7, Some(peer_name(2, 9)), None, Token(11), now)
        .is_empty());
    assert_eq!(m.sessions_missing_endpoint(), vec![7]);
    assert!(m.handle_hello(hello_from(2, 50, 9, 22)).is_empty());
    let actions = m.handle_endpoint(7, "ep2");
    assert_eq!(actions.len(), 2);
    assert_eq!(joins(&actions), vec![(NodeId(2), Incarnation(50))]);
}

#[test]
fn disconnect_of_a_joined_session_leaves_and_revokes_the_token() {
    let now = Instant::now();
    let mut m = attached();
    m.handle_ready(7, Some(peer_name(2, 9)), Some("ep2"), Token(11), now);
    m.handle_hello(hello_from(2, 50, 9, 22));
    assert_eq!(
        m.handle_disconnected(7),
        vec![Action::Leave {
            node: NodeId(2),
            session: 7
        }]
    );
    assert_eq!(m.sender_of(Token(11)), None);
    assert!(m.handle_disconnected(7).is_empty());
}

#[test]
fn a_restarted_peer_replaces_the_old_session_without_a_leave() {
    let now = Instant::now();
    let mut m = attached();
    m.handle_ready(7, Some(peer_name(2, 9)), Some("ep2"), Token(11), now);
    m.handle_hello(hello_from(2, 50, 9, 22));
    // The restarted process has a new nonce, hence a new ractor name and a new session.
    m.handle_ready(8, Some(peer_name(2, 10)), Some("ep2b"), Token(12), now);
    let actions = m.handle_hello(hello_from(2, 60, 10, 23));
    assert!(actions.contains(&Action::StopSession(7)));
    assert_eq!(joins(&actions), vec![(NodeId(2), Incarnation(60))]);
    assert!(
        m.handle_disconnected(7).is_empty(),
        "old session leaves quietly"
    );
    assert_eq!(m.sender_of(Token(11)), None);
    assert_eq!(m.sender_of(Token(12)), Some((NodeId(2), 8)));
}

#[test]
fn an_older_incarnation_is_refused() {
    let now = Instant::now();
    let mut m = attached();
    m.handle_ready(7, Some(peer_name(2, 10)), Some("ep2"), Token(11), now);
    m.handle_hello(hello_from(2, 60, 10, 22));
    m.handle_ready(8, Some(peer_name(2, 9)), Some("old"), Token(12), now);
    let actions = m.handle_hello(hello_from(2, 50, 9, 23));
    assert!(joins(&actions).is_empty());
    assert!(actions.contains(&Action::StopSession(8)));
    assert_eq!(m.session_of(NodeId(2)), Some(7));
}

#[test]
fn a_hello_that_does_not_match_its_name_or_claims_this_node_is_ignored() {
    let now = Instant::now();
    let mut m = attached();
    m.handle_ready(7, Some(peer_name(2, 9)), Some("ep2"), Token(11), now);
    let mut lying = hello_from(3, 50, 9, 22);
    lying.name = peer_name(2, 9);
    assert!(m.handle_hello(lying).is_empty());
    let mut me_again = hello_from(1, 50, 9, 22);
    me_again.name = peer_name(1, 9);
    assert!(m.handle_hello(me_again).is_empty());
    assert_eq!(m.joined().count(), 0);
}

#[test]
fn sessions_that_never_join_expire_after_attach() {
    let now = Instant::now();
    let mut m: Membership<Ep> = Membership::new(me());
    m.handle_opened(7, now);
    let timeout = Duration::from_secs(5);
    assert!(
        m.poll_expired(now + timeout * 2, timeout).is_empty(),
        "not attached"
    );
    let attach_at = now + timeout * 2;
    m.handle_attach(Incarnation(1), attach_at);
    assert!(m.poll_expired(attach_at + timeout / 2, timeout).is_empty());
    assert_eq!(
        m.poll_expired(attach_at + timeout, timeout),
        vec![Action::StopSession(7)]
    );
    assert!(
        m.poll_expired(attach_at + timeout * 2, timeout).is_empty(),
        "reported once"
    );
}

#[test]
fn early_hellos_are_bounded() {
    let mut m = attached();
    for i in 0..(EARLY_HELLO_LIMIT as u64 * 3) {
        m.handle_hello(hello_from(10 + i, 1, i, u128::from(i)));
    }
    assert_eq!(m.early_hellos.len(), EARLY_HELLO_LIMIT);
}

#[test]
fn names_carry_the_node_id() {
    let name = format!("{}@host", node_name("my#lab@el", NodeId(42), 7));
    assert!(name_claims(&name, NodeId(42)));
    assert!(!name_claims(&name, NodeId(4)));
    assert!(!name_claims("garbage", NodeId(42)));
}
