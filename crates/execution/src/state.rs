//! revm's view of the head state in RocksDB.

use alloy_primitives::{Address, B256, U256};
use alloy_trie::KECCAK_EMPTY;
use baton_storage::Store;
use revm::{
    database_interface::{DBErrorMarker, DatabaseRef},
    state::{AccountInfo, Bytecode},
};

/// The store could not answer a state read during execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state read failed: {0}")]
pub struct StateError(pub String);

impl DBErrorMarker for StateError {}

fn read_error(e: baton_storage::StorageError) -> StateError {
    StateError(e.to_string())
}

/// Read-only state of the head block, as revm reads it.
#[derive(Debug, Clone)]
pub struct StoreDb {
    store: Store,
}

impl StoreDb {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl DatabaseRef for StoreDb {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        Ok(self
            .store
            .account(address)
            .map_err(read_error)?
            .map(|account| AccountInfo {
                balance: account.balance,
                nonce: account.nonce,
                code_hash: account.code_hash,
                account_id: None,
                // Not `Default`: that is `Some(empty code)`, which would hide the
                // contract. `None` makes revm load it through `code_by_hash_ref`.
                code: None,
            }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        let code = self
            .store
            .code(code_hash)
            .map_err(read_error)?
            .ok_or_else(|| StateError(format!("code {code_hash} is missing")))?;
        Ok(Bytecode::new_raw(code))
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        self.store.storage_slot(address, index).map_err(read_error)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        Ok(self
            .store
            .block(number)
            .map_err(read_error)?
            .map(|b| b.hash)
            .unwrap_or_default())
    }
}
