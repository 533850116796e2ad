use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dstate::{ActorRef, ActorRuntime, ClusterEvent, Incarnation, NodeId, TimerHandle};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::KameoRuntime;

const DEADLINE: Duration = Duration::from_secs(5);

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    timeout(DEADLINE, rx.recv())
        .await
        .expect("deadline passed")
        .expect("channel closed")
}

fn forwarding_actor<M: Send + 'static>(
    runtime: &KameoRuntime,
) -> (super::KameoRef<M>, mpsc::UnboundedReceiver<M>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let actor = runtime.spawn("forward", move |msg: M| {
        let _ = tx.send(msg); // the test may have finished listening
    });
    (actor, rx)
}

#[test]
fn spawn_from_sync_code_inside_a_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Like `#[tokio::main]`: the runtime is entered, the calls below are synchronous.
    let _entered = rt.enter();
    let runtime = KameoRuntime::new();
    let (actor, mut rx) = forwarding_actor::<u64>(&runtime);
    actor.send(42).unwrap();
    assert_eq!(rt.block_on(recv(&mut rx)), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_one_sender_keep_their_order() {
    let runtime = KameoRuntime::new();
    let (actor, mut rx) = forwarding_actor::<u32>(&runtime);
    for i in 0..10_000 {
        actor.send(i).unwrap();
    }
    for i in 0..10_000 {
        assert_eq!(recv(&mut rx).await, i);
    }
}

#[tokio::test]
async fn a_stopped_actor_hands_the_message_back() {
    let runtime = KameoRuntime::new();
    let (actor, _rx) = forwarding_actor::<String>(&runtime);
    actor.stop();
    let err = actor.send("late".to_owned()).unwrap_err();
    assert_eq!(err.0, "late");
    assert!(!actor.is_alive());
}

#[tokio::test(start_paused = true)]
async fn send_after_delivers_once_after_the_delay() {
    let runtime = KameoRuntime::new();
    let (actor, mut rx) = forwarding_actor::<&'static str>(&runtime);
    let start = tokio::time::Instant::now();
    let _timer = runtime.send_after(Duration::from_millis(250), &actor, "tick");
    assert_eq!(recv(&mut rx).await, "tick");
    assert!(start.elapsed() >= Duration::from_millis(250));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_timer_sends_nothing() {
    let runtime = KameoRuntime::new();
    let (actor, mut rx) = forwarding_actor::<u8>(&runtime);
    let once = runtime.send_after(Duration::from_millis(100), &actor, 1);
    let every = runtime.send_interval(Duration::from_millis(100), &actor, 2);
    once.cancel();
    every.cancel();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn interval_fires_every_period_until_cancelled() {
    let runtime = KameoRuntime::new();
    let (actor, mut rx) = forwarding_actor::<u8>(&runtime);
    let timer = runtime.send_interval(Duration::from_millis(100), &actor, 7);
    for _ in 0..5 {
        assert_eq!(recv(&mut rx).await, 7);
    }
    timer.cancel();
    while rx.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_keeps_firing_while_the_target_is_busy_and_coalesces() {
    let runtime = KameoRuntime::new();
    let handled = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let counter = handled.clone();
    let actor = runtime.spawn("slow", move |first: bool| {
        if first {
            // Block the actor: ticks arrive meanwhile.
            let _ = gate_rx.recv_timeout(DEADLINE);
        }
        counter.fetch_add(1, Ordering::SeqCst);
    });
    actor.send(true).unwrap();
    let timer = runtime.send_interval(Duration::from_millis(5), &actor, false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate_tx.send(()).unwrap();
    // After the block: at most one coalesced tick was waiting, and ticks keep coming.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while handled.load(Ordering::SeqCst) < 6 {
        assert!(tokio::time::Instant::now() < deadline, "ticks stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    timer.cancel();
}

#[tokio::test]
async fn groups_join_leave_members_and_broadcast() {
    let runtime = KameoRuntime::new();
    let (a, mut rx_a) = forwarding_actor::<u32>(&runtime);
    let (b, mut rx_b) = forwarding_actor::<u32>(&runtime);
    let (other, _rx) = forwarding_actor::<String>(&runtime);
    runtime.join_group("g", &a);
    runtime.join_group("g", &a);
    runtime.join_group("g", &b);
    runtime.join_group("g", &other);
    assert_eq!(runtime.group_members::<u32>("g").len(), 2);
    assert_eq!(runtime.group_members::<String>("g").len(), 1);
    assert_eq!(runtime.broadcast_group("g", 5u32), 2);
    assert_eq!(recv(&mut rx_a).await, 5);
    assert_eq!(recv(&mut rx_b).await, 5);
    runtime.leave_group("g", &a);
    assert_eq!(runtime.group_members::<u32>("g").len(), 1);
    b.stop();
    assert!(runtime.group_members::<u32>("g").is_empty());
    assert!(runtime.group_members::<u32>("none").is_empty());
}

#[tokio::test]
async fn cluster_events_come_from_the_bus() {
    let runtime = KameoRuntime::new();
    let mut events = runtime.cluster_events();
    let joined = ClusterEvent::NodeJoined {
        node: NodeId(3),
        incarnation: Incarnation(9),
    };
    runtime.event_bus().emit(joined);
    assert_eq!(
        timeout(DEADLINE, events.recv()).await.unwrap(),
        Some(joined)
    );
}

#[tokio::test]
async fn spawn_task_runs_the_future() {
    let runtime = KameoRuntime::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    runtime.spawn_task(Box::pin(async move {
        let _ = tx.send(1u8); // the receiver is alive until the assertion
    }));
    assert_eq!(recv(&mut rx).await, 1);
}
