//! What a block leaves behind, computed at its seal from the executor's overlay:
//! the accounts, slots and code it changed, the values they replaced (state
//! history), and the state tries updated along exactly the paths it changed
//! (DESIGN §6: a seal costs what the block touched, not the size of the state).

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, KECCAK_EMPTY, Nibbles};
use baton_storage::{AccountRecord, BlockChanges, Store};
use baton_trie::{Overlay, TrieWrites};
use revm::database::{AccountState, Cache, DbAccount};

use crate::state::StateError;

/// The state a sealed block leaves behind, to be written with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// `None` deletes the account and its storage.
    pub accounts: Vec<(Address, Option<AccountRecord>)>,
    /// Accounts whose storage (slots and trie) is wiped before `storage` is
    /// written: destroyed or re-created.
    pub wiped: Vec<Address>,
    pub storage: Vec<(Address, U256, U256)>,
    pub code: Vec<(B256, Bytes)>,
    /// Node writes of the account trie (owner zero) and of each changed storage
    /// trie (owner keccak(address)).
    pub tries: Vec<(B256, TrieWrites)>,
    /// The values this block replaced, for state at older blocks.
    pub history: BlockChanges,
    /// The account trie's new root.
    pub state_root: B256,
}

fn read(e: baton_storage::StorageError) -> StateError {
    StateError(e.to_string())
}

fn trie(e: baton_trie::TrieError) -> StateError {
    StateError(e.to_string())
}

/// The changes in `cache` (a block's overlay) against the head state in `store`.
pub(crate) fn state_changes(store: &Store, cache: &Cache) -> Result<StateChanges, StateError> {
    let mut changes = StateChanges::default();
    let mut leaves: Vec<(Nibbles, Option<Vec<u8>>)> = Vec::new();
    let mut addresses: Vec<&Address> = cache.accounts.keys().collect();
    addresses.sort();
    for address in addresses {
        let account = &cache.accounts[address];
        if account.account_state == AccountState::None {
            continue; // only read
        }
        let before = store.account(*address).map_err(read)?;
        let after = match account.account_state {
            AccountState::NotExisting => None,
            // EIP-161: an account touched and left empty (no nonce, balance or code)
            // is deleted; revm leaves that to the database.
            _ if account.info.is_empty() => None,
            _ => Some(account_after(
                store,
                *address,
                account,
                before.as_ref(),
                &mut changes,
            )?),
        };
        if after == before {
            continue;
        }
        if after.is_none() {
            // The account's storage goes with it.
            let slots = wipe(store, *address, &mut changes)?;
            changes
                .history
                .storage
                .extend(slots.into_iter().map(|(slot, was)| (*address, slot, was)));
        }
        let leaf = after.as_ref().map(crate::commit::account_leaf);
        leaves.push((Nibbles::unpack(keccak256(address)), leaf));
        changes.history.accounts.push((*address, before));
        changes.accounts.push((*address, after));
    }
    leaves.sort_by_key(|leaf| leaf.0);
    let accounts = baton_trie::update(store, B256::ZERO, &leaves).map_err(trie)?;
    changes.state_root = accounts.root;
    changes.tries.push((B256::ZERO, accounts));
    changes.code = new_code(cache);
    Ok(changes)
}

/// The account as the block leaves it, with its storage trie updated (and the
/// slot changes and replaced values recorded).
fn account_after(
    store: &Store,
    address: Address,
    account: &DbAccount,
    before: Option<&AccountRecord>,
    changes: &mut StateChanges,
) -> Result<AccountRecord, StateError> {
    let cleared = account.account_state == AccountState::StorageCleared;
    // The value each changed slot had before the block.
    let mut replaced: BTreeMap<U256, U256> = BTreeMap::new();
    if cleared {
        replaced.extend(wipe(store, address, changes)?);
    }
    let mut slots: Vec<(U256, U256)> = Vec::new();
    for (slot, value) in &account.storage {
        let was = match replaced.get(slot) {
            Some(was) => *was,
            None if cleared => U256::ZERO,
            None => store.storage_slot(address, *slot).map_err(read)?,
        };
        if cleared || *value != was {
            replaced.entry(*slot).or_insert(was);
            slots.push((*slot, *value));
        }
    }
    let previous_root = before.map_or(EMPTY_ROOT_HASH, |b| b.storage_root);
    let storage_root = if slots.is_empty() && !cleared {
        previous_root
    } else {
        let owner = keccak256(address);
        let mut view = Overlay::new(store);
        if cleared {
            view.wipe(owner, EMPTY_ROOT_HASH);
        }
        let mut leaves: Vec<(Nibbles, Option<Vec<u8>>)> = slots
            .iter()
            .map(|(slot, value)| {
                let leaf = (!value.is_zero()).then(|| alloy_rlp::encode(value));
                (Nibbles::unpack(keccak256(B256::from(*slot))), leaf)
            })
            .collect();
        leaves.sort_by_key(|leaf| leaf.0);
        let writes = baton_trie::update(&view, owner, &leaves).map_err(trie)?;
        let root = writes.root;
        changes.tries.push((owner, writes));
        root
    };
    slots.sort();
    changes.storage.extend(
        slots
            .into_iter()
            .map(|(slot, value)| (address, slot, value)),
    );
    changes
        .history
        .storage
        .extend(replaced.into_iter().map(|(slot, was)| (address, slot, was)));
    Ok(AccountRecord {
        nonce: account.info.nonce,
        balance: account.info.balance,
        code_hash: if account.info.code_hash == B256::ZERO {
            KECCAK_EMPTY
        } else {
            account.info.code_hash
        },
        storage_root,
    })
}

/// Drops `address`'s storage (slots and trie) at the seal; returns the stored
/// slots, whose values the block replaces.
fn wipe(
    store: &Store,
    address: Address,
    changes: &mut StateChanges,
) -> Result<Vec<(U256, U256)>, StateError> {
    debug_assert!(
        !changes.wiped.contains(&address),
        "each account is visited once"
    );
    changes.wiped.push(address);
    store.storage_slots(address).map_err(read)
}

fn new_code(cache: &Cache) -> Vec<(B256, Bytes)> {
    let mut code: Vec<(B256, Bytes)> = cache
        .contracts
        .iter()
        .filter(|(hash, _)| **hash != KECCAK_EMPTY && **hash != B256::ZERO)
        .map(|(hash, bytecode)| (*hash, bytecode.original_bytes()))
        .collect();
    code.sort();
    code
}
