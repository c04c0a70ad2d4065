//! The `eth_` namespace's handler, and its block methods. The other `eth_` methods
//! are in `state`, `tx`, `call`, `logs`, `filters` and `pubsub`, on the same handler.

use alloy_consensus::TxReceipt;
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U256, keccak256};
use alloy_rpc_types_eth::{Block, BlockTransactions, Header, Transaction, TransactionReceipt};
use baton_consensus::Consensus;
use baton_primitives::SealedBlock;
use baton_storage::Store;
use jsonrpsee::{core::RpcResult, proc_macros::rpc};

use crate::{
    ExecPool,
    filters::Filters,
    internal,
    logs::QueryLimits,
    outbox::Outboxes,
    tx::{SealedTx, Submitter, pending_txs},
};

/// What the `eth_` methods read and write through.
#[derive(Debug, Clone)]
pub struct EthHandler {
    pub(crate) chain_id: u64,
    /// The applied chain's view (head, open block).
    pub(crate) consensus: Consensus,
    pub(crate) store: Store,
    /// Where sent transactions go: this node's sequencer, or the leader's.
    pub(crate) submitter: Submitter,
    /// Installed polling filters.
    pub(crate) filters: Filters,
    /// What log queries and filters may cost.
    pub(crate) queries: QueryLimits,
    /// Where calls, estimates, log queries and fee history execute.
    pub(crate) exec: ExecPool,
    /// At most one preconfirmation frame per subscriber this often.
    pub(crate) flashblock_interval: std::time::Duration,
    /// Where subscriptions' notifications wait to be sent, bounded in bytes.
    pub(crate) outboxes: Outboxes,
    /// The dev accounts this node signs for (none unless `--dev-unlocked`).
    pub(crate) unlocked: crate::dev::Unlocked,
    /// State is kept this many blocks behind the head (`None`: every block's).
    pub(crate) state_history_blocks: Option<u64>,
}

impl EthHandler {
    pub fn new(
        chain_id: u64,
        consensus: Consensus,
        store: Store,
        submitter: Submitter,
        exec: ExecPool,
    ) -> Self {
        Self {
            chain_id,
            consensus,
            store,
            submitter,
            filters: Filters::default(),
            queries: QueryLimits::default(),
            exec,
            flashblock_interval: DEFAULT_FLASHBLOCK_INTERVAL,
            outboxes: Outboxes::default(),
            unlocked: crate::dev::Unlocked::default(),
            state_history_blocks: None,
        }
    }

    /// Tells `eth_capabilities` how much state history this node keeps.
    pub fn with_state_history(mut self, blocks: Option<u64>) -> Self {
        self.state_history_blocks = blocks;
        self
    }

    /// Bounds log queries and filters by `limits`.
    pub fn with_query_limits(mut self, limits: QueryLimits) -> Self {
        self.filters = Filters::new(&limits);
        self.queries = limits;
        self
    }

    /// Bounds subscriptions' unsent notifications per connection by `outboxes`.
    pub fn with_outboxes(mut self, outboxes: Outboxes) -> Self {
        self.outboxes = outboxes;
        self
    }

    /// Sends preconfirmation frames at most once per `interval`.
    pub fn with_flashblock_interval(mut self, interval: std::time::Duration) -> Self {
        self.flashblock_interval = interval;
        self
    }
}

/// The default least gap between two preconfirmation frames to one subscriber.
pub const DEFAULT_FLASHBLOCK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

#[rpc(server)]
pub trait EthBlocksApi {
    #[method(name = "eth_chainId")]
    fn chain_id(&self) -> RpcResult<U64>;

    #[method(name = "eth_blockNumber")]
    fn block_number(&self) -> RpcResult<U64>;

    #[method(name = "eth_getBlockByNumber")]
    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<Block>>;

    #[method(name = "eth_getBlockByHash")]
    fn block_by_hash(&self, hash: B256, full: bool) -> RpcResult<Option<Block>>;

    #[method(name = "eth_getBlockTransactionCountByNumber")]
    fn block_transaction_count_by_number(&self, number: BlockNumberOrTag)
    -> RpcResult<Option<U64>>;

    #[method(name = "eth_getBlockTransactionCountByHash")]
    fn block_transaction_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>>;

    #[method(name = "eth_getTransactionByBlockNumberAndIndex")]
    fn transaction_by_block_number_and_index(
        &self,
        number: BlockNumberOrTag,
        index: U64,
    ) -> RpcResult<Option<Transaction>>;

    #[method(name = "eth_getTransactionByBlockHashAndIndex")]
    fn transaction_by_block_hash_and_index(
        &self,
        hash: B256,
        index: U64,
    ) -> RpcResult<Option<Transaction>>;

    #[method(name = "eth_getRawTransactionByBlockNumberAndIndex")]
    fn raw_transaction_by_block_number_and_index(
        &self,
        number: BlockNumberOrTag,
        index: U64,
    ) -> RpcResult<Option<Bytes>>;

    #[method(name = "eth_getRawTransactionByBlockHashAndIndex")]
    fn raw_transaction_by_block_hash_and_index(
        &self,
        hash: B256,
        index: U64,
    ) -> RpcResult<Option<Bytes>>;

    #[method(name = "eth_getBlockReceipts")]
    fn block_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<TransactionReceipt>>>;

    /// The fee recipient of the block being built (the head's, when none is open).
    #[method(name = "eth_coinbase")]
    fn coinbase(&self) -> RpcResult<Address>;

    /// The blob base fee: baton takes no blobs, so it stays at the protocol
    /// minimum of 1 wei.
    #[method(name = "eth_blobBaseFee")]
    fn blob_base_fee(&self) -> RpcResult<U256>;
}

impl EthHandler {
    pub(crate) fn head_number(&self) -> u64 {
        self.consensus.chain().borrow().head.number()
    }

    /// Block `number` in RPC shape, with full transactions when `full`.
    fn block(&self, number: u64, full: bool) -> RpcResult<Option<Block>> {
        let Some(block) = self.sealed_block(number)? else {
            return Ok(None);
        };
        let transactions = if full {
            let txs = self.sealed_txs(number)?.unwrap_or_default();
            BlockTransactions::Full(
                txs.into_iter()
                    .map(SealedTx::into_rpc_transaction)
                    .collect(),
            )
        } else {
            BlockTransactions::Hashes(block.txs.iter().map(|(raw, _)| keccak256(raw)).collect())
        };
        Ok(Some(rpc_block(block, transactions)))
    }

    /// The open block as applied so far (`pending`, DESIGN §7): every transaction
    /// in it is committed and final; its hash and roots are zero until it is
    /// sealed. With no block open, pending is the head.
    fn pending_block(&self, full: bool) -> RpcResult<Option<Block>> {
        let view = self.consensus.chain().borrow().clone();
        let Some(pending) = view.pending else {
            return self.block(view.head.number(), full);
        };
        let txs = pending_txs(&pending, 0..pending.tx_count())?;
        let mut logs_bloom = alloy_primitives::Bloom::ZERO;
        for tx in &txs {
            logs_bloom.accrue_bloom(&tx.receipt.bloom());
        }
        let start = &pending.start;
        let header = alloy_consensus::Header {
            parent_hash: start.parent_hash,
            beneficiary: start.coinbase,
            number: start.number,
            gas_limit: start.gas_limit,
            gas_used: txs.last().map_or(0, |tx| tx.receipt.cumulative_gas_used()),
            timestamp: start.timestamp_ms / 1000,
            base_fee_per_gas: Some(start.base_fee),
            logs_bloom,
            ..Default::default()
        };
        let size = alloy_rlp::Encodable::length(&header)
            + pending
                .transactions()
                .map(|((raw, _), _)| raw.len())
                .sum::<usize>();
        let transactions = if full {
            BlockTransactions::Full(
                txs.into_iter()
                    .map(SealedTx::into_preconfirmed_transaction)
                    .collect(),
            )
        } else {
            BlockTransactions::Hashes(txs.iter().map(|tx| tx.hash).collect())
        };
        Ok(Some(Block {
            header: Header {
                hash: B256::ZERO,
                inner: header,
                total_difficulty: Some(Default::default()),
                size: Some(alloy_primitives::U256::from(size)),
            },
            uncles: Vec::new(),
            transactions,
            withdrawals: Some(Default::default()),
        }))
    }

    fn tx_at(&self, number: Option<u64>, index: U64) -> RpcResult<Option<SealedTx>> {
        let Some(number) = number else {
            return Ok(None);
        };
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        Ok(self
            .sealed_txs_in(number, index..index.saturating_add(1))?
            .and_then(|txs| txs.into_iter().next()))
    }

    fn receipts_of(&self, number: Option<u64>) -> RpcResult<Option<Vec<TransactionReceipt>>> {
        let Some(number) = number else {
            return Ok(None);
        };
        Ok(self
            .sealed_txs(number)?
            .map(|txs| txs.into_iter().map(SealedTx::into_rpc_receipt).collect()))
    }

    pub(crate) fn sealed_block(&self, number: u64) -> RpcResult<Option<SealedBlock>> {
        self.store.block(number).map_err(internal)
    }

    /// The number a tag or number names; every tag but `earliest` is the head,
    /// because everything applied is committed by a quorum and final.
    pub(crate) fn resolve(&self, number: BlockNumberOrTag) -> u64 {
        match number {
            BlockNumberOrTag::Number(n) => n,
            BlockNumberOrTag::Earliest => 0,
            BlockNumberOrTag::Latest
            | BlockNumberOrTag::Pending
            | BlockNumberOrTag::Safe
            | BlockNumberOrTag::Finalized => self.head_number(),
        }
    }

    pub(crate) fn block_number_of(&self, hash: B256) -> RpcResult<Option<u64>> {
        self.store.block_number(hash).map_err(internal)
    }
}

/// The RPC shape of a sealed block.
pub(crate) fn rpc_block(block: SealedBlock, transactions: BlockTransactions<Transaction>) -> Block {
    let size = alloy_rlp::Encodable::length(&block.header)
        + block.txs.iter().map(|(raw, _)| raw.len()).sum::<usize>();
    Block {
        header: Header {
            hash: block.hash,
            inner: block.header,
            total_difficulty: Some(Default::default()),
            size: Some(alloy_primitives::U256::from(size)),
        },
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Default::default()),
    }
}

impl EthBlocksApiServer for EthHandler {
    fn chain_id(&self) -> RpcResult<U64> {
        Ok(U64::from(self.chain_id))
    }

    fn block_number(&self) -> RpcResult<U64> {
        Ok(U64::from(self.head_number()))
    }

    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<Block>> {
        match number {
            BlockNumberOrTag::Pending => self.pending_block(full),
            number => self.block(self.resolve(number), full),
        }
    }

    fn block_by_hash(&self, hash: B256, full: bool) -> RpcResult<Option<Block>> {
        match self.block_number_of(hash)? {
            Some(number) => self.block(number, full),
            None => Ok(None),
        }
    }

    fn transaction_by_block_number_and_index(
        &self,
        number: BlockNumberOrTag,
        index: U64,
    ) -> RpcResult<Option<Transaction>> {
        Ok(self
            .tx_at(Some(self.resolve(number)), index)?
            .map(SealedTx::into_rpc_transaction))
    }

    fn transaction_by_block_hash_and_index(
        &self,
        hash: B256,
        index: U64,
    ) -> RpcResult<Option<Transaction>> {
        Ok(self
            .tx_at(self.block_number_of(hash)?, index)?
            .map(SealedTx::into_rpc_transaction))
    }

    fn raw_transaction_by_block_number_and_index(
        &self,
        number: BlockNumberOrTag,
        index: U64,
    ) -> RpcResult<Option<Bytes>> {
        Ok(self
            .tx_at(Some(self.resolve(number)), index)?
            .map(|tx| tx.tx.inner().encoded_2718().into()))
    }

    fn raw_transaction_by_block_hash_and_index(
        &self,
        hash: B256,
        index: U64,
    ) -> RpcResult<Option<Bytes>> {
        Ok(self
            .tx_at(self.block_number_of(hash)?, index)?
            .map(|tx| tx.tx.inner().encoded_2718().into()))
    }

    fn coinbase(&self) -> RpcResult<Address> {
        let view = self.consensus.chain().borrow().clone();
        Ok(match view.open() {
            Some(start) => start.coinbase,
            None => view.head.header.beneficiary,
        })
    }

    fn blob_base_fee(&self) -> RpcResult<U256> {
        Ok(U256::from(crate::state::MIN_BLOB_BASE_FEE))
    }

    fn block_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<TransactionReceipt>>> {
        let number = match block {
            BlockId::Number(number) => Some(self.resolve(number)),
            BlockId::Hash(hash) => self.block_number_of(hash.block_hash)?,
        };
        self.receipts_of(number)
    }

    fn block_transaction_count_by_number(
        &self,
        number: BlockNumberOrTag,
    ) -> RpcResult<Option<U64>> {
        if number == BlockNumberOrTag::Pending
            && let Some(pending) = self.consensus.chain().borrow().pending.clone()
        {
            return Ok(Some(U64::from(pending.tx_count())));
        }
        let block = self.sealed_block(self.resolve(number))?;
        Ok(block.map(|b| U64::from(b.txs.len())))
    }

    fn block_transaction_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>> {
        match self.block_number_of(hash)? {
            Some(number) => Ok(self.sealed_block(number)?.map(|b| U64::from(b.txs.len()))),
            None => Ok(None),
        }
    }
}
