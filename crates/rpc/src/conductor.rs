//! `conductor_` methods, named and shaped after op-conductor's where the meaning
//! matches, so operators' tooling and habits carry over.

use baton_consensus::MemberInfo;
use jsonrpsee::{core::RpcResult, proc_macros::rpc};
use serde::Serialize;

use crate::RpcContext;

/// op-conductor's `ClusterMembership`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterMembership {
    pub servers: Vec<MemberInfo>,
    pub version: u64,
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
}

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
}
