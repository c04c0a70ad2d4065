//! This node's own database: the Raft log and Raft's metadata, and the node's own
//! records (identity, snapshots). It never travels in a snapshot and is never
//! replaced by one.
//!
//! ```text
//!  column family  key                      value
//!  raft_log       index (u64 BE)           encoded Raft entry (opaque here)
//!  raft_meta      "vote" | "last_purged"   encoded Raft value (opaque here)
//!  node_meta      "identity" | "snapshot"  this node's own records, never replicated
//! ```
//!
//! Contract (what a Raft log store needs, and what this guarantees):
//! - every write here is fsynced before the call returns (DESIGN invariant 7);
//! - entries are keyed by index, so a read of a range returns them in order;
//! - values are opaque bytes: the consensus crate owns their encoding.

use std::{path::Path, sync::Arc};

use alloy_primitives::B256;
use baton_primitives::codec;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};

use crate::{
    Identity, RAFT_MEMORY_BYTES, StorageResult, cf, decode_index, index_key, open_db, sync_write,
};

const CF_RAFT_LOG: &str = "raft_log";
const CF_RAFT_META: &str = "raft_meta";
const CF_NODE_META: &str = "node_meta";
const FAMILIES: [&str; 3] = [CF_RAFT_LOG, CF_RAFT_META, CF_NODE_META];

const KEY_IDENTITY: &[u8] = b"identity";
const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// The node's Raft log and own records. Cheap to clone; every clone is the same
/// database.
#[derive(Clone)]
pub struct RaftStore {
    db: Arc<DB>,
}

impl std::fmt::Debug for RaftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStore")
            .field("path", &self.db.path())
            .finish()
    }
}

impl RaftStore {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path) -> StorageResult<Self> {
        Ok(Self {
            db: Arc::new(open_db(path, &FAMILIES, RAFT_MEMORY_BYTES)?),
        })
    }

    /// Bytes the Raft database holds (SST files and memtables).
    pub fn size_bytes(&self) -> u64 {
        crate::db_bytes(&self.db, &FAMILIES)
    }

    /// Appends (or overwrites) log entries and fsyncs them.
    pub fn log_append(
        &self,
        entries: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) -> StorageResult<()> {
        let log = cf(&self.db, CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        for (index, bytes) in entries {
            batch.put_cf(log, index_key(index), bytes);
        }
        self.db.write_opt(batch, &sync_write())?;
        Ok(())
    }

    /// Entries with `start <= index < end`, in index order.
    pub fn log_range(&self, start: u64, end: u64) -> StorageResult<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        let key = index_key(start);
        let iter = self.db.iterator_cf(
            cf(&self.db, CF_RAFT_LOG),
            IteratorMode::From(&key, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            let index = decode_index(&key)?;
            if index >= end {
                break;
            }
            out.push((index, value.into_vec()));
        }
        Ok(out)
    }

    /// The entry with the highest index, if the log holds any.
    pub fn log_last(&self) -> StorageResult<Option<(u64, Vec<u8>)>> {
        match self
            .db
            .iterator_cf(cf(&self.db, CF_RAFT_LOG), IteratorMode::End)
            .next()
        {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                Ok(Some((decode_index(&key)?, value.into_vec())))
            }
        }
    }

    /// Deletes every entry with `index >= from` and fsyncs.
    pub fn log_truncate_from(&self, from: u64) -> StorageResult<()> {
        let log = cf(&self.db, CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(log, index_key(from), index_key(u64::MAX));
        batch.delete_cf(log, index_key(u64::MAX));
        self.db.write_opt(batch, &sync_write())?;
        Ok(())
    }

    /// Deletes every entry with `index <= upto` and records `last_purged` in the
    /// same fsynced batch.
    pub fn log_purge_upto(&self, upto: u64, last_purged: Vec<u8>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT_META), b"last_purged", last_purged);
        batch.delete_range_cf(
            cf(&self.db, CF_RAFT_LOG),
            index_key(0),
            index_key(upto.saturating_add(1)),
        );
        self.db.write_opt(batch, &sync_write())?;
        Ok(())
    }

    /// Writes one piece of Raft metadata (`vote`, `committed`, …) and fsyncs it.
    pub fn save_raft_meta(&self, key: &str, value: Vec<u8>) -> StorageResult<()> {
        self.db.put_cf_opt(
            cf(&self.db, CF_RAFT_META),
            key.as_bytes(),
            value,
            &sync_write(),
        )?;
        Ok(())
    }

    pub fn raft_meta(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(cf(&self.db, CF_RAFT_META), key.as_bytes())?)
    }

    pub fn identity(&self) -> StorageResult<Option<Identity>> {
        let Some(bytes) = self.db.get_cf(cf(&self.db, CF_NODE_META), KEY_IDENTITY)? else {
            return Ok(None);
        };
        match codec::decode(&bytes) {
            Ok(identity) => Ok(Some(identity)),
            // Format 1 recorded (node id, genesis hash) only.
            Err(_) => {
                let (node_id, genesis): (u64, B256) = codec::decode(&bytes)?;
                Ok(Some(Identity {
                    node_id,
                    genesis,
                    format: 1,
                }))
            }
        }
    }

    /// Records whose data dir this is (fsynced).
    pub fn set_identity(&self, identity: &Identity) -> StorageResult<()> {
        self.db.put_cf_opt(
            cf(&self.db, CF_NODE_META),
            KEY_IDENTITY,
            codec::encode(identity)?,
            &sync_write(),
        )?;
        Ok(())
    }

    /// The record of the last snapshot this node built or installed (opaque here).
    pub fn snapshot(&self) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(cf(&self.db, CF_NODE_META), KEY_SNAPSHOT)?)
    }

    /// Stores a snapshot record (fsynced: Raft may purge the log it replaces).
    pub fn save_snapshot(&self, bytes: Vec<u8>) -> StorageResult<()> {
        self.db.put_cf_opt(
            cf(&self.db, CF_NODE_META),
            KEY_SNAPSHOT,
            bytes,
            &sync_write(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DATA_FORMAT;

    #[test]
    fn append_range_truncate_purge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RaftStore::open(dir.path()).expect("open");
        store
            .log_append((1..=10).map(|i| (i, vec![i as u8])))
            .expect("append");
        assert_eq!(store.log_range(3, 6).expect("range").len(), 3);
        assert_eq!(store.log_last().expect("last").map(|(i, _)| i), Some(10));

        store.log_truncate_from(8).expect("truncate");
        assert_eq!(store.log_last().expect("last").map(|(i, _)| i), Some(7));

        store.log_purge_upto(4, b"p".to_vec()).expect("purge");
        let left: Vec<u64> = store
            .log_range(0, 100)
            .expect("range")
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(left, vec![5, 6, 7]);
        assert_eq!(
            store.raft_meta("last_purged").expect("meta"),
            Some(b"p".to_vec())
        );
    }

    #[test]
    fn identity_is_persisted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = Identity {
            node_id: 3,
            genesis: B256::repeat_byte(9),
            format: DATA_FORMAT,
        };
        {
            let store = RaftStore::open(dir.path()).expect("open");
            assert_eq!(store.identity().expect("read"), None);
            store.set_identity(&identity).expect("write");
        }
        let store = RaftStore::open(dir.path()).expect("reopen");
        assert_eq!(store.identity().expect("read"), Some(identity));
    }
}
