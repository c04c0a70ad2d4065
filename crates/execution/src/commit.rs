//! Writing execution results into a chain batch: the genesis state, and a sealed
//! block with its receipts and state changes (one batch, DESIGN invariant 7).

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::keccak256;
use alloy_trie::{KECCAK_EMPTY, root::storage_root_unhashed};
use baton_primitives::{ChainSpec, SealedBlock};
use baton_storage::{AccountRecord, ChainWrite, StorageResult, StoredReceipt};

use crate::SealOutcome;

/// Block 0 and its allocation.
pub fn write_genesis(write: &mut ChainWrite<'_>, spec: &ChainSpec) -> StorageResult<()> {
    write.put_block(&SealedBlock::new(spec.genesis_header.clone(), Vec::new()))?;
    for (address, account) in &spec.genesis.alloc {
        let code_hash = match account.non_empty_code() {
            Some(code) => {
                let hash = keccak256(code);
                write.put_code(hash, code);
                hash
            }
            None => KECCAK_EMPTY,
        };
        let record = AccountRecord {
            nonce: account.nonce.unwrap_or_default(),
            balance: account.balance,
            code_hash,
            storage_root: storage_root_unhashed(account.storage_slots()),
        };
        write.put_account(*address, Some(&record))?;
        for (slot, value) in account.storage_slots() {
            write.put_storage(*address, slot.into(), value);
        }
    }
    Ok(())
}

/// A sealed block, its receipts and its state changes.
pub fn write_sealed(write: &mut ChainWrite<'_>, outcome: &SealOutcome) -> StorageResult<()> {
    let changes = &outcome.changes;
    for address in &changes.wiped {
        write.wipe_storage(*address);
    }
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
