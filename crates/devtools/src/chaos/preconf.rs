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
    let mut numbering = Numbering::default();
    while !stop.load(Ordering::Relaxed) {
        let frame = match tokio::time::timeout(Duration::from_millis(500), frames.next()).await {
            Err(_) => continue,
            Ok(None) => eyre::bail!("the stream ended"),
            Ok(Some(frame)) => frame?,
        };
        let (block, index, payload_id) = header(&frame)?;
        let broken = numbering.next(block, index).err();
        let preconfirmations = read(&frame, block)?;
        let mut history = history.lock();
        history.record_frame(id, block, payload_id, broken);
        history.record_preconfirmations(id, preconfirmations);
    }
    Ok(())
}

/// The frame numbering one subscription must show (DESIGN §7): blocks in order,
/// each block's frames indexed 0, 1, 2, … with no gap or repeat, through any
/// failover; only the block open when it subscribed may start past 0.
#[derive(Debug, Default)]
struct Numbering {
    /// The block and index of the last frame.
    last: Option<(u64, u64)>,
}

impl Numbering {
    fn next(&mut self, block: u64, index: u64) -> Result<(), String> {
        let expected = match self.last.replace((block, index)) {
            None => return Ok(()),
            Some((last_block, last)) if last_block == block => last + 1,
            Some((last_block, _)) if last_block < block => 0,
            Some((last_block, _)) => {
                return Err(format!("block {block} streamed after block {last_block}"));
            }
        };
        if index == expected {
            Ok(())
        } else {
            Err(format!(
                "block {block}: frame index {index} where {expected} was next"
            ))
        }
    }
}

/// A frame's block number, index and payload id.
fn header(frame: &Value) -> eyre::Result<(u64, u64, String)> {
    let block = frame["metadata"]["block_number"].as_u64();
    let index = frame["index"].as_u64();
    let payload_id = frame["payload_id"].as_str();
    match (block, index, payload_id) {
        (Some(block), Some(index), Some(id)) => Ok((block, index, id.to_string())),
        _ => eyre::bail!("a frame without block number, index or payload id: {frame}"),
    }
}

/// Every transaction a frame of `block` preconfirms, with what the frame says of it.
fn read(frame: &Value, block: u64) -> eyre::Result<Vec<(B256, Preconfirmation)>> {
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

#[cfg(test)]
mod tests {
    use super::Numbering;

    #[test]
    fn frames_are_numbered_from_zero_without_gaps_except_the_block_joined() {
        let mut numbering = Numbering::default();
        assert!(numbering.next(7, 3).is_ok(), "joined block 7 mid-way");
        assert!(numbering.next(7, 4).is_ok());
        assert!(numbering.next(8, 0).is_ok());
        assert!(numbering.next(8, 1).is_ok());
        assert!(numbering.next(8, 3).is_err(), "a gap");
        assert!(numbering.next(9, 1).is_err(), "a block must start at 0");
        assert!(numbering.next(8, 4).is_err(), "blocks go forward");
        let mut repeat = Numbering::default();
        assert!(repeat.next(2, 0).is_ok());
        assert!(repeat.next(2, 0).is_err(), "a repeat");
    }
}
