//! `baton_fault*`: fault injection for the tests and the chaos harness. Served
//! only by a node started with `--fault-injection`; a production node never has it.
//!
//! A partition here cuts the Raft transport (libp2p): blocked members can neither
//! dial this node nor be dialed by it, and open connections to them are closed.
//! The JSON-RPC port stays reachable, as a load balancer in front of a cut-off
//! node would be.

use std::{sync::Arc, time::Duration};

use baton_consensus::Consensus;
use baton_p2p::Network;
use baton_primitives::NodeId;
use jsonrpsee::{core::RpcResult, core::async_trait, proc_macros::rpc};
use tokio::sync::watch;

use crate::{internal, invalid_params};

/// Stops the node's critical task of that name, as a crash of it would; an error
/// names what is unknown.
pub type StopTask = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What the fault methods reach into.
#[derive(Clone)]
pub struct FaultHandler {
    consensus: Consensus,
    network: Network,
    stop_task: StopTask,
    seal_delay: Arc<watch::Sender<Duration>>,
}

impl std::fmt::Debug for FaultHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultHandler").finish_non_exhaustive()
    }
}

impl FaultHandler {
    /// `seal_delay` reaches this node's sequencer.
    pub fn new(
        consensus: Consensus,
        network: Network,
        stop_task: StopTask,
        seal_delay: watch::Sender<Duration>,
    ) -> Self {
        Self {
            consensus,
            network,
            stop_task,
            seal_delay: Arc::new(seal_delay),
        }
    }
}

#[rpc(server)]
pub trait FaultApi {
    /// Cuts this node off from the listed members and reconnects it to every other
    /// one; `[]` heals. The caller applies the mirror image on the other side.
    #[method(name = "baton_faultPartition")]
    async fn partition(&self, blocked: Vec<NodeId>) -> RpcResult<()>;

    /// Ends this node's critical task `name` (e.g. "sequencer"), as if it crashed:
    /// the node must notice, stop and exit non-zero.
    #[method(name = "baton_faultStopTask")]
    fn stop_task(&self, name: String) -> RpcResult<()>;

    /// From now on this node's sequencer waits `ms` milliseconds before sealing
    /// each block it leads, while Raft heartbeats on (a slow, not a dead, leader);
    /// `0` ends it. At most [`MAX_SEAL_DELAY_MS`].
    #[method(name = "baton_faultSealDelay")]
    fn seal_delay(&self, ms: u64) -> RpcResult<()>;
}

/// Longest seal delay `baton_faultSealDelay` takes: a minute.
const MAX_SEAL_DELAY_MS: u64 = 60_000;

#[async_trait]
impl FaultApiServer for FaultHandler {
    async fn partition(&self, blocked: Vec<NodeId>) -> RpcResult<()> {
        let members = self.consensus.members();
        if let Some(unknown) = blocked
            .iter()
            .find(|id| !members.iter().any(|m| m.id == **id))
        {
            return Err(invalid_params(format!("no member {unknown}")));
        }
        for member in members.iter().filter(|m| m.id != self.consensus.node_id()) {
            let (peer, addr) =
                baton_p2p::parse_peer(&member.peer_id, &member.addr).map_err(internal)?;
            if blocked.contains(&member.id) {
                self.network.disallow_peer(peer).await.map_err(internal)?;
            } else {
                self.network
                    .allow_peer(peer, addr)
                    .await
                    .map_err(internal)?;
            }
        }
        tracing::warn!(
            ?blocked,
            "fault injection: Raft links to these members are cut"
        );
        Ok(())
    }

    fn stop_task(&self, name: String) -> RpcResult<()> {
        tracing::warn!(task = %name, "fault injection: stopping a critical task");
        (self.stop_task)(&name).map_err(invalid_params)
    }

    fn seal_delay(&self, ms: u64) -> RpcResult<()> {
        if ms > MAX_SEAL_DELAY_MS {
            return Err(invalid_params(format!(
                "a seal delay of {ms} ms: at most {MAX_SEAL_DELAY_MS}"
            )));
        }
        tracing::warn!(ms, "fault injection: seal delay set");
        self.seal_delay.send_replace(Duration::from_millis(ms));
        Ok(())
    }
}
