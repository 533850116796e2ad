//! The cluster layer and transport between real OS processes on 127.0.0.1.

mod support;

use std::net::IpAddr;

use support::proxy::Proxy;
use support::{cookie, parse_stats, Node};

fn joined(node: &mut Node, from: usize, peer: u64) -> u64 {
    let line = node.wait_for(from, |l| l.starts_with(&format!("JOINED {peer} ")));
    line.split_whitespace()
        .nth(2)
        .and_then(|i| i.parse().ok())
        .expect("incarnation")
}

fn start(label: &str, id: u64, cookie: &str, seeds: &[&str]) -> Node {
    let id = id.to_string();
    let mut args = vec!["--node", id.as_str(), "--cookie", cookie];
    for seed in seeds {
        args.extend(["--seed", seed]);
    }
    Node::start(label, &args)
}

#[test]
fn three_nodes_find_each_other_from_one_seed_and_exchange_frames() {
    let cookie = cookie("three");
    let mut a = start("a", 1, &cookie, &[]);
    let mut b = start("b", 2, &cookie, &[&a.addr]);
    // c only knows b: it learns a's address from gossip.
    let mut c = start("c", 3, &cookie, &[&b.addr]);
    for (node, peers) in [(&mut a, [2, 3]), (&mut b, [1, 3]), (&mut c, [1, 2])] {
        for peer in peers {
            joined(node, 0, peer);
        }
    }
    assert_eq!(
        joined(&mut a, 0, 3),
        c.incarnation,
        "identity comes from the handshake"
    );

    let nodes = [(1u64, &mut a), (2, &mut b), (3, &mut c)];
    let mut nodes: Vec<(u64, &mut Node)> = nodes.into_iter().collect();
    for i in 0..3 {
        for j in 0..3 {
            if i == j {
                continue;
            }
            let to = nodes[j].0;
            let reply = nodes[i]
                .1
                .request(&format!("send {to} hello-{i}-{j}"), "SENT ");
            assert_eq!(reply, "SENT ok");
        }
    }
    for i in 0..3 {
        for j in 0..3 {
            if i == j {
                continue;
            }
            let from = nodes[i].0;
            let expected = format!("FRAME {from} ");
            let text = format!("hello-{i}-{j}");
            nodes[j]
                .1
                .wait_for(0, |l| l.starts_with(&expected) && l.ends_with(&text));
        }
    }
}

#[test]
fn a_wrong_cookie_never_joins_and_never_delivers() {
    let mut good = start("good", 1, &cookie("cookie-good"), &[]);
    let mut bad = start("bad", 2, &cookie("cookie-bad"), &[&good.addr]);
    // The bad node keeps trying (and failing authentication) with backoff.
    bad.poll("stats", "STATS ", |l| parse_stats(l)["dial_failures"] >= 3);
    assert_eq!(
        bad.request("send 1 sneaky", "SENT "),
        "SENT err peer node-1 is not connected"
    );
    let stats = good.stats();
    assert_eq!(stats["joins"], 0);
    assert_eq!(stats["frames_received"], 0);
    assert!(
        stats["sessions"] >= 3,
        "the attempts reached the good node: {stats:?}"
    );
    assert_eq!(good.request("peers", "PEERS"), "PEERS ");
    good.drain();
    bad.drain();
    for line in good.output().iter().chain(bad.output()) {
        assert!(
            !line.starts_with("JOINED") && !line.starts_with("FRAME"),
            "{line}"
        );
    }
}

#[test]
fn forged_session_tokens_are_rejected_and_counted() {
    let cookie = cookie("forged");
    let mut target = start("target", 1, &cookie, &[]);
    let mut spoofer = Node::start(
        "spoofer",
        &["--spoof", "--cookie", &cookie, "--seed", &target.addr],
    );
    // The spoofer holds the cookie, so its ractor session authenticates; it sees the
    // endpoint through process-group sync and forges frames with guessed tokens.
    let sent: u64 = loop {
        let reply = spoofer.request("spoof", "SPOOFED ");
        let sent: u64 = reply["SPOOFED ".len()..].parse().expect("count");
        if sent > 0 {
            break sent;
        }
    };
    target.poll("stats", "STATS ", |l| parse_stats(l)["rejected"] >= sent);
    let stats = target.stats();
    assert_eq!(stats["frames_received"], 0);
    assert_eq!(
        stats["joins"], 0,
        "a bare ractor node never completes the dstate handshake"
    );
    target.drain();
    assert!(!target.output().iter().any(|l| l.starts_with("FRAME")));
}

#[test]
fn a_killed_peer_leaves_and_its_restart_rejoins_as_a_new_incarnation() {
    let cookie = cookie("restart");
    let mut a = start("a", 1, &cookie, &[]);
    let mut b = start("b", 2, &cookie, &[&a.addr]);
    let first = joined(&mut a, 0, 2);
    joined(&mut b, 0, 1);

    let mark = a.mark();
    b.kill();
    a.wait_for(mark, |l| l.starts_with("LEFT 2 Disconnected"));
    assert_eq!(
        a.request("send 2 x", "SENT "),
        "SENT err peer node-2 is not connected"
    );

    let mut b2 = start("b2", 2, &cookie, &[&a.addr]);
    let second = joined(&mut a, mark, 2);
    assert!(
        second > first,
        "restart is a newer incarnation: {first} -> {second}"
    );
    assert_eq!(second, b2.incarnation);
    assert_eq!(a.request("send 2 again", "SENT "), "SENT ok");
    b2.wait_for(0, |l| l == "FRAME 1 5 again");
}

#[test]
fn a_restarted_seed_is_redialled_on_its_address() {
    let cookie = cookie("redial");
    let mut seed = start("seed", 1, &cookie, &[]);
    let seed_addr = seed.addr.clone();
    let mut b = start("b", 2, &cookie, &[&seed_addr]);
    joined(&mut b, 0, 1);
    let mark = b.mark();
    seed.kill();
    b.wait_for(mark, |l| l.starts_with("LEFT 1"));
    // Same address again: b, which only knows it as a seed, must dial it back.
    let mut seed2 = Node::start(
        "seed2",
        &["--node", "1", "--cookie", &cookie, "--listen", &seed_addr],
    );
    joined(&mut b, mark, 1);
    joined(&mut seed2, 0, 2);
}

#[test]
fn reconnect_drops_the_session_and_the_peer_comes_back() {
    let cookie = cookie("reconnect");
    let mut a = start("a", 1, &cookie, &[]);
    let mut b = start("b", 2, &cookie, &[&a.addr]);
    let incarnation = joined(&mut a, 0, 2);
    joined(&mut b, 0, 1);
    let (mark, mark_b) = (a.mark(), b.mark());
    assert_eq!(a.request("reconnect 2", "OK"), "OK");
    a.wait_for(mark, |l| l.starts_with("LEFT 2"));
    let again = joined(&mut a, mark, 2);
    assert_eq!(again, incarnation, "same process, same incarnation");
    b.wait_for(mark_b, |l| l.starts_with("LEFT 1"));
    joined(&mut b, mark_b, 1);
    let sent = b.request("send 1 back", "SENT ");
    assert_eq!(sent, "SENT ok", "a: {:?}\nb: {:?}", a.output(), b.output());
    a.wait_for(mark, |l| l == "FRAME 2 4 back");
}

#[test]
fn a_burst_is_bounded_by_the_window_and_every_accepted_frame_arrives() {
    let cookie = cookie("burst");
    let mut a = start("a", 1, &cookie, &[]);
    let mut b = start("b", 2, &cookie, &[&a.addr]);
    joined(&mut a, 0, 2);
    joined(&mut b, 0, 1);
    let reply = a.request("burst 2 10000 64", "BURST ");
    let counts = parse_stats(&reply);
    assert!(
        counts["refused"] > 0,
        "a tight loop outruns the acks: {reply}"
    );
    // In flight never exceeds the window (256 frames by default).
    let peers = a.request("peers", "PEERS ");
    let in_flight: u64 = peers
        .rsplit(':')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(in_flight <= 256, "{peers}");
    assert_eq!(a.request("flush", "FLUSHED "), "FLUSHED 1");
    let sent = counts["sent"];
    b.poll("stats", "STATS ", |l| {
        parse_stats(l)["frames_received"] == sent
    });
}

#[test]
fn graceful_quit_delivers_what_was_sent_before_leaving() {
    let cookie = cookie("quit");
    let mut a = start("a", 1, &cookie, &[]);
    let mut b = start("b", 2, &cookie, &[&a.addr]);
    joined(&mut a, 0, 2);
    joined(&mut b, 0, 1);
    for i in 0..20 {
        a.send(&format!("send 2 last-{i}"));
    }
    a.quit();
    let left = b.wait_for(0, |l| l.starts_with("LEFT 1"));
    let frames: Vec<&String> = b
        .output()
        .iter()
        .filter(|l| l.starts_with("FRAME 1 "))
        .collect();
    assert_eq!(frames.len(), 20, "all frames before {left}: {frames:?}");
    assert!(frames[19].ends_with("last-19"));
}

#[test]
fn a_partition_drops_the_sessions_and_healing_rejoins() {
    let cookie = cookie("partition");
    let (ip_a, ip_b): (IpAddr, IpAddr) =
        ("127.0.0.21".parse().unwrap(), "127.0.0.22".parse().unwrap());
    let to_a = Proxy::start("127.0.0.1".parse().unwrap());
    let to_b = Proxy::start("127.0.0.1".parse().unwrap());
    let (pa, pb) = (to_a.addr.to_string(), to_b.addr.to_string());
    let mut a = Node::start(
        "a",
        &[
            "--node",
            "1",
            "--cookie",
            &cookie,
            "--listen",
            "127.0.0.21:0",
            "--source",
            "127.0.0.21",
            "--advertise",
            &pa,
        ],
    );
    to_a.forward_to(&a.addr);
    let mut b = Node::start(
        "b",
        &[
            "--node",
            "2",
            "--cookie",
            &cookie,
            "--listen",
            "127.0.0.22:0",
            "--source",
            "127.0.0.22",
            "--advertise",
            &pb,
            "--seed",
            &pa,
        ],
    );
    to_b.forward_to(&b.addr);
    joined(&mut a, 0, 2);
    joined(&mut b, 0, 1);

    let (mark_a, mark_b) = (a.mark(), b.mark());
    to_a.block(ip_b);
    to_b.block(ip_a);
    a.wait_for(mark_a, |l| l.starts_with("LEFT 2"));
    b.wait_for(mark_b, |l| l.starts_with("LEFT 1"));
    // Both keep redialling through the cut proxies and fail.
    b.poll("stats", "STATS ", |l| parse_stats(l)["dial_failures"] >= 2);

    to_a.heal();
    to_b.heal();
    joined(&mut a, mark_a, 2);
    joined(&mut b, mark_b, 1);
    assert_eq!(a.request("send 2 healed", "SENT "), "SENT ok");
    b.wait_for(mark_b, |l| l == "FRAME 1 6 healed");
}
