//! A full dstate node on ractor, answering the core's process-cluster protocol.

use std::sync::Arc;
use std::time::Duration;

use dstate::test_support::process::serve_commands;
use dstate::{DurablePersistence, Node, NodeConfig, StateConfig, SyncStrategy};
use dstate_ractor::RactorRuntime;

use super::{builder, fail, Args};

/// The strategies the shared scenarios name. The protocol's `read` is a local read that
/// never pulls, so `feed` adds a periodic sync to converge without queries; pure lazy pull
/// is `feed-only`.
fn strategy(name: &str) -> SyncStrategy {
    match name {
        "feed" => SyncStrategy::feed_with_periodic_sync(Duration::from_millis(500)),
        "feed-only" => SyncStrategy::feed_lazy_pull(),
        "periodic" => SyncStrategy::periodic_only(Duration::from_millis(300)),
        _ => SyncStrategy::active_push(),
    }
}

pub(crate) async fn run(args: Args) {
    let runtime = RactorRuntime::new();
    let cluster = match builder(&args).start(&runtime).await {
        Ok(cluster) => cluster,
        Err(err) => fail("start", err),
    };
    let transport: Arc<dyn dstate::Transport> = cluster.transport();
    let mut node = Node::builder(args.node, runtime.clone())
        .transport(transport)
        // Faster than the default so hung-peer tests finish quickly.
        .config(NodeConfig::new().with_heartbeat(Duration::from_millis(250), 4));
    if let Some(dir) = &args.data_dir {
        match DurablePersistence::open(dir) {
            Ok(store) => node = node.persistence(Arc::new(store)),
            Err(err) => fail("open the durable store", err),
        }
    }
    let node = node.start();
    if let Err(err) = cluster.attach_node(&node).await {
        fail("attach", err);
    }
    let address = args.advertise.unwrap_or_else(|| cluster.local_addr());
    serve_commands(
        node,
        StateConfig::new(strategy(&args.strategy)),
        &address.to_string(),
    )
    .await;
    cluster.shutdown().await;
}
