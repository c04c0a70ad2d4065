//! The chaos run's preconfirmation watchers: one `newFlashblocks` subscriber per
//! node, reconnecting whenever its node dies, is cut off or restarts, recording
//! what every frame said about every transaction. The checker then holds the final
//! chain to those words (DESIGN §7): a preconfirmation is never taken back.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use alloy_primitives::B256;
use baton_primitives::NodeId;
use jsonrpsee::{
    core::client::{Subscription, SubscriptionClientT},
    rpc_params,
    ws_client::WsClientBuilder,
};
use parking_lot::Mutex;
use serde_json::Value;

use super::history::History;

/// What one frame said about one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Preconfirmation {
    pub(super) block: u64,
    pub(super) index: u64,
    pub(super) status: Option<String>,
    pub(super) gas_used: Option<String>,
    pub(super) logs: usize,
}

/// Watches node `id` at `url` until `stop`, recording into `history`.
pub(super) async fn watch(
    id: NodeId,
    url: String,
    history: Arc<Mutex<History>>,
    stop: Arc<AtomicBool>,
) {
    let ws_url = url.replace("http://", "ws://");
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = stream(id, &ws_url, &history, &stop).await {
            tracing::debug!(node = id, error = %e, "preconfirmation watcher reconnects");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stream(
    id: NodeId,
    url: &str,
    history: &Mutex<History>,
    stop: &AtomicBool,
) -> eyre::Result<()> {
    let client = WsClientBuilder::default()
        .connection_timeout(Duration::from_secs(1))
        .build(url)
        .await?;
    let mut frames: Subscription<Value> = client
        .subscribe(
            "eth_subscribe",
            rpc_params!["newFlashblocks"],
            "eth_unsubscribe",
        )
        .await?;
    while !stop.load(Ordering::Relaxed) {
        let frame = match tokio::time::timeout(Duration::from_millis(500), frames.next()).await {
            Err(_) => continue,
            Ok(None) => eyre::bail!("the stream ended"),
            Ok(Some(frame)) => frame?,
        };
        let preconfirmations = read(&frame)?;
        history.lock().record_preconfirmations(id, preconfirmations);
    }
    Ok(())
}

/// Every transaction a frame preconfirms, with what the frame says of it.
fn read(frame: &Value) -> eyre::Result<Vec<(B256, Preconfirmation)>> {
    let block = frame["metadata"]["block_number"]
        .as_u64()
        .ok_or_else(|| eyre::eyre!("a frame with no block number: {frame}"))?;
    let receipts = frame["metadata"]["receipts"]
        .as_object()
        .ok_or_else(|| eyre::eyre!("a frame with no receipts: {frame}"))?;
    receipts
        .iter()
        .map(|(hash, receipt)| {
            let index = receipt["transactionIndex"]
                .as_str()
                .and_then(|hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())
                .ok_or_else(|| eyre::eyre!("a receipt with no index: {receipt}"))?;
            Ok((
                hash.parse()?,
                Preconfirmation {
                    block,
                    index,
                    status: receipt["status"].as_str().map(str::to_string),
                    gas_used: receipt["gasUsed"].as_str().map(str::to_string),
                    logs: receipt["logs"].as_array().map_or(0, Vec::len),
                },
            ))
        })
        .collect()
}
