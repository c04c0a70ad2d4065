//! Writing execution results into a chain batch: the genesis state, and a sealed
//! block with its receipts and state changes (one batch, DESIGN invariant 7).

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{B256, keccak256};
use alloy_trie::{KECCAK_EMPTY, Nibbles, TrieAccount};
use baton_primitives::{ChainSpec, SealedBlock};
use baton_storage::{AccountRecord, ChainWrite, StorageError, StorageResult, Store, StoredReceipt};

use crate::SealOutcome;

fn trie(e: baton_trie::TrieError) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

/// Block 0, its allocation and the allocation's tries, into a store that holds no
/// chain yet.
pub fn write_genesis(
    store: &Store,
    write: &mut ChainWrite<'_>,
    spec: &ChainSpec,
) -> StorageResult<()> {
    write.put_block(&SealedBlock::new(spec.genesis_header.clone(), Vec::new()))?;
    let mut leaves = Vec::with_capacity(spec.genesis.alloc.len());
    for (address, account) in &spec.genesis.alloc {
        let code_hash = match account.non_empty_code() {
            Some(code) => {
                let hash = keccak256(code);
                write.put_code(hash, code);
                hash
            }
            None => KECCAK_EMPTY,
        };
        let mut slots: Vec<(Nibbles, Option<Vec<u8>>)> = Vec::new();
        for (slot, value) in account.storage_slots() {
            write.put_storage(*address, slot.into(), value);
            slots.push((
                Nibbles::unpack(keccak256(slot)),
                Some(alloy_rlp::encode(value)),
            ));
        }
        slots.sort_by_key(|leaf| leaf.0);
        let owner = keccak256(address);
        let storage = baton_trie::update(store, owner, &slots).map_err(trie)?;
        let record = AccountRecord {
            nonce: account.nonce.unwrap_or_default(),
            balance: account.balance,
            code_hash,
            storage_root: storage.root,
        };
        write.put_trie(&owner, &storage);
        write.put_account(*address, Some(&record))?;
        leaves.push((Nibbles::unpack(owner), Some(account_leaf(&record))));
    }
    leaves.sort_by_key(|leaf| leaf.0);
    let accounts = baton_trie::update(store, B256::ZERO, &leaves).map_err(trie)?;
    if accounts.root != spec.genesis_header.state_root {
        return Err(StorageError::Corrupt(format!(
            "the genesis trie's root is {}, the genesis header says {}",
            accounts.root, spec.genesis_header.state_root
        )));
    }
    write.put_trie(&B256::ZERO, &accounts);
    Ok(())
}

/// An account's leaf in the account trie.
pub(crate) fn account_leaf(record: &AccountRecord) -> Vec<u8> {
    alloy_rlp::encode(TrieAccount {
        nonce: record.nonce,
        balance: record.balance,
        storage_root: record.storage_root,
        code_hash: record.code_hash,
    })
}

/// A sealed block, its receipts and its state changes.
pub fn write_sealed(write: &mut ChainWrite<'_>, outcome: &SealOutcome) -> StorageResult<()> {
    let changes = &outcome.changes;
    for address in &changes.wiped {
        write.wipe_storage(*address);
        write.wipe_trie(&keccak256(address));
    }
    for (owner, writes) in &changes.tries {
        write.put_trie(owner, writes);
    }
    write.put_history(outcome.block.number(), &changes.history)?;
    for (address, account) in &changes.accounts {
        write.put_account(*address, account.as_ref())?;
    }
    for (address, slot, value) in &changes.storage {
        write.put_storage(*address, *slot, *value);
    }
    for (hash, code) in &changes.code {
        write.put_code(*hash, code);
    }
    let receipts: Vec<_> = outcome
        .receipts
        .iter()
        .map(|tx| {
            (
                tx.hash,
                StoredReceipt {
                    receipt: tx.receipt.encoded_2718(),
                    sender: tx.sender,
                    gas_used: tx.gas_used,
                    effective_gas_price: tx.effective_gas_price,
                    contract_address: tx.contract_address,
                },
            )
        })
        .collect();
    write.put_receipts(outcome.block.number(), &receipts)?;
    write.put_block(&outcome.block)
}
