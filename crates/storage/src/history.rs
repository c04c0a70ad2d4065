//! State history: what every block changed, kept as the values it replaced, so
//! state reads answer at any kept block (DESIGN §6).
//!
//! ```text
//!  column family    key                                  value
//!  account_history  address ++ block (BE)                the account before `block` changed it
//!                                                        (`None`: it did not exist)
//!  storage_history  address ++ slot ++ block (BE)        the slot's value before `block` changed it
//!  block_changes    block (BE)                           the keys `block` changed
//! ```
//!
//! The value of a key at block N is the value its first change after N replaced,
//! or, if it has not changed since N, its value now. Pruning a block deletes the
//! values it replaced, so state stays answerable from that block on.

use alloy_primitives::{Address, U256};
use baton_primitives::codec;
use rocksdb::{Direction, IteratorMode};
use serde::{Deserialize, Serialize};

use crate::{
    AccountRecord, CF_ACCOUNT_HISTORY, CF_BLOCK_CHANGES, CF_CHAIN_META, CF_STORAGE_HISTORY,
    ChainWrite, StorageError, StorageResult, Store, cf, index_key, state::slot_key,
};

const KEY_HISTORY_FLOOR: &[u8] = b"history_floor";

/// What one block changed, with the values it replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockChanges {
    /// Each changed account with its value before the block (`None`: absent).
    pub accounts: Vec<(Address, Option<AccountRecord>)>,
    /// Each changed slot with its value before the block (zero: unset).
    pub storage: Vec<(Address, U256, U256)>,
}

/// The keys a block changed (what `block_changes` holds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedKeys {
    pub accounts: Vec<Address>,
    pub storage: Vec<(Address, U256)>,
}

fn account_key(address: &Address, block: u64) -> [u8; 28] {
    let mut key = [0u8; 28];
    key[..20].copy_from_slice(address.as_slice());
    key[20..].copy_from_slice(&block.to_be_bytes());
    key
}

fn storage_key(address: &Address, slot: &U256, block: u64) -> [u8; 60] {
    let mut key = [0u8; 60];
    key[..52].copy_from_slice(&slot_key(*address, *slot));
    key[52..].copy_from_slice(&block.to_be_bytes());
    key
}

impl Store {
    /// The oldest block whose state is kept (0 for an archive).
    pub fn history_floor(&self) -> StorageResult<u64> {
        match self.get(CF_CHAIN_META, KEY_HISTORY_FLOOR)? {
            None => Ok(0),
            Some(bytes) => crate::decode_index(&bytes),
        }
    }

    /// The first value recorded for `prefix` in `cf` at a block after `block`,
    /// i.e. the value `prefix`'s key had at `block`, if it has changed since.
    fn replaced_after(
        &self,
        family: &'static str,
        prefix: &[u8],
        block: u64,
    ) -> StorageResult<Option<Vec<u8>>> {
        let mut from = prefix.to_vec();
        from.extend_from_slice(&block.saturating_add(1).to_be_bytes());
        let db = self.db();
        let mut iter = db.iterator_cf(
            cf(&db, family),
            IteratorMode::From(&from, Direction::Forward),
        );
        match iter.next() {
            Some(item) => {
                let (key, value) = item?;
                Ok((key.len() == prefix.len() + 8 && key.starts_with(prefix))
                    .then(|| value.into_vec()))
            }
            None => Ok(None),
        }
    }

    /// The account at `address` as of block `block` (which must be kept).
    pub fn account_at(&self, address: Address, block: u64) -> StorageResult<Option<AccountRecord>> {
        match self.replaced_after(CF_ACCOUNT_HISTORY, address.as_slice(), block)? {
            Some(bytes) => Ok(codec::decode(&bytes)?),
            None => self.account(address),
        }
    }

    /// A storage slot's value as of block `block` (which must be kept).
    pub fn storage_at(&self, address: Address, slot: U256, block: u64) -> StorageResult<U256> {
        match self.replaced_after(CF_STORAGE_HISTORY, &slot_key(address, slot), block)? {
            Some(bytes) => {
                let word: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    StorageError::Corrupt(format!("storage history value of {} bytes", bytes.len()))
                })?;
                Ok(U256::from_be_bytes(word))
            }
            None => self.storage_slot(address, slot),
        }
    }

    /// The keys block `number` changed (`None` if pruned or not a block).
    pub fn changed_keys(&self, number: u64) -> StorageResult<Option<ChangedKeys>> {
        match self.get(CF_BLOCK_CHANGES, index_key(number))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
        }
    }
}

impl ChainWrite<'_> {
    /// Records what block `number` replaced.
    pub fn put_history(&mut self, number: u64, changes: &BlockChanges) -> StorageResult<()> {
        let accounts = cf(&self.db, CF_ACCOUNT_HISTORY);
        for (address, before) in &changes.accounts {
            self.batch.put_cf(
                accounts,
                account_key(address, number),
                codec::encode(before)?,
            );
        }
        let storage = cf(&self.db, CF_STORAGE_HISTORY);
        for (address, slot, before) in &changes.storage {
            self.batch.put_cf(
                storage,
                storage_key(address, slot, number),
                before.to_be_bytes::<32>(),
            );
        }
        let keys = ChangedKeys {
            accounts: changes.accounts.iter().map(|(a, _)| *a).collect(),
            storage: changes.storage.iter().map(|(a, s, _)| (*a, *s)).collect(),
        };
        self.batch.put_cf(
            cf(&self.db, CF_BLOCK_CHANGES),
            index_key(number),
            codec::encode(&keys)?,
        );
        Ok(())
    }

    /// Forgets what block `number` replaced: state before it is no longer kept.
    pub fn prune_history(&mut self, number: u64) -> StorageResult<()> {
        if let Some(keys) = self.store.changed_keys(number)? {
            let accounts = cf(&self.db, CF_ACCOUNT_HISTORY);
            for address in &keys.accounts {
                self.batch.delete_cf(accounts, account_key(address, number));
            }
            let storage = cf(&self.db, CF_STORAGE_HISTORY);
            for (address, slot) in &keys.storage {
                self.batch
                    .delete_cf(storage, storage_key(address, slot, number));
            }
            self.batch
                .delete_cf(cf(&self.db, CF_BLOCK_CHANGES), index_key(number));
        }
        self.batch.put_cf(
            cf(&self.db, CF_CHAIN_META),
            KEY_HISTORY_FLOOR,
            index_key(number),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(nonce: u64) -> AccountRecord {
        AccountRecord {
            nonce,
            ..Default::default()
        }
    }

    #[test]
    fn state_at_a_block_is_the_value_its_next_change_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let alice = Address::repeat_byte(1);
        let slot = U256::from(7);
        // Block 3 creates alice (nonce 1) and sets the slot; block 5 bumps both.
        let mut write = store.chain_write();
        write
            .put_history(
                3,
                &BlockChanges {
                    accounts: vec![(alice, None)],
                    storage: vec![(alice, slot, U256::ZERO)],
                },
            )
            .expect("history");
        write
            .put_history(
                5,
                &BlockChanges {
                    accounts: vec![(alice, Some(record(1)))],
                    storage: vec![(alice, slot, U256::from(10))],
                },
            )
            .expect("history");
        write.put_account(alice, Some(&record(2))).expect("account");
        write.put_storage(alice, slot, U256::from(20));
        write.commit().expect("commit");

        assert_eq!(store.account_at(alice, 2).expect("read"), None);
        assert_eq!(store.account_at(alice, 3).expect("read"), Some(record(1)));
        assert_eq!(store.account_at(alice, 4).expect("read"), Some(record(1)));
        assert_eq!(store.account_at(alice, 5).expect("read"), Some(record(2)));
        assert_eq!(store.account_at(alice, 9).expect("read"), Some(record(2)));
        assert_eq!(store.storage_at(alice, slot, 2).expect("read"), U256::ZERO);
        assert_eq!(
            store.storage_at(alice, slot, 4).expect("read"),
            U256::from(10)
        );
        assert_eq!(
            store.storage_at(alice, slot, 5).expect("read"),
            U256::from(20)
        );
        // Another address sharing no prefix is untouched.
        let bob = Address::repeat_byte(2);
        assert_eq!(store.account_at(bob, 1).expect("read"), None);

        let mut write = store.chain_write();
        write.prune_history(3).expect("prune");
        write.commit().expect("commit");
        assert_eq!(store.history_floor().expect("floor"), 3);
        assert_eq!(store.changed_keys(3).expect("keys"), None);
        assert!(store.changed_keys(5).expect("keys").is_some());
        assert_eq!(store.account_at(alice, 4).expect("read"), Some(record(1)));
    }
}
