//! The Raft log on RocksDB.
//!
//! To ensure correctness (openraft's contract for a log store, and how we meet it):
//! - **Durable before acknowledged**: `append` reports completion to openraft only
//!   after the entries are fsynced; `save_vote` returns only after the vote is
//!   fsynced (DESIGN invariant 7).
//! - **No holes, serialized writes**: openraft calls these methods one at a time
//!   from its log task; each write is one RocksDB batch keyed by index.
//! - **Versioned records**: every entry is stored as one format byte followed by
//!   its encoding; an unknown format is an error, never a guess.

use std::{
    fmt::Debug,
    io,
    ops::{Bound, RangeBounds},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use baton_primitives::{codec, entry::ENTRY_FORMAT_VERSION};
use baton_storage::RaftStore;
use openraft::{
    LogState, OptionalSend, RaftLogReader,
    entry::RaftEntry,
    storage::{IOFlushed, RaftLogStorage},
};

use crate::types::{Entry, LogId, TypeConfig, Vote};

const META_VOTE: &str = "vote";
const META_LAST_PURGED: &str = "last_purged";

/// openraft's view of the log, backed by the node's [`RaftStore`].
#[derive(Debug, Clone)]
pub struct LogStore {
    store: RaftStore,
    /// Bytes appended since this node started: the snapshot policy's measure of
    /// how much log a snapshot would let it drop.
    appended: Arc<AtomicU64>,
}

impl LogStore {
    pub fn new(store: RaftStore) -> Self {
        Self {
            store,
            appended: Arc::default(),
        }
    }

    /// The count of bytes appended, shared with whoever watches the log's growth.
    pub(crate) fn appended(&self) -> Arc<AtomicU64> {
        self.appended.clone()
    }

    fn decode_entry(index: u64, bytes: &[u8]) -> io::Result<Entry> {
        let (version, body) = bytes
            .split_first()
            .ok_or_else(|| corrupt(format!("log entry {index} is empty")))?;
        if *version != ENTRY_FORMAT_VERSION {
            return Err(corrupt(format!(
                "log entry {index} has format {version}, this build reads {ENTRY_FORMAT_VERSION}"
            )));
        }
        let entry: Entry =
            codec::decode(body).map_err(|e| corrupt(format!("log entry {index}: {e}")))?;
        if entry.index() != index {
            return Err(corrupt(format!(
                "log key {index} holds entry {}",
                entry.index()
            )));
        }
        Ok(entry)
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        match self.store.raft_meta(key).map_err(io::Error::other)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| corrupt(format!("raft {key}: {e}"))),
        }
    }

    /// Runs a blocking (fsyncing) write off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        write: impl FnOnce(RaftStore) -> baton_storage::StorageResult<T> + Send + 'static,
    ) -> io::Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || write(store))
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)
    }
}

fn encode_entry(entry: &Entry) -> io::Result<Vec<u8>> {
    let body = codec::encode(entry).map_err(io::Error::other)?;
    let mut bytes = Vec::with_capacity(body.len() + 1);
    bytes.push(ENTRY_FORMAT_VERSION);
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

fn corrupt(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let rows = self.store.log_range(start, end).map_err(io::Error::other)?;
        rows.iter()
            .map(|(index, bytes)| Self::decode_entry(*index, bytes))
            .collect()
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.meta(META_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.meta(META_LAST_PURGED)?;
        let last = self.store.log_last().map_err(io::Error::other)?;
        let last_log_id = match last {
            Some((index, bytes)) => Some(Self::decode_entry(index, &bytes)?.log_id()),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let bytes = codec::encode(vote).map_err(io::Error::other)?;
        self.blocking(move |store| store.save_raft_meta(META_VOTE, bytes))
            .await
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows = entries
            .into_iter()
            .map(|entry| Ok((entry.index(), encode_entry(&entry)?)))
            .collect::<io::Result<Vec<_>>>()?;
        debug_assert!(
            rows.windows(2).all(|w| w[1].0 == w[0].0 + 1),
            "appended entries must be contiguous"
        );
        let bytes: usize = rows.iter().map(|(_, row)| row.len()).sum();
        self.appended.fetch_add(bytes as u64, Ordering::Relaxed);
        self.blocking(move |store| store.log_append(rows)).await?;
        // Only now is the batch on disk: tell openraft, which may then count this
        // node towards a quorum. A failed write is returned instead, and is fatal.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map_or(0, |id| id.index() + 1);
        self.blocking(move |store| store.log_truncate_from(from))
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let upto = log_id.index();
        let bytes = codec::encode(&log_id).map_err(io::Error::other)?;
        self.blocking(move |store| store.log_purge_upto(upto, bytes))
            .await
    }
}
