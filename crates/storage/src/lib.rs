//! baton-storage: everything a node keeps on disk, in one RocksDB.
//!
//! ```text
//!  column family  key                      value
//!  raft_log       index (u64 BE)           encoded Raft entry (opaque here)
//!  raft_meta      "vote" | "last_purged"   encoded Raft value (opaque here)
//!  node_meta      "identity" | "snapshot"  this node's own records, never replicated
//!  ── the chain: everything below travels in a snapshot ──
//!  blocks         number (u64 BE)          header RLP + body
//!  block_hashes   hash (32 bytes)          number (u64 BE)
//!  chain_meta     "applied" | "open_block" (its BlockStart) | "head"
//!  accounts       address (20 bytes)       nonce, balance, code hash
//!  storage        address ++ slot (52)     value (32 bytes BE)
//!  code           code hash (32 bytes)     bytecode
//!  receipts       number (u64 BE)          the block's receipts, in order
//!  tx_index       tx hash (32 bytes)       block number (u64 BE) ++ index (u32 BE)
//!  open_txs       index (u32 BE)           the open block's transactions, appended per batch
//!  trie           owner ++ path nibbles    a state trie node (see baton-trie and `trie`)
//!  account_history, storage_history, block_changes: what each block replaced (`history`)
//! ```
//!
//! The Raft half ([`Store::log_append`], [`Store::save_raft_meta`], …) writes
//! synchronously: when a call returns, the data is fsynced (DESIGN invariant 7).
//! The chain half is written through [`ChainWrite`], one RocksDB write batch per
//! apply, so applied state and `last_applied` always move together.

mod chain;
mod error;
mod history;
mod raft;
mod receipts;
mod state;
mod trie;

use std::{path::Path, sync::Arc};

use rocksdb::{ColumnFamilyDescriptor, DB, DBCompressionType, Options};

pub use chain::{ChainExport, ChainWrite, DATA_FORMAT, Identity};
pub use error::{StorageError, StorageResult};
pub use history::{BlockChanges, ChangedKeys};
pub use receipts::StoredReceipt;
pub use state::AccountRecord;

const CF_RAFT_LOG: &str = "raft_log";
const CF_RAFT_META: &str = "raft_meta";
const CF_BLOCKS: &str = "blocks";
const CF_BLOCK_HASHES: &str = "block_hashes";
const CF_CHAIN_META: &str = "chain_meta";
const CF_NODE_META: &str = "node_meta";
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
/// The families that make up the replicated chain state: a snapshot carries
/// exactly these, and installing one replaces exactly these.
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
/// This node's own families: the Raft log and metadata, and node-local records.
const NODE_FAMILIES: [&str; 3] = [CF_RAFT_LOG, CF_RAFT_META, CF_NODE_META];

/// A node's database. Cheap to clone; every clone is the same database.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the database under `path`.
    pub fn open(path: &Path) -> StorageResult<Self> {
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
        let families = NODE_FAMILIES.iter().chain(&CHAIN_FAMILIES).map(|name| {
            let mut cf = Options::default();
            cf.set_compression_type(DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&options, path, families).map_err(|source| {
            StorageError::Open {
                path: path.display().to_string(),
                source,
            }
        })?;
        Ok(Self { db: Arc::new(db) })
    }

    fn cf(&self, name: &'static str) -> &rocksdb::ColumnFamily {
        // Every family in NODE_FAMILIES and CHAIN_FAMILIES is created by `open`.
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| unreachable!("column family {name} is created at open"))
    }
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
