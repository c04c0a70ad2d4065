//! The chain as the state machine holds it: committed entries executed into blocks,
//! receipts and state. It runs on its own thread (see `state_machine`), so EVM work,
//! seals and RocksDB writes never occupy a thread Raft's heartbeats need.
//!
//! ```text
//!  committed entries ──▶ execute (or reuse the leader's own results) ──▶ one ChainWrite
//!                                                                          │
//!                                             ChainView watch (RPC, sequencer) ◀┘
//! ```
//!
//! Invariant (DESIGN 1): [`ChainView`] and everything in the store reflect only
//! applied, hence committed, entries. Invariant (DESIGN 7): blocks and
//! `last_applied` are written in the same batch.

use std::{io, sync::Arc, time::Duration, time::Instant};

use alloy_primitives::{B256, keccak256};
use baton_execution::{
    BlockBuilder, BlockStep, ExecutionError, PendingBlock, apply_entry, write_genesis, write_sealed,
};
use baton_primitives::{BlockStart, ChainSpec, SealedBlock, SequencerEntry, codec};
use baton_storage::Store;
use openraft::{EntryPayload, entry::RaftEntry};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{
    executed::{BatchKey, Executed},
    types::{Entry, LogId, StoredMembership},
};

/// What readers see of the applied chain.
#[derive(Debug, Clone)]
pub struct ChainView {
    /// The newest sealed block.
    pub head: Arc<SealedBlock>,
    /// When the head block was opened, in ms (the header keeps whole seconds only);
    /// the leader schedules the next block from it.
    pub head_start_ms: u64,
    /// The open block as applied so far (what `pending` reads), if one is open.
    pub pending: Option<Arc<PendingBlock>>,
    /// Index of the last applied log entry (0 before any).
    /// Invariant: at most the commit index (openraft applies committed entries only).
    pub applied_index: u64,
}

impl ChainView {
    /// The open block's start, if a block is open.
    pub fn open(&self) -> Option<&BlockStart> {
        self.pending.as_ref().map(|p| &p.start)
    }

    /// Transactions applied to the open block so far.
    pub fn open_txs(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.tx_count())
    }
}

/// The state machine's own record, stored with the chain in every apply batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Applied {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
}

/// The applied chain and the open block being built.
#[derive(Debug)]
pub(crate) struct Chain {
    store: Store,
    chain_id: u64,
    /// Keep state for this many blocks behind the head (`None`: every block).
    history_blocks: Option<u64>,
    /// The leader's own results, to reuse rather than execute again.
    executed: Executed,
    pub(crate) applied: Applied,
    head: Arc<SealedBlock>,
    head_start_ms: u64,
    /// The open block with its execution overlay (rebuilt by replay after a restart).
    open: Option<BlockBuilder>,
    /// The open block's applied batches, as readers see them.
    /// Invariant: holds exactly `open`'s transactions, in order.
    pending: Option<Arc<PendingBlock>>,
    /// How much of `open` is in the store: whether its start is, and how many txs.
    persisted: Option<usize>,
    view: watch::Sender<ChainView>,
}

impl Chain {
    /// Loads the applied chain from `store`, writing the genesis block on first start.
    pub(crate) fn open(
        store: Store,
        spec: &ChainSpec,
        history_blocks: Option<u64>,
        executed: Executed,
    ) -> io::Result<(Self, watch::Receiver<ChainView>)> {
        if store.head().map_err(io::Error::other)?.is_none() {
            let genesis = write_genesis(&store, spec).map_err(io::Error::other)?;
            tracing::info!(hash = %genesis.hash, state_root = %genesis.header.state_root, "wrote the genesis block");
        }
        let (head, mut open, applied) = load(&store, spec.chain_id)?;
        let pending = open.as_mut().map(pending_of);
        let (view, rx) = watch::channel(ChainView {
            head_start_ms: head.header.timestamp * 1000,
            head: head.clone(),
            pending: pending.clone(),
            applied_index: applied.last_applied.as_ref().map_or(0, |id| id.index()),
        });
        let chain = Self {
            store,
            chain_id: spec.chain_id,
            history_blocks,
            executed,
            applied,
            head_start_ms: head.header.timestamp * 1000,
            head,
            persisted: open.as_ref().map(|o| o.txs().len()),
            open,
            pending,
            view,
        };
        Ok((chain, rx))
    }

    fn publish(&self) {
        self.view.send_replace(ChainView {
            head: self.head.clone(),
            head_start_ms: self.head_start_ms,
            pending: self.pending.clone(),
            applied_index: self
                .applied
                .last_applied
                .as_ref()
                .map_or(0, |id| id.index()),
        });
    }

    /// Applies committed `entries`, in order, in one write batch (a sealed block's
    /// batch is committed at once: the next block executes on its state).
    pub(crate) fn apply(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        // An apply error halts this node (openraft treats it as fatal), so the
        // in-memory state is changed in place: there is nothing to roll back to.
        let store = self.store.clone();
        let mut write = store.chain_write();
        for entry in entries {
            let log_id = entry.log_id();
            debug_assert!(
                self.applied
                    .last_applied
                    .is_none_or(|last| last.index() < log_id.index()),
                "entries are applied in log order, once"
            );
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(membership) => {
                    self.applied.membership =
                        StoredMembership::new(Some(log_id), membership.clone());
                }
                EntryPayload::Normal(sequenced) => {
                    let applying = Instant::now();
                    let started_ms = self.open.as_ref().map(|o| o.start().timestamp_ms);
                    match self.step(&log_id, sequenced)? {
                        BlockStep::Opened => {
                            self.pending = self.open.as_mut().map(pending_of);
                        }
                        BlockStep::Extended { skipped } => {
                            for (hash, why) in skipped {
                                tracing::warn!(%hash, %why, "committed transaction could not execute; skipped on every node");
                            }
                            if let (Some(open), Some(pending)) = (&mut self.open, &self.pending) {
                                self.pending = Some(Arc::new(pending.with(open.take_batch())));
                            }
                            debug_assert_eq!(
                                self.pending.as_ref().map(|p| p.tx_count()),
                                self.open.as_ref().map(|o| o.txs().len()),
                                "the pending block is the open block"
                            );
                        }
                        BlockStep::Sealed(outcome) => {
                            debug_assert_eq!(
                                outcome.block.number(),
                                self.head.number() + 1,
                                "invariant 4: block numbers are contiguous"
                            );
                            self.applied.last_applied = Some(log_id);
                            write_sealed(&mut write, &outcome).map_err(io::Error::other)?;
                            if let Some(keep) = self.history_blocks
                                && let Some(oldest) = outcome.block.number().checked_sub(keep)
                                && oldest > 0
                            {
                                write.prune_history(oldest).map_err(io::Error::other)?;
                            }
                            write.close_open_block();
                            self.persisted = None;
                            write.set_applied(
                                codec::encode(&self.applied).map_err(io::Error::other)?,
                            );
                            std::mem::replace(&mut write, store.chain_write())
                                .commit()
                                .map_err(io::Error::other)?;
                            let previous_start_ms = self.head_start_ms;
                            self.head = Arc::new(outcome.block);
                            self.pending = None;
                            self.head_start_ms =
                                started_ms.unwrap_or(self.head.header.timestamp * 1000);
                            record_seal(
                                &self.head,
                                applying.elapsed(),
                                self.head_start_ms.saturating_sub(previous_start_ms),
                            );
                        }
                    }
                }
            }
            self.applied.last_applied = Some(log_id);
        }
        if let Some(open) = &self.open {
            let persisted = match self.persisted {
                Some(count) => count,
                None => {
                    write.open_block(open.start()).map_err(io::Error::other)?;
                    0
                }
            };
            write
                .append_open_txs(persisted, &open.txs()[persisted..])
                .map_err(io::Error::other)?;
            self.persisted = Some(open.txs().len());
        }
        write.set_applied(codec::encode(&self.applied).map_err(io::Error::other)?);
        write.commit().map_err(io::Error::other)?;
        self.publish();
        debug_assert_eq!(
            self.view.borrow().applied_index,
            self.applied
                .last_applied
                .as_ref()
                .map_or(0, |id| id.index()),
            "invariant 1: readers see everything applied before anyone is answered"
        );
        Ok(())
    }

    /// One sequencer entry: the leader's own results when it has them for exactly
    /// this entry (execute once), otherwise executed here.
    fn step(&mut self, log_id: &LogId, entry: &SequencerEntry) -> io::Result<BlockStep> {
        let leader = log_id.committed_leader_id();
        match (entry, self.open.as_mut()) {
            (SequencerEntry::Transactions(batch), Some(open)) => {
                let key = BatchKey {
                    term: leader.term,
                    leader: leader.node_id,
                    block: open.start().number,
                    first: open.txs().len(),
                };
                let hashes: Vec<B256> = batch.txs.iter().map(|(raw, _)| keccak256(raw)).collect();
                if let Some(results) = self.executed.take_batch(&key, &hashes) {
                    for ((raw, sender), (executed, diff)) in batch.txs.iter().zip(results) {
                        open.apply_executed(raw, *sender, executed, diff);
                    }
                    record_step("batch", "reused");
                    return Ok(BlockStep::Extended {
                        skipped: Vec::new(),
                    });
                }
                record_step("batch", "executed");
            }
            (SequencerEntry::BlockEnd(end), Some(open)) if open.start().number == end.number => {
                if let Some(outcome) =
                    self.executed
                        .take_seal(leader.term, leader.node_id, end.number, end.hash)
                    && outcome.block.txs.len() == open.txs().len()
                {
                    self.open = None;
                    record_step("seal", "reused");
                    return Ok(BlockStep::Sealed(Box::new(outcome)));
                }
                record_step("seal", "executed");
            }
            _ => {}
        }
        apply_entry(
            &self.store,
            self.chain_id,
            &self.head,
            &mut self.open,
            entry,
        )
        .map_err(halt)
    }

    /// Copies the chain as applied now into `dir` (a RocksDB checkpoint), between
    /// two applies, so it is exactly the state as of `last_applied`.
    pub(crate) fn checkpoint(&self, dir: &std::path::Path) -> io::Result<Applied> {
        self.store.checkpoint(dir).map_err(io::Error::other)?;
        Ok(self.applied.clone())
    }

    /// Replaces the whole chain with the database in `dir` (a received snapshot)
    /// and picks it up; returns its applied record.
    pub(crate) fn install(&mut self, dir: &std::path::Path) -> io::Result<Applied> {
        self.store.replace_with(dir).map_err(io::Error::other)?;
        let (head, mut open, applied) = load(&self.store, self.chain_id)?;
        self.head_start_ms = head.header.timestamp * 1000;
        self.head = head;
        self.persisted = open.as_ref().map(|o| o.txs().len());
        self.pending = open.as_mut().map(pending_of);
        self.open = open;
        self.applied = applied;
        self.publish();
        Ok(self.applied.clone())
    }
}

/// The head, the open block (replayed) and `applied`, as the store holds them.
fn load(
    store: &Store,
    chain_id: u64,
) -> io::Result<(Arc<SealedBlock>, Option<BlockBuilder>, Applied)> {
    let (number, hash) = store
        .head()
        .map_err(io::Error::other)?
        .ok_or_else(|| io::Error::other("store has no head block"))?;
    let head = store
        .block(number)
        .map_err(io::Error::other)?
        .ok_or_else(|| io::Error::other(format!("head block {number} is missing")))?;
    if head.hash != hash {
        return Err(io::Error::other(format!(
            "head record says {hash}, block {number} is {}",
            head.hash
        )));
    }
    let open = match store.open_block().map_err(io::Error::other)? {
        Some(open) => {
            Some(BlockBuilder::replay(store.clone(), chain_id, &open).map_err(io::Error::other)?)
        }
        None => None,
    };
    let applied = match store.applied().map_err(io::Error::other)? {
        Some(bytes) => codec::decode(&bytes).map_err(io::Error::other)?,
        None => Applied::default(),
    };
    Ok((Arc::new(head), open, applied))
}

/// The open block rebuilt after a restart (or just opened), as one batch.
fn pending_of(open: &mut BlockBuilder) -> Arc<PendingBlock> {
    Arc::new(PendingBlock::new(open.start().clone()).with(open.take_batch()))
}

/// What a sealed block tells the metrics: how long sealing and writing it took,
/// how long after its parent it opened, its transactions, the new head.
fn record_seal(block: &SealedBlock, sealing: Duration, interval_ms: u64) {
    metrics::histogram!("baton_block_seal_seconds").record(sealing);
    metrics::histogram!("baton_block_interval_seconds").record(interval_ms as f64 / 1000.0);
    metrics::histogram!("baton_block_transactions").record(block.txs.len() as f64);
    metrics::gauge!("baton_head_number").set(block.number() as f64);
}

/// Execute once (DESIGN §6), made visible: how many `entry`s ("batch", "seal")
/// this node `how` ("reused" from its own admission, or "executed" here).
fn record_step(entry: &'static str, how: &'static str) {
    metrics::counter!("baton_apply_entries_total", "entry" => entry, "how" => how).increment(1);
}

fn halt(error: ExecutionError) -> io::Error {
    // Loud on purpose: a node that cannot apply the committed log must not go on.
    tracing::error!(%error, "state machine halted: the committed log cannot be applied");
    io::Error::other(error)
}
