//! Writing execution results into a chain batch: the genesis state, and a sealed
//! block with its receipts and state changes (one batch, DESIGN invariant 7).

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, KECCAK_EMPTY, Nibbles, TrieAccount};
use baton_primitives::{ChainSpec, GenesisAccount, GenesisError, SealedBlock};
use baton_storage::{AccountRecord, ChainWrite, StorageError, StorageResult, Store, StoredReceipt};

use crate::SealOutcome;

fn trie(e: baton_trie::TrieError) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

/// Accounts written per batch while a genesis allocation loads.
const GENESIS_BATCH: usize = 10_000;
/// Account-trie leaves inserted per update while a genesis allocation loads.
const GENESIS_TRIE_CHUNK: usize = 65_536;

/// Block 0, its allocation and the allocation's tries, into a store with no chain
/// (whatever an interrupted earlier attempt left is cleared first). The allocation
/// is streamed in batches and the account trie built in key order, chunk by
/// chunk, so memory stays bounded by a few bytes per account (its key). Returns
/// block 0, whose state root is the allocation's.
pub fn write_genesis(store: &Store, spec: &ChainSpec) -> Result<SealedBlock, GenesisError> {
    let sink = |e: StorageError| GenesisError::Sink(e.to_string());
    store.clear_chain().map_err(sink)?;
    let mut keys: Vec<(B256, Address)> = Vec::new();
    let mut write = store.chain_write();
    let mut batched = 0;
    spec.for_each_account(|address, account| {
        write_account(store, &mut write, address, &account).map_err(sink)?;
        keys.push((keccak256(address), address));
        batched += 1;
        if batched == GENESIS_BATCH {
            batched = 0;
            std::mem::replace(&mut write, store.chain_write())
                .commit()
                .map_err(sink)?;
        }
        Ok(())
    })?;
    write.commit().map_err(sink)?;
    keys.sort_unstable();
    keys.dedup();
    let mut state_root = EMPTY_ROOT_HASH;
    for chunk in keys.chunks(GENESIS_TRIE_CHUNK) {
        let mut leaves = Vec::with_capacity(chunk.len());
        for (hash, address) in chunk {
            let record = store
                .account(*address)
                .map_err(sink)?
                .ok_or_else(|| GenesisError::Sink(format!("account {address} was not written")))?;
            leaves.push((Nibbles::unpack(hash), Some(account_leaf(&record))));
        }
        let writes = baton_trie::update(store, B256::ZERO, &leaves).map_err(|e| sink(trie(e)))?;
        state_root = writes.root;
        let mut write = store.chain_write();
        write.put_trie(&B256::ZERO, &writes);
        write.commit().map_err(sink)?;
    }
    let mut header = spec.header.clone();
    header.state_root = state_root;
    let genesis = SealedBlock::new(header, Vec::new());
    let mut write = store.chain_write();
    write.put_block(&genesis).map_err(sink)?;
    write.commit().map_err(sink)?;
    Ok(genesis)
}

/// One genesis account: its record, code, slots and storage trie.
fn write_account(
    store: &Store,
    write: &mut ChainWrite<'_>,
    address: Address,
    account: &GenesisAccount,
) -> StorageResult<()> {
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
        write.put_storage(address, slot.into(), value);
        slots.push((
            Nibbles::unpack(keccak256(slot)),
            Some(alloy_rlp::encode(value)),
        ));
    }
    slots.sort_by_key(|slot| slot.0);
    slots.dedup_by_key(|slot| slot.0);
    let owner = keccak256(address);
    let storage = baton_trie::update(store, owner, &slots).map_err(trie)?;
    write.put_trie(&owner, &storage);
    let record = AccountRecord {
        nonce: account.nonce.unwrap_or_default(),
        balance: account.balance,
        code_hash,
        storage_root: storage.root,
    };
    write.put_account(address, Some(&record))
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
