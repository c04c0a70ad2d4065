//! Account state (`eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`,
//! `eth_getStorageAt`) at any kept block, fee suggestions and node facts.
//!
//! A block parameter names the state a request reads: a number or hash (any block
//! whose state is kept: all of them on an archive node, else the last
//! `--state-history-blocks`), `latest` / `safe` / `finalized` (the head: whatever is
//! applied is committed by a quorum and final), `earliest`, or `pending` (the open
//! block as applied so far).

use std::{collections::HashMap, time::Instant};

use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::{BlockId, BlockNumberOrTag, eip2718::Decodable2718};
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use alloy_rpc_types_eth::{
    EIP1186AccountProofResponse, EIP1186StorageProof, FeeHistory, SyncStatus,
};
use alloy_serde::storage::JsonStorageKey;
use alloy_trie::{EMPTY_ROOT_HASH, KECCAK_EMPTY};
use baton_execution::{
    CallBlock, CallContext, ProofAt, ProofError, StateAt, StoreDb, next_base_fee, prove,
};
use baton_storage::AccountRecord;
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
    types::ErrorObjectOwned,
};
use revm::database_interface::DatabaseRef;

use crate::{EthHandler, internal, invalid_params, pool::timed_out_error};

/// Geth's code (and words) for a block this node does not have.
const NOT_FOUND: i32 = -32000;
/// EIP-4444's code for pruned history, as geth and reth use it.
const PRUNED: i32 = 4444;

fn header_not_found() -> ErrorObjectOwned {
    ErrorObjectOwned::owned(NOT_FOUND, "header not found", None::<()>)
}

/// The priority fee wallets are told to offer. Blocks are never full on a devnet
/// and the leader orders by arrival, so a token tip is enough.
pub(crate) const SUGGESTED_TIP: u128 = 1_000_000; // 0.001 gwei

/// The blob base fee with no blobs ever (EIP-4844's minimum): what
/// `eth_blobBaseFee` and `eth_feeHistory` say.
pub(crate) const MIN_BLOB_BASE_FEE: u128 = 1;

/// Most blocks one `eth_feeHistory` call covers.
const MAX_FEE_HISTORY_BLOCKS: u64 = 1024;
/// Most storage keys one `eth_getProof` or `eth_getStorageValues` call reads.
const MAX_PROOF_KEYS: usize = 1_024;
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

    /// EIP-1186: the account and the storage slots `keys`, with Merkle proofs
    /// against the state root of `block`. Runs on the execution threads, within
    /// their time limit: at an old block it rewinds all that changed since.
    #[method(name = "eth_getProof", with_extensions)]
    async fn proof(
        &self,
        address: Address,
        keys: Vec<JsonStorageKey>,
        block: Option<BlockId>,
    ) -> RpcResult<EIP1186AccountProofResponse>;

    /// Several slots of several accounts at one block.
    #[method(name = "eth_getStorageValues")]
    fn storage_values(
        &self,
        requests: HashMap<Address, Vec<JsonStorageKey>>,
        block: Option<BlockId>,
    ) -> RpcResult<HashMap<Address, Vec<B256>>>;

    #[method(name = "eth_gasPrice")]
    fn gas_price(&self) -> RpcResult<U256>;

    /// The base fee of the next block.
    #[method(name = "eth_baseFee")]
    fn base_fee(&self) -> RpcResult<U256>;

    #[method(name = "eth_maxPriorityFeePerGas")]
    fn max_priority_fee_per_gas(&self) -> RpcResult<U256>;

    #[method(name = "eth_feeHistory", with_extensions)]
    async fn fee_history(
        &self,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory>;

    #[method(name = "eth_syncing")]
    fn syncing(&self) -> RpcResult<SyncStatus>;
}

impl EthHandler {
    /// Where a request that names `block` (`latest` when it names none) reads state,
    /// and the block a message runs in: the one whose state it reads.
    pub(crate) fn call_context(&self, block: Option<BlockId>) -> RpcResult<CallContext> {
        let view = self.consensus.chain().borrow().clone();
        let head = view.head.number();
        let number = match block.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest)) {
            BlockId::Number(BlockNumberOrTag::Pending) => match view.pending {
                Some(pending) => {
                    return Ok(self.context(
                        StateAt::Pending(pending.clone()),
                        CallBlock::of_start(&pending.start),
                    ));
                }
                // No block is open: pending is the head.
                None => head,
            },
            BlockId::Number(
                BlockNumberOrTag::Latest | BlockNumberOrTag::Safe | BlockNumberOrTag::Finalized,
            ) => head,
            BlockId::Number(BlockNumberOrTag::Earliest) => 0,
            BlockId::Number(BlockNumberOrTag::Number(n)) if n > head => {
                return Err(header_not_found());
            }
            BlockId::Number(BlockNumberOrTag::Number(n)) => n,
            BlockId::Hash(hash) => self
                .store
                .block_number(hash.block_hash)
                .map_err(internal)?
                .ok_or_else(header_not_found)?,
        };
        let floor = self.store.history_floor().map_err(internal)?;
        if number < floor {
            return Err(ErrorObjectOwned::owned(
                PRUNED,
                format!(
                    "pruned history unavailable: the state of block {number} is pruned; \
                     this node keeps state from block {floor} on"
                ),
                None::<()>,
            ));
        }
        let header = if number == head {
            view.head.header.clone()
        } else {
            self.store
                .block(number)
                .map_err(internal)?
                .ok_or_else(header_not_found)?
                .header
        };
        Ok(self.context(StateAt::Block(number), CallBlock::of_header(&header)))
    }

    fn context(&self, state: StateAt, block: CallBlock) -> CallContext {
        CallContext {
            store: self.store.clone(),
            chain_id: self.chain_id,
            state,
            block,
            state_override: None,
        }
    }

    /// The state `block` names, to read from.
    fn state(&self, block: Option<BlockId>) -> RpcResult<StoreDb> {
        let context = self.call_context(block)?;
        Ok(StoreDb::at(context.store, context.state))
    }
}

#[async_trait]
impl EthStateApiServer for EthHandler {
    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256> {
        let account = self.state(block)?.basic_ref(address).map_err(internal)?;
        Ok(account.map(|a| a.balance).unwrap_or_default())
    }

    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64> {
        let account = self.state(block)?.basic_ref(address).map_err(internal)?;
        Ok(U64::from(account.map(|a| a.nonce).unwrap_or_default()))
    }

    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes> {
        let state = self.state(block)?;
        let Some(account) = state.basic_ref(address).map_err(internal)? else {
            return Ok(Bytes::new());
        };
        let code = state
            .code_by_hash_ref(account.code_hash)
            .map_err(internal)?;
        Ok(code.original_bytes())
    }

    fn storage_at(&self, address: Address, slot: U256, block: Option<BlockId>) -> RpcResult<B256> {
        let value = self
            .state(block)?
            .storage_ref(address, slot)
            .map_err(internal)?;
        Ok(value.into())
    }

    async fn proof(
        &self,
        extensions: &Extensions,
        address: Address,
        keys: Vec<JsonStorageKey>,
        block: Option<BlockId>,
    ) -> RpcResult<EIP1186AccountProofResponse> {
        let this = self.clone();
        self.exec
            .run(extensions, move |deadline| {
                this.proof_until(address, keys, block, deadline)
            })
            .await
    }

    fn storage_values(
        &self,
        requests: HashMap<Address, Vec<JsonStorageKey>>,
        block: Option<BlockId>,
    ) -> RpcResult<HashMap<Address, Vec<B256>>> {
        let slots: usize = requests.values().map(Vec::len).sum();
        if slots > MAX_PROOF_KEYS {
            return Err(invalid_params(format!(
                "{slots} storage slots asked; at most {MAX_PROOF_KEYS} per call"
            )));
        }
        let state = self.state(block)?;
        requests
            .into_iter()
            .map(|(address, keys)| {
                let values = keys
                    .iter()
                    .map(|key| {
                        let slot = U256::from_be_bytes(key.as_b256().0);
                        state
                            .storage_ref(address, slot)
                            .map(B256::from)
                            .map_err(internal)
                    })
                    .collect::<RpcResult<Vec<B256>>>()?;
                Ok((address, values))
            })
            .collect()
    }

    fn base_fee(&self) -> RpcResult<U256> {
        let view = self.consensus.chain().borrow().clone();
        // The open block's, while one is open; else the one after the head.
        Ok(U256::from(match &view.pending {
            Some(pending) => pending.start.base_fee,
            None => next_base_fee(&view.head.header),
        }))
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

    async fn fee_history(
        &self,
        extensions: &Extensions,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory> {
        let this = self.clone();
        self.exec
            .run(extensions, move |_| {
                this.fee_history_now(block_count, newest_block, reward_percentiles)
            })
            .await
    }

    fn syncing(&self) -> RpcResult<SyncStatus> {
        // A follower applies blocks as they commit; there is no separate sync phase.
        Ok(SyncStatus::None)
    }
}

impl EthHandler {
    /// `eth_feeHistory`, on an execution thread.
    /// `eth_getProof`, giving up at `deadline`.
    fn proof_until(
        &self,
        address: Address,
        keys: Vec<JsonStorageKey>,
        block: Option<BlockId>,
        deadline: Instant,
    ) -> RpcResult<EIP1186AccountProofResponse> {
        if keys.len() > MAX_PROOF_KEYS {
            return Err(invalid_params(format!(
                "{} storage keys asked; at most {MAX_PROOF_KEYS} per call",
                keys.len()
            )));
        }
        let context = self.call_context(block)?;
        let head = self.consensus.chain().borrow().head.clone();
        let (number, state_root) = match context.state {
            StateAt::Block(number) if number == head.number() => (number, head.header.state_root),
            StateAt::Block(number) => {
                let block = self
                    .store
                    .block(number)
                    .map_err(internal)?
                    .ok_or_else(header_not_found)?;
                (number, block.header.state_root)
            }
            // The open block has no state root yet: its proofs are the head's.
            StateAt::Pending(_) | StateAt::Head => (head.number(), head.header.state_root),
        };
        let slots: Vec<B256> = keys.iter().map(JsonStorageKey::as_b256).collect();
        let at = ProofAt {
            block: number,
            state_root,
            head: head.number(),
            deadline,
        };
        let proof = prove(&self.store, address, &slots, at).map_err(|e| match e {
            ProofError::TimedOut => timed_out_error(),
            other => internal(other),
        })?;
        let account = proof.account.unwrap_or(AccountRecord {
            code_hash: KECCAK_EMPTY,
            storage_root: EMPTY_ROOT_HASH,
            ..Default::default()
        });
        Ok(EIP1186AccountProofResponse {
            address,
            balance: account.balance,
            code_hash: account.code_hash,
            nonce: account.nonce,
            storage_hash: account.storage_root,
            account_proof: proof.account_proof,
            storage_proof: keys
                .into_iter()
                .zip(proof.storage)
                .map(|(key, (_, value, proof))| EIP1186StorageProof { key, value, proof })
                .collect(),
        })
    }

    fn fee_history_now(
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
            history.base_fee_per_blob_gas.push(MIN_BLOB_BASE_FEE);
            history.blob_gas_used_ratio.push(0.0);
            rewards.push(tip_percentiles(&block.txs, base_fee, &percentiles));
            last = Some(block);
        }
        if let Some(last) = last {
            history
                .base_fee_per_gas
                .push(u128::from(next_base_fee(&last.header)));
            history.base_fee_per_blob_gas.push(MIN_BLOB_BASE_FEE);
        }
        if !percentiles.is_empty() {
            history.reward = Some(rewards);
        }
        Ok(history)
    }
}
