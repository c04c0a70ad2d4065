//! `baton_` methods: this node's own view of itself, and the leader-only
//! submission followers forward writes to (and the queue `txpool_*` reads).

use alloy_primitives::{B256, Bytes};
use baton_consensus::{Consensus, NodeStatus};
use jsonrpsee::{
    core::{RpcResult, async_trait},
    proc_macros::rpc,
};

use crate::{Submitter, txpool::QueuedTx};

/// What the `baton_` methods need.
#[derive(Debug, Clone)]
pub struct BatonHandler {
    consensus: Consensus,
    submitter: Submitter,
}

impl BatonHandler {
    pub fn new(consensus: Consensus, submitter: Submitter) -> Self {
        Self {
            consensus,
            submitter,
        }
    }
}

#[rpc(server)]
pub trait BatonApi {
    /// Id, role, term, leader, applied/committed index, head.
    #[method(name = "baton_nodeStatus")]
    fn node_status(&self) -> RpcResult<NodeStatus>;

    /// Leader-only submission (what followers forward to); never forwards again.
    #[method(name = "baton_submitRawTransaction")]
    async fn submit_raw_transaction(&self, raw: Bytes) -> RpcResult<B256>;

    /// This node's transactions waiting on nonce gaps (`txpool_*` on a follower
    /// asks the leader); never forwards.
    #[method(name = "baton_queuedTransactions")]
    fn queued_transactions(&self) -> RpcResult<Vec<QueuedTx>>;
}

#[async_trait]
impl BatonApiServer for BatonHandler {
    fn node_status(&self) -> RpcResult<NodeStatus> {
        Ok(self.consensus.status())
    }

    async fn submit_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        self.submitter.submit_leader_only(raw).await
    }

    fn queued_transactions(&self) -> RpcResult<Vec<QueuedTx>> {
        Ok(self.submitter.queued_here())
    }
}
