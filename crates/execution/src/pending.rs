//! The open block as applied so far: what the `pending` tag reads (DESIGN §7).
//! Each applied `Transactions` batch adds one [`PendingBatch`] holding what its
//! transactions changed; the open block's state is the newest batch that names a
//! key, else the state of the block below it. Publishing a batch costs the batch,
//! not the block: earlier batches are shared.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use alloy_primitives::{Address, B256, Bytes, U256};
use baton_primitives::BlockStart;
use revm::state::{AccountInfo, Bytecode, EvmState};

use crate::ExecutedTx;

/// What one applied batch of the open block changed.
#[derive(Debug, Clone, Default)]
pub struct PendingBatch {
    /// The block's index of this batch's first transaction.
    pub first: usize,
    /// `(EIP-2718 encoded transaction, sender)`, in order.
    pub txs: Vec<(Bytes, Address)>,
    pub executed: Vec<ExecutedTx>,
    /// Accounts as the batch left them; `None`: destroyed.
    pub(crate) accounts: HashMap<Address, Option<AccountInfo>>,
    /// Slots as the batch left them.
    pub(crate) storage: HashMap<(Address, U256), U256>,
    /// Accounts whose storage the batch cleared (destroyed or created anew):
    /// their slots read as the batch wrote them, else zero.
    pub(crate) cleared: HashSet<Address>,
    pub(crate) code: HashMap<B256, Bytecode>,
}

impl PendingBatch {
    /// The batch of transactions starting at index `first`, from their state diffs.
    pub(crate) fn new(
        first: usize,
        txs: Vec<(Bytes, Address)>,
        executed: Vec<ExecutedTx>,
        diffs: Vec<EvmState>,
    ) -> Self {
        let mut batch = Self {
            first,
            txs,
            executed,
            ..Default::default()
        };
        for diff in diffs {
            for (address, account) in diff {
                if !account.is_touched() {
                    continue;
                }
                if account.is_selfdestructed() || account.is_created() {
                    batch.cleared.insert(address);
                    batch.storage.retain(|(owner, _), _| *owner != address);
                }
                if account.is_selfdestructed() {
                    batch.accounts.insert(address, None);
                    continue;
                }
                for (slot, value) in account.changed_storage_slots() {
                    batch.storage.insert((address, *slot), value.present_value);
                }
                let mut info = account.info;
                if let Some(code) = info.code.take() {
                    batch.code.insert(info.code_hash, code);
                }
                batch.accounts.insert(address, Some(info));
            }
        }
        batch
    }

    /// The balance of every account this batch changed, as it left them (a
    /// destroyed account: zero).
    pub fn balances(&self) -> impl Iterator<Item = (Address, U256)> + '_ {
        self.accounts
            .iter()
            .map(|(address, info)| (*address, info.as_ref().map_or(U256::ZERO, |i| i.balance)))
    }
}

/// The open block: its start, and every batch applied to it, oldest first.
#[derive(Debug, Clone)]
pub struct PendingBlock {
    pub start: BlockStart,
    pub batches: Vec<Arc<PendingBatch>>,
}

impl PendingBlock {
    pub fn new(start: BlockStart) -> Self {
        Self {
            start,
            batches: Vec::new(),
        }
    }

    /// The block with `batch` applied after the ones it has.
    pub fn with(&self, batch: PendingBatch) -> Self {
        debug_assert_eq!(batch.first, self.tx_count(), "batches follow each other");
        let mut batches = self.batches.clone();
        batches.push(Arc::new(batch));
        Self {
            start: self.start.clone(),
            batches,
        }
    }

    /// Transactions applied to the block so far.
    pub fn tx_count(&self) -> usize {
        self.batches.last().map_or(0, |b| b.first + b.txs.len())
    }

    /// Every transaction so far, with what executing it produced, in block order.
    pub fn transactions(&self) -> impl Iterator<Item = (&(Bytes, Address), &ExecutedTx)> {
        self.batches
            .iter()
            .flat_map(|b| b.txs.iter().zip(&b.executed))
    }

    /// The account as the open block left it: `Some(None)` destroyed, `None` if
    /// the block has not touched it.
    pub(crate) fn account(&self, address: &Address) -> Option<Option<AccountInfo>> {
        self.batches
            .iter()
            .rev()
            .find_map(|b| b.accounts.get(address).cloned())
    }

    /// The slot as the open block left it, `None` if the block has not touched it.
    pub(crate) fn storage(&self, address: &Address, slot: &U256) -> Option<U256> {
        for batch in self.batches.iter().rev() {
            if let Some(value) = batch.storage.get(&(*address, *slot)) {
                return Some(*value);
            }
            if batch.cleared.contains(address) {
                return Some(U256::ZERO);
            }
        }
        None
    }

    pub(crate) fn code(&self, hash: &B256) -> Option<Bytecode> {
        self.batches
            .iter()
            .rev()
            .find_map(|b| b.code.get(hash).cloned())
    }
}
