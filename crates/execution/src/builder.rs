//! Executing the open block's transactions with revm, and sealing it.
//!
//! ```text
//!  head state (RocksDB) ◀── StoreDb ◀── CacheDB overlay (this block's changes)
//!                                           ▲ commit after each transaction
//!  Transactions entry ──▶ decode ──▶ revm (Prague rules) ──▶ receipt
//!  BlockEnd ──▶ state changes + trie updates (changes.rs) ──▶ header ──▶ SealedBlock
//! ```
//!
//! Invariant: the overlay holds exactly the effects of `txs`, executed in order on
//! top of the head state with this block's environment; replaying `txs` on the same
//! head rebuilds it byte for byte (DESIGN invariant 4).

use alloy_consensus::{Receipt, ReceiptEnvelope, Transaction, TxEnvelope, transaction::Recovered};
use alloy_eips::eip2718::Decodable2718;
use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use baton_primitives::{BlockStart, OpenBlock, SealedBlock};
use baton_storage::Store;
use revm::{
    DatabaseCommit,
    context::result::{EVMError, InvalidTransaction, ResultAndState},
    database::CacheDB,
    primitives::hardfork::SpecId,
    state::EvmState,
};

use crate::{
    CallBlock, PendingBatch, StateChanges,
    block::seal_header,
    call::sealed_env,
    state::{StateError, StoreDb},
};

/// The rules every block executes under: current mainnet (Prague).
pub const SPEC: SpecId = SpecId::PRAGUE;

/// Why a transaction cannot be executed in this block. Messages carry the words
/// wallets match on (`nonce too low`, `insufficient funds`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("invalid transaction: {0}")]
    Malformed(String),
    #[error("transaction type not supported: blob transactions (EIP-4844) cannot be sequenced")]
    BlobNotSupported,
    #[error("invalid chain id: transaction is for chain {got:?}, this chain is {expected}")]
    WrongChainId { expected: u64, got: Option<u64> },
    #[error("nonce too low: next nonce {expected}, tx nonce {got}")]
    NonceTooLow { expected: u64, got: u64 },
    #[error("nonce too high: next nonce {expected}, tx nonce {got}")]
    NonceTooHigh { expected: u64, got: u64 },
    #[error("insufficient funds for gas * price + value: have {balance} want {cost}")]
    InsufficientFunds { balance: U256, cost: U256 },
    #[error("intrinsic gas too low")]
    IntrinsicGasTooLow,
    #[error("max fee per gas less than block base fee")]
    FeeCapBelowBaseFee,
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    #[error("exceeds block gas limit")]
    GasLimitAboveBlock,
    /// Valid, but the open block has no room left for its gas limit.
    #[error("block is full")]
    BlockFull,
    #[error("transaction rejected: {0}")]
    Rejected(String),
    #[error(transparent)]
    State(#[from] StateError),
}

pub(crate) fn refusal(error: InvalidTransaction) -> TxError {
    match error {
        InvalidTransaction::NonceTooLow { tx, state } => TxError::NonceTooLow {
            expected: state,
            got: tx,
        },
        InvalidTransaction::NonceTooHigh { tx, state } => TxError::NonceTooHigh {
            expected: state,
            got: tx,
        },
        InvalidTransaction::LackOfFundForMaxFee { fee, balance } => TxError::InsufficientFunds {
            balance: *balance,
            cost: *fee,
        },
        InvalidTransaction::CallGasCostMoreThanGasLimit { .. }
        | InvalidTransaction::GasFloorMoreThanGasLimit { .. } => TxError::IntrinsicGasTooLow,
        InvalidTransaction::GasPriceLessThanBasefee => TxError::FeeCapBelowBaseFee,
        InvalidTransaction::PriorityFeeGreaterThanMaxFee => TxError::TipAboveFeeCap,
        InvalidTransaction::CallerGasLimitMoreThanBlock => TxError::GasLimitAboveBlock,
        other => TxError::Rejected(other.to_string()),
    }
}

/// What executing one transaction produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutedTx {
    pub hash: B256,
    pub sender: Address,
    pub receipt: ReceiptEnvelope,
    pub gas_used: u64,
    pub effective_gas_price: u128,
    pub contract_address: Option<Address>,
}

/// A sealed block with its receipts and state changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealOutcome {
    pub block: SealedBlock,
    pub receipts: Vec<ExecutedTx>,
    pub changes: StateChanges,
}

/// The open block: its environment, its transactions, and their effects so far.
#[derive(Debug, Clone)]
pub struct BlockBuilder {
    chain_id: u64,
    start: BlockStart,
    db: CacheDB<StoreDb>,
    txs: Vec<(Bytes, Address)>,
    executed: Vec<ExecutedTx>,
    /// Hashes of `executed`, for duplicate checks in constant time.
    hashes: std::collections::HashSet<B256>,
    gas_used: u64,
    /// What each transaction since the last [`BlockBuilder::take_batch`] changed.
    diffs: Vec<EvmState>,
}

impl BlockBuilder {
    /// Opens a block on top of the head state in `store`.
    pub fn new(store: Store, chain_id: u64, start: BlockStart) -> Self {
        Self {
            chain_id,
            start,
            db: CacheDB::new(StoreDb::new(store)),
            txs: Vec::new(),
            executed: Vec::new(),
            hashes: Default::default(),
            gas_used: 0,
            diffs: Vec::new(),
        }
    }

    /// Rebuilds the open block after a restart by executing its transactions again.
    pub fn replay(store: Store, chain_id: u64, open: &OpenBlock) -> Result<Self, TxError> {
        let mut builder = Self::new(store, chain_id, open.start.clone());
        for (raw, sender) in &open.txs {
            builder.execute(raw, *sender)?;
        }
        Ok(builder)
    }

    pub fn start(&self) -> &BlockStart {
        &self.start
    }

    pub fn txs(&self) -> &[(Bytes, Address)] {
        &self.txs
    }

    pub fn executed(&self) -> &[ExecutedTx] {
        &self.executed
    }

    /// The transactions executed since the last take, each with what it changed:
    /// what the leader hands its state machine so it need not execute them again.
    pub fn take_executed(&mut self) -> Vec<(ExecutedTx, EvmState)> {
        let first = self.txs.len() - self.diffs.len();
        self.executed[first..]
            .iter()
            .cloned()
            .zip(std::mem::take(&mut self.diffs))
            .collect()
    }

    /// Makes `raw` (sent by `sender`) part of the block as the leader already
    /// executed it on this very state (`executed`, `diff`): its changes are
    /// committed without running the EVM again (DESIGN §6, execute once).
    pub fn apply_executed(
        &mut self,
        raw: &Bytes,
        sender: Address,
        executed: ExecutedTx,
        diff: EvmState,
    ) {
        debug_assert_eq!(
            executed.hash,
            keccak256(raw),
            "the leader's result is for this transaction"
        );
        debug_assert_eq!(executed.sender, sender);
        self.gas_used += executed.gas_used;
        debug_assert_eq!(
            self.gas_used,
            executed.receipt.cumulative_gas_used(),
            "applied in the order the leader executed"
        );
        self.txs.push((raw.clone(), sender));
        self.hashes.insert(executed.hash);
        self.executed.push(executed);
        self.diffs.push(diff.clone());
        self.db.commit(diff);
    }

    /// The transactions executed since the last call, with what they changed: one
    /// applied batch of the open block, for the `pending` state.
    pub fn take_batch(&mut self) -> PendingBatch {
        let first = self.txs.len() - self.diffs.len();
        PendingBatch::new(
            first,
            self.txs[first..].to_vec(),
            self.executed[first..].to_vec(),
            std::mem::take(&mut self.diffs),
        )
    }

    /// Whether the transaction `hash` is already in this block.
    pub fn contains(&self, hash: &B256) -> bool {
        self.hashes.contains(hash)
    }

    /// The nonce `address`'s next transaction must carry, after this block so far.
    pub fn next_nonce(&mut self, address: Address) -> Result<u64, StateError> {
        use revm::database_interface::Database;
        Ok(self.db.basic(address)?.map_or(0, |info| info.nonce))
    }

    fn env(&self) -> EvmEnv {
        sealed_env(self.chain_id, &CallBlock::of_start(&self.start))
    }

    /// Executes `raw` (sent by `sender`) on top of this block's effects so far and,
    /// if it is valid, makes it part of the block.
    pub fn execute(&mut self, raw: &Bytes, sender: Address) -> Result<&ExecutedTx, TxError> {
        let tx = TxEnvelope::decode_2718(&mut raw.as_ref())
            .map_err(|e| TxError::Malformed(e.to_string()))?;
        if tx.is_eip4844() {
            return Err(TxError::BlobNotSupported);
        }
        if let Some(id) = tx.chain_id()
            && id != self.chain_id
        {
            return Err(TxError::WrongChainId {
                expected: self.chain_id,
                got: Some(id),
            });
        }
        if tx.gas_limit() > self.start.gas_limit {
            return Err(TxError::GasLimitAboveBlock);
        }
        if self
            .gas_used
            .checked_add(tx.gas_limit())
            .is_none_or(|total| total > self.start.gas_limit)
        {
            return Err(TxError::BlockFull);
        }
        let hash = *tx.tx_hash();
        let tx_type = tx.tx_type();
        let effective_gas_price = tx.effective_gas_price(Some(self.start.base_fee));
        let cost = U256::from(tx.gas_limit())
            .saturating_mul(U256::from(tx.max_fee_per_gas()))
            .saturating_add(tx.value());
        let env = self.env();
        let mut evm = EthEvmFactory::default().create_evm(&mut self.db, env);
        let outcome = evm.transact(Recovered::new_unchecked(tx, sender));
        drop(evm);
        let ResultAndState { result, state } = match outcome {
            Ok(outcome) => outcome,
            Err(EVMError::Transaction(invalid)) => {
                let refused = refusal(invalid);
                // The EVM checks the nonce before the balance. A transaction that
                // would wait for a nonce gap must be able to pay now, so keys with
                // no funds cannot fill the gap queue.
                if let TxError::NonceTooHigh { .. } = refused {
                    use revm::database_interface::Database;
                    let balance = self.db.basic(sender)?.map_or(U256::ZERO, |a| a.balance);
                    if balance < cost {
                        return Err(TxError::InsufficientFunds { balance, cost });
                    }
                }
                return Err(refused);
            }
            Err(EVMError::Database(e)) => return Err(TxError::State(e)),
            Err(other) => return Err(TxError::Rejected(other.to_string())),
        };
        self.diffs.push(state.clone());
        self.db.commit(state);
        let gas_used = result.tx_gas_used();
        self.gas_used += gas_used;
        let contract_address = result.created_address();
        let receipt = Receipt {
            status: result.is_success().into(),
            cumulative_gas_used: self.gas_used,
            logs: result.into_logs(),
        };
        self.txs.push((raw.clone(), sender));
        self.hashes.insert(hash);
        self.executed.push(ExecutedTx {
            hash,
            sender,
            receipt: ReceiptEnvelope::from_typed(tx_type, receipt.with_bloom()),
            gas_used,
            effective_gas_price,
            contract_address,
        });
        Ok(self
            .executed
            .last()
            .unwrap_or_else(|| unreachable!("just pushed")))
    }

    /// Seals the block on top of `parent`: state root (the tries updated along
    /// the paths this block changed), receipts root, bloom, header.
    pub fn seal(&self, parent: &alloy_consensus::Header) -> Result<SealOutcome, StateError> {
        let changes = crate::changes::state_changes(self.db.db.store(), &self.db.cache)?;
        let state_root = changes.state_root;
        let receipts: Vec<ReceiptEnvelope> =
            self.executed.iter().map(|e| e.receipt.clone()).collect();
        let header = seal_header(
            &self.start,
            parent,
            &self.txs,
            state_root,
            &receipts,
            self.gas_used,
        );
        Ok(SealOutcome {
            block: SealedBlock::new(header, self.txs.clone()),
            receipts: self.executed.clone(),
            changes,
        })
    }
}
