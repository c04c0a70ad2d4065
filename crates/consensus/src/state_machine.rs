//! The replicated state machine: applies committed entries to the chain.
//!
//! ```text
//!  committed entries ──▶ apply_entry (baton-execution) ──▶ one ChainWrite ──▶ RocksDB
//!                                                              │
//!                                          ChainView watch ◀───┘ (RPC, sequencer)
//! ```
//!
//! Invariant (DESIGN 1): [`ChainView`] and everything in the store reflect only
//! applied, hence committed, entries. Invariant (DESIGN 7): blocks and
//! `last_applied` are written in the same batch.

use std::{io, sync::Arc};

use baton_execution::{
    BlockBuilder, BlockStep, ExecutionError, PendingBlock, apply_entry, write_genesis, write_sealed,
};
use baton_primitives::{BlockStart, ChainSpec, SealedBlock, codec};
use baton_storage::{ChainExport, Store};
use futures::{Stream, TryStreamExt};
use openraft::{
    EntryPayload, OptionalSend, RaftSnapshotBuilder, entry::RaftEntry, storage::EntryResponder,
    storage::RaftStateMachine,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::types::{LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};

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
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// A snapshot's payload: the applied record and the whole chain.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotPayload {
    applied: Applied,
    chain: ChainExport,
}

/// openraft's state machine, backed by the node's [`Store`].
#[derive(Debug)]
pub struct StateMachine {
    store: Store,
    chain_id: u64,
    /// Keep state for this many blocks behind the head (`None`: every block).
    history_blocks: Option<u64>,
    applied: Applied,
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

impl StateMachine {
    /// Loads the applied chain from `store`, writing the genesis block on first start.
    /// With `history_blocks`, state older than that many blocks is pruned as
    /// blocks are sealed (an archive keeps all).
    pub fn open(
        store: Store,
        spec: &ChainSpec,
        history_blocks: Option<u64>,
    ) -> io::Result<(Self, watch::Receiver<ChainView>)> {
        if store.head().map_err(io::Error::other)?.is_none() {
            let genesis = write_genesis(&store, spec).map_err(io::Error::other)?;
            tracing::info!(hash = %genesis.hash, state_root = %genesis.header.state_root, "wrote the genesis block");
        }
        let (head, mut open, applied) = load(&store, spec.chain_id)?;
        let head_start_ms = head.header.timestamp * 1000;
        let pending = open.as_mut().map(pending_of);
        let (view, rx) = watch::channel(view_of(&head, head_start_ms, &pending, &applied));
        Ok((
            Self {
                store,
                chain_id: spec.chain_id,
                history_blocks,
                applied,
                head,
                head_start_ms,
                persisted: open.as_ref().map(|o| o.txs().len()),
                open,
                pending,
                view,
            },
            rx,
        ))
    }

    fn publish(&self) {
        self.view.send_replace(view_of(
            &self.head,
            self.head_start_ms,
            &self.pending,
            &self.applied,
        ));
    }
}

/// The open block rebuilt after a restart, as one batch.
fn pending_of(open: &mut BlockBuilder) -> Arc<PendingBlock> {
    Arc::new(PendingBlock::new(open.start().clone()).with(open.take_batch()))
}

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

fn view_of(
    head: &Arc<SealedBlock>,
    head_start_ms: u64,
    pending: &Option<Arc<PendingBlock>>,
    applied: &Applied,
) -> ChainView {
    ChainView {
        head: head.clone(),
        head_start_ms,
        pending: pending.clone(),
        applied_index: applied.last_applied.as_ref().map_or(0, |id| id.index()),
    }
}

/// What a sealed block tells the metrics: how long sealing and writing it took,
/// how long after its parent it opened, its transactions, the new head.
fn record_seal(block: &SealedBlock, sealing: std::time::Duration, interval_ms: u64) {
    metrics::histogram!("baton_block_seal_seconds").record(sealing);
    metrics::histogram!("baton_block_interval_seconds").record(interval_ms as f64 / 1000.0);
    metrics::histogram!("baton_block_transactions").record(block.txs.len() as f64);
    metrics::gauge!("baton_head_number").set(block.number() as f64);
}

fn halt(error: ExecutionError) -> io::Error {
    // Loud on purpose: a node that cannot apply the committed log must not go on.
    tracing::error!(%error, "state machine halted: the committed log cannot be applied");
    io::Error::other(error)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // An apply error halts this node (openraft treats it as fatal), so the
        // in-memory state is changed in place: there is nothing to roll back to.
        let mut write = self.store.chain_write();
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
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
                    let applying = std::time::Instant::now();
                    let started_ms = self.open.as_ref().map(|o| o.start().timestamp_ms);
                    let step = apply_entry(
                        &self.store,
                        self.chain_id,
                        &self.head,
                        &mut self.open,
                        sequenced,
                    )
                    .map_err(halt)?;
                    match step {
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
                            // The next block executes on this one's state: write it now,
                            // together with `last_applied` as of this entry.
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
                            std::mem::replace(&mut write, self.store.chain_write())
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
            responders.extend(responder);
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
        // Answer clients only once the batch is in the store: an answer means applied.
        for responder in responders {
            responder.send(());
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Export here, on the state machine's own task, so the snapshot is exactly
        // the state as of `last_applied` even while later entries are applied.
        SnapshotBuilder {
            store: self.store.clone(),
            applied: self.applied.clone(),
            chain: self.store.export_chain().map_err(io::Error::other),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> io::Result<()> {
        let bytes = snapshot.into_inner();
        let payload: SnapshotPayload = codec::decode(&bytes).map_err(io::Error::other)?;
        if payload.applied.last_applied != meta.last_log_id {
            return Err(io::Error::other(format!(
                "snapshot claims {:?} but holds state as of {:?}",
                meta.last_log_id, payload.applied.last_applied
            )));
        }
        let mut write = self.store.chain_write();
        write
            .replace_chain(payload.chain)
            .map_err(io::Error::other)?;
        write.set_applied(codec::encode(&payload.applied).map_err(io::Error::other)?);
        write.commit().map_err(io::Error::other)?;
        save_snapshot(&self.store, meta, bytes)?;
        let (head, mut open, applied) = load(&self.store, self.chain_id)?;
        self.head_start_ms = head.header.timestamp * 1000;
        self.head = head;
        self.persisted = open.as_ref().map(|o| o.txs().len());
        self.pending = open.as_mut().map(pending_of);
        self.open = open;
        self.applied = applied;
        tracing::info!(upto = ?meta.last_log_id, head = self.head.number(), "installed snapshot");
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let Some(bytes) = self.store.snapshot().map_err(io::Error::other)? else {
            return Ok(None);
        };
        let (meta, data): (SnapshotMeta, Vec<u8>) =
            codec::decode(&bytes).map_err(io::Error::other)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: SnapshotData::new(data),
        }))
    }
}

fn save_snapshot(store: &Store, meta: &SnapshotMeta, data: Vec<u8>) -> io::Result<()> {
    let stored = codec::encode(&(meta, data)).map_err(io::Error::other)?;
    store.save_snapshot(stored).map_err(io::Error::other)
}

/// Builds a snapshot from the chain exported when the builder was made.
#[derive(Debug)]
pub struct SnapshotBuilder {
    store: Store,
    applied: Applied,
    chain: io::Result<ChainExport>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let chain = std::mem::replace(
            &mut self.chain,
            Err(io::Error::other("snapshot already built")),
        )?;
        let payload = SnapshotPayload {
            applied: self.applied.clone(),
            chain,
        };
        let data = codec::encode(&payload).map_err(io::Error::other)?;
        let last_log_id = self.applied.last_applied;
        let meta = SnapshotMeta {
            last_log_id,
            last_membership: self.applied.membership.clone(),
        };
        save_snapshot(&self.store, &meta, data.clone())?;
        tracing::info!(upto = ?meta.last_log_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: SnapshotData::new(data),
        })
    }
}
