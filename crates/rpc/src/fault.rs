//! `baton_faultPartition`: fault injection for the chaos harness. Served only by a
//! node started with `--fault-injection`; a production node never has it.
//!
//! A partition here cuts the Raft transport (libp2p): blocked members can neither
//! dial this node nor be dialed by it, and open connections to them are closed.
//! The JSON-RPC port stays reachable, as a load balancer in front of a cut-off
//! node would be.

use baton_p2p::{Multiaddr, PeerId};
use baton_primitives::NodeId;
use jsonrpsee::{core::RpcResult, core::async_trait, proc_macros::rpc};

use crate::{RpcContext, internal, invalid_params};

#[rpc(server)]
pub trait FaultApi {
    /// Cuts this node off from the listed members and reconnects it to every other
    /// one; `[]` heals. The caller applies the mirror image on the other side.
    #[method(name = "baton_faultPartition")]
    async fn partition(&self, blocked: Vec<NodeId>) -> RpcResult<()>;
}

#[async_trait]
impl FaultApiServer for RpcContext {
    async fn partition(&self, blocked: Vec<NodeId>) -> RpcResult<()> {
        let members = self.consensus.members();
        if let Some(unknown) = blocked
            .iter()
            .find(|id| !members.iter().any(|m| m.id == **id))
        {
            return Err(invalid_params(format!("no member {unknown}")));
        }
        for member in members.iter().filter(|m| m.id != self.consensus.node_id()) {
            let peer: PeerId = member.peer_id.parse().map_err(internal)?;
            if blocked.contains(&member.id) {
                self.network.disallow_peer(peer).await.map_err(internal)?;
            } else {
                let addr: Multiaddr = member.addr.parse().map_err(internal)?;
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
}
