//! Polling filters: `eth_newFilter`, `eth_newBlockFilter`, `eth_getFilterChanges`,
//! `eth_getFilterLogs`, `eth_uninstallFilter`. Each filter remembers the next block
//! it has not reported; one not polled for [`FILTER_IDLE`] is dropped. Polls run on
//! the RPC execution threads (`pool`), a bounded window of blocks each. Filters
//! are bounded in number and, with log subscriptions, in the bytes their criteria
//! hold ([`QueryLimits`], [`Held`]).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_primitives::{U256, keccak256};
use alloy_rpc_types_eth::{Filter, FilterChanges, Log};
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
};
use parking_lot::Mutex;

use crate::{
    EthHandler, internal, invalid_params,
    logs::QueryLimits,
    pool::{limit_exceeded, timed_out, timed_out_error},
};

/// A filter nobody polls for this long is forgotten (geth's default).
pub(crate) const FILTER_IDLE: Duration = Duration::from_secs(300);
/// What a filter costs beyond its addresses and topics, in bytes (estimated).
const FILTER_BYTES: usize = 256;
/// What one address or topic in a filter's criteria costs, in bytes (estimated:
/// the value, and its place in a hash set).
const CRITERION_BYTES: usize = 64;

#[derive(Debug, Clone)]
enum FilterKind {
    Blocks,
    Logs(Box<Filter>),
    /// Transactions as they are applied (committed, so final): block `next`'s
    /// first `sent` were reported already.
    PendingTransactions {
        sent: usize,
    },
}

#[derive(Debug, Clone)]
struct Installed {
    kind: FilterKind,
    /// The first block not yet reported.
    next: u64,
    polled: Instant,
    /// Its share of the filter bytes, given back when the last copy goes.
    _held: Arc<Held>,
}

/// The node's installed filters, and the bytes they and log subscriptions hold.
#[derive(Debug, Clone)]
pub(crate) struct Filters {
    inner: Arc<Mutex<(u64, HashMap<u64, Installed>)>>,
    /// Bytes held by every [`Held`] alive; at most `max_bytes`.
    held: Arc<AtomicUsize>,
    max_filters: usize,
    max_bytes: usize,
}

/// An installed filter's or a log subscription's share of
/// [`QueryLimits::max_filter_bytes`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    bytes: usize,
    total: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let before = self.total.fetch_sub(self.bytes, Ordering::Relaxed);
        debug_assert!(
            before >= self.bytes,
            "more filter bytes given back than held"
        );
    }
}

impl Default for Filters {
    fn default() -> Self {
        Self::new(&QueryLimits::default())
    }
}

impl Filters {
    pub(crate) fn new(limits: &QueryLimits) -> Self {
        Self {
            inner: Arc::default(),
            held: Arc::default(),
            max_filters: limits.max_filters,
            max_bytes: limits.max_filter_bytes,
        }
    }

    /// Takes `filter`'s share of the filter bytes (`None`: one that names nothing,
    /// like a filter of blocks), or says why there is no room.
    pub(crate) fn hold(&self, filter: Option<&Filter>) -> RpcResult<Held> {
        let criteria = filter.map_or(0, |filter| {
            let topics: usize = filter.topics.iter().map(|topic| topic.len()).sum();
            filter.address.len() + topics
        });
        let bytes = FILTER_BYTES.saturating_add(criteria.saturating_mul(CRITERION_BYTES));
        let reserved = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(bytes)
                    .filter(|total| *total <= self.max_bytes)
            });
        match reserved {
            Ok(_) => Ok(Held {
                bytes,
                total: self.held.clone(),
            }),
            Err(held) => Err(limit_exceeded(format!(
                "installed filters and log subscriptions hold {held} bytes of criteria; \
                 this one needs {bytes} more and the limit is {}: uninstall some, or name \
                 fewer addresses and topics",
                self.max_bytes
            ))),
        }
    }

    fn install(&self, kind: FilterKind, next: u64) -> RpcResult<U256> {
        let criteria = match &kind {
            FilterKind::Logs(filter) => Some(filter.as_ref()),
            FilterKind::Blocks | FilterKind::PendingTransactions { .. } => None,
        };
        let mut guard = self.inner.lock();
        let (counter, filters) = &mut *guard;
        filters.retain(|_, f| f.polled.elapsed() < FILTER_IDLE);
        if filters.len() >= self.max_filters {
            return Err(limit_exceeded(format!(
                "{} filters are installed, the most this node keeps; uninstall some",
                filters.len()
            )));
        }
        let held = self.hold(criteria)?;
        *counter += 1;
        filters.insert(
            *counter,
            Installed {
                kind,
                next,
                polled: Instant::now(),
                _held: Arc::new(held),
            },
        );
        Ok(U256::from(*counter))
    }

    /// Moves pending-transaction filter `id` to `sent` transactions of block `next`.
    fn set_pending_cursor(&self, id: U256, next: u64, sent: usize) {
        let mut guard = self.inner.lock();
        if let Some(filter) = u64::try_from(id).ok().and_then(|id| guard.1.get_mut(&id)) {
            filter.next = next;
            filter.kind = FilterKind::PendingTransactions { sent };
        }
    }

    /// The filter `id` as it was, and the last block this poll reports: the head,
    /// or fewer blocks when more than `window` are new (a filter from block 0
    /// reports the chain a window per poll, never all at once). Its cursor moves
    /// past that block.
    fn poll(&self, id: U256, head: u64, window: u64) -> RpcResult<(Installed, u64)> {
        let mut guard = self.inner.lock();
        let filter = u64::try_from(id)
            .ok()
            .and_then(|id| guard.1.get_mut(&id))
            .ok_or_else(|| invalid_params("filter not found"))?;
        let before = filter.clone();
        let upto = head.min(filter.next.saturating_add(window.saturating_sub(1)));
        filter.next = filter.next.max(upto + 1);
        filter.polled = Instant::now();
        Ok((before, upto))
    }
}

#[rpc(server)]
pub trait EthFilterApi {
    #[method(name = "eth_newFilter")]
    fn new_filter(&self, filter: Filter) -> RpcResult<U256>;

    #[method(name = "eth_newBlockFilter")]
    fn new_block_filter(&self) -> RpcResult<U256>;

    /// Hashes of transactions as they are applied to the open block.
    #[method(name = "eth_newPendingTransactionFilter")]
    fn new_pending_transaction_filter(&self) -> RpcResult<U256>;

    #[method(name = "eth_getFilterChanges", with_extensions)]
    async fn filter_changes(&self, id: U256) -> RpcResult<FilterChanges>;

    #[method(name = "eth_getFilterLogs", with_extensions)]
    async fn filter_logs(&self, id: U256) -> RpcResult<Vec<Log>>;

    #[method(name = "eth_uninstallFilter")]
    fn uninstall_filter(&self, id: U256) -> RpcResult<bool>;
}

impl EthHandler {
    fn head(&self) -> u64 {
        self.consensus.chain().borrow().head.number()
    }
}

#[async_trait]
impl EthFilterApiServer for EthHandler {
    fn new_filter(&self, filter: Filter) -> RpcResult<U256> {
        let next = filter.get_from_block().unwrap_or(self.head() + 1);
        self.filters
            .install(FilterKind::Logs(Box::new(filter)), next)
    }

    fn new_block_filter(&self) -> RpcResult<U256> {
        self.filters.install(FilterKind::Blocks, self.head() + 1)
    }

    fn new_pending_transaction_filter(&self) -> RpcResult<U256> {
        let view = self.consensus.chain().borrow().clone();
        let (next, sent) = match &view.pending {
            Some(pending) => (pending.start.number, pending.tx_count()),
            None => (view.head.number() + 1, 0),
        };
        self.filters
            .install(FilterKind::PendingTransactions { sent }, next)
    }

    async fn filter_changes(&self, extensions: &Extensions, id: U256) -> RpcResult<FilterChanges> {
        let this = self.clone();
        self.exec
            .run(extensions, move |deadline| {
                this.filter_changes_until(id, deadline)
            })
            .await
    }

    async fn filter_logs(&self, extensions: &Extensions, id: U256) -> RpcResult<Vec<Log>> {
        let installed = {
            let guard = self.filters.inner.lock();
            u64::try_from(id)
                .ok()
                .and_then(|id| guard.1.get(&id).cloned())
                .ok_or_else(|| invalid_params("filter not found"))?
        };
        match installed.kind {
            FilterKind::Logs(filter) => {
                let this = self.clone();
                self.exec
                    .run(extensions, move |deadline| {
                        this.logs_until(&filter, deadline)
                    })
                    .await
            }
            FilterKind::Blocks | FilterKind::PendingTransactions { .. } => {
                Err(invalid_params("eth_getFilterLogs needs a log filter"))
            }
        }
    }

    fn uninstall_filter(&self, id: U256) -> RpcResult<bool> {
        let mut guard = self.filters.inner.lock();
        Ok(u64::try_from(id)
            .ok()
            .and_then(|id| guard.1.remove(&id))
            .is_some())
    }
}

impl EthHandler {
    fn filter_changes_until(&self, id: U256, deadline: Instant) -> RpcResult<FilterChanges> {
        let limits = &self.queries;
        let (installed, head) = self
            .filters
            .poll(id, self.head(), limits.max_blocks_per_filter)?;
        match installed.kind {
            FilterKind::PendingTransactions { sent } => {
                let pending = self.consensus.chain().borrow().pending.clone();
                let (mut number, mut skip, mut hashes) = (installed.next, sent, Vec::new());
                while number <= head {
                    if timed_out(deadline) {
                        return Err(timed_out_error());
                    }
                    if let Some(block) = self.store.block(number).map_err(internal)? {
                        hashes.extend(block.txs.iter().skip(skip).map(|(raw, _)| keccak256(raw)));
                    }
                    number += 1;
                    skip = 0;
                }
                if let Some(pending) = pending.filter(|p| p.start.number == number) {
                    hashes.extend(pending.transactions().skip(skip).map(|(_, tx)| tx.hash));
                    skip = pending.tx_count();
                }
                self.filters.set_pending_cursor(id, number, skip);
                Ok(FilterChanges::Hashes(hashes))
            }
            FilterKind::Blocks => {
                let mut hashes = Vec::new();
                for number in installed.next..=head {
                    if let Some(block) = self.store.block(number).map_err(internal)? {
                        hashes.push(block.hash);
                    }
                }
                Ok(FilterChanges::Hashes(hashes))
            }
            FilterKind::Logs(filter) => {
                let to = filter.get_to_block().map_or(head, |to| to.min(head));
                let mut logs = Vec::new();
                for number in installed.next..=to {
                    if timed_out(deadline) {
                        return Err(timed_out_error());
                    }
                    self.matching_logs(number, &filter, &mut logs, limits.max_logs_per_response)?;
                }
                Ok(FilterChanges::Logs(logs))
            }
        }
    }
}
