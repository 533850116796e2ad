//! One node publishing its load (from `/proc`), printing the cluster table as it sees it.
//!
//! ```text
//! cargo run -p dstate-examples --bin ractor_node_resource -- --node 1 --listen 127.0.0.1:7001
//! cargo run -p dstate-examples --bin ractor_node_resource -- --node 2 --seed 127.0.0.1:7001
//! ```
//!
//! Options: `--node N`, `--listen ADDR`, `--seed ADDR` (repeatable), `--cookie C`,
//! `--period MS`, `--for SECS`, `--stdin`. Stops cleanly (graceful leave) on Ctrl-C.

use dstate_examples::ractor_node::{init_tracing, NodeArgs};

#[tokio::main]
async fn main() {
    init_tracing();
    let args = match NodeArgs::parse(std::env::args().skip(1)) {
        Ok((args, rest)) if rest.is_empty() => args,
        Ok((_, rest)) => exit(&format!("unknown arguments: {rest:?}")),
        Err(err) => exit(&err),
    };
    if let Err(err) = dstate_examples::resource::run(args).await {
        exit(&err.to_string());
    }
}

fn exit(message: &str) -> ! {
    eprintln!("ractor_node_resource: {message}");
    std::process::exit(2);
}
