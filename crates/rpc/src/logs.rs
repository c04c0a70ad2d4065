//! `eth_getLogs`: logs of sealed blocks, matched by block range or hash, address and
//! topics. Each block's bloom is checked before its receipts are read.

use alloy_consensus::ReceiptEnvelope;
use alloy_eips::{BlockNumberOrTag, eip2718::Decodable2718};
use alloy_primitives::keccak256;
use alloy_rpc_types_eth::{Filter, FilterBlockOption, Log};
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
};

use crate::{
    EthHandler, internal, invalid_params,
    pool::{timed_out, timed_out_error},
};

/// What log queries and installed filters may cost (all configurable).
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Most blocks one `eth_getLogs` scans, and one filter poll reports.
    pub max_blocks_per_filter: u64,
    /// Most logs one `eth_getLogs` or filter poll returns.
    pub max_logs_per_response: usize,
    /// Most polling filters installed at once.
    pub max_filters: usize,
    /// Most bytes (estimated) the criteria of installed filters and log
    /// subscriptions hold together: a filter may name thousands of addresses.
    pub max_filter_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_blocks_per_filter: 10_000,
            max_logs_per_response: 10_000,
            max_filters: 10_000,
            max_filter_bytes: 64 << 20,
        }
    }
}

#[rpc(server)]
pub trait EthLogsApi {
    #[method(name = "eth_getLogs", with_extensions)]
    async fn logs(&self, filter: Filter) -> RpcResult<Vec<Log>>;
}

impl EthHandler {
    /// Every log of sealed block `number` that `filter` matches, in order; an
    /// error once `out` would hold more than `limit` (a query's result cap; a
    /// subscription has none, so no block can end it).
    pub(crate) fn matching_logs(
        &self,
        number: u64,
        filter: &Filter,
        out: &mut Vec<Log>,
        limit: usize,
    ) -> RpcResult<()> {
        let Some(block) = self.store.block(number).map_err(internal)? else {
            return Ok(());
        };
        if !filter.matches_bloom(block.header.logs_bloom) {
            return Ok(());
        }
        let receipts = self
            .store
            .receipts(number)
            .map_err(internal)?
            .unwrap_or_default();
        let mut log_index = 0u64;
        for (index, (stored, (raw, _))) in receipts.iter().zip(&block.txs).enumerate() {
            let receipt =
                ReceiptEnvelope::decode_2718(&mut stored.receipt.as_slice()).map_err(internal)?;
            for log in receipt.logs() {
                if filter.matches(log) {
                    if out.len() >= limit {
                        return Err(invalid_params(format!(
                            "query returned more than {limit} results; narrow the block range"
                        )));
                    }
                    out.push(Log {
                        inner: log.clone(),
                        block_hash: Some(block.hash),
                        block_number: Some(number),
                        block_timestamp: Some(block.header.timestamp),
                        transaction_hash: Some(keccak256(raw)),
                        transaction_index: Some(index as u64),
                        log_index: Some(log_index),
                        removed: false,
                    });
                }
                log_index += 1;
            }
        }
        Ok(())
    }

    fn tag_number(&self, tag: Option<&BlockNumberOrTag>, head: u64) -> u64 {
        match tag {
            Some(BlockNumberOrTag::Number(n)) => *n,
            Some(BlockNumberOrTag::Earliest) => 0,
            _ => head,
        }
    }
}

#[async_trait]
impl EthLogsApiServer for EthHandler {
    async fn logs(&self, extensions: &Extensions, filter: Filter) -> RpcResult<Vec<Log>> {
        let this = self.clone();
        self.exec
            .run(extensions, move |deadline| {
                this.logs_until(&filter, deadline)
            })
            .await
    }
}

impl EthHandler {
    /// `eth_getLogs`, giving up at `deadline`.
    pub(crate) fn logs_until(
        &self,
        filter: &Filter,
        deadline: std::time::Instant,
    ) -> RpcResult<Vec<Log>> {
        let view = self.consensus.chain().borrow().clone();
        let head = view.head.number();
        let max_logs = self.queries.max_logs_per_response;
        let mut out = Vec::new();
        match &filter.block_option {
            FilterBlockOption::AtBlockHash(hash) => {
                let number = self
                    .store
                    .block_number(*hash)
                    .map_err(internal)?
                    .ok_or_else(|| invalid_params(format!("unknown block {hash}")))?;
                self.matching_logs(number, filter, &mut out, max_logs)?;
            }
            // `pending` alone: the open block's logs so far (committed, final).
            FilterBlockOption::Range {
                from_block: Some(BlockNumberOrTag::Pending),
                ..
            } => pending_logs(view.pending.as_deref(), filter, &mut out, max_logs)?,
            FilterBlockOption::Range {
                from_block,
                to_block,
            } => {
                let from = self.tag_number(from_block.as_ref(), head);
                let to = self.tag_number(to_block.as_ref(), head).min(head);
                let to_pending = to_block == &Some(BlockNumberOrTag::Pending);
                if from > to {
                    if from > head {
                        // Only the open block can be in range (if `to` is pending).
                        let open = view.pending.as_deref().filter(|p| p.start.number >= from);
                        if to_pending {
                            pending_logs(open, filter, &mut out, max_logs)?;
                        }
                        return Ok(out);
                    }
                    return Err(invalid_params(format!(
                        "invalid block range: from {from} > to {to}"
                    )));
                }
                let range = self.queries.max_blocks_per_filter;
                if to - from >= range {
                    return Err(invalid_params(format!(
                        "block range of {} exceeds the limit of {range}",
                        to - from + 1
                    )));
                }
                for number in from..=to {
                    if timed_out(deadline) {
                        return Err(timed_out_error());
                    }
                    self.matching_logs(number, filter, &mut out, max_logs)?;
                }
                if to_pending {
                    pending_logs(view.pending.as_deref(), filter, &mut out, max_logs)?;
                }
            }
        }
        Ok(out)
    }
}

/// The logs of the open block `pending` so far that `filter` matches, after `out`
/// (which may hold `limit`).
fn pending_logs(
    pending: Option<&baton_execution::PendingBlock>,
    filter: &Filter,
    out: &mut Vec<Log>,
    limit: usize,
) -> RpcResult<()> {
    let Some(pending) = pending else {
        return Ok(());
    };
    for tx in crate::tx::pending_txs(pending, 0..pending.tx_count())? {
        for log in tx
            .logs()
            .into_iter()
            .filter(|log| filter.matches(&log.inner))
        {
            if out.len() >= limit {
                return Err(invalid_params(format!(
                    "query returned more than {limit} results; narrow the block range"
                )));
            }
            out.push(log);
        }
    }
    Ok(())
}
