//! Transactions: sending (any node; followers forward to the leader) and reading
//! them back with their receipts.
//!
//! ```text
//!  eth_sendRawTransaction ─▶ leader here? ─yes─▶ sequencer admission ─▶ hash after commit
//!                               │ no
//!                               └─▶ baton_submitRawTransaction on the leader's RPC
//!  no leader (an election) ─▶ wait and retry, up to FORWARD_PATIENCE
//! ```

use std::time::{Duration, Instant};

use alloy_consensus::{ReceiptEnvelope, Transaction as _, TxEnvelope, transaction::Recovered};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_eth::{Log, Transaction, TransactionReceipt};
use baton_sequencer::AdmissionError;
use baton_storage::StoredReceipt;
use jsonrpsee::{
    core::{RpcResult, async_trait, client::ClientT},
    http_client::HttpClientBuilder,
    proc_macros::rpc,
    rpc_params,
    types::ErrorObjectOwned,
};

use crate::{RpcContext, internal};

/// Largest raw transaction accepted (geth's default pool limit).
pub const MAX_TX_BYTES: usize = 128 * 1024;
/// How long a write waits for a leader before it fails.
const FORWARD_PATIENCE: Duration = Duration::from_secs(2);
const RETRY_EVERY: Duration = Duration::from_millis(50);
/// JSON-RPC code for a refused transaction (geth's).
const REFUSED: i32 = -32000;
/// JSON-RPC code `baton_submitRawTransaction` answers when this node does not lead.
const NOT_LEADER: i32 = -32099;

fn refused(message: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(REFUSED, message.to_string(), None::<()>)
}

#[rpc(server)]
pub trait TxApi {
    #[method(name = "eth_sendRawTransaction")]
    async fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256>;

    /// Leader-only submission (what followers forward to); never forwards again.
    #[method(name = "baton_submitRawTransaction")]
    async fn submit_raw_transaction(&self, raw: Bytes) -> RpcResult<B256>;

    #[method(name = "eth_getTransactionByHash")]
    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>>;

    #[method(name = "eth_getTransactionReceipt")]
    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>>;
}

/// Checks that need no state: size, encoding, type.
fn precheck(raw: &Bytes) -> RpcResult<()> {
    if raw.len() > MAX_TX_BYTES {
        return Err(refused(format!(
            "oversized data: transaction of {} bytes, limit {MAX_TX_BYTES}",
            raw.len()
        )));
    }
    let tx = TxEnvelope::decode_2718(&mut raw.as_ref())
        .map_err(|e| refused(format!("invalid transaction: {e}")))?;
    if tx.is_eip4844() {
        return Err(refused(
            "transaction type not supported: blob transactions (EIP-4844)",
        ));
    }
    Ok(())
}

impl RpcContext {
    async fn submit_here(&self, raw: Bytes) -> Result<B256, AdmissionError> {
        if !self.consensus.is_leader() {
            return Err(AdmissionError::NotLeader);
        }
        self.submit.submit(raw).await
    }

    /// The transaction and receipt records at `hash`'s location, if it is sealed.
    fn sealed_tx(&self, hash: B256) -> RpcResult<Option<SealedTx>> {
        let Some((number, index)) = self.store.tx_location(hash).map_err(internal)? else {
            return Ok(None);
        };
        let block = self
            .store
            .block(number)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("block {number} of tx {hash} is missing")))?;
        let receipts = self
            .store
            .receipts(number)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("receipts of block {number} are missing")))?;
        let index = index as usize;
        let (raw, sender) = block
            .txs
            .get(index)
            .cloned()
            .ok_or_else(|| internal(format!("tx {index} of block {number} is missing")))?;
        let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(internal)?;
        let first_log_index = receipts[..index.min(receipts.len())]
            .iter()
            .map(|r| {
                ReceiptEnvelope::decode_2718(&mut r.receipt.as_slice()).map(|r| r.logs().len())
            })
            .sum::<Result<usize, _>>()
            .map_err(internal)?;
        let stored = receipts
            .get(index)
            .cloned()
            .ok_or_else(|| internal(format!("receipt {index} of block {number} is missing")))?;
        Ok(Some(SealedTx {
            hash,
            block_hash: block.hash,
            number,
            timestamp: block.header.timestamp,
            index: index as u64,
            tx: Recovered::new_unchecked(tx, sender),
            stored,
            first_log_index: first_log_index as u64,
        }))
    }
}

struct SealedTx {
    hash: B256,
    block_hash: B256,
    number: u64,
    timestamp: u64,
    index: u64,
    tx: Recovered<TxEnvelope>,
    stored: StoredReceipt,
    first_log_index: u64,
}

#[async_trait]
impl TxApiServer for RpcContext {
    async fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        precheck(&raw)?;
        let deadline = Instant::now() + FORWARD_PATIENCE;
        loop {
            match self.submit_here(raw.clone()).await {
                Ok(hash) => return Ok(hash),
                Err(AdmissionError::Refused(why)) => return Err(refused(why)),
                Err(AdmissionError::NotLeader) => {}
            }
            if let Some(leader) = self
                .consensus
                .leader()
                .filter(|l| l.id != self.consensus.node_id())
            {
                let forwarded = HttpClientBuilder::default()
                    .request_timeout(FORWARD_PATIENCE)
                    .build(&leader.rpc_url)
                    .map_err(internal)?
                    .request::<B256, _>("baton_submitRawTransaction", rpc_params![raw.clone()])
                    .await;
                match forwarded {
                    Ok(hash) => return Ok(hash),
                    Err(jsonrpsee::core::ClientError::Call(e)) if e.code() != NOT_LEADER => {
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::debug!(leader = leader.id, error = %e, "forwarding failed; retrying")
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(refused("no leader: the cluster is electing one; retry"));
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    async fn submit_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        precheck(&raw)?;
        match self.submit_here(raw).await {
            Ok(hash) => Ok(hash),
            Err(AdmissionError::Refused(why)) => Err(refused(why)),
            Err(AdmissionError::NotLeader) => Err(ErrorObjectOwned::owned(
                NOT_LEADER,
                "not the leader",
                None::<()>,
            )),
        }
    }

    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>> {
        Ok(self.sealed_tx(hash)?.map(|sealed| Transaction {
            effective_gas_price: Some(sealed.stored.effective_gas_price),
            inner: sealed.tx,
            block_hash: Some(sealed.block_hash),
            block_number: Some(sealed.number),
            transaction_index: Some(sealed.index),
            block_timestamp: Some(sealed.timestamp),
        }))
    }

    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>> {
        let Some(sealed) = self.sealed_tx(hash)? else {
            return Ok(None);
        };
        let envelope = ReceiptEnvelope::decode_2718(&mut sealed.stored.receipt.as_slice())
            .map_err(internal)?;
        let mut log_index = sealed.first_log_index;
        let inner = envelope.map_logs(|log| {
            let rpc = Log {
                inner: log,
                block_hash: Some(sealed.block_hash),
                block_number: Some(sealed.number),
                block_timestamp: Some(sealed.timestamp),
                transaction_hash: Some(sealed.hash),
                transaction_index: Some(sealed.index),
                log_index: Some(log_index),
                removed: false,
            };
            log_index += 1;
            rpc
        });
        Ok(Some(TransactionReceipt {
            inner,
            transaction_hash: sealed.hash,
            transaction_index: Some(sealed.index),
            block_hash: Some(sealed.block_hash),
            block_number: Some(sealed.number),
            gas_used: sealed.stored.gas_used,
            effective_gas_price: sealed.stored.effective_gas_price,
            blob_gas_used: None,
            blob_gas_price: None,
            from: sealed.stored.sender,
            to: sealed.tx.inner().to(),
            contract_address: sealed.stored.contract_address,
        }))
    }
}
