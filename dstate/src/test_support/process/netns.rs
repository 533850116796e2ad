//! Network namespaces for partition scenarios: one namespace per node, joined by a bridge in
//! a hub namespace of their own. Cutting a node detaches its link from the bridge while the
//! link stays up, so no packet reaches it or leaves it and neither side's kernel notices:
//! connections hang rather than reset, as when a network between machines fails, and
//! nothing an adapter does (redial, other addresses) gets around it.
//!
//! Needs root and iproute2; [`NetLab::new`] fails with [`ProcessError::Network`] where they
//! are missing. Everything the lab creates is deleted when it is dropped.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::ProcessError;

/// Namespaces for nodes `1..=nodes`; node `n` has the address `10.77.0.n`.
#[derive(Debug)]
pub struct NetLab {
    prefix: String,
    /// Node namespaces created so far (all of them once `new` returned).
    created: u64,
}

impl NetLab {
    /// Build the namespaces and the bridge.
    pub fn new(nodes: u64) -> Result<NetLab, ProcessError> {
        static LABS: AtomicU32 = AtomicU32::new(0);
        if nodes == 0 || nodes > 250 {
            return Err(ProcessError::Network(format!(
                "{nodes} nodes: 1 to 250 fit"
            )));
        }
        let mut lab = NetLab {
            prefix: format!(
                "dst{}x{}",
                std::process::id(),
                LABS.fetch_add(1, Ordering::Relaxed)
            ),
            created: 0,
        };
        let hub = lab.hub();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for node in 1..=nodes {
            let ns = lab.ns(node);
            ip(&["netns", "add", &ns])?;
            lab.created = node;
            let port = format!("v{node}");
            ip(&[
                "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &port, "up"])?;
            let cidr = format!("{}/24", lab.ip(node));
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Name of node `node`'s namespace.
    pub fn ns(&self, node: u64) -> String {
        format!("{}-n{node}", self.prefix)
    }

    fn ip(&self, node: u64) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, u8::try_from(node).unwrap_or(u8::MAX))
    }

    /// Node `node`'s address on `port` (every namespace has its own ports).
    pub fn addr(&self, node: u64, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip(node), port))
    }

    /// A command that runs `program` inside node `node`'s namespace (`ip netns exec`, which
    /// execs it: the child is the program itself).
    pub fn command(&self, node: u64, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec"])
            .arg(self.ns(node))
            .arg(program);
        command
    }

    /// Cut node `node` off from every other node.
    pub fn cut(&self, node: u64) -> Result<(), ProcessError> {
        ip(&[
            "-n",
            &self.hub(),
            "link",
            "set",
            &format!("v{node}"),
            "down",
        ])
    }

    /// Reconnect node `node`.
    pub fn heal(&self, node: u64) -> Result<(), ProcessError> {
        ip(&["-n", &self.hub(), "link", "set", &format!("v{node}"), "up"])
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for node in 1..=self.created {
            let _ = ip(&["netns", "del", &self.ns(node)]);
        }
        let _ = ip(&["netns", "del", &self.hub()]);
    }
}

fn ip(args: &[&str]) -> Result<(), ProcessError> {
    let failed = |why: String| ProcessError::Network(format!("ip {}: {why}", args.join(" ")));
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}
