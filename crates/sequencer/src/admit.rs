//! Admission into the open block: executes waiting transactions on the speculative
//! block and does what [`dispose`] decides for each (DESIGN invariant 3).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256, Bytes, keccak256};
use baton_consensus::ChainView;
use baton_execution::{BlockBuilder, TxError};
use baton_primitives::{SequencerEntry, TxBatch, clock::now_ms};
use tokio::sync::oneshot;

use crate::{
    admission::{AdmissionError, Disposition, Execution, MAX_BATCH, Submission, dispose},
    gaps::GAP_PATIENCE,
    policy::StopReason,
    produce::Producer,
};

type Reply = oneshot::Sender<Result<B256, AdmissionError>>;

/// A batch admitted into the speculative block, not yet proposed.
#[derive(Debug, Default)]
struct Admitted {
    txs: Vec<(Bytes, Address)>,
    /// Callers to answer once the batch commits.
    waiting: Vec<(B256, Reply)>,
}

impl Producer<'_> {
    /// Admits waiting transactions into the open block until `until_ms`: one batch,
    /// proposed and committed before its callers hear their hashes (invariant 3).
    pub(crate) async fn admit(
        &mut self,
        view: &ChainView,
        until_ms: u64,
    ) -> Result<(), StopReason> {
        let mut wait = Duration::from_millis(until_ms.saturating_sub(now_ms()));
        if !self.gaps.is_empty() {
            self.release_gaps(view)?;
            // Wake up to expire what waits on a gap that never fills.
            wait = wait.min(GAP_PATIENCE / 4);
        }
        let first = match self.carried.pop_front() {
            Some(first) => first,
            None => tokio::select! {
                _ = tokio::time::sleep(wait) => return Ok(()),
                _ = self.chain.changed() => return Ok(()),
                next = self.seq.submissions.recv() => next.ok_or(StopReason::Closed)?,
            },
        };
        let batch = self.collect(first);
        let admitted = self.execute(view, batch)?;
        if admitted.txs.is_empty() {
            return Ok(());
        }
        let entry = SequencerEntry::Transactions(TxBatch { txs: admitted.txs });
        match self.propose(entry).await {
            Ok(_) => {
                for (hash, reply) in admitted.waiting {
                    let _ = reply.send(Ok(hash));
                }
                Ok(())
            }
            Err(stop) => {
                // Not committed by us: the callers must find the new leader, which
                // either holds the batch (and answers a resubmission with the hash)
                // or not.
                for (_, reply) in admitted.waiting {
                    let _ = reply.send(Err(AdmissionError::NotLeader));
                }
                Err(stop)
            }
        }
    }

    /// `first`, then whatever else is already waiting (carried over first), up to
    /// [`MAX_BATCH`]. No waiting: under load, submissions pile up while the previous
    /// batch replicates, and that is the batch.
    fn collect(&mut self, first: Submission) -> Vec<Submission> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Some(next) = self.carried.pop_front()
        {
            batch.push(next);
        }
        while batch.len() < MAX_BATCH
            && let Ok(next) = self.seq.submissions.try_recv()
        {
            batch.push(next);
        }
        batch
    }

    /// Executes each submission on the speculative open block and does what
    /// [`dispose`] says; returns the batch to propose.
    fn execute(
        &mut self,
        view: &ChainView,
        batch: Vec<Submission>,
    ) -> Result<Admitted, StopReason> {
        self.ensure_speculative(view)?;
        let Some(builder) = self.speculative.as_mut() else {
            unreachable!("ensure_speculative fills it");
        };
        let mut admitted = Admitted::default();
        let mut this_batch = HashSet::new();
        let mut batch = batch.into_iter();
        while let Some(submission) = batch.next() {
            let hash = keccak256(&submission.raw);
            let in_chain = self
                .seq
                .store
                .tx_location(hash)
                .map_err(|e| StopReason::Execution(e.to_string()))?
                .is_some()
                || builder.contains(&hash);
            let execution = if in_chain {
                Execution::InChain
            } else {
                match builder.execute(&submission.raw, submission.sender) {
                    Ok(_) => Execution::Executed,
                    Err(TxError::BlockFull) => Execution::BlockFull,
                    Err(TxError::NonceTooHigh { got, .. }) => Execution::NonceAhead { nonce: got },
                    Err(TxError::State(e)) => return Err(StopReason::Execution(e.to_string())),
                    Err(refused) => Execution::Refused(refused.to_string()),
                }
            };
            match dispose(hash, execution, this_batch.contains(&hash)) {
                Disposition::Include => {
                    this_batch.insert(hash);
                    admitted.txs.push((submission.raw, submission.sender));
                    admitted.waiting.push((hash, submission.reply));
                }
                Disposition::Reply(answer) => {
                    let _ = submission.reply.send(answer);
                }
                Disposition::Overflow => {
                    self.block_full = true;
                    let rest: Vec<Submission> = std::iter::once(submission).chain(batch).collect();
                    for carried in rest.into_iter().rev() {
                        self.carried.push_front(carried);
                    }
                    break;
                }
                Disposition::Park { nonce } => {
                    let sender = submission.sender;
                    if let Err((submission, why)) =
                        self.gaps
                            .park(sender, nonce, hash, submission, Instant::now())
                    {
                        let refused = AdmissionError::Refused(why.message().into());
                        let _ = submission.reply.send(Err(refused));
                    }
                }
            }
        }
        Ok(admitted)
    }

    /// Moves parked transactions whose turn has come to the front of the queue,
    /// and answers those that waited in vain.
    fn release_gaps(&mut self, view: &ChainView) -> Result<(), StopReason> {
        self.ensure_speculative(view)?;
        let Some(builder) = self.speculative.as_mut() else {
            unreachable!("ensure_speculative fills it");
        };
        let released = self
            .gaps
            .release(Instant::now(), |sender| builder.next_nonce(sender))
            .map_err(|e| StopReason::Execution(e.to_string()))?;
        for (submission, why) in released.expired {
            let _ = submission.reply.send(Err(AdmissionError::Refused(why)));
        }
        for submission in released.ready.into_iter().rev() {
            self.carried.push_front(submission);
        }
        Ok(())
    }

    /// Rebuilds the speculative block from the store when it does not match what
    /// was applied (a new leader, or a block opened since).
    fn ensure_speculative(&mut self, view: &ChainView) -> Result<(), StopReason> {
        if self
            .speculative
            .as_ref()
            .is_none_or(|b| b.txs().len() != view.open_txs())
        {
            self.speculative = Some(self.replay_open_block()?);
        }
        Ok(())
    }

    pub(crate) fn replay_open_block(&self) -> Result<BlockBuilder, StopReason> {
        let exec = |e: String| StopReason::Execution(e);
        let open = self
            .seq
            .store
            .open_block()
            .map_err(|e| exec(e.to_string()))?
            .ok_or_else(|| exec("no block is open".into()))?;
        BlockBuilder::replay(self.seq.store.clone(), self.seq.config.chain_id, &open)
            .map_err(|e| exec(e.to_string()))
    }

    /// Answers everyone still waiting: this node no longer leads.
    pub(crate) fn refuse_waiting(&mut self) {
        let waiting: Vec<Submission> = self.carried.drain(..).chain(self.gaps.drain()).collect();
        for submission in waiting {
            let _ = submission.reply.send(Err(AdmissionError::NotLeader));
        }
    }
}
