//! The leader loop: performs what [`policy`](crate::policy) decides, through Raft,
//! and admits transactions into the open block between those decisions.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::{Address, B256, Bytes, keccak256};
use baton_consensus::{ChainView, ChangeReason, Consensus};
use baton_execution::{BlockBuilder, TxError, next_base_fee};
use baton_primitives::{BlockEnd, BlockStart, NodeId, SequencerEntry, TxBatch};
use baton_storage::Store;
use openraft::{ReadPolicy, type_config::async_runtime::WatchReceiver};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    admission::{
        AdmissionError, GAP_PATIENCE, MAX_BATCH, MAX_GAPPED, MAX_GAPPED_PER_SENDER, Submission,
        SubmitHandle,
    },
    policy::{
        Action, Observed, STEP_DOWN_COOL_DOWN_BLOCKS, next_action, rotation_due, stalled, successor,
    },
};

/// How the leader builds blocks and hands leadership on.
#[derive(Debug, Clone)]
pub struct SequencerConfig {
    pub chain_id: u64,
    pub block_time: Duration,
    pub gas_limit: u64,
    pub coinbase: Address,
    /// Hand leadership to the next ready member after every this many sealed
    /// blocks (0 = never).
    pub rotation_blocks: u64,
    /// Every member's readiness as last seen (id, ready), this node's included:
    /// where a hand-over goes.
    pub members: watch::Receiver<Vec<(NodeId, bool)>>,
    /// Test-only fault: lead but never produce, like a hung executor.
    pub fault_no_produce: bool,
}

/// How long a leader that handed over waits for its successor before it produces
/// again itself (the successor may be unreachable).
const HANDOVER_PATIENCE: Duration = Duration::from_secs(2);

/// Produces blocks whenever this node leads.
#[derive(Debug)]
pub struct Sequencer {
    config: SequencerConfig,
    consensus: Consensus,
    store: Store,
    submissions: mpsc::Receiver<Submission>,
    /// The term in which this node handed leadership on, and when.
    handed_over: Option<(u64, Instant)>,
}

type Reply = oneshot::Sender<Result<B256, AdmissionError>>;

/// What the leader keeps while it leads one term.
#[derive(Debug, Default)]
struct Leading {
    /// The open block as applied plus every batch we proposed (invariant 3's
    /// speculative state); rebuilt from the store when missing.
    speculative: Option<BlockBuilder>,
    /// Submissions taken off the channel but not yet admitted.
    carried: VecDeque<Submission>,
    gapped: Gapped,
    /// The open block has no room for the next transaction: seal it now.
    block_full: bool,
}

/// Transactions whose nonce is ahead of their sender's, waiting for the gap to fill.
#[derive(Debug, Default)]
struct Gapped {
    by_sender: HashMap<Address, BTreeMap<u64, (Instant, Submission)>>,
    len: usize,
}

impl Gapped {
    /// Parks `submission`, or gives it back with why it cannot wait.
    fn park(
        &mut self,
        sender: Address,
        nonce: u64,
        submission: Submission,
    ) -> Result<(), (Submission, &'static str)> {
        let queue = self.by_sender.entry(sender).or_default();
        if let Some((_, parked)) = queue.get(&nonce) {
            let why = if keccak256(&parked.raw) == keccak256(&submission.raw) {
                "already known"
            } else {
                // Replacing a waiting transaction is not supported.
                "replacement transaction underpriced"
            };
            return Err((submission, why));
        }
        if self.len >= MAX_GAPPED || queue.len() >= MAX_GAPPED_PER_SENDER {
            return Err((
                submission,
                "nonce too high: too many transactions wait on nonce gaps",
            ));
        }
        queue.insert(nonce, (Instant::now(), submission));
        self.len += 1;
        Ok(())
    }

    /// Parked transactions whose turn has come, in nonce order; refuses the ones
    /// that waited too long.
    fn release(&mut self, builder: &mut BlockBuilder) -> Result<Vec<Submission>, String> {
        let mut ready = Vec::new();
        let senders: Vec<Address> = self.by_sender.keys().copied().collect();
        for sender in senders {
            let mut next = builder.next_nonce(sender).map_err(|e| e.to_string())?;
            let queue = self.by_sender.entry(sender).or_default();
            while let Some(entry) = queue.first_entry() {
                let nonce = *entry.key();
                if nonce <= next {
                    let (_, submission) = entry.remove();
                    self.len -= 1;
                    ready.push(submission);
                    next = nonce + 1;
                } else if entry.get().0.elapsed() >= GAP_PATIENCE {
                    let (_, submission) = entry.remove();
                    self.len -= 1;
                    let _ = submission.reply.send(Err(AdmissionError::Refused(format!(
                        "nonce too high: tx nonce {nonce} waited {}ms for nonce {next}",
                        GAP_PATIENCE.as_millis()
                    ))));
                } else {
                    break;
                }
            }
            if queue.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
        Ok(ready)
    }

    fn drain(&mut self) -> impl Iterator<Item = Submission> + '_ {
        self.len = 0;
        self.by_sender
            .drain()
            .flat_map(|(_, queue)| queue.into_values().map(|(_, s)| s))
    }
}

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
                handed_over: None,
            },
            handle,
        )
    }

    /// Runs until `shutdown` flips to true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let watchdog = tokio::spawn(watchdog(self.consensus.clone(), self.config.clone()));
        self.serve(&mut shutdown).await;
        watchdog.abort();
    }

    async fn serve(&mut self, shutdown: &mut watch::Receiver<bool>) {
        let mut metrics = self.consensus.raft().metrics();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let term = self.consensus.status().term;
            let waiting_for_successor = self
                .handed_over
                .is_some_and(|(t, at)| t == term && at.elapsed() < HANDOVER_PATIENCE);
            if self.consensus.is_leader() && !waiting_for_successor {
                tokio::select! {
                    why = self.lead(term) => {
                        tracing::info!(term, %why, "stopped producing blocks");
                    }
                    _ = shutdown.changed() => return,
                }
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                // A leader waiting for its successor looks again when its patience ends.
                _ = tokio::time::sleep(HANDOVER_PATIENCE), if waiting_for_successor => {}
                Some(submission) = self.submissions.recv() => {
                    // Not leading: the caller forwards to whoever is.
                    let _ = submission.reply.send(Err(AdmissionError::NotLeader));
                }
                _ = shutdown.changed() => {},
            }
        }
    }

    /// Produces blocks for as long as this node leads in `term`; returns why it
    /// stopped. Whoever still waits for an answer then hears "not the leader".
    async fn lead(&mut self, term: u64) -> String {
        let mut state = Leading::default();
        let why = self.produce(term, &mut state).await;
        let waiting = state
            .carried
            .drain(..)
            .chain(state.gapped.drain())
            .collect::<Vec<_>>();
        refuse_all(waiting, AdmissionError::NotLeader);
        why
    }

    async fn produce(&mut self, term: u64, state: &mut Leading) -> String {
        let raft = self.consensus.raft().clone();
        // DESIGN invariant 5: a node that is not ready hands leadership on at once.
        let readiness = self.consensus.readiness();
        if !readiness.is_ready()
            && !self.consensus.paused()
            && let Some(why) = self.hand_over(term, ChangeReason::NotReady).await
        {
            return format!("{readiness}: {why}");
        }
        // DESIGN invariant 2: produce nothing until every entry in our log as of the
        // election is applied. The read barrier waits for this term's blank entry
        // to commit and for the state machine to apply up to it.
        if let Err(e) = raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            return e.to_string();
        }
        // A leader restored by a restart into the same term (openraft keeps a
        // committed vote) passes that barrier on its old blank entry; it must also
        // apply the tail it appended before the crash, or it would decide on a stale
        // view (and admit again transactions already in its log).
        let tail = raft.metrics().borrow_watched().last_log_index;
        if let Err(e) = raft
            .wait(Some(self.config.block_time * 10))
            .applied_index_at_least(tail, "the leader's whole log is applied")
            .await
        {
            return e.to_string();
        }
        let mut chain = self.consensus.chain();
        if self.config.fault_no_produce {
            tracing::warn!("fault injection: leading without producing");
            while self.consensus.is_leader() && self.consensus.status().term == term {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return "no longer leader (fault: never produced)".into();
        }
        tracing::info!(
            head = chain.borrow().head.number(),
            "leading: producing blocks"
        );
        loop {
            // Every decision is made on a view that includes all entries of
            // earlier terms; a new term (even one we lead) starts over with the barrier.
            if !self.consensus.is_leader() || self.consensus.status().term != term {
                return "no longer leader in this term".into();
            }
            let view = chain.borrow_and_update().clone();
            let action = match next_action(Observed {
                now_ms: now_ms(),
                block_time_ms: self.config.block_time.as_millis() as u64,
                head_start_ms: view.head_start_ms,
                open_start_ms: view.open.as_ref().map(|o| o.timestamp_ms),
            }) {
                Action::WaitUntil(_) if state.block_full && view.open.is_some() => Action::Seal,
                action => action,
            };
            let entry = match action {
                Action::WaitUntil(at) => {
                    let mut wait = Duration::from_millis(at.saturating_sub(now_ms()));
                    if view.open.is_none() {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = chain.changed() => {}
                        }
                        continue;
                    }
                    // A block is open: transactions join it while we wait to seal.
                    if state.gapped.len > 0 {
                        let builder = match self.speculative(&view, &mut state.speculative) {
                            Ok(builder) => builder,
                            Err(why) => return why,
                        };
                        match state.gapped.release(builder) {
                            Ok(ready) => ready
                                .into_iter()
                                .rev()
                                .for_each(|s| state.carried.push_front(s)),
                            Err(why) => return why,
                        }
                        // Wake up to expire what waits on a gap that never fills.
                        wait = wait.min(GAP_PATIENCE / 4);
                    }
                    let first = match state.carried.pop_front() {
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
                    let batch = self.collect(first, &mut state.carried);
                    let admitted = match self.admit(&view, state, batch) {
                        Ok(admitted) => admitted,
                        Err(why) => return why,
                    };
                    if !admitted.overflow.is_empty() {
                        state.block_full = true;
                        for submission in admitted.overflow.into_iter().rev() {
                            state.carried.push_front(submission);
                        }
                    }
                    if admitted.txs.is_empty() {
                        continue;
                    }
                    let write = raft
                        .client_write(SequencerEntry::Transactions(TxBatch { txs: admitted.txs }));
                    match write.await {
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
                            return e.to_string();
                        }
                    }
                }
                Action::Open { timestamp_ms } => {
                    state.speculative = None;
                    state.block_full = false;
                    SequencerEntry::BlockStart(self.block_start(&view, timestamp_ms))
                }
                Action::Seal => match self.block_end(&view, state.speculative.take()) {
                    Ok(end) => SequencerEntry::BlockEnd(end),
                    Err(why) => return why,
                },
            };
            let sealed = match &entry {
                SequencerEntry::BlockEnd(end) => Some(end.number),
                _ => None,
            };
            // Returns once the entry is committed and applied here, so the next
            // decision sees its effect.
            if let Err(e) = raft.client_write(entry).await {
                return e.to_string();
            }
            if let Some(number) = sealed
                && rotation_due(number, self.config.rotation_blocks)
                && !self.consensus.paused()
                && let Some(why) = self.hand_over(term, ChangeReason::Rotation).await
            {
                return format!("rotation after block {number}: {why}");
            }
        }
    }

    /// Hands leadership to the next ready member (round-robin by id); returns what
    /// happened, or `None` when no member is ready to take it (then we keep it).
    async fn hand_over(&mut self, term: u64, why: ChangeReason) -> Option<String> {
        let me = self.consensus.node_id();
        let to = successor(me, self.config.members.borrow().iter().copied())?;
        if let Err(e) = self.consensus.hand_over(to, why).await {
            return Some(format!("could not hand over to node {to}: {e}"));
        }
        self.handed_over = Some((term, Instant::now()));
        tracing::info!(term, to, %why, "handing leadership on");
        Some(format!("handed leadership to node {to} ({why})"))
    }

    /// The speculative open block, rebuilt from the store when it does not match
    /// what was applied.
    fn speculative<'a>(
        &self,
        view: &ChainView,
        speculative: &'a mut Option<BlockBuilder>,
    ) -> Result<&'a mut BlockBuilder, String> {
        if speculative
            .as_ref()
            .is_none_or(|b| b.txs().len() != view.open_txs)
        {
            *speculative = Some(self.replay_open_block()?);
        }
        speculative
            .as_mut()
            .ok_or_else(|| "no speculative block".to_string())
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
        state: &mut Leading,
        batch: Vec<Submission>,
    ) -> Result<Admitted, String> {
        let builder = self.speculative(view, &mut state.speculative)?;
        let mut admitted = Admitted::default();
        let mut this_batch = HashSet::new();
        let mut batch = batch.into_iter();
        while let Some(submission) = batch.next() {
            let hash = keccak256(&submission.raw);
            let sender = submission.sender;
            // A wallet retrying across a failover: already committed means acknowledged.
            let committed = self
                .store
                .tx_location(hash)
                .map_err(|e| e.to_string())?
                .is_some()
                || builder.contains(&hash);
            if committed {
                // In the block already, but only proposed in this very batch: a duplicate.
                if this_batch.contains(&hash) {
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
                    this_batch.insert(hash);
                    admitted.txs.push((submission.raw, sender));
                    admitted.waiting.push((hash, submission.reply));
                }
                Err(TxError::BlockFull) => {
                    admitted.overflow.push(submission);
                    admitted.overflow.extend(batch);
                    break;
                }
                Err(TxError::State(e)) => return Err(e.to_string()),
                Err(TxError::NonceTooHigh { got, .. }) => {
                    // Wait for the gap to fill (an earlier nonce may be in flight).
                    if let Err((submission, why)) = state.gapped.park(sender, got, submission) {
                        let _ = submission
                            .reply
                            .send(Err(AdmissionError::Refused(why.into())));
                    }
                }
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

/// DESIGN invariant 6: while this node leads, watches that blocks keep being
/// committed; after [`policy::STALL_BLOCKS`](crate::policy::STALL_BLOCKS) block times
/// without a `BlockStart` or `BlockEnd` it stops standing for election for a
/// cool-down and hands leadership to the next ready member. It runs apart from the
/// producing loop, so a hung executor or a full disk there does not stop it. A
/// leader that cannot talk at all is replaced by the others' election anyway.
async fn watchdog(consensus: Consensus, config: SequencerConfig) {
    let block_time_ms = config.block_time.as_millis() as u64;
    let mut chain = consensus.chain();
    let mut seen: Option<(u64, u64, Option<u64>)> = None;
    let mut progress_ms = now_ms();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let term = consensus.status().term;
        let view = chain.borrow_and_update().clone();
        let position = (
            term,
            view.head.number(),
            view.open.as_ref().map(|o| o.number),
        );
        // Progress is a new block opened or sealed, or a new term (a new leader
        // gets its own full bound).
        if seen != Some(position) {
            seen = Some(position);
            progress_ms = now_ms();
        }
        if !consensus.is_leader()
            || consensus.paused()
            || !stalled(now_ms(), progress_ms, block_time_ms)
        {
            continue;
        }
        consensus.stepped_down(config.block_time * STEP_DOWN_COOL_DOWN_BLOCKS);
        let Some(to) = successor(consensus.node_id(), config.members.borrow().iter().copied())
        else {
            tracing::error!(
                term,
                "stalled as leader and no member is ready to take over"
            );
            progress_ms = now_ms();
            continue;
        };
        tracing::warn!(
            term,
            to,
            "no block committed for {}ms: stepping down",
            now_ms() - progress_ms
        );
        if let Err(e) = consensus.hand_over(to, ChangeReason::StepDown).await {
            tracing::error!(term, to, error = %e, "step-down transfer failed");
        }
        progress_ms = now_ms();
    }
}
