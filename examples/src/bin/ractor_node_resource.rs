//! One node publishing its load (from `/proc`), printing the cluster table as it sees it.
//!
//! ```text
//! cargo run -p dstate-examples --bin ractor_node_resource -- --node 1 --listen 127.0.0.1:7001
//! cargo run -p dstate-examples --bin ractor_node_resource -- --node 2 --seed 127.0.0.1:7001
//! ```
//!
//! Options: `--node N`, `--listen ADDR`, `--seed ADDR` (repeatable), `--cookie C`,
//! `--period MS`, `--for SECS`, `--stdin`. Stops cleanly (graceful leave) on Ctrl-C.

#[tokio::main]
async fn main() {
    dstate_examples::ractor_node::main_with("ractor_node_resource", dstate_examples::resource::run)
        .await;
}
