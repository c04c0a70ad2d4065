//! EIP-1186 proofs of an account and its storage at any kept block.
//!
//! At the head the stored tries answer directly. At an older block N, the tries
//! are rewound in memory first: every key changed after N gets back the value it
//! had at N (from the state history), layered over the stored nodes; the rewound
//! roots are checked against block N's header before any proof is read. The cost
//! is what changed since N, not the size of the state.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, Nibbles};
use baton_storage::{AccountRecord, StorageError, Store};
use baton_trie::{Overlay, TrieError};

use crate::commit::account_leaf;

/// An account and some of its slots, with their proofs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    /// `None`: the account does not exist (the proof shows its absence).
    pub account: Option<AccountRecord>,
    pub account_proof: Vec<Bytes>,
    /// Each asked slot with its value and proof, in the order asked.
    pub storage: Vec<(B256, U256, Vec<Bytes>)>,
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Trie(#[from] TrieError),
    /// The state history does not rewind to the header's root: the history or the
    /// tries are damaged.
    #[error("the state of block {block} rewinds to root {got}, its header says {want}")]
    Rewind { block: u64, got: B256, want: B256 },
    /// The rewind had not finished by the deadline.
    #[error("the proof was not ready in time")]
    TimedOut,
}

/// Where and when to prove: the state after block `block`, whose header's state
/// root is `state_root`; `head` is the newest sealed block; a rewind still going
/// at `deadline` gives up.
#[derive(Debug, Clone, Copy)]
pub struct ProofAt {
    pub block: u64,
    pub state_root: B256,
    pub head: u64,
    pub deadline: Instant,
}

/// Proves `address` and its `slots` in the state `at` names.
pub fn prove(
    store: &Store,
    address: Address,
    slots: &[B256],
    at: ProofAt,
) -> Result<AccountProof, ProofError> {
    let ProofAt {
        block,
        state_root,
        head,
        deadline,
    } = at;
    let mut view = Overlay::new(store);
    let owner = keccak256(address);
    let account = if block == head {
        store.account(address)?
    } else {
        rewind(store, &mut view, address, block, state_root, deadline)?
    };
    let account_proof = baton_trie::proof(&view, B256::ZERO, &Nibbles::unpack(owner))?;
    let mut storage = Vec::with_capacity(slots.len());
    for slot in slots {
        let value = if block == head {
            store.storage_slot(address, (*slot).into())?
        } else {
            store.storage_at(address, (*slot).into(), block)?
        };
        let proof = if account
            .as_ref()
            .is_some_and(|a| a.storage_root != EMPTY_ROOT_HASH)
        {
            baton_trie::proof(&view, owner, &Nibbles::unpack(keccak256(slot)))?
        } else {
            Vec::new()
        };
        storage.push((*slot, value, proof));
    }
    Ok(AccountProof {
        account,
        account_proof,
        storage,
    })
}

/// Layers onto `view` the account trie as of `block`, and `address`'s storage trie
/// as of `block`; returns the account as of `block`.
fn rewind(
    store: &Store,
    view: &mut Overlay<'_, Store>,
    address: Address,
    block: u64,
    state_root: B256,
    deadline: Instant,
) -> Result<Option<AccountRecord>, ProofError> {
    let head = store.head()?.map_or(block, |(number, _)| number);
    let mut accounts = BTreeSet::new();
    let mut slots = BTreeSet::new();
    for later in block + 1..=head {
        if later % 256 == 0 && Instant::now() >= deadline {
            return Err(ProofError::TimedOut);
        }
        if let Some(keys) = store.changed_keys(later)? {
            accounts.extend(keys.accounts);
            slots.extend(
                keys.storage
                    .into_iter()
                    .filter(|(owner, _)| *owner == address)
                    .map(|(_, slot)| slot),
            );
        }
    }
    let mut leaves = BTreeMap::new();
    for changed in accounts {
        let then = store.account_at(changed, block)?;
        leaves.insert(
            Nibbles::unpack(keccak256(changed)),
            then.as_ref().map(account_leaf),
        );
    }
    let leaves: Vec<_> = leaves.into_iter().collect();
    let writes = baton_trie::update(view, B256::ZERO, &leaves)?;
    if writes.root != state_root {
        return Err(ProofError::Rewind {
            block,
            got: writes.root,
            want: state_root,
        });
    }
    view.apply(B256::ZERO, writes);
    let account = store.account_at(address, block)?;
    let mut leaves = BTreeMap::new();
    for slot in slots {
        let then = store.storage_at(address, slot, block)?;
        leaves.insert(
            Nibbles::unpack(keccak256(B256::from(slot))),
            (!then.is_zero()).then(|| alloy_rlp::encode(then)),
        );
    }
    let owner = keccak256(address);
    let leaves: Vec<_> = leaves.into_iter().collect();
    let writes = baton_trie::update(view, owner, &leaves)?;
    let want = account.as_ref().map_or(EMPTY_ROOT_HASH, |a| a.storage_root);
    if account.is_some() && writes.root != want {
        return Err(ProofError::Rewind {
            block,
            got: writes.root,
            want,
        });
    }
    view.apply(owner, writes);
    Ok(account)
}
