//! `conductor_` methods, named and shaped after op-conductor's where the meaning
//! matches, so operators' tooling and habits carry over. Reads are open; methods
//! that change anything need `Authorization: Bearer <token>` (the token in the file
//! given by `--admin-token-file`), checked by [`authorize`] on the HTTP request.

use baton_consensus::{ChangeReason, Consensus, MemberInfo, Suffrage};
use baton_primitives::{Member, NodeId};
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
    server::HttpRequest,
    types::ErrorObjectOwned,
};
use serde::Serialize;
use tokio::sync::watch;

use crate::{internal, invalid_params};

/// JSON-RPC error code of a refused admin call.
pub const UNAUTHORIZED: i32 = -32001;

/// What the `conductor_` methods need.
#[derive(Debug, Clone)]
pub struct ConductorHandler {
    consensus: Consensus,
    /// Every voter's readiness, for `conductor_transferLeader`'s choice.
    members: watch::Receiver<Vec<(NodeId, bool)>>,
    /// Whether this node has an admin token (checked per request by [`authorize`]).
    admin_on: bool,
}

impl ConductorHandler {
    pub fn new(
        consensus: Consensus,
        members: watch::Receiver<Vec<(NodeId, bool)>>,
        admin_on: bool,
    ) -> Self {
        Self {
            consensus,
            members,
            admin_on,
        }
    }
}

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
    /// Whether this node leads, with a quorum behind it within its lease.
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

    /// On the leader: adds member `id` as a voter (first as a non-voter that catches
    /// up). `addr` is its p2p address ending in `/p2p/<peer id>`, `version` the
    /// membership version the change is based on (0 = any), `rpcUrl` its JSON-RPC URL.
    #[method(name = "conductor_addServerAsVoter", with_extensions)]
    async fn add_server_as_voter(
        &self,
        id: serde_json::Value,
        addr: String,
        version: Option<u64>,
        rpc_url: Option<String>,
    ) -> RpcResult<()>;

    /// On the leader: adds member `id` as a non-voter (it replicates, never votes or leads).
    #[method(name = "conductor_addServerAsNonvoter", with_extensions)]
    async fn add_server_as_nonvoter(
        &self,
        id: serde_json::Value,
        addr: String,
        version: Option<u64>,
        rpc_url: Option<String>,
    ) -> RpcResult<()>;

    /// On the leader: removes member `id`.
    #[method(name = "conductor_removeServer", with_extensions)]
    async fn remove_server(&self, id: serde_json::Value, version: Option<u64>) -> RpcResult<()>;
}

/// A member id given as a number or a numeric string (op-conductor sends strings).
fn member_id(id: &serde_json::Value) -> RpcResult<NodeId> {
    match id {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|id| *id > 0)
    .ok_or_else(|| invalid_params(format!("server id {id} is not a member id")))
}

/// `/ip4/10.0.0.4/tcp/30301/p2p/12D3…` and an RPC URL -> the member for Raft.
fn new_member(addr: &str, rpc_url: Option<String>) -> RpcResult<Member> {
    let (dial, peer) = addr
        .rsplit_once("/p2p/")
        .ok_or_else(|| invalid_params(format!("addr {addr} must end in /p2p/<peer id>")))?;
    let (peer, _) = baton_p2p::parse_peer(peer, dial)
        .map_err(|e| invalid_params(format!("addr {addr}: {e}")))?;
    let rpc_url = rpc_url
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or_else(|| {
            invalid_params("rpcUrl (the new member's http:// JSON-RPC URL) is required")
        })?;
    Ok(Member {
        peer_id: peer.to_string(),
        p2p_addr: dial.to_string(),
        rpc_url,
    })
}

impl ConductorHandler {
    fn require_admin(&self, extensions: &Extensions) -> RpcResult<()> {
        if !self.admin_on {
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

    /// Refuses unless this node leads, naming the leader to ask instead.
    fn require_leader(&self) -> RpcResult<()> {
        if self.consensus.is_leader() {
            return Ok(());
        }
        let leader = self
            .consensus
            .leader()
            .map_or("none known".to_string(), |l| {
                format!("node {} at {}", l.id, l.rpc_url)
            });
        Err(invalid_params(format!(
            "this node does not lead; ask the leader ({leader})"
        )))
    }

    /// Refuses a change based on a membership version other than the one in force.
    fn require_version(&self, version: Option<u64>) -> RpcResult<()> {
        let now = self.consensus.membership_version();
        match version {
            Some(v) if v != 0 && v != now => Err(invalid_params(format!(
                "membership changed: version {now} is in force, not {v}"
            ))),
            _ => Ok(()),
        }
    }

    async fn add_server(
        &self,
        id: &serde_json::Value,
        addr: &str,
        version: Option<u64>,
        rpc_url: Option<String>,
        voter: bool,
    ) -> RpcResult<()> {
        self.require_leader()?;
        self.require_version(version)?;
        let id = member_id(id)?;
        let member = new_member(addr, rpc_url)?;
        tracing::info!(id, ?member, voter, "adding a member");
        self.consensus
            .add_member(id, member, voter)
            .await
            .map_err(internal)
    }

    /// Hands leadership from this node (which must lead) to `to`.
    async fn transfer_to(&self, to: NodeId) -> RpcResult<()> {
        self.require_leader()?;
        if to == self.consensus.node_id() {
            return Ok(());
        }
        self.consensus
            .hand_over(to, ChangeReason::Transfer)
            .await
            .map_err(internal)
    }
}

#[async_trait]
impl ConductorApiServer for ConductorHandler {
    fn leader(&self) -> RpcResult<bool> {
        Ok(self.consensus.leads_with_quorum())
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
        let id = member_id(&id)?;
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

    async fn add_server_as_voter(
        &self,
        extensions: &Extensions,
        id: serde_json::Value,
        addr: String,
        version: Option<u64>,
        rpc_url: Option<String>,
    ) -> RpcResult<()> {
        self.require_admin(extensions)?;
        self.add_server(&id, &addr, version, rpc_url, true).await
    }

    async fn add_server_as_nonvoter(
        &self,
        extensions: &Extensions,
        id: serde_json::Value,
        addr: String,
        version: Option<u64>,
        rpc_url: Option<String>,
    ) -> RpcResult<()> {
        self.require_admin(extensions)?;
        self.add_server(&id, &addr, version, rpc_url, false).await
    }

    async fn remove_server(
        &self,
        extensions: &Extensions,
        id: serde_json::Value,
        version: Option<u64>,
    ) -> RpcResult<()> {
        self.require_admin(extensions)?;
        self.require_leader()?;
        self.require_version(version)?;
        let id = member_id(&id)?;
        if id == self.consensus.node_id() {
            return Err(invalid_params(
                "the leader cannot remove itself: transfer leadership first",
            ));
        }
        tracing::info!(id, "removing a member");
        self.consensus.remove_member(id).await.map_err(internal)
    }
}
