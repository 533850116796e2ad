//! One node of a cluster-wide counter on ractor.
//!
//! ```text
//! cargo run -p dstate-examples --bin ractor_counter -- --node 1 --listen 127.0.0.1:7001
//! cargo run -p dstate-examples --bin ractor_counter -- --node 2 --seed 127.0.0.1:7001
//! ```
//!
//! Options: `--node N`, `--listen ADDR`, `--seed ADDR` (repeatable), `--cookie C`,
//! `--period MS`, `--for SECS`, `--stdin`. Stops cleanly on Ctrl-C.

#[tokio::main]
async fn main() {
    dstate_examples::ractor_node::main_with("ractor_counter", dstate_examples::counter::run).await;
}
