//! The `node_resource` example: each process is one node publishing its load; every node
//! prints the cluster table as it sees it.

use dstate::{PeerStatus, SimpleHandle, StateConfig, SyncStrategy, ViewMap};

use crate::ractor_node::{stop_requested, NodeArgs, RactorNode};
use crate::states::NodeLoad;

/// Run one node until it is asked to stop, then leave gracefully.
pub async fn run(args: NodeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let running = RactorNode::start(&args).await?;
    println!(
        "node {} listening on {}",
        args.node.0,
        running.cluster.local_addr()
    );
    let load = running
        .node
        .register::<NodeLoad>(StateConfig::new(SyncStrategy::active_push()))
        .await?;
    let stop = stop_requested(&args);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(args.period);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                ticks += 1;
                let sample = NodeLoad::sample(ticks);
                load.mutate(move |l| *l = sample).await?;
                println!("{}", table(&running, &load));
            }
        }
    }
    println!("node {} leaving", args.node.0);
    running.stop().await;
    println!("node {} stopped", args.node.0);
    Ok(())
}

/// One line: every view this node holds, in node order.
fn table(running: &RactorNode, load: &SimpleHandle<NodeLoad>) -> String {
    let me = running.node.id();
    load.read(|views: &ViewMap<NodeLoad>| {
        let mut rows: Vec<_> = views.iter().collect();
        rows.sort_by_key(|v| v.source);
        let cells: Vec<String> = rows
            .iter()
            .map(|v| {
                let status = if v.status == PeerStatus::Up {
                    "up"
                } else {
                    "down"
                };
                format!(
                    "n{} ticks={:<4} load={:.2} rss={:>6.1}MiB {status}",
                    v.source.0,
                    v.view.ticks,
                    f64::from(v.view.load_milli) / 1000.0,
                    v.view.rss_kib as f64 / 1024.0,
                )
            })
            .collect();
        format!("node {} sees {}: {}", me.0, rows.len(), cells.join(" | "))
    })
}
