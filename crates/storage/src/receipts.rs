//! Receipts by block, and where each transaction landed.

use alloy_primitives::{Address, B256};
use baton_primitives::codec;
use serde::{Deserialize, Serialize};

use crate::{
    CF_RECEIPTS, CF_TX_INDEX, ChainWrite, StorageError, StorageResult, Store, cf, index_key,
};

/// One transaction's receipt as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReceipt {
    /// EIP-2718 encoding of the receipt (status, cumulative gas, bloom, logs).
    pub receipt: Vec<u8>,
    pub sender: Address,
    pub gas_used: u64,
    pub effective_gas_price: u128,
    pub contract_address: Option<Address>,
}

impl Store {
    /// The receipts of block `number`, in transaction order.
    pub fn receipts(&self, number: u64) -> StorageResult<Option<Vec<StoredReceipt>>> {
        match self.get(CF_RECEIPTS, index_key(number))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
        }
    }

    /// `(block number, index in block)` of a sealed transaction.
    pub fn tx_location(&self, hash: B256) -> StorageResult<Option<(u64, u32)>> {
        match self.get(CF_TX_INDEX, hash.as_slice())? {
            None => Ok(None),
            Some(bytes) if bytes.len() == 12 => {
                let mut number = [0u8; 8];
                let mut index = [0u8; 4];
                number.copy_from_slice(&bytes[..8]);
                index.copy_from_slice(&bytes[8..]);
                Ok(Some((
                    u64::from_be_bytes(number),
                    u32::from_be_bytes(index),
                )))
            }
            Some(bytes) => Err(StorageError::Corrupt(format!(
                "tx index entry of {} bytes",
                bytes.len()
            ))),
        }
    }
}

impl ChainWrite<'_> {
    /// Stores block `number`'s receipts and indexes its transactions by hash.
    pub fn put_receipts(
        &mut self,
        number: u64,
        txs: &[(B256, StoredReceipt)],
    ) -> StorageResult<()> {
        let receipts: Vec<&StoredReceipt> = txs.iter().map(|(_, r)| r).collect();
        self.batch.put_cf(
            cf(&self.db, CF_RECEIPTS),
            index_key(number),
            codec::encode(&receipts)?,
        );
        for (index, (hash, _)) in txs.iter().enumerate() {
            let mut location = [0u8; 12];
            location[..8].copy_from_slice(&number.to_be_bytes());
            location[8..].copy_from_slice(&(index as u32).to_be_bytes());
            self.batch
                .put_cf(cf(&self.db, CF_TX_INDEX), hash.as_slice(), location);
        }
        Ok(())
    }
}
