//! The remote side of the replication benchmark: a dstate node that reports, for every view
//! change it receives, the one-way latency from the writer's stamp to the moment the change
//! is visible here; plus a raw ractor actor doing the same for plain ractor_cluster messages.

use std::sync::Arc;

use dstate::{Node, StateConfig, SyncStrategy};
use dstate_ractor::RactorRuntime;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::bench_states::{now_ns, stamp_of, BenchBlob, BenchBurst, BenchCounter, MARK};
use super::{builder, fail, say, Args};

/// `ractor::pg` group of the raw echo actors.
const RAW_GROUP: &str = "dstate.bench.raw";

/// Receives raw `Vec<u8>` casts (stamp in the first 8 bytes) and reports their latency.
struct RawSink;

impl Actor for RawSink {
    type Msg = Vec<u8>;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Vec<u8>>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Vec<u8>>,
        msg: Vec<u8>,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let latency = now_ns().saturating_sub(stamp_of(&msg));
        say(format!("raw {} {latency}", msg.len()));
        Ok(())
    }
}

pub(crate) async fn run(args: Args) {
    let runtime = RactorRuntime::new();
    let cluster = match builder(&args).start(&runtime).await {
        Ok(cluster) => cluster,
        Err(err) => fail("start", err),
    };
    let transport: Arc<dyn dstate::Transport> = cluster.transport();
    let node = Node::builder(args.node, runtime.clone())
        .transport(transport)
        .start();
    if let Err(err) = cluster.attach_node(&node).await {
        fail("attach", err);
    }
    let config = StateConfig::new(SyncStrategy::active_push());
    let counter = match node.register::<BenchCounter>(config.clone()).await {
        Ok(handle) => handle,
        Err(err) => fail("register", err),
    };
    let blob = match node.register::<BenchBlob>(config.clone()).await {
        Ok(handle) => handle,
        Err(err) => fail("register", err),
    };
    let burst = match node.register::<BenchBurst>(config).await {
        Ok(handle) => handle,
        Err(err) => fail("register", err),
    };
    let (raw, _) = match Actor::spawn(None, RawSink, ()).await {
        Ok(spawned) => spawned,
        Err(err) => fail("raw actor", err),
    };
    ractor::pg::join(RAW_GROUP.to_string(), vec![raw.get_cell()]);
    say(format!("ready {} {}", args.node.0, cluster.local_addr()));

    let me = args.node;
    let mut counters = counter.subscribe();
    let counter_task = tokio::spawn(async move {
        while let Some(event) = counters.recv().await {
            let Some(view) = event.view.filter(|_| event.source != me) else {
                continue;
            };
            // The event is sent as the view map changes; confirm a local read sees it.
            let stamp = view.stamp_ns;
            while counter.read(|v| v.get(event.source).map(|o| o.view.stamp_ns)) != Some(stamp) {
                tokio::task::yield_now().await;
            }
            let latency = now_ns().saturating_sub(stamp);
            say(format!(
                "seen counter {} {} {latency}",
                event.source.0, stamp
            ));
        }
    });
    let mut blobs = blob.subscribe();
    let blob_task = tokio::spawn(async move {
        while let Some(event) = blobs.recv().await {
            let Some(view) = event.view.filter(|_| event.source != me) else {
                continue;
            };
            let stamp = view.stamp_ns();
            while blob.read(|v| v.get(event.source).map(|o| o.view.stamp_ns())) != Some(stamp) {
                tokio::task::yield_now().await;
            }
            let latency = now_ns().saturating_sub(stamp);
            say(format!("seen blob {} {} {latency}", event.source.0, stamp));
        }
    });
    let mut bursts = burst.subscribe();
    let burst_task = tokio::spawn(async move {
        while let Some(event) = bursts.recv().await {
            let Some(view) = event.view.filter(|_| event.source != me) else {
                continue;
            };
            // Only the marked last mutation of a burst is reported.
            if view.stamp_ns & MARK != 0 {
                let stamp = view.stamp_ns & !MARK;
                let latency = now_ns().saturating_sub(stamp);
                say(format!("seen burst {} {stamp} {latency}", event.source.0));
            }
        }
    });
    // Runs until the benchmark closes stdin.
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
    counter_task.abort();
    blob_task.abort();
    burst_task.abort();
    node.shutdown().await;
    cluster.shutdown().await;
}
