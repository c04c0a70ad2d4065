//! The chain half of the store: sealed blocks, the open block, the head, and
//! the state machine's `applied` record, all written through [`ChainWrite`].

use alloy_consensus::Header;
use alloy_primitives::{Address, B256, Bytes};
use alloy_rlp::{Decodable, Encodable};
use baton_primitives::{BlockStart, OpenBlock, SealedBlock, codec};
use std::sync::Arc;

use rocksdb::{DB, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::{
    CF_BLOCK_HASHES, CF_BLOCKS, CF_CHAIN_META, CF_OPEN_TXS, CHAIN_FAMILIES, StorageError,
    StorageResult, Store, cf, decode_index, index_key,
};

const KEY_APPLIED: &[u8] = b"applied";
const KEY_OPEN_BLOCK: &[u8] = b"open_block";
const KEY_HEAD: &[u8] = b"head";

/// A block as stored: header RLP (so the hash is reproducible byte for byte) and body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BlockRecord {
    header_rlp: Vec<u8>,
    hash: B256,
    txs: Vec<(Bytes, Address)>,
}

impl BlockRecord {
    fn from_block(block: &SealedBlock) -> Self {
        let mut header_rlp = Vec::with_capacity(600);
        block.header.encode(&mut header_rlp);
        Self {
            header_rlp,
            hash: block.hash,
            txs: block.txs.clone(),
        }
    }

    /// Decodes the header and checks the stored hash against it.
    fn into_block(self) -> StorageResult<SealedBlock> {
        let header = Header::decode(&mut self.header_rlp.as_slice())
            .map_err(|e| StorageError::Corrupt(format!("block header: {e}")))?;
        let block = SealedBlock::new(header, self.txs);
        if block.hash != self.hash {
            return Err(StorageError::Corrupt(format!(
                "block {} hashes to {}, stored as {}",
                block.number(),
                block.hash,
                self.hash
            )));
        }
        Ok(block)
    }
}

impl Store {
    pub fn block(&self, number: u64) -> StorageResult<Option<SealedBlock>> {
        match self.get(CF_BLOCKS, index_key(number))? {
            None => Ok(None),
            Some(bytes) => codec::decode::<BlockRecord>(&bytes)?.into_block().map(Some),
        }
    }

    pub fn block_number(&self, hash: B256) -> StorageResult<Option<u64>> {
        match self.get(CF_BLOCK_HASHES, hash.as_slice())? {
            None => Ok(None),
            Some(bytes) => decode_index(&bytes).map(Some),
        }
    }

    /// Number and hash of the newest sealed block.
    pub fn head(&self) -> StorageResult<Option<(u64, B256)>> {
        self.chain_meta(KEY_HEAD)
    }

    /// The open block: its start and every transaction appended to it, in order.
    pub fn open_block(&self) -> StorageResult<Option<OpenBlock>> {
        let Some(start) = self.chain_meta::<BlockStart>(KEY_OPEN_BLOCK)? else {
            return Ok(None);
        };
        let mut txs = Vec::new();
        let db = self.db();
        let open_txs = cf(&db, CF_OPEN_TXS);
        // Point reads, not a scan: until a flush, the family holds every earlier
        // block's transactions under range tombstones, which a scan from the first
        // key steps over one by one (a leader reads the open block once a block).
        for index in 0..u32::MAX {
            let Some(value) = db.get_cf(open_txs, index.to_be_bytes())? else {
                break;
            };
            txs.push(codec::decode(&value)?);
        }
        Ok(Some(OpenBlock { start, txs }))
    }

    /// The state machine's record of what it has applied (opaque here).
    pub fn applied(&self) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.get(CF_CHAIN_META, KEY_APPLIED)?)
    }

    /// Deletes the whole chain (what a genesis interrupted before its head was
    /// written left behind), leaving this node's own records.
    pub fn clear_chain(&self) -> StorageResult<()> {
        // Every chain key is shorter than this bound, so the range covers all.
        let end = [0xffu8; 256];
        let db = self.db();
        let mut batch = WriteBatch::default();
        for name in CHAIN_FAMILIES {
            batch.delete_range_cf(cf(&db, name), &[][..], &end[..]);
        }
        db.write(batch)?;
        Ok(())
    }

    /// Starts a batch of chain writes; nothing is visible until [`ChainWrite::commit`].
    pub fn chain_write(&self) -> ChainWrite<'_> {
        ChainWrite {
            store: self,
            db: self.db(),
            batch: WriteBatch::default(),
        }
    }

    fn chain_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> StorageResult<Option<T>> {
        match self.get(CF_CHAIN_META, key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
        }
    }
}

/// One atomic change to the chain: blocks, open block, head and `applied` land
/// together or not at all (DESIGN invariant 7).
#[must_use = "a ChainWrite does nothing until committed"]
pub struct ChainWrite<'a> {
    pub(crate) store: &'a Store,
    /// The database the batch goes to: the one current when it began.
    pub(crate) db: Arc<DB>,
    pub(crate) batch: WriteBatch,
}

impl std::fmt::Debug for ChainWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainWrite")
            .field("ops", &self.batch.len())
            .finish()
    }
}

impl ChainWrite<'_> {
    /// Stores a sealed block and makes it the head.
    pub fn put_block(&mut self, block: &SealedBlock) -> StorageResult<()> {
        let record = codec::encode(&BlockRecord::from_block(block))?;
        let number = index_key(block.number());
        self.batch.put_cf(cf(&self.db, CF_BLOCKS), number, record);
        self.batch
            .put_cf(cf(&self.db, CF_BLOCK_HASHES), block.hash.as_slice(), number);
        self.batch.put_cf(
            cf(&self.db, CF_CHAIN_META),
            KEY_HEAD,
            codec::encode(&(block.number(), block.hash))?,
        );
        Ok(())
    }

    /// Records a newly opened block (with no transactions yet).
    pub fn open_block(&mut self, start: &BlockStart) -> StorageResult<()> {
        self.close_open_block();
        self.batch.put_cf(
            cf(&self.db, CF_CHAIN_META),
            KEY_OPEN_BLOCK,
            codec::encode(start)?,
        );
        Ok(())
    }

    /// Appends transactions to the open block; `first` is the index of the first.
    /// Writing only what is new keeps each batch's cost independent of block size.
    pub fn append_open_txs(&mut self, first: usize, txs: &[(Bytes, Address)]) -> StorageResult<()> {
        let cf = cf(&self.db, CF_OPEN_TXS);
        for (offset, tx) in txs.iter().enumerate() {
            let index = u32::try_from(first + offset)
                .map_err(|_| StorageError::Corrupt("open block over 2^32 transactions".into()))?;
            self.batch
                .put_cf(cf, index.to_be_bytes(), codec::encode(tx)?);
        }
        Ok(())
    }

    /// Forgets the open block (it was sealed).
    pub fn close_open_block(&mut self) {
        self.batch
            .delete_cf(cf(&self.db, CF_CHAIN_META), KEY_OPEN_BLOCK);
        let cf = cf(&self.db, CF_OPEN_TXS);
        self.batch
            .delete_range_cf(cf, 0u32.to_be_bytes(), u32::MAX.to_be_bytes());
        self.batch.delete_cf(cf, u32::MAX.to_be_bytes());
    }

    pub fn set_applied(&mut self, applied: Vec<u8>) {
        self.batch
            .put_cf(cf(&self.db, CF_CHAIN_META), KEY_APPLIED, applied);
    }

    /// Writes the batch atomically. Not fsynced: the Raft log is the durable copy,
    /// and a node re-applies from it after a crash.
    pub fn commit(self) -> StorageResult<()> {
        self.db.write(self.batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_primitives::ChainSpec;

    fn genesis_block() -> SealedBlock {
        SealedBlock::new(ChainSpec::dev().header, vec![])
    }

    #[test]
    fn blocks_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let genesis = genesis_block();
        let mut write = store.chain_write();
        write.put_block(&genesis).expect("put");
        write.set_applied(b"a1".to_vec());
        write.commit().expect("commit");

        assert_eq!(store.block(0).expect("read"), Some(genesis.clone()));
        assert_eq!(store.block_number(genesis.hash).expect("read"), Some(0));
        assert_eq!(store.head().expect("head"), Some((0, genesis.hash)));
        assert_eq!(store.applied().expect("applied"), Some(b"a1".to_vec()));
    }

    #[test]
    fn the_open_block_holds_only_its_own_transactions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let tx = |byte: u8| (Bytes::from(vec![byte; 3]), Address::repeat_byte(byte));
        let start = |number| BlockStart {
            number,
            timestamp_ms: 0,
            parent_hash: B256::ZERO,
            base_fee: 0,
            gas_limit: 30_000_000,
            coinbase: Address::ZERO,
        };
        assert!(store.open_block().expect("read").is_none());
        for (number, count) in [(1u64, 5u8), (2, 2), (3, 0), (4, 3)] {
            let mut write = store.chain_write();
            write.open_block(&start(number)).expect("open");
            write.commit().expect("commit");
            let txs: Vec<_> = (0..count).map(tx).collect();
            // In two appends, as batches arrive.
            let split = txs.len() / 2;
            for (first, part) in [(0, &txs[..split]), (split, &txs[split..])] {
                let mut write = store.chain_write();
                write.append_open_txs(first, part).expect("append");
                write.commit().expect("commit");
            }
            let open = store.open_block().expect("read").expect("open block");
            assert_eq!(open.start.number, number);
            assert_eq!(open.txs, txs, "block {number}: none of an earlier block's");
        }
        let mut write = store.chain_write();
        write.close_open_block();
        write.commit().expect("commit");
        assert!(store.open_block().expect("read").is_none());
    }

    #[test]
    fn a_garbage_data_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("CURRENT"), b"garbage\n").expect("write");
        let err = Store::open(dir.path()).expect_err("corrupt");
        assert!(err.to_string().contains("cannot open database"), "{err}");
    }
}
