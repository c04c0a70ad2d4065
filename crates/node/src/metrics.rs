//! Prometheus metrics, rendered on the RPC port at `GET /metrics`. One recorder
//! serves the whole process (a test running several nodes in one process shares
//! it); the crates record through the `metrics` facade.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use baton_rpc::RenderMetrics;
use baton_storage::{RaftStore, Store};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder on first use; the page renderer, unless another
/// recorder was installed first.
pub(crate) fn page() -> Option<RenderMetrics> {
    let handle = RECORDER.get_or_init(|| PrometheusBuilder::new().install_recorder().ok());
    let handle = handle.clone()?;
    Some(Arc::new(move || handle.render()))
}

/// How often the databases' sizes are read.
const DB_SIZE_EVERY: Duration = Duration::from_secs(10);

/// Records `baton_db_bytes{db="chain"|"raft"}` (SST files and memtables) every
/// [`DB_SIZE_EVERY`], until the node stops (RocksDB properties: no disk walk).
pub(crate) async fn record_db_sizes(chain: Store, raft: RaftStore) {
    let mut every = tokio::time::interval(DB_SIZE_EVERY);
    loop {
        every.tick().await;
        metrics::gauge!("baton_db_bytes", "db" => "chain").set(chain.size_bytes() as f64);
        metrics::gauge!("baton_db_bytes", "db" => "raft").set(raft.size_bytes() as f64);
    }
}
