//! Transactions: sending (any node; followers forward to the leader) and reading
//! them back with their receipts.
//!
//! ```text
//!  eth_sendRawTransaction ─▶ leader here? ─yes─▶ sequencer admission ─▶ hash after commit
//!                               │ no
//!                               └─▶ over p2p to the leader ─▶ its Submitter::serve_forwarded
//!  no leader (an election) ─▶ wait and retry, up to FORWARD_PATIENCE
//! ```
//!
//! Forwarded writes ride the members' p2p links, not the leader's public JSON-RPC
//! port: connections that strangers hold there never stand in their way.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_consensus::{ReceiptEnvelope, Transaction as _, TxEnvelope, transaction::Recovered};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_eth::{Log, Transaction, TransactionReceipt};
use baton_consensus::{Consensus, ForwardedWrite, WriteRefused};
use baton_execution::PendingBlock;
use baton_sequencer::{AdmissionError, SubmitHandle};
use baton_storage::{Store, StoredReceipt};
use jsonrpsee::{
    core::{RpcResult, async_trait, client::ClientT},
    http_client::{HttpClient, HttpClientBuilder},
    proc_macros::rpc,
    rpc_params,
    types::ErrorObjectOwned,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::{EthHandler, internal, txpool::QueuedTx};

/// Largest raw transaction accepted (geth's default pool limit).
pub const MAX_TX_BYTES: usize = 128 * 1024;
/// How long a write waits for a leader before it fails.
const FORWARD_PATIENCE: Duration = Duration::from_secs(2);
const RETRY_EVERY: Duration = Duration::from_millis(50);
/// JSON-RPC code for a refused transaction (geth's).
const REFUSED: i32 = -32000;
/// JSON-RPC code `baton_submitRawTransaction` answers when this node does not lead.
const NOT_LEADER: i32 = -32099;
/// `eth_sendRawTransactionSync`'s default and largest wait.
const SYNC_TIMEOUT_MS: u64 = 2_000;
const MAX_SYNC_TIMEOUT_MS: u64 = 30_000;

/// One HTTP client to the current leader's JSON-RPC, for what a follower asks it on
/// a caller's behalf (its gap queue), reused so a busy follower holds a few
/// connections to the leader, not one per request.
#[derive(Debug, Clone, Default)]
struct Forwarder {
    client: Arc<Mutex<Option<(String, HttpClient)>>>,
}

impl Forwarder {
    fn client(&self, url: &str) -> RpcResult<HttpClient> {
        let mut cached = self.client.lock();
        if let Some((cached_url, client)) = cached.as_ref()
            && cached_url == url
        {
            return Ok(client.clone());
        }
        let client = HttpClientBuilder::default()
            .request_timeout(FORWARD_PATIENCE)
            .build(url)
            .map_err(internal)?;
        *cached = Some((url.to_string(), client.clone()));
        Ok(client)
    }
}

fn refused(message: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(REFUSED, message.to_string(), None::<()>)
}

#[rpc(server)]
pub trait EthTxApi {
    #[method(name = "eth_sendRawTransaction")]
    async fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256>;

    #[method(name = "eth_getTransactionByHash")]
    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>>;

    /// The signed transaction as sent (EIP-2718 bytes), for a wallet to resend.
    #[method(name = "eth_getRawTransactionByHash")]
    fn raw_transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Bytes>>;

    #[method(name = "eth_getTransactionReceipt")]
    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>>;

    /// EIP-7966: send, then wait for the receipt (up to `timeout_ms`).
    #[method(name = "eth_sendRawTransactionSync")]
    async fn send_raw_transaction_sync(
        &self,
        raw: Bytes,
        timeout_ms: Option<u64>,
    ) -> RpcResult<TransactionReceipt>;
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

/// Where a node's writes go: its own sequencer while it leads, else the leader's
/// (forwarded over p2p), waiting out an election.
#[derive(Debug, Clone)]
pub struct Submitter {
    consensus: Consensus,
    store: Store,
    submit: SubmitHandle,
    forwarder: Forwarder,
}

impl Submitter {
    pub fn new(consensus: Consensus, store: Store, submit: SubmitHandle) -> Self {
        Self {
            consensus,
            store,
            submit,
            forwarder: Forwarder::default(),
        }
    }

    /// Whether this node's applied chain holds `hash`: in the open block or sealed.
    fn applied_here(&self, hash: B256) -> RpcResult<bool> {
        let in_open_block = self
            .consensus
            .chain()
            .borrow()
            .pending
            .as_ref()
            .is_some_and(|p| p.transactions().any(|(_, tx)| tx.hash == hash));
        Ok(in_open_block || self.store.tx_location(hash).map_err(internal)?.is_some())
    }

    /// Read-your-writes: once a forwarded write is acknowledged (the leader applied
    /// it), waits until this node applied it too, so the caller's next read here
    /// (its pending nonce, the transaction) already sees it. A follower normally
    /// trails by one append round trip; after [`FORWARD_PATIENCE`] it answers anyway
    /// (the write is committed; only this node's view lags).
    async fn applied_locally(&self, hash: B256) -> RpcResult<()> {
        let deadline = Instant::now() + FORWARD_PATIENCE;
        let mut chain = self.consensus.chain();
        while !self.applied_here(hash)? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, chain.changed()).await.is_err() {
                tracing::debug!(%hash, "acknowledged by the leader, not applied here yet");
                break;
            }
        }
        Ok(())
    }

    /// Submits to this node's sequencer, if it leads with a quorum behind it (a
    /// leader cut off from the others refuses at once rather than holding the
    /// write until the partition heals); never forwards.
    async fn submit_here(&self, raw: Bytes) -> Result<B256, AdmissionError> {
        if !self.consensus.leads_with_quorum() {
            return Err(AdmissionError::NotLeader);
        }
        self.submit.submit(raw).await
    }

    /// Submits here or forwards to the leader, retrying through an election for
    /// up to [`FORWARD_PATIENCE`].
    pub(crate) async fn send(&self, raw: Bytes) -> RpcResult<B256> {
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
                let left = deadline.saturating_duration_since(Instant::now());
                let forwarded = self
                    .consensus
                    .forward_write(leader.id, raw.clone(), left.max(RETRY_EVERY))
                    .await;
                match forwarded {
                    Ok(Ok(hash)) => {
                        self.applied_locally(hash).await?;
                        return Ok(hash);
                    }
                    Ok(Err(WriteRefused::Refused(why))) => return Err(refused(why)),
                    Ok(Err(WriteRefused::NotLeader)) => {
                        tracing::debug!(
                            leader = leader.id,
                            "forwarded to a former leader; retrying"
                        )
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

    /// What waits on nonce gaps in this node's sequencer (nothing unless it leads).
    pub(crate) fn queued_here(&self) -> Vec<QueuedTx> {
        self.submit
            .queued()
            .into_iter()
            .map(QueuedTx::from)
            .collect()
    }

    /// What waits on nonce gaps in the cluster: the leader's queue, asked of the
    /// leader when that is another node (none while no node leads).
    pub(crate) async fn queued(&self) -> RpcResult<Vec<QueuedTx>> {
        match self.consensus.leader() {
            Some(leader) if leader.id != self.consensus.node_id() => self
                .forwarder
                .client(&leader.rpc_url)?
                .request("baton_queuedTransactions", rpc_params![])
                .await
                .map_err(internal),
            _ => Ok(self.queued_here()),
        }
    }

    /// Answers the writes members forward here (see [`baton_consensus::ForwardedWrite`])
    /// as `baton_submitRawTransaction` would, each on its own task, until this node
    /// stops.
    pub async fn serve_forwarded(self, mut writes: mpsc::Receiver<ForwardedWrite>) {
        while let Some(write) = writes.recv().await {
            let this = self.clone();
            tokio::spawn(async move {
                let result = this.leader_only(write.raw.clone()).await;
                write.answer(result);
            });
        }
    }

    /// `baton_submitRawTransaction`: this node's sequencer only, never forwarded.
    pub(crate) async fn submit_leader_only(&self, raw: Bytes) -> RpcResult<B256> {
        match self.leader_only(raw).await {
            Ok(hash) => Ok(hash),
            Err(WriteRefused::Refused(why)) => Err(refused(why)),
            Err(WriteRefused::NotLeader) => Err(ErrorObjectOwned::owned(
                NOT_LEADER,
                "not the leader",
                None::<()>,
            )),
        }
    }

    /// This node's sequencer only: the precheck, then admission if it leads.
    async fn leader_only(&self, raw: Bytes) -> Result<B256, WriteRefused> {
        precheck(&raw).map_err(|e| WriteRefused::Refused(e.message().to_string()))?;
        self.submit_here(raw).await.map_err(|e| match e {
            AdmissionError::Refused(why) => WriteRefused::Refused(why),
            AdmissionError::NotLeader => WriteRefused::NotLeader,
        })
    }
}

impl EthHandler {
    /// The transaction and receipt records at `hash`'s location, if it is sealed.
    fn sealed_tx(&self, hash: B256) -> RpcResult<Option<SealedTx>> {
        let Some((number, index)) = self.store.tx_location(hash).map_err(internal)? else {
            return Ok(None);
        };
        let index = index as usize;
        Ok(self
            .sealed_txs_in(number, index..index + 1)?
            .and_then(|txs| txs.into_iter().next()))
    }

    /// The transaction at `hash` if it is sealed, else if the open block holds it
    /// (preconfirmed: committed, so final, but its block not sealed yet — its
    /// block hash reads as zero until then, as Base's flashblocks RPC answers).
    fn known_tx(&self, hash: B256) -> RpcResult<Option<SealedTx>> {
        if let Some(sealed) = self.sealed_tx(hash)? {
            return Ok(Some(sealed));
        }
        let Some(pending) = self.consensus.chain().borrow().pending.clone() else {
            return Ok(None);
        };
        let at = pending.transactions().position(|(_, tx)| tx.hash == hash);
        Ok(match at {
            Some(index) => pending_txs(&pending, index..index + 1)?.pop(),
            None => None,
        })
    }

    /// Every transaction of sealed block `number` with its receipt record.
    pub(crate) fn sealed_txs(&self, number: u64) -> RpcResult<Option<Vec<SealedTx>>> {
        self.sealed_txs_in(number, 0..usize::MAX)
    }

    /// The transactions at positions `wanted` of sealed block `number`. Only those
    /// are decoded; the receipts before them are read for their log counts alone
    /// (log indices run across the block), so one receipt lookup costs its
    /// position in the block, not the whole block.
    pub(crate) fn sealed_txs_in(
        &self,
        number: u64,
        wanted: std::ops::Range<usize>,
    ) -> RpcResult<Option<Vec<SealedTx>>> {
        let Some(block) = self.store.block(number).map_err(internal)? else {
            return Ok(None);
        };
        let receipts = match self.store.receipts(number).map_err(internal)? {
            Some(receipts) => receipts,
            // The genesis block is stored with no receipts record: it has no transactions.
            None if block.txs.is_empty() => Vec::new(),
            None => return Err(internal(format!("receipts of block {number} are missing"))),
        };
        if receipts.len() != block.txs.len() {
            return Err(internal(format!(
                "block {number} has {} txs but {} receipts",
                block.txs.len(),
                receipts.len()
            )));
        }
        let mut first_log_index = 0u64;
        let mut out = Vec::new();
        let pairs = block.txs.iter().zip(receipts).enumerate().take(wanted.end);
        for (index, ((raw, sender), stored)) in pairs {
            let receipt =
                ReceiptEnvelope::decode_2718(&mut stored.receipt.as_slice()).map_err(internal)?;
            let logs = receipt.logs().len() as u64;
            if index < wanted.start {
                first_log_index += logs;
                continue;
            }
            let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(internal)?;
            out.push(SealedTx {
                hash: *tx.tx_hash(),
                block_hash: block.hash,
                number,
                timestamp: block.header.timestamp,
                index: index as u64,
                tx: Recovered::new_unchecked(tx, *sender),
                receipt,
                stored,
                first_log_index,
            });
            first_log_index += logs;
        }
        Ok(Some(out))
    }
}

/// The transactions at positions `wanted` of the open block `pending`, as
/// applied: committed (so final), their block hash zero until it is sealed.
pub(crate) fn pending_txs(
    pending: &PendingBlock,
    wanted: std::ops::Range<usize>,
) -> RpcResult<Vec<SealedTx>> {
    let mut first_log_index = 0u64;
    let mut out = Vec::new();
    for (index, ((raw, sender), executed)) in pending.transactions().enumerate().take(wanted.end) {
        let logs = executed.receipt.logs().len() as u64;
        if index < wanted.start {
            first_log_index += logs;
            continue;
        }
        let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(internal)?;
        out.push(SealedTx {
            hash: executed.hash,
            block_hash: B256::ZERO,
            number: pending.start.number,
            timestamp: pending.start.timestamp_ms / 1000,
            index: index as u64,
            tx: Recovered::new_unchecked(tx, *sender),
            receipt: executed.receipt.clone(),
            stored: StoredReceipt {
                receipt: Vec::new(),
                sender: *sender,
                gas_used: executed.gas_used,
                effective_gas_price: executed.effective_gas_price,
                contract_address: executed.contract_address,
            },
            first_log_index,
        });
        first_log_index += logs;
    }
    Ok(out)
}

/// A transaction in a block (sealed, or the open one: then its block hash is
/// zero) with everything its RPC shapes need.
#[derive(Debug, Clone)]
pub(crate) struct SealedTx {
    pub(crate) hash: B256,
    pub(crate) block_hash: B256,
    pub(crate) number: u64,
    timestamp: u64,
    pub(crate) index: u64,
    pub(crate) tx: Recovered<TxEnvelope>,
    pub(crate) receipt: ReceiptEnvelope,
    stored: StoredReceipt,
    first_log_index: u64,
}

impl SealedTx {
    /// The logs the transaction emitted, as `eth_getLogs` shows them.
    pub(crate) fn logs(&self) -> Vec<Log> {
        self.clone().into_rpc_receipt().inner.logs().to_vec()
    }

    /// As geth shows it: a transaction of the open block has no block fields yet.
    pub(crate) fn into_rpc_transaction(self) -> Transaction {
        let sealed = !self.block_hash.is_zero();
        let mut tx = self.into_preconfirmed_transaction();
        if !sealed {
            tx.block_number = None;
            tx.transaction_index = None;
            tx.block_timestamp = None;
        }
        tx
    }

    /// As a preconfirmation shows it: its block number and position are final
    /// before its block is sealed (the block hash is unknown until then).
    pub(crate) fn into_preconfirmed_transaction(self) -> Transaction {
        let sealed = !self.block_hash.is_zero();
        Transaction {
            effective_gas_price: Some(self.stored.effective_gas_price),
            inner: self.tx,
            block_hash: sealed.then_some(self.block_hash),
            block_number: Some(self.number),
            transaction_index: Some(self.index),
            block_timestamp: Some(self.timestamp),
        }
    }

    pub(crate) fn into_rpc_receipt(self) -> TransactionReceipt {
        let mut log_index = self.first_log_index;
        let (block_hash, number, timestamp, hash, index) = (
            self.block_hash,
            self.number,
            self.timestamp,
            self.hash,
            self.index,
        );
        let inner = self.receipt.map_logs(|log| {
            let rpc = Log {
                inner: log,
                block_hash: Some(block_hash),
                block_number: Some(number),
                block_timestamp: Some(timestamp),
                transaction_hash: Some(hash),
                transaction_index: Some(index),
                log_index: Some(log_index),
                removed: false,
            };
            log_index += 1;
            rpc
        });
        TransactionReceipt {
            inner,
            transaction_hash: hash,
            transaction_index: Some(index),
            block_hash: Some(block_hash),
            block_number: Some(number),
            gas_used: self.stored.gas_used,
            effective_gas_price: self.stored.effective_gas_price,
            blob_gas_used: None,
            blob_gas_price: None,
            from: self.stored.sender,
            to: self.tx.inner().to(),
            contract_address: self.stored.contract_address,
        }
    }
}

#[async_trait]
impl EthTxApiServer for EthHandler {
    async fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        self.submitter.send(raw).await
    }

    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Transaction>> {
        Ok(self.known_tx(hash)?.map(SealedTx::into_rpc_transaction))
    }

    fn raw_transaction_by_hash(&self, hash: B256) -> RpcResult<Option<Bytes>> {
        Ok(self.known_tx(hash)?.map(|sealed| {
            alloy_eips::eip2718::Encodable2718::encoded_2718(sealed.tx.inner()).into()
        }))
    }

    /// Sealed receipts only, as geth: a client that waits for a receipt and then
    /// reads `latest` must see the transaction's effects. The preconfirmed receipt
    /// comes from `eth_sendRawTransactionSync`.
    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>> {
        Ok(self.sealed_tx(hash)?.map(SealedTx::into_rpc_receipt))
    }

    async fn send_raw_transaction_sync(
        &self,
        raw: Bytes,
        timeout_ms: Option<u64>,
    ) -> RpcResult<TransactionReceipt> {
        let hash = self.send_raw_transaction(raw).await?;
        let timeout = Duration::from_millis(
            timeout_ms
                .unwrap_or(SYNC_TIMEOUT_MS)
                .min(MAX_SYNC_TIMEOUT_MS),
        );
        let deadline = Instant::now() + timeout;
        let mut chain = self.consensus.chain();
        loop {
            if let Some(known) = self.known_tx(hash)? {
                return Ok(known.into_rpc_receipt());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, chain.changed()).await.is_err() {
                // EIP-7966: code 4, the hash in `data`, so the caller can keep polling.
                return Err(ErrorObjectOwned::owned(
                    4,
                    format!(
                        "the transaction was accepted but not applied on this node within {}ms",
                        timeout.as_millis()
                    ),
                    Some(hash),
                ));
            }
        }
    }
}
