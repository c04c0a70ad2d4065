//! Prometheus metrics, rendered on the RPC port at `GET /metrics`. One recorder
//! serves the whole process (a test running several nodes in one process shares
//! it); the crates record through the `metrics` facade.

use std::sync::{Arc, OnceLock};

use baton_rpc::RenderMetrics;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder on first use; the page renderer, unless another
/// recorder was installed first.
pub(crate) fn page() -> Option<RenderMetrics> {
    let handle = RECORDER.get_or_init(|| PrometheusBuilder::new().install_recorder().ok());
    let handle = handle.clone()?;
    Some(Arc::new(move || handle.render()))
}
