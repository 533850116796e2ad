//! Bench-echo mode: a dstate node that copies node 1's bench states into its own shard
//! (so node 1 can time a round trip), plus a raw kameo echo actor for the baseline.

use dstate::{Node, NodeId, StateConfig, SyncStrategy};
use dstate_kameo::KameoRuntime;
use kameo::actor::Spawn;

use crate::bench_types::{
    echo_name, record, BenchEcho, BenchLarge, BenchSmall, Samples, SERIES_DSTATE_LARGE,
    SERIES_DSTATE_SMALL,
};
use crate::{start_cluster, Args};

/// The node whose values are echoed.
const DRIVER: NodeId = NodeId(1);

pub(crate) async fn run(args: Args) -> Result<(), String> {
    let runtime = KameoRuntime::new();
    let cluster = start_cluster(&args, &runtime).await?;
    let node = Node::builder(NodeId(args.node), runtime.clone())
        .transport(cluster.transport())
        .start();
    cluster.join_node(&node).await.map_err(|e| e.to_string())?;
    let config = StateConfig::new(SyncStrategy::active_push());
    let small = node
        .register::<BenchSmall>(config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let large = node
        .register::<BenchLarge>(config)
        .await
        .map_err(|e| e.to_string())?;

    let samples = Samples::default();
    let progress = std::sync::Arc::new(std::sync::Mutex::new(String::from("echo not started")));
    let progress_seen = progress.clone();
    let inspected = small.clone();
    let inspected_large = large.clone();
    let stats_cluster = cluster.transport();
    let echo = BenchEcho::spawn(BenchEcho {
        inspect: Some(Box::new(move || {
            let views = inspected.read(|views| {
                views
                    .iter()
                    .map(|v| format!("{}={}@{}", v.source, v.view.seq, v.generation))
                    .collect::<Vec<_>>()
            });
            let progress = progress_seen.lock().map(|p| p.clone()).unwrap_or_default();
            let large_views = inspected_large.read(|views| {
                views
                    .iter()
                    .map(|v| format!("{}={}@{}", v.source, v.view.seq, v.generation))
                    .collect::<Vec<_>>()
            });
            format!(
                "small {views:?} large {large_views:?} {progress} {:?}",
                stats_cluster.stats()
            )
        })),
        samples: samples.clone(),
    });
    // A subscriber that lags loses the oldest events, which may include the driver's last
    // change, and an event may arrive before `read` shows its view: the echo takes the
    // newer of the event's view and the current one.
    let mut small_events = small.subscribe();
    let small_samples = samples.clone();
    tokio::spawn(async move {
        let mut echoed = 0;
        while let Some(event) = small_events.recv().await {
            let from_event = event
                .view
                .filter(|_| event.source == DRIVER)
                .map_or((0, 0), |v| (v.seq, v.sent_at));
            let current = small.read(|views| {
                views
                    .get(DRIVER)
                    .map_or((0, 0), |v| (v.view.seq, v.view.sent_at))
            });
            let (seq, sent_at) = from_event.max(current);
            if seq > echoed {
                echoed = seq;
                record(&small_samples, SERIES_DSTATE_SMALL, sent_at);
                if let Err(err) = small.mutate(move |s| s.seq = seq).await {
                    set_progress(&progress, format!("echo stopped: {err}"));
                    return;
                }
                set_progress(&progress, format!("echoed {seq}"));
            }
        }
    });
    let mut large_events = large.subscribe();
    tokio::spawn(async move {
        let mut echoed = 0;
        while let Some(event) = large_events.recv().await {
            let from_event = event.view.filter(|_| event.source == DRIVER);
            let current = large.read(|views| views.get(DRIVER).map(|v| v.view.clone()));
            let Some(view) = [from_event, current]
                .into_iter()
                .flatten()
                .max_by_key(|v| v.seq)
            else {
                continue;
            };
            if view.seq > echoed {
                echoed = view.seq;
                record(&samples, SERIES_DSTATE_LARGE, view.sent_at);
                let copy = BenchLarge::clone(&view);
                if large.mutate(move |s| *s = copy).await.is_err() {
                    return;
                }
            }
        }
    });
    println!("ready {} {}", args.node, cluster.local_addr());
    // Registered after the first connection is up (the driver's): see kameo's registry notes.
    while cluster
        .members()
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    echo.register(echo_name(args.node))
        .await
        .map_err(|e| e.to_string())?;
    println!("echo registered");
    // Run until the parent closes stdin.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    })
    .await;
    node.shutdown().await;
    cluster.shutdown().await;
    Ok(())
}

fn set_progress(progress: &std::sync::Mutex<String>, text: String) {
    if let Ok(mut p) = progress.lock() {
        *p = text;
    }
}
