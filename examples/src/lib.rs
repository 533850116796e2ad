//! Runnable dstate examples: state types and the per-runtime node set-up they share.
//!
//! Binaries (`cargo run -p dstate-examples --bin <name>`):
//!
//! * `demo`: a real 3-node cluster on this machine over TCP (ractor), in one command.
//! * `ractor_node_resource`: one node publishing its load, printing the cluster table.
//! * `ractor_counter`: one node of a cluster-wide counter.
//! * `kameo_node_resource`, `kameo_counter`: the same on kameo (`--cluster N` runs N locally).

pub mod counter;
pub mod kameo_node;
pub mod ractor_node;
pub mod resource;
pub mod states;
