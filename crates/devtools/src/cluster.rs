//! A local cluster of `baton node` child processes: what `baton devnet`, the
//! failover benchmark and the process-level tests run.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use baton_consensus::{NodeStatus, Role};
use baton_p2p::load_or_create_key;
use baton_primitives::NodeId;
use eyre::{WrapErr, bail, eyre};

use baton_node::config::{MemberEntry, NodeArgs};

use crate::{client, netns::Netns};

/// A node's ports in a namespace of its own (its address is its own).
const DEFAULT_RPC_PORT: u16 = 8545;
const DEFAULT_P2P_PORT: u16 = 30301;

/// How to lay out a local cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The `baton` binary to run.
    pub binary: PathBuf,
    pub nodes: usize,
    pub data_dir: PathBuf,
    /// First RPC port (node i gets `rpc_port + i - 1`); 0 picks free ports.
    pub rpc_port: u16,
    /// First p2p port, likewise; 0 picks free ports.
    pub p2p_port: u16,
    pub block_time_ms: u64,
    /// Extra settings written into every node's config file.
    pub extra: NodeArgs,
    /// Each node in a network namespace of its own (see [`Netns`]; needs root), at
    /// its own address with the default ports, instead of all on 127.0.0.1.
    pub netns: bool,
    /// The last this many nodes join the running cluster (`join = true`) instead
    /// of founding it: the founders do not list them, and they wait to be added.
    pub joiners: usize,
}

/// One member of a local cluster.
#[derive(Debug)]
pub struct ClusterNode {
    pub id: NodeId,
    pub rpc_url: String,
    /// Its p2p address, ending in `/p2p/<peer id>` (as `conductor_addServer*` take it).
    pub p2p_addr: String,
    /// It founds the cluster (else it waits to be added).
    pub founder: bool,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl ClusterNode {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// Child processes of one local cluster; all are killed when it is dropped.
#[derive(Debug)]
pub struct Cluster {
    binary: PathBuf,
    pub nodes: Vec<ClusterNode>,
    /// The nodes' namespaces, when they run in their own (dropped after the nodes).
    netns: Option<Netns>,
}

/// A port on 127.0.0.1 that nothing listens on now, chosen below Linux's
/// ephemeral range (32768+): a port the kernel hands out for port-0 binds is also
/// handed to outgoing connections, so between our check and the node's bind an
/// outgoing libp2p dial could take it.
pub fn unused_port() -> eyre::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Processes start far apart in the range; within one, ports never repeat.
    let offset = std::process::id().wrapping_mul(7919);
    for _ in 0..PORT_SPAN {
        let port = PORT_FLOOR
            + ((offset.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))) % PORT_SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!(
        "no unused port in {PORT_FLOOR}..{}",
        u32::from(PORT_FLOOR) + PORT_SPAN
    )
}

const PORT_FLOOR: u16 = 20_000;
const PORT_SPAN: u32 = 12_000;

fn port(base: u16, i: usize) -> eyre::Result<u16> {
    if base == 0 {
        unused_port()
    } else {
        u16::try_from(usize::from(base) + i).map_err(|_| eyre!("port {base} + {i} is out of range"))
    }
}

impl Cluster {
    /// Creates every node's key and config file under `spec.data_dir` (keeping
    /// keys that already exist, so a cluster can be restarted on the same dir).
    pub fn create(spec: &ClusterSpec) -> eyre::Result<Self> {
        if spec.nodes <= spec.joiners {
            bail!("a cluster needs at least one founding node");
        }
        let founders = spec.nodes - spec.joiners;
        let netns = spec.netns.then(|| Netns::create(spec.nodes)).transpose()?;
        let mut members = Vec::new();
        let mut listen = Vec::new();
        for i in 0..spec.nodes {
            let id = i as NodeId + 1;
            let dir = spec.data_dir.join(format!("node{id}"));
            let key = load_or_create_key(&dir.join("node.key"))?;
            let (ip, rpc, p2p) = match &netns {
                Some(netns) => (netns.ip(id), DEFAULT_RPC_PORT, DEFAULT_P2P_PORT),
                None => (
                    Ipv4Addr::LOCALHOST,
                    port(spec.rpc_port, i)?,
                    port(spec.p2p_port, i)?,
                ),
            };
            members.push(MemberEntry {
                id,
                peer_id: key.public().to_peer_id().to_string(),
                p2p_addr: format!("/ip4/{ip}/tcp/{p2p}"),
                rpc_url: format!("http://{ip}:{rpc}"),
            });
            listen.push((dir, SocketAddr::from((ip, rpc))));
        }
        let mut nodes = Vec::new();
        for (i, (member, (dir, rpc))) in members.iter().zip(listen).enumerate() {
            let founder = i < founders;
            let mut own = NodeArgs::default();
            own.cluster.id = Some(member.id);
            own.cluster.p2p_addr = Some(member.p2p_addr.clone());
            own.cluster.members = if founder {
                members[..founders].to_vec()
            } else {
                members.clone()
            };
            own.cluster.join = (!founder).then_some(true);
            own.data.data_dir = Some(dir.clone());
            own.rpc.rpc_addr = Some(rpc);
            own.timing.block_time_ms = Some(spec.block_time_ms);
            let file = spec.extra.clone().overridden_by(own)?;
            let config_path = dir.join("baton.toml");
            fs::write(&config_path, file.to_toml()?)
                .wrap_err_with(|| format!("cannot write {}", config_path.display()))?;
            nodes.push(ClusterNode {
                id: member.id,
                rpc_url: member.rpc_url.clone(),
                p2p_addr: format!("{}/p2p/{}", member.p2p_addr, member.peer_id),
                founder,
                log_path: dir.join("node.log"),
                config_path,
                child: None,
            });
        }
        Ok(Self {
            binary: spec.binary.clone(),
            nodes,
            netns,
        })
    }

    /// The nodes' namespaces, if they run in their own.
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    fn node_mut(&mut self, id: NodeId) -> eyre::Result<&mut ClusterNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| eyre!("no node {id} in this cluster"))
    }

    pub fn node(&self, id: NodeId) -> eyre::Result<&ClusterNode> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| eyre!("no node {id} in this cluster"))
    }

    /// Starts node `id`'s process (its log goes to `node.log` in its dir).
    pub fn start(&mut self, id: NodeId) -> eyre::Result<()> {
        let binary = self.binary.clone();
        let node = self.node(id)?;
        if node.child.is_some() {
            bail!("node {id} is already running");
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)?;
        let config_path = node.config_path.clone();
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                // `ip netns exec` execs the binary: the node keeps this pid.
                command
                    .args(["netns", "exec", &netns.namespace(id)])
                    .arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command
            .arg("node")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl(2) is async-signal-safe; the closure allocates nothing.
        // A node dies with the tool that started it, even one killed outright,
        // so no orphaned node holds the cluster's ports.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .wrap_err_with(|| format!("cannot run {}", binary.display()))?;
        self.node_mut(id)?.child = Some(child);
        Ok(())
    }

    /// Starts every founding node (joiners are started when they are to be added).
    pub fn start_all(&mut self) -> eyre::Result<()> {
        let ids: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.founder)
            .map(|n| n.id)
            .collect();
        ids.into_iter().try_for_each(|id| self.start(id))
    }

    /// SIGKILLs node `id` and reaps it: a crash, not a shutdown.
    pub fn kill(&mut self, id: NodeId) -> eyre::Result<()> {
        let node = self.node_mut(id)?;
        let mut child = node
            .child
            .take()
            .ok_or_else(|| eyre!("node {id} is not running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Sends `signal` to node `id`'s process: SIGSTOP stalls it (a hang, not a
    /// crash), SIGCONT resumes it.
    pub fn signal(&self, id: NodeId, signal: libc::c_int) -> eyre::Result<()> {
        let pid = self
            .node(id)?
            .pid()
            .ok_or_else(|| eyre!("node {id} is not running"))?;
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
            bail!(
                "cannot signal node {id}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// Asks every node to stop (SIGTERM), then kills what is left after `grace`.
    pub fn stop_all(&mut self, grace: Duration) {
        for node in &self.nodes {
            if let Some(pid) = node.pid() {
                // SAFETY: kill(2) with a pid we spawned and have not reaped.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + grace;
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Nodes whose process has exited since the last call, with how it exited.
    pub fn reap(&mut self) -> Vec<(NodeId, ExitStatus)> {
        let mut exited = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                exited.push((node.id, status));
                node.child = None;
            }
        }
        exited
    }

    /// An error naming the first node whose process has exited since the last
    /// [`reap`](Self::reap), with its log.
    fn fail_on_exit(&mut self) -> eyre::Result<()> {
        match self.reap().into_iter().next() {
            Some((id, status)) => bail!(
                "node {id} exited ({status}); see {}",
                self.node(id)?.log_path.display()
            ),
            None => Ok(()),
        }
    }

    /// `baton_nodeStatus` of every running node (`None` where it does not answer).
    pub async fn statuses(&self) -> Vec<(NodeId, Option<NodeStatus>)> {
        let polls = self.nodes.iter().map(|node| async move {
            if !node.is_running() {
                return (node.id, None);
            }
            (
                node.id,
                client::node_status(&node.rpc_url, Duration::from_millis(500))
                    .await
                    .ok(),
            )
        });
        futures::future::join_all(polls).await
    }

    /// The head block number of every running node that answers.
    pub async fn heads(&self) -> Vec<(NodeId, u64)> {
        self.statuses()
            .await
            .into_iter()
            .filter_map(|(id, s)| s.map(|s| (id, s.head_number)))
            .collect()
    }

    /// The highest head any running node reports, if one answers.
    pub async fn max_head(&self) -> Option<u64> {
        self.heads().await.into_iter().map(|(_, h)| h).max()
    }

    /// Waits until some running node reports itself leader, and returns it.
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> eyre::Result<NodeId> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((id, _)) = self
                .statuses()
                .await
                .into_iter()
                .find(|(_, s)| s.as_ref().is_some_and(|s| s.role == Role::Leader))
            {
                return Ok(id);
            }
            self.fail_on_exit()?;
            if Instant::now() > deadline {
                bail!("no leader within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node's head is at least `number`; fails as soon
    /// as a node exits meanwhile.
    pub async fn wait_for_height(&mut self, number: u64, timeout: Duration) -> eyre::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses = self.statuses().await;
            let running = self.nodes.iter().filter(|n| n.is_running()).count();
            let there = statuses
                .iter()
                .filter(|(_, s)| s.as_ref().is_some_and(|s| s.head_number >= number))
                .count();
            if there == running {
                return Ok(());
            }
            self.fail_on_exit()?;
            if Instant::now() > deadline {
                bail!("nodes did not reach block {number} within {timeout:?}: {statuses:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The last `lines` lines of a node's log, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Checks that every running node holds the same hash at every height up to the
/// lowest head among them; returns that height.
pub async fn check_identical_chains(cluster: &Cluster) -> eyre::Result<u64> {
    let running: Vec<(NodeId, String)> = cluster
        .nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| (n.id, n.rpc_url.clone()))
        .collect();
    client::identical_chains(&running).await
}
