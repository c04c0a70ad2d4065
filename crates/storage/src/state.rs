//! Account state of the head block: accounts, contract storage and code.
//!
//! Only sealed blocks' state is stored; the open block's changes live in the
//! executor's overlay until `BlockEnd` writes them in the block's batch.

use alloy_primitives::{Address, B256, Bytes, U256};
use baton_primitives::codec;
use serde::{Deserialize, Serialize};

use crate::{CF_ACCOUNTS, CF_CODE, CF_STORAGE, ChainWrite, StorageError, StorageResult, Store, cf};

/// An account as stored (its storage lives in the `storage` family).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub nonce: u64,
    pub balance: U256,
    /// keccak of the code; `KECCAK_EMPTY` for accounts without code.
    pub code_hash: B256,
    /// Root of the account's storage trie (`EMPTY_ROOT_HASH` when it has none).
    pub storage_root: B256,
}

pub(crate) fn slot_key(address: Address, slot: U256) -> [u8; 52] {
    let mut key = [0u8; 52];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    key
}

impl Store {
    pub fn account(&self, address: Address) -> StorageResult<Option<AccountRecord>> {
        match self.get(CF_ACCOUNTS, address.as_slice())? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
        }
    }

    /// A storage slot's value; zero when never written.
    pub fn storage_slot(&self, address: Address, slot: U256) -> StorageResult<U256> {
        match self.get(CF_STORAGE, slot_key(address, slot))? {
            None => Ok(U256::ZERO),
            Some(bytes) => {
                let word: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    StorageError::Corrupt(format!("storage value of {} bytes", bytes.len()))
                })?;
                Ok(U256::from_be_bytes(word))
            }
        }
    }

    /// Every stored slot of `address`, in slot order.
    pub fn storage_slots(&self, address: Address) -> StorageResult<Vec<(U256, U256)>> {
        let mut slots = Vec::new();
        let db = self.db();
        for item in db.prefix_iterator_cf(cf(&db, CF_STORAGE), address.as_slice()) {
            let (key, value) = item?;
            if !key.starts_with(address.as_slice()) {
                break;
            }
            let slot: [u8; 32] = key[20..]
                .try_into()
                .map_err(|_| StorageError::Corrupt("storage key is not 52 bytes".into()))?;
            let word: [u8; 32] = value
                .as_ref()
                .try_into()
                .map_err(|_| StorageError::Corrupt("storage value is not 32 bytes".into()))?;
            slots.push((U256::from_be_bytes(slot), U256::from_be_bytes(word)));
        }
        Ok(slots)
    }

    /// The addresses of the first `count` accounts, in address order.
    pub fn first_accounts(&self, count: usize) -> StorageResult<Vec<Address>> {
        let mut accounts = Vec::new();
        let db = self.db();
        for item in db
            .iterator_cf(cf(&db, CF_ACCOUNTS), rocksdb::IteratorMode::Start)
            .take(count)
        {
            let (key, _) = item?;
            if key.len() != 20 {
                return Err(StorageError::Corrupt(format!(
                    "account key of {} bytes",
                    key.len()
                )));
            }
            accounts.push(Address::from_slice(&key));
        }
        Ok(accounts)
    }

    pub fn code(&self, code_hash: B256) -> StorageResult<Option<Bytes>> {
        Ok(self.get(CF_CODE, code_hash.as_slice())?.map(Bytes::from))
    }
}

impl ChainWrite<'_> {
    /// Writes an account, or deletes it (with its storage) when `None`.
    pub fn put_account(
        &mut self,
        address: Address,
        account: Option<&AccountRecord>,
    ) -> StorageResult<()> {
        let cf = cf(&self.db, CF_ACCOUNTS);
        match account {
            Some(account) => self
                .batch
                .put_cf(cf, address.as_slice(), codec::encode(account)?),
            None => {
                self.batch.delete_cf(cf, address.as_slice());
                self.wipe_storage(address);
            }
        }
        Ok(())
    }

    /// Deletes every storage slot of `address` (self-destruct, or re-creation).
    pub fn wipe_storage(&mut self, address: Address) {
        let cf = cf(&self.db, CF_STORAGE);
        self.batch.delete_range_cf(
            cf,
            slot_key(address, U256::ZERO),
            slot_key(address, U256::MAX),
        );
        self.batch.delete_cf(cf, slot_key(address, U256::MAX));
    }

    /// Writes a storage slot; zero deletes it.
    pub fn put_storage(&mut self, address: Address, slot: U256, value: U256) {
        let cf = cf(&self.db, CF_STORAGE);
        let key = slot_key(address, slot);
        if value.is_zero() {
            self.batch.delete_cf(cf, key);
        } else {
            self.batch.put_cf(cf, key, value.to_be_bytes::<32>());
        }
    }

    pub fn put_code(&mut self, code_hash: B256, code: &[u8]) {
        self.batch
            .put_cf(cf(&self.db, CF_CODE), code_hash.as_slice(), code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_storage_and_code_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let record = AccountRecord {
            nonce: 3,
            balance: U256::from(100),
            code_hash: B256::repeat_byte(7),
            storage_root: B256::repeat_byte(8),
        };
        let mut write = store.chain_write();
        write.put_account(a, Some(&record)).expect("account");
        write.put_storage(a, U256::from(1), U256::from(11));
        write.put_storage(a, U256::from(2), U256::from(22));
        write.put_storage(b, U256::from(1), U256::from(99));
        write.put_code(record.code_hash, b"\x60\x00");
        write.commit().expect("commit");

        assert_eq!(store.account(a).expect("read"), Some(record.clone()));
        assert_eq!(store.account(b).expect("read"), None);
        assert_eq!(
            store.storage_slot(a, U256::from(2)).expect("slot"),
            U256::from(22)
        );
        assert_eq!(store.storage_slots(a).expect("slots").len(), 2);
        assert_eq!(
            store.code(record.code_hash).expect("code"),
            Some(Bytes::from_static(b"\x60\x00"))
        );

        let mut write = store.chain_write();
        write.put_storage(a, U256::from(1), U256::ZERO);
        write.put_account(b, None).expect("delete");
        write.commit().expect("commit");
        assert_eq!(
            store.storage_slots(a).expect("slots"),
            vec![(U256::from(2), U256::from(22))]
        );
        assert!(store.storage_slots(b).expect("slots").is_empty());
    }
}
