//! baton-storage: everything a node keeps on disk, in two RocksDB databases.
//!
//! ```text
//!  <data>/raft       RaftStore: the Raft log and vote (fsynced), this node's identity
//!                    and snapshot records; never replicated (`raft`)
//!  <data>/chain ──▶  Store: the chain, a link to chain.d/<n>; what a snapshot carries
//!
//!  column family  key                      value
//!  blocks         number (u64 BE)          header RLP + body
//!  block_hashes   hash (32 bytes)          number (u64 BE)
//!  chain_meta     "applied" | "open_block" (its BlockStart) | "head" | "history_floor"
//!  accounts       address (20 bytes)       nonce, balance, code hash, storage root
//!  storage        address ++ slot (52)     value (32 bytes BE)
//!  code           code hash (32 bytes)     bytecode
//!  receipts       number (u64 BE)          the block's receipts, in order
//!  tx_index       tx hash (32 bytes)       block number (u64 BE) ++ index (u32 BE)
//!  open_txs       index (u32 BE)           the open block's transactions, appended per batch
//!  trie           owner ++ path nibbles    a state trie node (see baton-trie and `trie`)
//!  account_history, storage_history, block_changes: what each block replaced (`history`)
//! ```
//!
//! The Raft half writes synchronously: when a call returns, the data is fsynced
//! (DESIGN invariant 7). The chain is written through [`ChainWrite`], one RocksDB
//! write batch per apply, so applied state and `last_applied` always move
//! together. A snapshot of the chain is a RocksDB checkpoint ([`Store::checkpoint`]),
//! and installing one switches the `chain` link to it in one rename
//! ([`Store::replace_with`]): a crash before the switch leaves the old chain whole.

mod chain;
mod error;
mod history;
mod raft;
mod receipts;
mod state;
mod swap;
mod trie;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use alloy_primitives::B256;
use parking_lot::RwLock;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, Options,
    WriteBufferManager,
};
use serde::{Deserialize, Serialize};

pub use chain::ChainWrite;
pub use error::{StorageError, StorageResult};
pub use history::{BlockChanges, ChangedKeys};
pub use raft::RaftStore;
pub use receipts::StoredReceipt;
pub use state::AccountRecord;

const CF_BLOCKS: &str = "blocks";
const CF_BLOCK_HASHES: &str = "block_hashes";
const CF_CHAIN_META: &str = "chain_meta";
const CF_ACCOUNTS: &str = "accounts";
const CF_STORAGE: &str = "storage";
const CF_CODE: &str = "code";
const CF_RECEIPTS: &str = "receipts";
const CF_TX_INDEX: &str = "tx_index";
const CF_OPEN_TXS: &str = "open_txs";
const CF_TRIE: &str = "trie";
const CF_ACCOUNT_HISTORY: &str = "account_history";
const CF_STORAGE_HISTORY: &str = "storage_history";
const CF_BLOCK_CHANGES: &str = "block_changes";
/// The families of the chain database (all of it travels in a snapshot).
const CHAIN_FAMILIES: [&str; 13] = [
    CF_BLOCKS,
    CF_BLOCK_HASHES,
    CF_CHAIN_META,
    CF_ACCOUNTS,
    CF_STORAGE,
    CF_CODE,
    CF_RECEIPTS,
    CF_TX_INDEX,
    CF_OPEN_TXS,
    CF_TRIE,
    CF_ACCOUNT_HISTORY,
    CF_STORAGE_HISTORY,
    CF_BLOCK_CHANGES,
];
/// Whose data dir this is: written on first start, checked on every start, so a
/// node never runs on another member's or another chain's data, nor on data an
/// incompatible version of baton wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: u64,
    /// The genesis's fingerprint (see `ChainSpec::fingerprint`).
    pub genesis: B256,
    /// The layout of the data: [`DATA_FORMAT`] when written by this build.
    pub format: u32,
}

/// The version of the data dir's layout. 2: the Raft log and the chain in two
/// databases, state tries stored by path, state history, the genesis identified
/// by its fingerprint.
pub const DATA_FORMAT: u32 = 2;

/// The chain database. Cheap to clone; every clone is the same database, and sees
/// a snapshot install as soon as it happens.
#[derive(Clone)]
pub struct Store {
    /// The live database; replaced as a whole when a snapshot is installed.
    db: Arc<RwLock<Arc<DB>>>,
    /// Where it was opened: a link that an install switches, or a plain directory.
    path: Arc<PathBuf>,
    /// The memory the database may hold (see [`open_db`]), kept for installs.
    memory_bytes: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the chain database at `path` with
    /// [`DEFAULT_CHAIN_MEMORY_BYTES`] of memory.
    pub fn open(path: &Path) -> StorageResult<Self> {
        Self::open_with_memory(path, DEFAULT_CHAIN_MEMORY_BYTES)
    }

    /// Opens (or creates) the chain database at `path`, holding about
    /// `memory_bytes` between its block cache and its write buffers. A path that
    /// does not exist yet becomes a link to a fresh directory beside it, so that
    /// snapshots can later be installed by switching the link; an existing
    /// directory is opened as it is.
    pub fn open_with_memory(path: &Path, memory_bytes: usize) -> StorageResult<Self> {
        let live = swap::prepare(path)?;
        Ok(Self {
            db: Arc::new(RwLock::new(Arc::new(open_db(
                &live,
                &CHAIN_FAMILIES,
                memory_bytes,
            )?))),
            path: Arc::new(path.to_path_buf()),
            memory_bytes,
        })
    }

    /// Bytes the chain database holds (SST files and memtables).
    pub fn size_bytes(&self) -> u64 {
        db_bytes(&self.db(), &CHAIN_FAMILIES)
    }

    /// The live database, for one operation (it stays valid while held, even if a
    /// snapshot install replaces it meanwhile).
    fn db(&self) -> Arc<DB> {
        self.db.read().clone()
    }

    fn get(
        &self,
        family: &'static str,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Vec<u8>>, rocksdb::Error> {
        let db = self.db();
        db.get_cf(cf(&db, family), key)
    }
}

/// Memory of the chain database unless configured: its block cache, where the
/// upper trie levels, hot accounts and every table's index and filter blocks stay,
/// and its write buffers (docs/state.md has the measurements).
pub const DEFAULT_CHAIN_MEMORY_BYTES: usize = 256 << 20;
/// Memory of the Raft database (log entries are read back once or twice).
const RAFT_MEMORY_BYTES: usize = 32 << 20;

/// Opens (or creates) a database in `path` with `families`, holding about
/// `memory_bytes` in all: one block cache of that size, shared by the families,
/// to which the write buffers (memtables) are charged. The write buffers are
/// flushed once they pass a quarter of it, so however long the chain grows and
/// however many families take writes, the database's memory stays flat.
///
/// Every table carries a bloom filter: most reads of a growing chain are misses
/// (a fresh recipient's account, a slot never written), and without one a miss
/// reads a block of every level, so each lookup slows as the chain grows.
fn open_db(path: &Path, families: &[&'static str], memory_bytes: usize) -> StorageResult<DB> {
    std::fs::create_dir_all(path).map_err(|source| StorageError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(DBCompressionType::Lz4);
    // Detect torn or corrupt files at open rather than serve bad data later.
    options.set_paranoid_checks(true);
    let cache = Cache::new_lru_cache(memory_bytes);
    options.set_write_buffer_manager(&WriteBufferManager::new_write_buffer_manager_with_cache(
        memory_bytes / 4,
        false,
        cache.clone(),
    ));
    let mut tables = BlockBasedOptions::default();
    tables.set_block_cache(&cache);
    tables.set_bloom_filter(10.0, false);
    tables.set_cache_index_and_filter_blocks(true);
    tables.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let descriptors = families.iter().map(|name| {
        let mut family = Options::default();
        family.set_compression_type(DBCompressionType::Lz4);
        family.set_block_based_table_factory(&tables);
        family.set_level_compaction_dynamic_level_bytes(true);
        ColumnFamilyDescriptor::new(*name, family)
    });
    DB::open_cf_descriptors(&options, path, descriptors).map_err(|source| StorageError::Open {
        path: path.display().to_string(),
        source,
    })
}

/// Bytes `db` holds over `families`: its live SST files and its memtables.
fn db_bytes(db: &DB, families: &[&'static str]) -> u64 {
    let property = |family, name| {
        db.property_int_value_cf(cf(db, family), name)
            .ok()
            .flatten()
            .unwrap_or(0)
    };
    families
        .iter()
        .map(|family| {
            property(family, "rocksdb.total-sst-files-size")
                + property(family, "rocksdb.cur-size-all-mem-tables")
        })
        .sum()
}

/// The handle of a family `open_db` created.
fn cf<'a>(db: &'a DB, name: &'static str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| unreachable!("column family {name} is created at open"))
}

fn sync_write() -> rocksdb::WriteOptions {
    let mut options = rocksdb::WriteOptions::default();
    options.set_sync(true);
    options
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode_index(key: &[u8]) -> StorageResult<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("key of {} bytes, want 8", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// The write buffers are charged to the memory limit: past a quarter of it they
    /// are flushed, where RocksDB's defaults would keep up to 64 MiB per family.
    #[test]
    fn write_buffers_stay_within_a_quarter_of_the_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = 64 << 20;
        let store = Store::open_with_memory(&dir.path().join("chain"), memory).expect("open");
        let db = store.db();
        let families = [CF_BLOCKS, CF_TRIE];
        let value = vec![0x5a; 4096];
        // 48 MiB, 24 in each family: under RocksDB's default 64 MiB write buffer.
        for i in 0u64..12_288 {
            let family = families[i as usize % families.len()];
            db.put_cf(cf(&db, family), i.to_be_bytes(), &value)
                .expect("put");
        }
        let memtables = || {
            families
                .iter()
                .map(|family| {
                    db.property_int_value_cf(cf(&db, family), "rocksdb.cur-size-all-mem-tables")
                        .expect("property")
                        .expect("known property")
                })
                .sum::<u64>()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while memtables() > memory as u64 / 4 {
            assert!(
                Instant::now() < deadline,
                "{} bytes of write buffers after 48 MiB written with a limit of {memory}",
                memtables()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
