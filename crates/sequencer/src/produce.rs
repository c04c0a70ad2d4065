//! One term of block production: carries out [`policy::next`]'s commands through
//! Raft. Admitting transactions into the open block is in [`crate::admit`].
//!
//! Batches are pipelined: up to [`MAX_IN_FLIGHT`](crate::admission::MAX_IN_FLIGHT)
//! replicate while the next is admitted on the speculative block. Each batch's
//! callers are answered, in order, once it is applied here (so committed, and
//! readable on this node). Before sealing, every batch is settled.

use std::{
    collections::{HashSet, VecDeque},
    time::Duration,
};

use alloy_primitives::B256;
use baton_consensus::{
    ChainView, ChangeReason, ConsensusError, Executed, LeaderTerm, LeadershipWatch, Proposal,
};
use baton_execution::{BlockBuilder, start_on};
use baton_primitives::{BlockEnd, NodeId, SequencerEntry, clock::now_ms};
use futures::FutureExt;
use tokio::sync::watch;

use crate::{
    admission::{AdmissionError, SharedGaps, Submission},
    policy::{self, Command, Observed, StopReason},
    runtime::Sequencer,
};

/// What the leader keeps while it produces in one term.
pub(crate) struct Producer<'a> {
    pub(crate) seq: &'a mut Sequencer,
    pub(crate) term: LeaderTerm,
    pub(crate) chain: watch::Receiver<ChainView>,
    pub(crate) leadership: LeadershipWatch,
    /// The open block as applied plus every batch this leader proposed (invariant
    /// 3's speculative state); rebuilt from the store when a block opens.
    pub(crate) speculative: Option<BlockBuilder>,
    /// Batches proposed and not yet answered, oldest first.
    pub(crate) in_flight: VecDeque<InFlight>,
    /// The hashes of every transaction in `in_flight`.
    pub(crate) proposed: HashSet<B256>,
    /// Where the leader leaves what it executed, for its state machine to reuse.
    pub(crate) executed: Executed,
    /// Submissions taken off the channel but not yet admitted.
    pub(crate) carried: VecDeque<Submission>,
    pub(crate) gaps: SharedGaps,
    /// The open block had no room for a waiting transaction: seal it now.
    pub(crate) block_full: bool,
    /// The chain position (head, open block) last seen, and when by this clock.
    seen: ((u64, Option<u64>), u64),
}

/// A proposed batch and who waits for it.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) proposal: Proposal,
    pub(crate) waiting: Vec<(B256, Reply)>,
}

pub(crate) type Reply = tokio::sync::oneshot::Sender<Result<B256, AdmissionError>>;

impl<'a> Producer<'a> {
    pub(crate) fn new(seq: &'a mut Sequencer, term: LeaderTerm) -> Self {
        // A new term: nothing executed before it can be reused, and nothing parked
        // in an earlier term waits on into this one.
        seq.executed.clear();
        for stale in seq.gaps.lock().drain() {
            let _ = stale.reply.send(Err(AdmissionError::NotLeader));
        }
        let gaps = seq.gaps.clone();
        Self {
            chain: seq.consensus.chain(),
            leadership: seq.consensus.leadership(),
            executed: seq.executed.clone(),
            seq,
            term,
            speculative: None,
            in_flight: VecDeque::new(),
            proposed: HashSet::new(),
            carried: VecDeque::new(),
            gaps,
            block_full: false,
            seen: ((0, None), 0),
        }
    }

    /// Produces until this node stops leading in its term; returns why.
    pub(crate) async fn produce(&mut self) -> StopReason {
        tracing::info!(
            head = self.chain.borrow().head.number(),
            "leading: producing blocks"
        );
        loop {
            // Every decision is made on a view that includes all entries of earlier
            // terms; a new term (even one we lead) starts over with the barrier.
            if !self.leadership.leading() || self.leadership.current().term != self.term.term() {
                return StopReason::NotLeader;
            }
            if let Err(stop) = self.step().await {
                return stop;
            }
        }
    }

    /// Decides on the current view and carries the decision out.
    async fn step(&mut self) -> Result<(), StopReason> {
        self.settle_ready()?;
        let view = self.chain.borrow_and_update().clone();
        let now = now_ms();
        let position = (view.head.number(), view.open().map(|o| o.number));
        if self.seen.0 != position {
            self.seen = (position, now);
        }
        let command = policy::next(Observed {
            now_ms: now,
            block_time_ms: self.seq.config.block_time.as_millis() as u64,
            head_start_ms: view.head_start_ms,
            open_start_ms: view.open().map(|o| o.timestamp_ms),
            seen_ms: self.seen.1,
            block_full: self.block_full,
        });
        match command {
            Command::Open { timestamp_ms } => self.open(&view, timestamp_ms).await,
            Command::Admit { until_ms } => self.admit(&view, until_ms).await,
            Command::Seal => {
                let sealed = self.seal().await?;
                let members = self.seq.config.members.borrow().clone();
                let rotation = policy::after_seal(
                    self.seq.consensus.node_id(),
                    self.seq.consensus.readiness().is_ready(),
                    sealed,
                    self.seq.config.rotation_blocks,
                    self.seq.consensus.paused(),
                    &members,
                );
                match rotation {
                    Some(Command::HandOver { to, why }) => Err(self.hand_over(to, why).await),
                    _ => Ok(()),
                }
            }
            Command::HandOver { to, why } => Err(self.hand_over(to, why).await),
            Command::WaitUntil(at) => {
                let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.chain.changed() => {}
                    _ = self.leadership.changed() => {}
                }
                Ok(())
            }
        }
    }

    /// Answers the callers of every batch at the front that is applied by now.
    pub(crate) fn settle_ready(&mut self) -> Result<(), StopReason> {
        while let Some(front) = self.in_flight.front_mut() {
            match front.proposal.applied().now_or_never() {
                None => break,
                Some(Ok(_)) => self.settle_front_now(),
                Some(Err(e)) => return Err(self.abandon(e)),
            }
        }
        Ok(())
    }

    /// Waits until the oldest batch in flight is applied and answers its callers.
    pub(crate) async fn settle_front(&mut self) -> Result<(), StopReason> {
        let Some(front) = self.in_flight.front_mut() else {
            return Ok(());
        };
        match front.proposal.applied().await {
            Ok(_) => {
                self.settle_front_now();
                Ok(())
            }
            Err(e) => Err(self.abandon(e)),
        }
    }

    /// Settles every batch in flight, oldest first.
    pub(crate) async fn settle_all(&mut self) -> Result<(), StopReason> {
        while !self.in_flight.is_empty() {
            self.settle_front().await?;
        }
        Ok(())
    }

    fn settle_front_now(&mut self) {
        if let Some(batch) = self.in_flight.pop_front() {
            for (hash, reply) in batch.waiting {
                self.proposed.remove(&hash);
                let _ = reply.send(Ok(hash));
            }
        }
    }

    /// A batch did not commit under this leader: neither did any after it. Their
    /// callers must find the new leader, which either holds each transaction (and
    /// answers a resubmission with its hash) or not.
    pub(crate) fn abandon(&mut self, why: ConsensusError) -> StopReason {
        for batch in self.in_flight.drain(..) {
            for (_, reply) in batch.waiting {
                let _ = reply.send(Err(AdmissionError::NotLeader));
            }
        }
        self.proposed.clear();
        why.into()
    }

    async fn hand_over(&mut self, to: NodeId, why: ChangeReason) -> StopReason {
        self.seq.hand_over(self.term.term(), to, why).await
    }

    /// Writes `entry` behind everything proposed before, and waits until it is
    /// committed and applied here, so the next decision sees its effect.
    pub(crate) async fn propose(&mut self, entry: SequencerEntry) -> Result<u64, StopReason> {
        debug_assert!(
            self.in_flight.is_empty(),
            "block entries wait for every batch"
        );
        let mut proposal = self.seq.consensus.propose(&self.term, entry).await?;
        Ok(proposal.applied().await?)
    }

    async fn open(&mut self, view: &ChainView, timestamp_ms: u64) -> Result<(), StopReason> {
        self.speculative = None;
        self.block_full = false;
        let start = start_on(
            &view.head,
            timestamp_ms,
            self.seq.config.gas_limit,
            self.seq.config.coinbase,
        );
        self.propose(SequencerEntry::BlockStart(start)).await?;
        Ok(())
    }

    /// Seals the open block from the speculative block once every batch in flight
    /// is applied (else from a replay of the stored open block), and leaves the
    /// seal for the state machine to reuse; returns the block's number.
    async fn seal(&mut self) -> Result<u64, StopReason> {
        let delay = *self.seq.config.fault_seal_delay.borrow();
        if !delay.is_zero() {
            tracing::warn!(?delay, "fault injection: sealing slowly");
            tokio::time::sleep(delay).await;
        }
        self.settle_all().await?;
        let view = self.chain.borrow_and_update().clone();
        let builder = match self.speculative.take() {
            Some(builder) if builder.txs().len() == view.open_txs() => builder,
            _ => self.replay_open_block()?,
        };
        debug_assert_eq!(
            Some(builder.start()),
            view.open(),
            "invariant 2: the leader seals the block that is open"
        );
        let sealed = builder
            .seal(&view.head.header)
            .map_err(|e| StopReason::Execution(e.to_string()))?;
        let number = sealed.block.number();
        let end = BlockEnd {
            number,
            hash: sealed.block.hash,
        };
        self.executed
            .add_seal(self.term.term(), self.seq.consensus.node_id(), sealed);
        self.propose(SequencerEntry::BlockEnd(end)).await?;
        Ok(number)
    }
}
