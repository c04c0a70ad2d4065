//! The leader loop: performs what [`policy`](crate::policy) decides, through Raft,
//! and admits transactions into the open block between those decisions.

use std::{
    collections::VecDeque,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, Bytes, keccak256};
use baton_consensus::{ChainView, Consensus};
use baton_execution::{BlockBuilder, TxError, next_base_fee};
use baton_primitives::{BlockEnd, BlockStart, SequencerEntry, TxBatch};
use baton_storage::Store;
use openraft::{ReadPolicy, type_config::async_runtime::WatchReceiver};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    admission::{AdmissionError, MAX_BATCH, Submission, SubmitHandle},
    policy::{Action, Observed, next_action},
};

/// How the leader builds blocks.
#[derive(Debug, Clone)]
pub struct SequencerConfig {
    pub chain_id: u64,
    pub block_time: Duration,
    pub gas_limit: u64,
    pub coinbase: Address,
}

/// Produces blocks whenever this node leads.
#[derive(Debug)]
pub struct Sequencer {
    config: SequencerConfig,
    consensus: Consensus,
    store: Store,
    submissions: mpsc::Receiver<Submission>,
}

type Reply = oneshot::Sender<Result<B256, AdmissionError>>;

/// The outcome of admitting one batch of submissions.
#[derive(Debug, Default)]
struct Admitted {
    /// Transactions for the `Transactions` entry, with their senders.
    txs: Vec<(Bytes, Address)>,
    /// Callers to answer once the entry is committed.
    waiting: Vec<(B256, Reply)>,
    /// The open block is full: seal it and offer these to the next block.
    overflow: Vec<Submission>,
}

impl Sequencer {
    pub fn new(
        config: SequencerConfig,
        consensus: Consensus,
        store: Store,
    ) -> (Self, SubmitHandle) {
        let (handle, submissions) = SubmitHandle::channel(16 * MAX_BATCH);
        (
            Self {
                config,
                consensus,
                store,
                submissions,
            },
            handle,
        )
    }

    /// Runs until `shutdown` flips to true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut metrics = self.consensus.raft().metrics();
        loop {
            if *shutdown.borrow() {
                return;
            }
            if self.consensus.is_leader() {
                let term = self.consensus.status().term;
                tokio::select! {
                    why = self.lead(term) => {
                        tracing::info!(term, %why, "stopped producing blocks");
                    }
                    _ = shutdown.changed() => return,
                }
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                Some(submission) = self.submissions.recv() => {
                    // Not leading: the caller forwards to whoever is.
                    let _ = submission.reply.send(Err(AdmissionError::NotLeader));
                }
                _ = shutdown.changed() => {},
            }
        }
    }

    /// Produces blocks for as long as this node leads in `term`; returns why it stopped.
    async fn lead(&mut self, term: u64) -> String {
        let raft = self.consensus.raft().clone();
        // DESIGN invariant 2: produce nothing until every entry in our log as of the
        // election is applied. The read barrier waits for this term's blank entry
        // to commit and for the state machine to apply up to it.
        if let Err(e) = raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            return e.to_string();
        }
        let mut chain = self.consensus.chain();
        tracing::info!(
            head = chain.borrow().head.number(),
            "leading: producing blocks"
        );
        // The open block as applied plus every batch we proposed (invariant 3's
        // speculative state); rebuilt from the store when missing.
        let mut speculative: Option<BlockBuilder> = None;
        let mut carried: VecDeque<Submission> = VecDeque::new();
        let mut block_full = false;
        loop {
            // Every decision is made on a view that includes all entries of
            // earlier terms; a new term (even one we lead) starts over with the barrier.
            if !self.consensus.is_leader() || self.consensus.status().term != term {
                refuse_all(carried, AdmissionError::NotLeader);
                return "no longer leader in this term".into();
            }
            let view = chain.borrow_and_update().clone();
            let action = match next_action(Observed {
                now_ms: now_ms(),
                block_time_ms: self.config.block_time.as_millis() as u64,
                head_start_ms: view.head_start_ms,
                open_start_ms: view.open.as_ref().map(|o| o.timestamp_ms),
            }) {
                Action::WaitUntil(_) if block_full && view.open.is_some() => Action::Seal,
                action => action,
            };
            let entry = match action {
                Action::WaitUntil(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                    if view.open.is_none() {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = chain.changed() => {}
                        }
                        continue;
                    }
                    // A block is open: transactions join it while we wait to seal.
                    let first = match carried.pop_front() {
                        Some(first) => first,
                        None => tokio::select! {
                            _ = tokio::time::sleep(wait) => continue,
                            _ = chain.changed() => continue,
                            next = self.submissions.recv() => match next {
                                Some(first) => first,
                                None => return "submission channel closed".into(),
                            },
                        },
                    };
                    let batch = self.collect(first, &mut carried);
                    let admitted = match self.admit(&view, &mut speculative, batch) {
                        Ok(admitted) => admitted,
                        Err(why) => return why,
                    };
                    if !admitted.overflow.is_empty() {
                        block_full = true;
                        for submission in admitted.overflow.into_iter().rev() {
                            carried.push_front(submission);
                        }
                    }
                    if admitted.txs.is_empty() {
                        continue;
                    }
                    match raft
                        .client_write(SequencerEntry::Transactions(TxBatch { txs: admitted.txs }))
                        .await
                    {
                        Ok(_) => {
                            for (hash, reply) in admitted.waiting {
                                let _ = reply.send(Ok(hash));
                            }
                            continue;
                        }
                        Err(e) => {
                            // Not committed by us: the callers must find the new leader,
                            // which will either hold the batch (and answer a resubmission
                            // with the hash) or not.
                            for (_, reply) in admitted.waiting {
                                let _ = reply.send(Err(AdmissionError::NotLeader));
                            }
                            refuse_all(carried, AdmissionError::NotLeader);
                            return e.to_string();
                        }
                    }
                }
                Action::Open { timestamp_ms } => {
                    speculative = None;
                    block_full = false;
                    SequencerEntry::BlockStart(self.block_start(&view, timestamp_ms))
                }
                Action::Seal => match self.block_end(&view, speculative.take()) {
                    Ok(end) => SequencerEntry::BlockEnd(end),
                    Err(why) => return why,
                },
            };
            // Returns once the entry is committed and applied here, so the next
            // decision sees its effect.
            if let Err(e) = raft.client_write(entry).await {
                refuse_all(carried, AdmissionError::NotLeader);
                return e.to_string();
            }
        }
    }

    /// `first`, then whatever else is already waiting (carried over first), up to
    /// [`MAX_BATCH`]. No waiting: under load, submissions pile up while the previous
    /// batch replicates, and that is the batch.
    fn collect(
        &mut self,
        first: Submission,
        carried: &mut VecDeque<Submission>,
    ) -> Vec<Submission> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match carried.pop_front() {
                Some(next) => batch.push(next),
                None => break,
            }
        }
        while batch.len() < MAX_BATCH {
            match self.submissions.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        batch
    }

    /// Executes each submission on the speculative open block; answers refusals at
    /// once and returns the rest.
    fn admit(
        &self,
        view: &ChainView,
        speculative: &mut Option<BlockBuilder>,
        batch: Vec<Submission>,
    ) -> Result<Admitted, String> {
        let builder = match speculative {
            Some(builder) if builder.txs().len() == view.open_txs => builder,
            _ => speculative.insert(self.replay_open_block()?),
        };
        let mut admitted = Admitted::default();
        let mut batch = batch.into_iter();
        while let Some(submission) = batch.next() {
            let hash = keccak256(&submission.raw);
            let sender = match recover(&submission.raw) {
                Ok(sender) => sender,
                Err(why) => {
                    let _ = submission.reply.send(Err(AdmissionError::Refused(why)));
                    continue;
                }
            };
            // A wallet retrying across a failover: already committed means acknowledged.
            let committed = self
                .store
                .tx_location(hash)
                .map_err(|e| e.to_string())?
                .is_some()
                || builder.executed().iter().any(|tx| tx.hash == hash);
            if committed {
                if admitted.waiting.iter().any(|(h, _)| *h == hash) {
                    let _ = submission
                        .reply
                        .send(Err(AdmissionError::Refused("already known".into())));
                } else {
                    let _ = submission.reply.send(Ok(hash));
                }
                continue;
            }
            match builder.execute(&submission.raw, sender) {
                Ok(_) => {
                    admitted.txs.push((submission.raw, sender));
                    admitted.waiting.push((hash, submission.reply));
                }
                Err(TxError::BlockFull) => {
                    admitted.overflow.push(submission);
                    admitted.overflow.extend(batch);
                    break;
                }
                Err(TxError::State(e)) => return Err(e.to_string()),
                Err(refused) => {
                    let _ = submission
                        .reply
                        .send(Err(AdmissionError::Refused(refused.to_string())));
                }
            }
        }
        Ok(admitted)
    }

    fn replay_open_block(&self) -> Result<BlockBuilder, String> {
        let open = self
            .store
            .open_block()
            .map_err(|e| e.to_string())?
            .ok_or("no block is open")?;
        BlockBuilder::replay(self.store.clone(), self.config.chain_id, &open)
            .map_err(|e| e.to_string())
    }

    fn block_start(&self, view: &ChainView, timestamp_ms: u64) -> BlockStart {
        let head = &view.head;
        BlockStart {
            number: head.number() + 1,
            timestamp_ms,
            parent_hash: head.hash,
            base_fee: next_base_fee(&head.header),
            gas_limit: self.config.gas_limit,
            coinbase: self.config.coinbase,
        }
    }

    /// The `BlockEnd` for the open block: sealed from the speculative block when it
    /// matches what was applied, else from a replay of the stored open block.
    fn block_end(
        &self,
        view: &ChainView,
        speculative: Option<BlockBuilder>,
    ) -> Result<BlockEnd, String> {
        let builder = match speculative {
            Some(builder) if builder.txs().len() == view.open_txs => builder,
            _ => self.replay_open_block()?,
        };
        debug_assert_eq!(Some(builder.start()), view.open.as_ref());
        let sealed = builder.seal(&view.head.header).map_err(|e| e.to_string())?;
        Ok(BlockEnd {
            number: sealed.block.number(),
            hash: sealed.block.hash,
        })
    }
}

/// The sender of a raw transaction, or why it has none.
fn recover(raw: &Bytes) -> Result<Address, String> {
    let tx = TxEnvelope::decode_2718(&mut raw.as_ref())
        .map_err(|e| format!("invalid transaction: {e}"))?;
    tx.recover_signer()
        .map_err(|e| format!("invalid signature: {e}"))
}

fn refuse_all(submissions: impl IntoIterator<Item = Submission>, error: AdmissionError) {
    for submission in submissions {
        let _ = submission.reply.send(Err(error.clone()));
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
