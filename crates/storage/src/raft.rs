//! The Raft half of the store: log entries and Raft's own metadata.
//!
//! Contract (what a Raft log store needs, and what this guarantees):
//! - every write here is fsynced before the call returns;
//! - entries are keyed by index, so a read of a range returns them in order;
//! - values are opaque bytes: the consensus crate owns their encoding.

use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::{CF_RAFT_LOG, CF_RAFT_META, StorageResult, Store, decode_index, index_key, sync_write};

impl Store {
    /// Appends (or overwrites) log entries and fsyncs them.
    pub fn log_append(
        &self,
        entries: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) -> StorageResult<()> {
        let cf = self.cf(CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        for (index, bytes) in entries {
            batch.put_cf(cf, index_key(index), bytes);
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
            self.cf(CF_RAFT_LOG),
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
            .iterator_cf(self.cf(CF_RAFT_LOG), IteratorMode::End)
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
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_RAFT_LOG), index_key(from), index_key(u64::MAX));
        batch.delete_cf(self.cf(CF_RAFT_LOG), index_key(u64::MAX));
        self.db.write_opt(batch, &sync_write())?;
        Ok(())
    }

    /// Deletes every entry with `index <= upto` and records `last_purged` in the
    /// same fsynced batch.
    pub fn log_purge_upto(&self, upto: u64, last_purged: Vec<u8>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_RAFT_META), b"last_purged", last_purged);
        batch.delete_range_cf(
            self.cf(CF_RAFT_LOG),
            index_key(0),
            index_key(upto.saturating_add(1)),
        );
        self.db.write_opt(batch, &sync_write())?;
        Ok(())
    }

    /// Writes one piece of Raft metadata (`vote`, `committed`, …) and fsyncs it.
    pub fn save_raft_meta(&self, key: &str, value: Vec<u8>) -> StorageResult<()> {
        self.db
            .put_cf_opt(self.cf(CF_RAFT_META), key.as_bytes(), value, &sync_write())?;
        Ok(())
    }

    pub fn raft_meta(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_RAFT_META), key.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_range_truncate_purge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
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
}
