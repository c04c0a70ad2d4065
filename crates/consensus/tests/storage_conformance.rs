//! openraft's storage conformance suite against baton's RocksDB log store and
//! state machine (DESIGN §6, layer 2).

use baton_consensus::{LogStore, StateMachine, TypeConfig};
use baton_primitives::ChainSpec;
use baton_storage::Store;
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
        let store = Store::open(dir.path()).map_err(|e| io(std::io::Error::other(e)))?;
        let (state_machine, _view) =
            StateMachine::open(store.clone(), &ChainSpec::dev(), None).map_err(io)?;
        Ok((dir, LogStore::new(store), state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_store_passes_openraft_suite() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(RocksBuilder).await
}
