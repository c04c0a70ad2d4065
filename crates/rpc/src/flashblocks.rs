//! Preconfirmations, streamed by every node (DESIGN §7): the open block as this
//! node applies it, batch by committed batch. A batch is applied only once a
//! quorum holds it, and whoever seals the block continues with it, so every frame
//! is final: no later frame or block contradicts it, across any failover.
//!
//! ```text
//!  ChainView (pending batches, sealed head) ──▶ per subscriber: Cursor ──▶ frames
//!   newFlashblocks            FlashblocksPayloadV1 (payload_id, index, base, diff, metadata)
//!   newFlashblockTransactions each transaction, with its block number and index
//!   pendingLogs               each matching log, likewise
//! ```
//!
//! A subscriber that joins mid-block gets the block so far. When a block is sealed
//! before a subscriber saw all of it, the rest comes from the sealed block (with its
//! hash and roots). Frames are sent as batches apply, at most one per
//! `interval`; faster batches are merged into one frame.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use alloy_consensus::TxReceipt;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{B64, B256, Bloom, Bytes, U64, U256, keccak256};
use alloy_rpc_types_eth::Filter;
use baton_execution::PendingBlock;
use jsonrpsee::{SubscriptionSink, core::SubscriptionResult};
use serde_json::{Value, json};

use crate::{
    EthHandler,
    tx::{SealedTx, pending_txs},
};

/// What a preconfirmation subscription streams.
#[derive(Debug)]
pub(crate) enum Stream {
    Flashblocks,
    Transactions,
    PendingLogs(Box<Filter>),
}

/// A subscriber this many blocks behind is dropped rather than caught up.
const MAX_BEHIND: u64 = 64;

/// Where a subscription is: the block it streams, how many of its transactions it
/// sent, and the index of the next frame.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    number: u64,
    sent: usize,
    index: u64,
}

/// The block a frame belongs to, as far as it is known.
struct BlockInfo {
    number: u64,
    parent_hash: B256,
    timestamp: u64,
    gas_limit: u64,
    base_fee: u64,
    fee_recipient: alloy_primitives::Address,
    /// Hash and roots, once the block is sealed.
    sealed: Option<(B256, B256, B256)>,
}

/// The id every node gives block `number` on `parent_hash`: the same on every node
/// and across leaders, so a stream continues through a failover.
pub(crate) fn payload_id(parent_hash: B256, number: u64) -> B64 {
    let mut preimage = parent_hash.to_vec();
    preimage.extend_from_slice(&number.to_be_bytes());
    B64::from_slice(&keccak256(preimage)[..8])
}

/// Streams `stream` to `sink` until it closes, the node stops, or it falls behind
/// (then the subscription ends with an error notification saying so).
pub(crate) async fn run(
    context: EthHandler,
    sink: SubscriptionSink,
    stream: Stream,
    interval: Duration,
) -> SubscriptionResult {
    let _open = crate::metered::Open::new("baton_rpc_subscriptions");
    let outbox = context.outboxes.open(&sink);
    let mut chain = context.consensus.chain();
    let mut cursor: Option<Cursor> = None;
    let mut last_frame = Instant::now() - interval;
    loop {
        let view = chain.borrow_and_update().clone();
        let head = view.head.number();
        let start = *cursor.get_or_insert(Cursor {
            number: view.pending.as_ref().map_or(head + 1, |p| p.start.number),
            sent: 0,
            index: 0,
        });
        if head.saturating_sub(start.number) > MAX_BEHIND {
            tracing::debug!("preconfirmation subscriber fell behind; dropped");
            return Err(format!(
                "subscription dropped: the subscriber fell more than {MAX_BEHIND} blocks behind"
            )
            .into());
        }
        let mut frames = Vec::new();
        let mut at = start;
        // Blocks sealed since the last frame: the rest of each from the store.
        while at.number <= head {
            match sealed_frame(&context, &at) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = ?e, "preconfirmation stream stopped");
                    return Err(e.message().into());
                }
            }
            at = Cursor {
                number: at.number + 1,
                sent: 0,
                index: 0,
            };
        }
        if let Some(pending) = view
            .pending
            .as_ref()
            .filter(|p| p.start.number == at.number)
        {
            match pending_frame(pending, &at) {
                Ok(Some((frame, sent))) => {
                    frames.push(frame);
                    at.sent += sent;
                    at.index += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = ?e, "preconfirmation stream stopped");
                    return Err(e.message().into());
                }
            }
        }
        cursor = Some(at);
        for frame in &frames {
            for item in stream.items(frame) {
                let raw = serde_json::value::to_raw_value(&item)?;
                if let Err(unsent) = outbox.send(&sink, raw).await {
                    return unsent.into_result();
                }
            }
        }
        if !frames.is_empty() {
            last_frame = Instant::now();
        }
        tokio::select! {
            changed = chain.changed() => if changed.is_err() { return Ok(()) },
            _ = sink.closed() => return Ok(()),
        }
        // Batches faster than the interval are merged into the next frame.
        let next_frame = last_frame + interval;
        if Instant::now() < next_frame {
            tokio::select! {
                _ = tokio::time::sleep_until(next_frame.into()) => {}
                _ = sink.closed() => return Ok(()),
            }
        }
    }
}

/// One frame: what a subscriber learns at once about one block.
struct Frame {
    block: BlockInfo,
    index: u64,
    txs: Vec<SealedTx>,
    /// Balances the frame's transactions left, where known.
    balances: BTreeMap<alloy_primitives::Address, U256>,
}

/// The rest of sealed block `at.number` after the `at.sent` transactions already
/// streamed (its first frame if nothing was), with its hash and roots.
fn sealed_frame(context: &EthHandler, at: &Cursor) -> jsonrpsee::core::RpcResult<Option<Frame>> {
    let Some(block) = context.store.block(at.number).map_err(crate::internal)? else {
        return Ok(None);
    };
    let txs = context
        .sealed_txs_in(at.number, at.sent..usize::MAX)?
        .unwrap_or_default();
    if txs.is_empty() && at.index > 0 {
        return Ok(None);
    }
    let header = &block.header;
    Ok(Some(Frame {
        block: BlockInfo {
            number: at.number,
            parent_hash: header.parent_hash,
            timestamp: header.timestamp,
            gas_limit: header.gas_limit,
            base_fee: header.base_fee_per_gas.unwrap_or_default(),
            fee_recipient: header.beneficiary,
            sealed: Some((block.hash, header.state_root, header.receipts_root)),
        },
        index: at.index,
        txs,
        balances: BTreeMap::new(),
    }))
}

/// The open block's transactions after the `at.sent` already streamed, and how
/// many; `None` when there are none (a block's first frame waits for its first
/// batch).
fn pending_frame(
    pending: &PendingBlock,
    at: &Cursor,
) -> jsonrpsee::core::RpcResult<Option<(Frame, usize)>> {
    let total = pending.tx_count();
    if total <= at.sent {
        return Ok(None);
    }
    let txs = pending_txs(pending, at.sent..total)?;
    let mut balances = BTreeMap::new();
    for batch in pending
        .batches
        .iter()
        .filter(|b| b.first + b.txs.len() > at.sent)
    {
        balances.extend(batch.balances());
    }
    let start = &pending.start;
    let frame = Frame {
        block: BlockInfo {
            number: start.number,
            parent_hash: start.parent_hash,
            timestamp: start.timestamp_ms / 1000,
            gas_limit: start.gas_limit,
            base_fee: start.base_fee,
            fee_recipient: start.coinbase,
            sealed: None,
        },
        index: at.index,
        txs,
        balances,
    };
    Ok(Some((frame, total - at.sent)))
}

impl Stream {
    /// What this stream sends for `frame`.
    fn items(&self, frame: &Frame) -> Vec<Value> {
        match self {
            Self::Flashblocks => vec![frame.payload()],
            Self::Transactions => frame
                .txs
                .iter()
                .map(|tx| json!(tx.clone().into_preconfirmed_transaction()))
                .collect(),
            Self::PendingLogs(filter) => frame
                .txs
                .iter()
                .flat_map(|tx| tx.logs())
                .filter(|log| filter.matches(&log.inner))
                .map(|log| json!(log))
                .collect(),
        }
    }
}

impl Frame {
    /// Base's FlashblocksPayloadV1 shape.
    fn payload(&self) -> Value {
        let block = &self.block;
        let (block_hash, state_root, receipts_root) = block.sealed.unwrap_or_default();
        let mut logs_bloom = Bloom::ZERO;
        for tx in &self.txs {
            logs_bloom.accrue_bloom(&tx.receipt.bloom());
        }
        let gas_used = self
            .txs
            .last()
            .map_or(0, |tx| tx.receipt.cumulative_gas_used());
        let transactions: Vec<Bytes> = self
            .txs
            .iter()
            .map(|tx| tx.tx.inner().encoded_2718().into())
            .collect();
        let receipts: serde_json::Map<String, Value> = self
            .txs
            .iter()
            .map(|tx| (tx.hash.to_string(), json!(tx.clone().into_rpc_receipt())))
            .collect();
        let mut payload = json!({
            "payload_id": payload_id(block.parent_hash, block.number),
            "index": self.index,
            "diff": {
                "state_root": state_root,
                "receipts_root": receipts_root,
                "logs_bloom": logs_bloom,
                "gas_used": U64::from(gas_used),
                "block_hash": block_hash,
                "transactions": transactions,
                "withdrawals": [],
                "withdrawals_root": B256::ZERO,
            },
            "metadata": {
                "block_number": block.number,
                "new_account_balances": self.balances,
                "receipts": receipts,
            },
        });
        if self.index == 0 {
            payload["base"] = json!({
                "parent_beacon_block_root": B256::ZERO,
                "parent_hash": block.parent_hash,
                "fee_recipient": block.fee_recipient,
                "prev_randao": B256::ZERO,
                "block_number": U64::from(block.number),
                "gas_limit": U64::from(block.gas_limit),
                "timestamp": U64::from(block.timestamp),
                "extra_data": Bytes::new(),
                "base_fee_per_gas": U256::from(block.base_fee),
            });
        }
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_id_is_eight_bytes_fixed_by_the_block() {
        let parent = B256::repeat_byte(7);
        assert_eq!(payload_id(parent, 5), payload_id(parent, 5));
        assert_ne!(payload_id(parent, 5), payload_id(parent, 6));
        assert_ne!(payload_id(parent, 5), payload_id(B256::repeat_byte(8), 5));
        assert_eq!(payload_id(parent, 5).to_string().len(), 2 + 16);
    }
}
