//! Scenario mode: a dstate node on kameo answering the core's process-scenario protocol,
//! persisted with the core's durable store.

use std::sync::Arc;
use std::time::Duration;

use dstate::test_support::process::serve_commands;
use dstate::{DurablePersistence, Incarnation, Node, StateConfig, SyncStrategy};
use dstate_kameo::KameoRuntime;

use crate::{start_cluster, Args};

/// Sync period of the periodic strategies in the scenarios.
const PERIOD: Duration = Duration::from_millis(500);

/// A dstate node with the test states, over the kameo cluster.
pub(crate) async fn run(args: Args) -> Result<(), String> {
    let strategy = match args.scenario.as_deref() {
        Some("push") => SyncStrategy::active_push(),
        Some("feed") => SyncStrategy::feed_with_periodic_sync(PERIOD),
        Some("feed-only") => SyncStrategy::feed_lazy_pull(),
        Some("periodic") => SyncStrategy::periodic_only(PERIOD),
        other => return Err(format!("unknown strategy {other:?}")),
    };
    let data_dir = args.data_dir.clone().ok_or("--data-dir is required")?;
    let runtime = KameoRuntime::new();
    let cluster = start_cluster(&args, &runtime).await?;
    let mut builder = dstate::Node::builder(dstate::NodeId(args.node), runtime.clone())
        .transport(cluster.transport());
    if !args.no_persist {
        let store = DurablePersistence::open(&data_dir).map_err(|e| e.to_string())?;
        builder = builder.persistence(Arc::new(store));
    }
    if let Some(incarnation) = args.incarnation {
        builder = builder.incarnation(Incarnation(incarnation));
    }
    let node: Node<KameoRuntime> = builder.start();
    cluster.join_node(&node).await.map_err(|e| e.to_string())?;
    let address = cluster.local_addr().to_string();
    serve_commands(node, StateConfig::new(strategy), &address).await;
    cluster.shutdown().await;
    Ok(())
}
