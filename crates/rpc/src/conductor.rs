//! `conductor_` methods, named and shaped after op-conductor's where the meaning
//! matches, so operators' tooling and habits carry over. Reads are open; methods
//! that change anything need `Authorization: Bearer <token>` (the token in the file
//! given by `--admin-token-file`), checked by [`authorize`] on the HTTP request.

use baton_consensus::{ChangeReason, MemberInfo, Suffrage};
use baton_primitives::NodeId;
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
    server::HttpRequest,
    types::ErrorObjectOwned,
};
use serde::Serialize;

use crate::{RpcContext, internal, invalid_params};

/// JSON-RPC error code of a refused admin call.
pub const UNAUTHORIZED: i32 = -32001;

/// op-conductor's `ClusterMembership`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterMembership {
    pub servers: Vec<MemberInfo>,
    pub version: u64,
}

/// Marks an HTTP request that carried this node's admin token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authorized;

/// Marks `request` [`Authorized`] when its bearer token equals `token`.
pub(crate) fn authorize(token: Option<&str>, mut request: HttpRequest) -> HttpRequest {
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if let (Some(token), Some(presented)) = (token, presented)
        && same_secret(token.as_bytes(), presented.trim().as_bytes())
    {
        request.extensions_mut().insert(Authorized);
    }
    request
}

/// Compares without stopping at the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[rpc(server)]
pub trait ConductorApi {
    /// Whether this node leads.
    #[method(name = "conductor_leader")]
    fn leader(&self) -> RpcResult<bool>;

    /// The leader as this node knows it (`null` during an election).
    #[method(name = "conductor_leaderWithID")]
    fn leader_with_id(&self) -> RpcResult<Option<MemberInfo>>;

    #[method(name = "conductor_clusterMembership")]
    fn cluster_membership(&self) -> RpcResult<ClusterMembership>;

    /// Whether the chain this node applies is moving (no stall).
    #[method(name = "conductor_sequencerHealthy")]
    fn sequencer_healthy(&self) -> RpcResult<bool>;

    /// Whether this node's automatic leadership actions run (not paused).
    #[method(name = "conductor_active")]
    fn active(&self) -> RpcResult<bool>;

    #[method(name = "conductor_paused")]
    fn paused(&self) -> RpcResult<bool>;

    /// Stops rotation, step-down and the not-ready hand-over on this node.
    #[method(name = "conductor_pause", with_extensions)]
    fn pause(&self) -> RpcResult<()>;

    #[method(name = "conductor_resume", with_extensions)]
    fn resume(&self) -> RpcResult<()>;

    /// On the leader: hands leadership to the next ready member.
    #[method(name = "conductor_transferLeader", with_extensions)]
    async fn transfer_leader(&self) -> RpcResult<()>;

    /// On the leader: hands leadership to member `id` (`addr`, when given, must be
    /// its p2p address).
    #[method(name = "conductor_transferLeaderToServer", with_extensions)]
    async fn transfer_leader_to_server(
        &self,
        id: serde_json::Value,
        addr: Option<String>,
    ) -> RpcResult<()>;
}

impl RpcContext {
    fn require_admin(&self, extensions: &Extensions) -> RpcResult<()> {
        if self.admin_token.is_none() {
            return Err(ErrorObjectOwned::owned(
                UNAUTHORIZED,
                "admin methods are off on this node: start it with --admin-token-file",
                None::<()>,
            ));
        }
        if extensions.get::<Authorized>().is_none() {
            return Err(ErrorObjectOwned::owned(
                UNAUTHORIZED,
                "unauthorized: this method needs the header 'Authorization: Bearer <token>' with the node's admin token",
                None::<()>,
            ));
        }
        Ok(())
    }

    /// Hands leadership from this node (which must lead) to `to`.
    async fn transfer_to(&self, to: NodeId) -> RpcResult<()> {
        if !self.consensus.is_leader() {
            let leader = self
                .consensus
                .leader()
                .map_or("none known".to_string(), |l| {
                    format!("node {} at {}", l.id, l.rpc_url)
                });
            return Err(invalid_params(format!(
                "this node does not lead; ask the leader ({leader})"
            )));
        }
        if to == self.consensus.node_id() {
            return Ok(());
        }
        let term = self.consensus.status().term;
        self.consensus
            .note_handover(term, to, ChangeReason::Transfer);
        self.consensus
            .raft()
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(internal)
    }
}

#[async_trait]
impl ConductorApiServer for RpcContext {
    fn leader(&self) -> RpcResult<bool> {
        Ok(self.consensus.is_leader())
    }

    fn leader_with_id(&self) -> RpcResult<Option<MemberInfo>> {
        Ok(self.consensus.leader())
    }

    fn cluster_membership(&self) -> RpcResult<ClusterMembership> {
        Ok(ClusterMembership {
            servers: self.consensus.members(),
            version: self.consensus.membership_version(),
        })
    }

    fn sequencer_healthy(&self) -> RpcResult<bool> {
        Ok(self.consensus.status().healthy)
    }

    fn active(&self) -> RpcResult<bool> {
        Ok(!self.consensus.paused())
    }

    fn paused(&self) -> RpcResult<bool> {
        Ok(self.consensus.paused())
    }

    fn pause(&self, extensions: &Extensions) -> RpcResult<()> {
        self.require_admin(extensions)?;
        self.consensus.set_paused(true);
        tracing::warn!("conductor paused: no rotation, step-down or not-ready hand-over");
        Ok(())
    }

    fn resume(&self, extensions: &Extensions) -> RpcResult<()> {
        self.require_admin(extensions)?;
        self.consensus.set_paused(false);
        tracing::info!("conductor resumed");
        Ok(())
    }

    async fn transfer_leader(&self, extensions: &Extensions) -> RpcResult<()> {
        self.require_admin(extensions)?;
        let me = self.consensus.node_id();
        let ready = self.members.borrow().clone();
        let to = baton_sequencer::policy::successor(me, ready)
            .ok_or_else(|| invalid_params("no other member is ready to lead"))?;
        self.transfer_to(to).await
    }

    async fn transfer_leader_to_server(
        &self,
        extensions: &Extensions,
        id: serde_json::Value,
        addr: Option<String>,
    ) -> RpcResult<()> {
        self.require_admin(extensions)?;
        let id: NodeId = match &id {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| invalid_params(format!("server id {id} is not a member id")))?;
        let member = self
            .consensus
            .members()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| invalid_params(format!("no member {id}")))?;
        if member.suffrage != Suffrage::Voter {
            return Err(invalid_params(format!(
                "member {id} does not vote, so cannot lead"
            )));
        }
        if let Some(addr) = addr.filter(|a| !a.is_empty() && *a != member.addr) {
            return Err(invalid_params(format!(
                "member {id} is at {}, not {addr}",
                member.addr
            )));
        }
        self.transfer_to(id).await
    }
}
