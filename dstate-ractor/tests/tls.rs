//! Node-to-node TLS (ractor_cluster's TLS streams, set up by this adapter's listener and
//! dialer): nodes with certificates from the cluster's CA join and exchange frames; a node
//! whose certificate comes from another CA never joins.

mod support;

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use support::{cookie, parse_stats, Node};

/// A CA and a leaf certificate for `dstate.test` signed by it, as PEM files in `dir`;
/// returns (ca, cert, key) paths.
fn issue(dir: &Path, label: &str) -> [PathBuf; 3] {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("ca key");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["dstate.test".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf cert");
    let paths = [
        dir.join(format!("{label}-ca.pem")),
        dir.join(format!("{label}-cert.pem")),
        dir.join(format!("{label}-key.pem")),
    ];
    std::fs::write(&paths[0], ca.pem()).expect("write ca");
    std::fs::write(&paths[1], leaf.pem()).expect("write cert");
    std::fs::write(&paths[2], leaf_key.serialize_pem()).expect("write key");
    paths
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dstate-ractor-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn tls_node(label: &str, id: &str, cookie: &str, files: &[PathBuf; 3], seed: Option<&str>) -> Node {
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["--node", id, "--cookie", cookie, "--tls"];
    args.extend(files.iter().map(String::as_str));
    if let Some(seed) = seed {
        args.extend(["--seed", seed]);
    }
    Node::start(label, &args)
}

#[test]
fn tls_nodes_join_and_exchange_frames_and_a_foreign_ca_never_joins() {
    let dir = temp_dir("tls");
    let cluster = issue(&dir, "cluster");
    let foreign = issue(&dir, "foreign");
    let cookie = cookie("tls");

    let mut a = tls_node("a", "1", &cookie, &cluster, None);
    let mut b = tls_node("b", "2", &cookie, &cluster, Some(&a.addr));
    a.wait_for(0, |l| l.starts_with("JOINED 2 "));
    b.wait_for(0, |l| l.starts_with("JOINED 1 "));
    assert_eq!(b.request("send 1 over-tls", "SENT "), "SENT ok");
    a.wait_for(0, |l| l == "FRAME 2 8 over-tls");

    // Right cookie, wrong CA: the TLS handshake fails, so it never reaches the cookie check.
    let mut outsider = tls_node("outsider", "3", &cookie, &foreign, Some(&a.addr));
    outsider.poll("stats", "STATS ", |l| parse_stats(l)["dial_failures"] >= 3);
    let stats = a.stats();
    assert_eq!(stats["joins"], 1, "only b joined: {stats:?}");
    a.drain();
    assert!(!a.output().iter().any(|l| l.starts_with("JOINED 3")));
    let _ = std::fs::remove_dir_all(&dir);
}
