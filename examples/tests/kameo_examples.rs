//! The kameo examples run: each starts a three-process cluster and exits 0 once the nodes
//! agree.

use std::process::Command;

fn run_cluster(bin: &str, extra: &[&str]) {
    let key = format!("kameo-examples-test-{}", std::process::id());
    let output = Command::new(bin)
        .args(["--cluster", "3", "--key", &key])
        .args(extra)
        .output()
        .expect("start example");
    assert!(
        output.status.success(),
        "{bin} exited with {}:\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn kameo_counter_cluster_agrees() {
    run_cluster(
        env!("CARGO_BIN_EXE_kameo_counter"),
        &["--increments", "5", "--interval-ms", "50"],
    );
}

#[test]
fn kameo_node_resource_cluster_agrees() {
    run_cluster(
        env!("CARGO_BIN_EXE_kameo_node_resource"),
        &["--period-ms", "100"],
    );
}
