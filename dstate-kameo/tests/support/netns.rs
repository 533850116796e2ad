//! Network namespaces for partition tests: one namespace per node, joined by a bridge in a
//! hub namespace of their own; cutting a node takes its link into the bridge down, so no
//! packet reaches it or leaves it (connections hang rather than reset, as in a real cut).
//! Needs root and iproute2; [`Lab::new`] returns `None` (and says why) where they are
//! missing. Everything it creates is deleted on drop.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A set of node namespaces behind one bridge.
pub(crate) struct Lab {
    prefix: String,
    nodes: usize,
}

impl Lab {
    /// `nodes` namespaces at 10.77.0.1, 10.77.0.2, ... or `None` if this machine cannot
    /// make namespaces.
    pub(crate) fn new(nodes: usize) -> Option<Lab> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "dsk{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab { prefix, nodes: 0 };
        let hub = lab.hub();
        if let Err(why) = ip(&["netns", "add", &hub]) {
            eprintln!("network namespaces unavailable ({why}); needs root and iproute2");
            return None;
        }
        let mut lab = lab;
        let built = (|| {
            ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
            ip(&["-n", &hub, "link", "set", "br0", "up"])?;
            for i in 0..nodes {
                let ns = lab.ns(i);
                ip(&["netns", "add", &ns])?;
                lab.nodes = i + 1;
                let port = format!("v{i}");
                ip(&[
                    "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ])?;
                ip(&["-n", &hub, "link", "set", &port, "master", "br0"])?;
                ip(&["-n", &hub, "link", "set", &port, "up"])?;
                let cidr = format!("{}/24", lab.ip(i));
                ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
                ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
                ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            }
            Ok::<(), String>(())
        })();
        match built {
            Ok(()) => Some(lab),
            Err(why) => {
                eprintln!("could not build the namespace lab: {why}");
                None
            }
        }
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Namespace of node `i`.
    pub(crate) fn ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, u8::try_from(i + 1).expect("at most 254 nodes"))
    }

    /// Address of node `i` on `port` (each namespace has its own ports).
    pub(crate) fn addr(&self, i: usize, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip(i), port))
    }

    /// Cut node `i` off from every other node.
    pub(crate) fn cut(&self, i: usize) {
        ip(&["-n", &self.hub(), "link", "set", &format!("v{i}"), "down"]).expect("cut");
    }

    /// Reconnect node `i`.
    pub(crate) fn heal(&self, i: usize) {
        ip(&["-n", &self.hub(), "link", "set", &format!("v{i}"), "up"]).expect("heal");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = ip(&["netns", "del", &self.ns(i)]);
        }
        let _ = ip(&["netns", "del", &self.hub()]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
