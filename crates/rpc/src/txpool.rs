//! The `txpool_` namespace, as geth answers it, for what baton has of a pool.
//!
//! An acknowledged transaction is already in a block (the open one: committed, so
//! final), so nothing is ever `pending` in geth's sense. What waits is `queued`:
//! transactions whose nonce is ahead of their sender's, parked by the leader for a
//! moment while the gap fills. A follower asks the leader for them
//! (`baton_queuedTransactions`, answered by the leader alone, never forwarded).

use std::collections::BTreeMap;

use alloy_consensus::{TxEnvelope, transaction::Recovered};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Bytes, U64};
use alloy_rpc_types_eth::Transaction;
use baton_sequencer::Queued;
use jsonrpsee::{
    core::{RpcResult, async_trait},
    proc_macros::rpc,
};
use serde::{Deserialize, Serialize};

use crate::{EthHandler, internal};

/// `txpool_status`: how many transactions wait.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    pending: U64,
    queued: U64,
}

/// Transactions by sender, then by nonce (as a decimal string key, as geth keys them).
type BySender = BTreeMap<Address, BTreeMap<String, Transaction>>;

/// `txpool_content`.
#[derive(Debug, Clone, Serialize)]
pub struct PoolContent {
    pending: BySender,
    queued: BySender,
}

/// `txpool_contentFrom`: one sender's.
#[derive(Debug, Clone, Serialize)]
pub struct SenderContent {
    pending: BTreeMap<String, Transaction>,
    queued: BTreeMap<String, Transaction>,
}

/// One queued transaction as the leader hands it to a follower.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedTx {
    pub sender: Address,
    pub nonce: U64,
    pub raw: Bytes,
}

impl From<Queued> for QueuedTx {
    fn from(queued: Queued) -> Self {
        Self {
            sender: queued.sender,
            nonce: U64::from(queued.nonce),
            raw: queued.raw,
        }
    }
}

#[rpc(server)]
pub trait TxPoolApi {
    #[method(name = "txpool_status")]
    async fn status(&self) -> RpcResult<PoolStatus>;

    #[method(name = "txpool_content")]
    async fn content(&self) -> RpcResult<PoolContent>;

    #[method(name = "txpool_contentFrom")]
    async fn content_from(&self, sender: Address) -> RpcResult<SenderContent>;
}

/// The queued transactions as RPC objects (no block yet), by sender and nonce.
fn by_sender(queued: Vec<QueuedTx>) -> RpcResult<BySender> {
    let mut out = BySender::new();
    for waiting in queued {
        let tx = TxEnvelope::decode_2718(&mut waiting.raw.as_ref()).map_err(internal)?;
        let rpc = Transaction {
            inner: Recovered::new_unchecked(tx, waiting.sender),
            block_hash: None,
            block_number: None,
            transaction_index: None,
            effective_gas_price: None,
            block_timestamp: None,
        };
        out.entry(waiting.sender)
            .or_default()
            .insert(waiting.nonce.to::<u64>().to_string(), rpc);
    }
    Ok(out)
}

#[async_trait]
impl TxPoolApiServer for EthHandler {
    async fn status(&self) -> RpcResult<PoolStatus> {
        let queued = self.submitter.queued().await?;
        Ok(PoolStatus {
            pending: U64::ZERO,
            queued: U64::from(queued.len()),
        })
    }

    async fn content(&self) -> RpcResult<PoolContent> {
        Ok(PoolContent {
            pending: BySender::new(),
            queued: by_sender(self.submitter.queued().await?)?,
        })
    }

    async fn content_from(&self, sender: Address) -> RpcResult<SenderContent> {
        let queued = self
            .submitter
            .queued()
            .await?
            .into_iter()
            .filter(|q| q.sender == sender)
            .collect();
        Ok(SenderContent {
            pending: BTreeMap::new(),
            queued: by_sender(queued)?.remove(&sender).unwrap_or_default(),
        })
    }
}
