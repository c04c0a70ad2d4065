//! Admission into the open block: executes waiting transactions on the speculative
//! block and does what [`dispose`] decides for each (DESIGN invariant 3).

use std::{collections::HashSet, time::Instant};

use alloy_primitives::{Address, Bytes, keccak256};
use baton_consensus::{BatchKey, ChainView};
use baton_execution::{BlockBuilder, TxError};
use baton_primitives::{SequencerEntry, TxBatch, clock::now_ms};

use crate::{
    admission::{
        AdmissionError, BATCH_WINDOW, Disposition, Execution, MAX_BATCH, MAX_IN_FLIGHT, Submission,
        dispose,
    },
    gaps::GAP_PATIENCE,
    policy::StopReason,
    produce::{InFlight, Producer, Reply},
};

/// A batch admitted into the speculative block, not yet proposed.
#[derive(Debug, Default)]
struct Admitted {
    txs: Vec<(Bytes, Address)>,
    /// Callers to answer once the batch is applied.
    waiting: Vec<(alloy_primitives::B256, Reply)>,
}

/// What the admitting leader woke up for.
enum Event {
    Submitted(Option<Submission>),
    Applied(Result<u64, baton_consensus::ConsensusError>),
    TimedOut,
}

impl Producer<'_> {
    /// Admits waiting transactions into the open block until `until_ms`: one batch,
    /// executed on the speculative block and proposed behind those in flight; its
    /// callers hear their hashes once it is applied (invariant 3).
    pub(crate) async fn admit(
        &mut self,
        view: &ChainView,
        until_ms: u64,
    ) -> Result<(), StopReason> {
        let mut wait = std::time::Duration::from_millis(until_ms.saturating_sub(now_ms()));
        if !self.gaps.lock().is_empty() {
            self.release_gaps(view)?;
            // Wake up to expire what waits on a gap that never fills.
            wait = wait.min(GAP_PATIENCE / 4);
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return self.settle_front().await;
        }
        let first = match self.carried.pop_front() {
            Some(first) => first,
            None => match self.next_event(wait).await {
                Event::Submitted(Some(first)) => first,
                Event::Submitted(None) => return Err(StopReason::Closed),
                // The front batch applied: the next step answers its callers.
                Event::Applied(Ok(_)) | Event::TimedOut => return Ok(()),
                Event::Applied(Err(e)) => return Err(self.abandon(e)),
            },
        };
        let batch = self.collect(first).await;
        let admitted = self.execute(view, batch)?;
        if admitted.txs.is_empty() {
            return Ok(());
        }
        let Some(builder) = self.speculative.as_mut() else {
            unreachable!("execute fills it");
        };
        // Execute once: the state machine applies this batch from these results.
        let key = BatchKey {
            term: self.term.term(),
            leader: self.seq.consensus.node_id(),
            block: builder.start().number,
            first: builder.txs().len() - admitted.txs.len(),
        };
        self.executed.add_batch(key, builder.take_executed());
        metrics::histogram!("baton_batch_transactions").record(admitted.txs.len() as f64);
        let entry = SequencerEntry::Transactions(TxBatch { txs: admitted.txs });
        match self.seq.consensus.propose(&self.term, entry).await {
            Ok(proposal) => {
                self.proposed
                    .extend(admitted.waiting.iter().map(|(hash, _)| *hash));
                self.in_flight.push_back(InFlight {
                    proposal,
                    waiting: admitted.waiting,
                });
                Ok(())
            }
            Err(e) => {
                for (_, reply) in admitted.waiting {
                    let _ = reply.send(Err(AdmissionError::NotLeader));
                }
                Err(self.abandon(e))
            }
        }
    }

    /// Waits at most `wait` for a submission or for the oldest batch in flight to
    /// be applied.
    async fn next_event(&mut self, wait: std::time::Duration) -> Event {
        let in_flight = &mut self.in_flight;
        let front = async {
            match in_flight.front_mut() {
                Some(front) => front.proposal.applied().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => Event::TimedOut,
            applied = front => Event::Applied(applied),
            next = self.seq.submissions.recv() => Event::Submitted(next),
        }
    }

    /// `first`, then whatever else is already waiting (carried over first), up to
    /// [`MAX_BATCH`]. With nothing in flight the batch goes at once; while earlier
    /// batches replicate it gathers for at most [`BATCH_WINDOW`].
    async fn collect(&mut self, first: Submission) -> Vec<Submission> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Some(next) = self.carried.pop_front()
        {
            batch.push(next);
        }
        let cut = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            match self.seq.submissions.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) if self.in_flight.is_empty() => break,
                Err(_) => match tokio::time::timeout_at(cut, self.seq.submissions.recv()).await {
                    Ok(Some(next)) => batch.push(next),
                    Ok(None) | Err(_) => break,
                },
            }
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
            let execution = if this_batch.contains(&hash) || self.proposed.contains(&hash) {
                Execution::Proposed
            } else if builder.contains(&hash)
                || self
                    .seq
                    .store
                    .tx_location(hash)
                    .map_err(|e| StopReason::Execution(e.to_string()))?
                    .is_some()
            {
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
            match dispose(hash, execution) {
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
                    let mut gaps = self.gaps.lock();
                    if let Err((submission, why)) = gaps.park(
                        sender,
                        nonce,
                        hash,
                        submission.raw.len(),
                        submission,
                        Instant::now(),
                    ) {
                        let refused = AdmissionError::Refused(why.message().into());
                        let _ = submission.reply.send(Err(refused));
                    }
                    metrics::gauge!("baton_gap_queue_bytes").set(gaps.bytes() as f64);
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
        let mut gaps = self.gaps.lock();
        let released = gaps
            .release(Instant::now(), |sender| builder.next_nonce(sender))
            .map_err(|e| StopReason::Execution(e.to_string()))?;
        metrics::gauge!("baton_gap_queue_bytes").set(gaps.bytes() as f64);
        drop(gaps);
        for (submission, why) in released.expired {
            let _ = submission.reply.send(Err(AdmissionError::Refused(why)));
        }
        for submission in released.ready.into_iter().rev() {
            self.carried.push_front(submission);
        }
        Ok(())
    }

    /// Builds the speculative block from the store when there is none (a new
    /// term, or a block opened since). Within a term the log holds only this
    /// leader's proposals, so applied state plus what is in flight is exactly it.
    fn ensure_speculative(&mut self, view: &ChainView) -> Result<(), StopReason> {
        match &self.speculative {
            Some(builder) => debug_assert!(
                Some(builder.start()) == view.open() && builder.txs().len() >= view.open_txs(),
                "invariant 3: the speculative block is the open block plus what is proposed"
            ),
            None => {
                debug_assert!(
                    self.in_flight.is_empty(),
                    "a block opens with nothing in flight"
                );
                self.speculative = Some(self.replay_open_block()?);
            }
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
        let _ = self.abandon(baton_consensus::ConsensusError::NotLeader { leader: None });
        let parked: Vec<Submission> = self.gaps.lock().drain().collect();
        let waiting: Vec<Submission> = self.carried.drain(..).chain(parked).collect();
        for submission in waiting {
            let _ = submission.reply.send(Err(AdmissionError::NotLeader));
        }
    }
}
