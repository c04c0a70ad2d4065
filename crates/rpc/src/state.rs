//! Account state (`eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`,
//! `eth_getStorageAt`), fee suggestions and node facts.
//!
//! A node keeps the state of its head block only (no archive): state at any other
//! block is refused with a clear error rather than answered wrongly.

use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::{BlockId, BlockNumberOrTag, eip2718::Decodable2718};
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use alloy_rpc_types_eth::{FeeHistory, SyncStatus};
use baton_execution::next_base_fee;
use jsonrpsee::{core::RpcResult, proc_macros::rpc};

use crate::{EthHandler, internal, invalid_params};

/// The priority fee wallets are told to offer. Blocks are never full on a devnet
/// and the leader orders by arrival, so a token tip is enough.
const SUGGESTED_TIP: u128 = 1_000_000; // 0.001 gwei

/// Most blocks one `eth_feeHistory` call covers.
const MAX_FEE_HISTORY_BLOCKS: u64 = 1024;
/// Most percentiles one `eth_feeHistory` call asks for.
const MAX_PERCENTILES: usize = 100;

/// The tips paid in a block at each percentile (by transaction count; zero for an
/// empty block).
fn tip_percentiles(txs: &[(Bytes, Address)], base_fee: u64, percentiles: &[f64]) -> Vec<u128> {
    let mut tips: Vec<u128> = txs
        .iter()
        .filter_map(|(raw, _)| TxEnvelope::decode_2718(&mut raw.as_ref()).ok())
        .map(|tx| tx.effective_tip_per_gas(base_fee).unwrap_or_default())
        .collect();
    tips.sort_unstable();
    percentiles
        .iter()
        .map(|p| {
            if tips.is_empty() {
                return 0;
            }
            let index = ((p / 100.0) * (tips.len() - 1) as f64).round() as usize;
            tips[index.min(tips.len() - 1)]
        })
        .collect()
}

#[rpc(server)]
pub trait EthStateApi {
    #[method(name = "eth_getBalance")]
    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256>;

    #[method(name = "eth_getTransactionCount")]
    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64>;

    #[method(name = "eth_getCode")]
    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes>;

    #[method(name = "eth_getStorageAt")]
    fn storage_at(&self, address: Address, slot: U256, block: Option<BlockId>) -> RpcResult<B256>;

    #[method(name = "eth_gasPrice")]
    fn gas_price(&self) -> RpcResult<U256>;

    #[method(name = "eth_maxPriorityFeePerGas")]
    fn max_priority_fee_per_gas(&self) -> RpcResult<U256>;

    #[method(name = "eth_feeHistory")]
    fn fee_history(
        &self,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory>;

    #[method(name = "eth_syncing")]
    fn syncing(&self) -> RpcResult<SyncStatus>;

    #[method(name = "eth_accounts")]
    fn accounts(&self) -> RpcResult<Vec<Address>>;
}

impl EthHandler {
    /// Refuses state queries for any block but the head.
    pub(crate) fn check_head_state(&self, block: Option<BlockId>) -> RpcResult<()> {
        let head = self.consensus.chain().borrow().head.clone();
        let ok = match block.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest)) {
            BlockId::Number(BlockNumberOrTag::Number(n)) => n == head.number(),
            BlockId::Number(BlockNumberOrTag::Earliest) => head.number() == 0,
            BlockId::Number(_) => true,
            BlockId::Hash(hash) => hash.block_hash == head.hash,
        };
        if ok {
            Ok(())
        } else {
            Err(invalid_params(format!(
                "state is kept for the head block ({}) only; ask for \"latest\"",
                head.number()
            )))
        }
    }
}

impl EthStateApiServer for EthHandler {
    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256> {
        self.check_head_state(block)?;
        Ok(self
            .store
            .account(address)
            .map_err(internal)?
            .map(|a| a.balance)
            .unwrap_or_default())
    }

    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64> {
        self.check_head_state(block)?;
        Ok(U64::from(
            self.store
                .account(address)
                .map_err(internal)?
                .map(|a| a.nonce)
                .unwrap_or_default(),
        ))
    }

    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes> {
        self.check_head_state(block)?;
        let Some(account) = self.store.account(address).map_err(internal)? else {
            return Ok(Bytes::new());
        };
        Ok(self
            .store
            .code(account.code_hash)
            .map_err(internal)?
            .unwrap_or_default())
    }

    fn storage_at(&self, address: Address, slot: U256, block: Option<BlockId>) -> RpcResult<B256> {
        self.check_head_state(block)?;
        Ok(self
            .store
            .storage_slot(address, slot)
            .map_err(internal)?
            .into())
    }

    fn gas_price(&self) -> RpcResult<U256> {
        let head = self.consensus.chain().borrow().head.clone();
        Ok(U256::from(
            u128::from(next_base_fee(&head.header)) + SUGGESTED_TIP,
        ))
    }

    fn max_priority_fee_per_gas(&self) -> RpcResult<U256> {
        Ok(U256::from(SUGGESTED_TIP))
    }

    fn fee_history(
        &self,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory> {
        let percentiles = reward_percentiles.unwrap_or_default();
        if percentiles.len() > MAX_PERCENTILES
            || percentiles.windows(2).any(|w| w[0] > w[1])
            || percentiles.iter().any(|p| !(0.0..=100.0).contains(p))
        {
            return Err(invalid_params(
                "reward percentiles must be at most 100 increasing values in 0..=100",
            ));
        }
        let head = self.consensus.chain().borrow().head.number();
        let newest = match newest_block {
            BlockNumberOrTag::Number(n) => n.min(head),
            BlockNumberOrTag::Earliest => 0,
            _ => head,
        };
        let count = block_count
            .to::<u64>()
            .clamp(1, MAX_FEE_HISTORY_BLOCKS)
            .min(newest + 1);
        let oldest = newest + 1 - count;
        let mut history = FeeHistory {
            oldest_block: oldest,
            ..Default::default()
        };
        let mut rewards = Vec::new();
        let mut last = None;
        for number in oldest..=newest {
            let block = self
                .store
                .block(number)
                .map_err(internal)?
                .ok_or_else(|| internal(format!("block {number} is missing")))?;
            let header = &block.header;
            let base_fee = header.base_fee_per_gas.unwrap_or_default();
            history.base_fee_per_gas.push(u128::from(base_fee));
            history
                .gas_used_ratio
                .push(header.gas_used as f64 / header.gas_limit.max(1) as f64);
            history.base_fee_per_blob_gas.push(0);
            history.blob_gas_used_ratio.push(0.0);
            rewards.push(tip_percentiles(&block.txs, base_fee, &percentiles));
            last = Some(block);
        }
        if let Some(last) = last {
            history
                .base_fee_per_gas
                .push(u128::from(next_base_fee(&last.header)));
            history.base_fee_per_blob_gas.push(0);
        }
        if !percentiles.is_empty() {
            history.reward = Some(rewards);
        }
        Ok(history)
    }

    fn syncing(&self) -> RpcResult<SyncStatus> {
        // A follower applies blocks as they commit; there is no separate sync phase.
        Ok(SyncStatus::None)
    }

    fn accounts(&self) -> RpcResult<Vec<Address>> {
        // Nodes hold no user keys.
        Ok(Vec::new())
    }
}
