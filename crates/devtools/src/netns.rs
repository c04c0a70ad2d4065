//! Each node of a local cluster in a network namespace of its own, joined by a
//! bridge, for real partitions: packet filters inside a node's namespace drop its
//! traffic with chosen members, while the host still reaches every node's RPC over
//! the bridge (as a load balancer in front of a cut-off node would). Needs root.
//!
//! ```text
//!  host ── bridge bt<tag> 10.<net>.254 ─┬─ veth ── namespace baton-<tag>-1: node 1 at 10.<net>.1
//!                                       ├─ veth ── namespace baton-<tag>-2: node 2 at 10.<net>.2
//!                                       └─ veth ── namespace baton-<tag>-3: node 3 at 10.<net>.3
//! ```
//!
//! Everything is removed when the [`Netns`] is dropped.

use std::{net::Ipv4Addr, process::Command};

use baton_primitives::NodeId;
use eyre::{WrapErr, bail};

/// Which of a node's packets with the members it is cut from are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Both ways: neither side hears the other.
    Both,
    /// Only what the node receives: it still sends, and hears nothing back.
    Inbound,
}

/// The namespaces, veths and bridge of one cluster.
#[derive(Debug)]
pub struct Netns {
    tag: String,
    /// The /24 every node lives in: `10.net[0].net[1].0`.
    net: [u8; 2],
    nodes: usize,
}

impl Netns {
    /// Creates a namespace for each of `nodes` members, wired to a new bridge.
    pub fn create(nodes: usize) -> eyre::Result<Self> {
        if nodes == 0 || nodes > 250 {
            bail!("network namespaces for {nodes} nodes: 1 to 250");
        }
        let pid = std::process::id();
        let netns = Self {
            tag: format!("{}", pid % 100_000),
            net: free_net(pid)?,
            nodes,
        };
        netns
            .wire()
            .wrap_err("cannot set up network namespaces (needs root and iproute2/iptables)")?;
        Ok(netns)
    }

    /// Node `id`'s address, where it listens for members and for RPC.
    pub fn ip(&self, id: NodeId) -> Ipv4Addr {
        Ipv4Addr::new(10, self.net[0], self.net[1], id as u8)
    }

    /// Node `id`'s namespace.
    pub fn namespace(&self, id: NodeId) -> String {
        format!("baton-{}-{id}", self.tag)
    }

    /// Cuts node `id` off from `from` (dropping `cut` of its packets with them);
    /// adds to cuts already in place.
    pub fn cut(&self, id: NodeId, from: &[NodeId], cut: Cut) -> eyre::Result<()> {
        for other in from {
            let peer = self.ip(*other).to_string();
            self.in_ns(id, &["iptables", "-A", "INPUT", "-s", &peer, "-j", "DROP"])?;
            if cut == Cut::Both {
                self.in_ns(id, &["iptables", "-A", "OUTPUT", "-d", &peer, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Lifts every cut.
    pub fn heal(&self) -> eyre::Result<()> {
        for id in self.ids() {
            self.in_ns(id, &["iptables", "-F"])?;
        }
        Ok(())
    }

    fn ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        1..=self.nodes as NodeId
    }

    fn bridge(&self) -> String {
        format!("bt{}", self.tag)
    }

    fn wire(&self) -> eyre::Result<()> {
        let bridge = self.bridge();
        let host = format!("10.{}.{}.254/24", self.net[0], self.net[1]);
        run(&["ip", "link", "add", &bridge, "type", "bridge"])?;
        run(&["ip", "addr", "add", &host, "dev", &bridge])?;
        run(&["ip", "link", "set", &bridge, "up"])?;
        // Docker drops forwarded packets by default; bridged ones can pass through
        // that filter too.
        run(&["iptables", "-I", "FORWARD", "-i", &bridge, "-j", "ACCEPT"])?;
        for id in self.ids() {
            let ns = self.namespace(id);
            let outside = format!("{bridge}h{id}");
            let inside = format!("{bridge}n{id}");
            let address = format!("{}/24", self.ip(id));
            run(&["ip", "netns", "add", &ns])?;
            run(&[
                "ip", "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            run(&["ip", "link", "set", &inside, "netns", &ns])?;
            run(&["ip", "link", "set", &outside, "master", &bridge])?;
            run(&["ip", "link", "set", &outside, "up"])?;
            self.in_ns(id, &["ip", "addr", "add", &address, "dev", &inside])?;
            self.in_ns(id, &["ip", "link", "set", &inside, "up"])?;
            self.in_ns(id, &["ip", "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn in_ns(&self, id: NodeId, command: &[&str]) -> eyre::Result<()> {
        let ns = self.namespace(id);
        let mut full = vec!["ip", "netns", "exec", &ns];
        full.extend_from_slice(command);
        run(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let bridge = self.bridge();
        for id in self.ids() {
            // Deleting a namespace deletes its end of the veth, and so the pair.
            let _ = run(&["ip", "netns", "del", &self.namespace(id)]);
        }
        let _ = run(&["iptables", "-D", "FORWARD", "-i", &bridge, "-j", "ACCEPT"]);
        let _ = run(&["ip", "link", "del", &bridge]);
    }
}

/// A 10.x.y.0/24 no route on this host uses yet, chosen from `seed`.
fn free_net(seed: u32) -> eyre::Result<[u8; 2]> {
    let output = Command::new("ip").args(["-4", "route"]).output()?;
    let routes = String::from_utf8_lossy(&output.stdout).to_string();
    for attempt in 0..256u32 {
        let n = seed.wrapping_add(attempt.wrapping_mul(7919));
        let net = [(200 + n % 50) as u8, (n / 50 % 250) as u8];
        if !routes.contains(&format!("10.{}.{}.", net[0], net[1])) {
            return Ok(net);
        }
    }
    bail!("no free 10.x.y.0/24 for the cluster's bridge")
}

fn run(command: &[&str]) -> eyre::Result<()> {
    let output = Command::new(command[0])
        .args(&command[1..])
        .output()
        .wrap_err_with(|| format!("cannot run {}", command[0]))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            command.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
