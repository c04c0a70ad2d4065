//! openraft's storage conformance suite against baton's RocksDB log store and
//! state machine (DESIGN §6, layer 2).

use baton_consensus::{Executed, LogStore, StateMachine, Storage, TypeConfig};
use baton_primitives::ChainSpec;
use baton_storage::{RaftStore, Store};
use openraft::{
    ErrorSubject, ErrorVerb, StorageError,
    testing::log::{StoreBuilder, Suite},
};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let io = |e: std::io::Error| {
            StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, e)
        };
        let dir = tempfile::tempdir().map_err(io)?;
        let storage_error = |e| io(std::io::Error::other(e));
        let storage = Storage {
            chain: Store::open(&dir.path().join("chain")).map_err(storage_error)?,
            raft: RaftStore::open(&dir.path().join("raft")).map_err(storage_error)?,
            snapshots: dir.path().join("snapshots"),
        };
        let (state_machine, _view) =
            StateMachine::open(&storage, &ChainSpec::dev(), None, Executed::default())
                .map_err(io)?;
        Ok((dir, LogStore::new(storage.raft), state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_store_passes_openraft_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder).await
}
