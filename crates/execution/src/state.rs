//! revm's view of the chain's state: the head as the store holds it, the state
//! after any kept older block (from the state history), or the open block as
//! applied so far.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use alloy_trie::KECCAK_EMPTY;
use baton_storage::{AccountRecord, Store};
use revm::{
    database_interface::{DBErrorMarker, DatabaseRef},
    state::{AccountInfo, Bytecode},
};

use crate::PendingBlock;

/// The store could not answer a state read during execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state read failed: {0}")]
pub struct StateError(pub String);

impl DBErrorMarker for StateError {}

fn read_error(e: baton_storage::StorageError) -> StateError {
    StateError(e.to_string())
}

/// Which state reads see.
#[derive(Debug, Clone)]
pub enum StateAt {
    /// The head as the store holds it now (the executor's view: only the state
    /// machine moves it).
    Head,
    /// The state after block `n` (the head's included): stays the same however
    /// the chain moves on while it is read, as long as `n` is kept.
    Block(u64),
    /// The open block as applied so far, over the state after its parent.
    Pending(Arc<PendingBlock>),
}

/// Read-only state, as revm reads it.
#[derive(Debug, Clone)]
pub struct StoreDb {
    store: Store,
    at: StateAt,
}

fn info(record: AccountRecord) -> AccountInfo {
    AccountInfo {
        balance: record.balance,
        nonce: record.nonce,
        code_hash: record.code_hash,
        account_id: None,
        // Not `Default`: that is `Some(empty code)`, which would hide the
        // contract. `None` makes revm load it through `code_by_hash_ref`.
        code: None,
    }
}

impl StoreDb {
    /// The head state.
    pub fn new(store: Store) -> Self {
        Self::at(store, StateAt::Head)
    }

    pub fn at(store: Store, at: StateAt) -> Self {
        Self { store, at }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The block whose state a pending read falls back to.
    fn below_pending(pending: &PendingBlock) -> u64 {
        pending.start.number.saturating_sub(1)
    }

    fn stored_account(
        &self,
        address: Address,
        block: Option<u64>,
    ) -> Result<Option<AccountInfo>, StateError> {
        let record = match block {
            None => self.store.account(address),
            Some(n) => self.store.account_at(address, n),
        };
        Ok(record.map_err(read_error)?.map(info))
    }

    fn stored_slot(
        &self,
        address: Address,
        slot: U256,
        block: Option<u64>,
    ) -> Result<U256, StateError> {
        match block {
            None => self.store.storage_slot(address, slot),
            Some(n) => self.store.storage_at(address, slot, n),
        }
        .map_err(read_error)
    }
}

impl DatabaseRef for StoreDb {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        match &self.at {
            StateAt::Head => self.stored_account(address, None),
            StateAt::Block(n) => self.stored_account(address, Some(*n)),
            StateAt::Pending(pending) => match pending.account(&address) {
                Some(account) => Ok(account),
                None => self.stored_account(address, Some(Self::below_pending(pending))),
            },
        }
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        if let StateAt::Pending(pending) = &self.at
            && let Some(code) = pending.code(&code_hash)
        {
            return Ok(code);
        }
        let code = self
            .store
            .code(code_hash)
            .map_err(read_error)?
            .ok_or_else(|| StateError(format!("code {code_hash} is missing")))?;
        Ok(Bytecode::new_raw(code))
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        match &self.at {
            StateAt::Head => self.stored_slot(address, index, None),
            StateAt::Block(n) => self.stored_slot(address, index, Some(*n)),
            StateAt::Pending(pending) => match pending.storage(&address, &index) {
                Some(value) => Ok(value),
                None => self.stored_slot(address, index, Some(Self::below_pending(pending))),
            },
        }
    }

    /// BLOCKHASH: revm asks only for the 256 blocks below the one executing.
    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        Ok(self
            .store
            .block(number)
            .map_err(read_error)?
            .map(|b| b.hash)
            .unwrap_or_default())
    }
}
