use std::time::Duration;

use dstate::{ActorRef as _, ActorRuntime, TimerHandle as _};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::*;

const DEADLINE: Duration = Duration::from_secs(5);

/// An actor that forwards every message to a channel the test reads.
fn probe<M: Send + 'static>(rt: &RactorRuntime) -> (RactorRef<M>, mpsc::UnboundedReceiver<M>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let actor = rt.spawn("probe", move |msg: M| {
        // The test may have finished reading; a closed channel is fine.
        let _ = tx.send(msg);
    });
    (actor, rx)
}

async fn next<M>(rx: &mut mpsc::UnboundedReceiver<M>) -> M {
    timeout(DEADLINE, rx.recv())
        .await
        .expect("message within the deadline")
        .expect("channel open")
}

#[tokio::test]
async fn spawn_from_sync_code_delivers_the_first_message() {
    /// Plain synchronous code, as in a `#[tokio::main]` body before any `.await`.
    fn spawn_and_send(rt: &RactorRuntime) -> std::sync::mpsc::Receiver<u64> {
        let (tx, rx) = std::sync::mpsc::channel();
        let actor = rt.spawn("counter", move |m: u64| {
            let _ = tx.send(m);
        });
        actor.send(42).expect("mailbox open");
        rx
    }
    let rt = RactorRuntime::new();
    let rx = spawn_and_send(&rt);
    let got = tokio::task::spawn_blocking(move || rx.recv_timeout(DEADLINE))
        .await
        .expect("blocking task ran");
    assert_eq!(got, Ok(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_one_sender_keep_their_order() {
    let rt = RactorRuntime::new();
    let (actor, mut rx) = probe::<u32>(&rt);
    for i in 0..10_000 {
        actor.send(i).expect("mailbox open");
    }
    for i in 0..10_000 {
        assert_eq!(next(&mut rx).await, i);
    }
}

#[tokio::test]
async fn send_after_stop_hands_the_message_back() {
    let rt = RactorRuntime::new();
    let (actor, mut rx) = probe::<String>(&rt);
    actor.send("before".into()).expect("mailbox open");
    assert_eq!(next(&mut rx).await, "before");
    actor.stop();
    let err = actor
        .send("after".into())
        .expect_err("stopped actor refuses");
    assert_eq!(err.0, "after");
    // The closure (and its sender) is dropped once the actor has stopped.
    assert!(timeout(DEADLINE, rx.recv())
        .await
        .expect("actor ends")
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn send_after_fires_once_and_cancel_prevents_it() {
    let rt = RactorRuntime::new();
    let (actor, mut rx) = probe::<&'static str>(&rt);
    let _fired = rt.send_after(Duration::from_millis(50), &actor, "fired");
    let cancelled = rt.send_after(Duration::from_millis(50), &actor, "cancelled");
    cancelled.cancel();
    assert_eq!(next(&mut rx).await, "fired");
    tokio::time::sleep(Duration::from_secs(1)).await;
    actor.send("marker").expect("mailbox open");
    assert_eq!(next(&mut rx).await, "marker");
}

#[tokio::test(start_paused = true)]
async fn send_interval_repeats_until_cancelled() {
    let rt = RactorRuntime::new();
    let (actor, mut rx) = probe::<u8>(&rt);
    let timer = rt.send_interval(Duration::from_millis(10), &actor, 1);
    for _ in 0..5 {
        assert_eq!(next(&mut rx).await, 1);
    }
    timer.cancel();
    actor.send(2).expect("mailbox open");
    // Ticks queued before `cancel` returned may precede the marker; none may follow it.
    while next(&mut rx).await != 2 {}
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rx.try_recv().is_err(), "no tick after cancel");
}

#[tokio::test]
async fn groups_join_leave_and_broadcast_by_message_type() {
    let rt = RactorRuntime::new();
    let group = "groups_join_leave_and_broadcast_by_message_type";
    let (a, mut rx_a) = probe::<u16>(&rt);
    let (b, mut rx_b) = probe::<u16>(&rt);
    let (other, mut rx_other) = probe::<String>(&rt);
    rt.join_group(group, &a);
    rt.join_group(group, &b);
    rt.join_group(group, &other);
    assert_eq!(rt.group_members::<u16>(group).len(), 2);
    assert_eq!(rt.group_members::<String>(group).len(), 1);

    assert_eq!(rt.broadcast_group(group, 5u16), 2);
    assert_eq!(next(&mut rx_a).await, 5);
    assert_eq!(next(&mut rx_b).await, 5);

    rt.leave_group(group, &a);
    assert_eq!(rt.broadcast_group(group, 6u16), 1);
    assert_eq!(next(&mut rx_b).await, 6);
    a.send(9).expect("mailbox open");
    assert_eq!(next(&mut rx_a).await, 9, "a left before 6 was broadcast");

    assert_eq!(rt.broadcast_group(group, "hi".to_string()), 1);
    assert_eq!(next(&mut rx_other).await, "hi");
}

#[tokio::test]
async fn runtime_built_from_a_handle_spawns_from_a_plain_thread() {
    let rt = RactorRuntime::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let rt2 = rt.clone();
    std::thread::spawn(move || {
        let actor = rt2.spawn("from-thread", move |m: u8| {
            let _ = tx.send(m);
        });
        actor.send(3).expect("mailbox open");
    })
    .join()
    .expect("thread ran");
    assert_eq!(next(&mut rx).await, 3);
}
