//! `baton_` methods: this node's own view of itself.

use baton_consensus::NodeStatus;
use jsonrpsee::{core::RpcResult, proc_macros::rpc};

use crate::RpcContext;

#[rpc(server)]
pub trait BatonApi {
    /// Id, role, term, leader, applied/committed index, head.
    #[method(name = "baton_nodeStatus")]
    fn node_status(&self) -> RpcResult<NodeStatus>;
}

impl BatonApiServer for RpcContext {
    fn node_status(&self) -> RpcResult<NodeStatus> {
        Ok(self.consensus.status())
    }
}
