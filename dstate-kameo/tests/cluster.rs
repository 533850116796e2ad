//! Membership and transport across real processes on 127.0.0.1.

mod support;

use support::proxy::Proxy;
use support::{cluster_key, stat_value, temp_dir, Node, Opts};

#[test]
fn three_nodes_form_a_mesh_from_one_seed() {
    let key = cluster_key();
    let mut a = Node::start(Opts::new(1, &key));
    let mut b = Node::start(Opts::new(2, &key).seed(a.addr));
    let mut c = Node::start(Opts::new(3, &key).seed(a.addr));
    a.wait_members(&[2, 3]);
    // b and c learned about each other from a.
    b.wait_members(&[1, 3]);
    c.wait_members(&[1, 2]);
}

#[test]
fn ten_thousand_frames_arrive_complete_and_in_order() {
    let key = cluster_key();
    let mut a = Node::start(Opts::new(1, &key));
    let mut b = Node::start(Opts::new(2, &key).seed(a.addr));
    b.wait_members(&[1]);
    let sent = b.cmd("send 1 10000 64", "SENT");
    assert!(sent.starts_with("SENT 10000 0"), "{sent}");
    let received = a.poll("received 2", "RECEIVED", |l| {
        l.starts_with("RECEIVED 2 10000 ")
    });
    assert_eq!(received, "RECEIVED 2 10000 10000 640000");
    // Batched: far fewer messages than frames.
    let batches = a.stat("batches_received");
    assert!(batches < 2_000, "{batches} batches for 10000 frames");
}

#[test]
fn large_frames_up_to_the_limit_pass_and_larger_ones_are_refused() {
    let key = cluster_key();
    let mut a = Node::start(Opts::new(1, &key));
    let mut b = Node::start(Opts::new(2, &key).seed(a.addr));
    b.wait_members(&[1]);
    let limit: usize = b.cmd("maxframe", "MAXFRAME")[9..].parse().unwrap();
    assert_eq!(limit, 512 * 1024);
    // 12 maximal frames fit the 8 MiB peer queue at once.
    let sent = b.cmd(&format!("send 1 12 {limit}"), "SENT");
    assert!(sent.starts_with("SENT 12 0"), "{sent}");
    a.poll("received 2", "RECEIVED", |l| {
        l.starts_with("RECEIVED 2 12 12 ")
    });
    let refused = b.cmd(&format!("send 1 1 {}", limit + 1), "SENT");
    assert!(refused.starts_with("SENT 0 1 frame of"), "{refused}");
    assert!(refused.contains("exceeds the transport limit"), "{refused}");
}

#[test]
fn a_full_peer_queue_is_backpressure_not_growth() {
    let key = cluster_key();
    let mut a = Node::start(Opts::new(1, &key));
    let mut b = Node::start(Opts::new(2, &key).seed(a.addr));
    b.wait_members(&[1]);
    // 40,000 frames of 16 KiB (640 MiB) at once: the 8 MiB queue refuses most of them.
    let sent = b.cmd("send 1 40000 16384", "SENT");
    let words: Vec<&str> = sent.split_whitespace().collect();
    let (ok, refused): (u64, u64) = (words[1].parse().unwrap(), words[2].parse().unwrap());
    assert!(refused > 0, "{sent}");
    assert!(sent.contains("is full"), "{sent}");
    assert!(ok * 16384 < 64 * 1024 * 1024, "{sent}");
    // Everything taken is delivered, in order.
    let expect = format!("RECEIVED 2 {ok} {ok} ");
    a.poll("received 2", "RECEIVED", |l| l.starts_with(&expect));
}

#[test]
fn a_killed_node_is_reported_down_and_its_restart_rejoins() {
    let key = cluster_key();
    let mut a = Node::start(Opts::new(1, &key));
    let mut b = Node::start(Opts {
        incarnation: Some(1_000),
        ..Opts::new(2, &key).seed(a.addr)
    });
    a.wait_event("JOINED 2 1000");
    b.kill();
    a.wait_event("LEFT 2 disconnected");
    a.wait_members(&[]);
    // Same node id, new process (new identity, new port), newer incarnation.
    let mut b2 = Node::start(Opts {
        incarnation: Some(2_000),
        ..Opts::new(2, &key).seed(a.addr)
    });
    a.wait_event("JOINED 2 2000");
    a.wait_members(&[2]);
    b2.wait_members(&[1]);
    let sent = b2.cmd("send 1 5 100", "SENT");
    assert!(sent.starts_with("SENT 5 0"), "{sent}");
    a.poll("received 2", "RECEIVED", |l| l.starts_with("RECEIVED 2 5 "));
}

#[test]
fn an_older_incarnation_cannot_take_a_live_node_id() {
    let key = cluster_key();
    let mut a = Node::start(Opts::new(1, &key));
    let mut b = Node::start(Opts {
        incarnation: Some(5_000),
        ..Opts::new(2, &key).seed(a.addr)
    });
    a.wait_event("JOINED 2 5000");
    let mut impostor = Node::start(Opts {
        incarnation: Some(4_000),
        ..Opts::new(2, &key).seed(a.addr)
    });
    a.poll("stats", "STATS", |l| {
        stat_value(l, "handshakes_rejected") >= 1
    });
    assert_eq!(impostor.members(), Vec::<u64>::new());
    assert_eq!(a.members(), vec![2]);
    b.wait_members(&[1]);
    let sent = b.cmd("send 1 1 10", "SENT");
    assert!(sent.starts_with("SENT 1 0"), "{sent}");
    a.poll("received 2", "RECEIVED", |l| l.starts_with("RECEIVED 2 1 "));
}

#[test]
fn graceful_shutdown_is_reported_as_a_graceful_leave() {
    let key = cluster_key();
    let mut a = Node::start(Opts::new(1, &key));
    let mut b = Node::start(Opts::new(2, &key).seed(a.addr));
    a.wait_members(&[2]);
    b.shutdown();
    a.wait_event("LEFT 2 graceful");
    a.wait_members(&[]);
    assert!(
        !a.events.iter().any(|e| e == "LEFT 2 disconnected"),
        "{:?}",
        a.events
    );
}

#[test]
fn an_outsider_with_another_key_never_joins() {
    let key = cluster_key();
    let mut a = Node::start(Opts::new(1, &key));
    let mut outsider = Node::start(Opts::new(9, &cluster_key()).seed(a.addr));
    // The outsider's dial reaches a and fails in the private-network layer.
    a.poll("stats", "STATS", |l| {
        stat_value(l, "connections_failed") >= 1
    });
    let mut b = Node::start(Opts::new(2, &key).seed(a.addr));
    a.wait_members(&[2]);
    assert_eq!(outsider.members(), Vec::<u64>::new());
    assert_eq!(a.stat("sessions_opened"), 1);
    let sent = outsider.cmd("send 1 1 10", "SENT");
    assert!(sent.starts_with("SENT 0 1"), "{sent}");
    assert!(!a.events.iter().any(|e| e.starts_with("JOINED 9")));
    // b completes its side of the handshake independently of a: wait for it.
    b.wait_members(&[1]);
}

#[test]
fn a_peer_outside_the_allow_list_is_refused() {
    let key = cluster_key();
    let dir = temp_dir("allow");
    let b_identity = dir.join("b.key");
    let b_peer = dstate_kameo::NodeIdentity::load_or_generate(&b_identity)
        .unwrap()
        .peer()
        .to_string();
    let mut a = Node::start(Opts {
        allow: vec![b_peer],
        ..Opts::new(1, &key)
    });
    // Right key, but not on the list.
    let mut outsider = Node::start(Opts::new(9, &key).seed(a.addr));
    a.poll("stats", "STATS", |l| {
        stat_value(l, "connections_denied") >= 1
    });
    let mut b = Node::start(Opts {
        identity: Some(b_identity),
        ..Opts::new(2, &key).seed(a.addr)
    });
    a.wait_members(&[2]);
    b.wait_members(&[1]);
    assert_eq!(outsider.members(), Vec::<u64>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reconnect_drops_the_connection_and_the_redial_restores_it() {
    let key = cluster_key();
    let mut a = Node::start(Opts::new(1, &key));
    let mut b = Node::start(Opts::new(2, &key).seed(a.addr));
    a.wait_members(&[2]);
    a.cmd("reconnect 2", "OK");
    a.wait_event("LEFT 2 disconnected");
    a.wait_events(
        |events| events.iter().filter(|e| e.starts_with("JOINED 2 ")).count() == 2,
        "second JOINED 2",
    );
    // b may see the old connection close and a new one open (a second JOINED), or the new
    // connection may come up before b notices the old one going: either way a is a member
    // again and frames flow.
    b.wait_members(&[1]);
    let sent = b.cmd("send 1 3 10", "SENT");
    assert!(sent.starts_with("SENT 3 0"), "{sent}");
    a.poll("received 2", "RECEIVED", |l| l.starts_with("RECEIVED 2 3 "));
}

#[test]
fn a_partition_is_reported_and_heals() {
    let key = cluster_key();
    // Every connection between a and b passes through a proxy in front of each node.
    let a_door = Proxy::start();
    let b_door = Proxy::start();
    let mut a = Node::start(Opts {
        advertise: vec![a_door.addr],
        ..Opts::new(1, &key)
    });
    a_door.point_at(a.addr);
    let mut b = Node::start(Opts {
        advertise: vec![b_door.addr],
        ..Opts::new(2, &key).seed(a_door.addr)
    });
    b_door.point_at(b.addr);
    a.wait_members(&[2]);
    b.wait_members(&[1]);

    a_door.cut();
    b_door.cut();
    a.wait_event("LEFT 2 disconnected");
    b.wait_event("LEFT 1 disconnected");
    let sent = b.cmd("send 1 1 10", "SENT");
    assert!(sent.starts_with("SENT 0 1"), "{sent}");

    a_door.heal();
    b_door.heal();
    a.wait_members(&[2]);
    b.wait_members(&[1]);
    let sent = b.cmd("send 1 100 64", "SENT");
    assert!(sent.starts_with("SENT 100 0"), "{sent}");
    a.poll("received 2", "RECEIVED", |l| {
        l.starts_with("RECEIVED 2 100 100 ")
    });
}
