//! The `counter` example: every node adds to its own shard; the cluster total is the sum of
//! the shards, read locally on every node.

use dstate::{StateConfig, SyncStrategy};

use crate::ractor_node::{stop_requested, NodeArgs, RactorNode};
use crate::states::Counter;

/// Run one node: add the node id to its shard every period and print the cluster total.
pub async fn run(args: NodeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let running = RactorNode::start(&args).await?;
    println!(
        "node {} listening on {}",
        args.node.0,
        running.cluster.local_addr()
    );
    let counter = running
        .node
        .register::<Counter>(StateConfig::new(SyncStrategy::active_push()))
        .await?;
    let step = args.node.0;
    let stop = stop_requested(&args);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(args.period);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let mine = counter.mutate(move |c| { c.value += step; c.value }).await?;
                let (total, nodes) = counter.read(|views| {
                    (views.iter().map(|v| v.view.value).sum::<u64>(), views.len())
                });
                println!("node {} own={mine} cluster total={total} over {nodes} nodes", args.node.0);
            }
        }
    }
    running.stop().await;
    println!("node {} stopped", args.node.0);
    Ok(())
}
