//! One term of block production: carries out [`policy::next`]'s commands through
//! Raft. Admitting transactions into the open block is in [`crate::admit`].

use std::{collections::VecDeque, time::Duration};

use baton_consensus::{ChainView, ChangeReason, LeaderTerm, LeadershipWatch};
use baton_execution::{BlockBuilder, next_base_fee};
use baton_primitives::{BlockEnd, BlockStart, NodeId, SequencerEntry, clock::now_ms};
use tokio::sync::watch;

use crate::{
    admission::Submission,
    gaps::Gaps,
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
    /// 3's speculative state); rebuilt from the store when it does not match.
    pub(crate) speculative: Option<BlockBuilder>,
    /// Submissions taken off the channel but not yet admitted.
    pub(crate) carried: VecDeque<Submission>,
    pub(crate) gaps: Gaps<Submission>,
    /// The open block had no room for a waiting transaction: seal it now.
    pub(crate) block_full: bool,
}

impl<'a> Producer<'a> {
    pub(crate) fn new(seq: &'a mut Sequencer, term: LeaderTerm) -> Self {
        Self {
            chain: seq.consensus.chain(),
            leadership: seq.consensus.leadership(),
            seq,
            term,
            speculative: None,
            carried: VecDeque::new(),
            gaps: Gaps::default(),
            block_full: false,
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
        let view = self.chain.borrow_and_update().clone();
        let command = policy::next(Observed {
            now_ms: now_ms(),
            block_time_ms: self.seq.config.block_time.as_millis() as u64,
            head_start_ms: view.head_start_ms,
            open_start_ms: view.open().map(|o| o.timestamp_ms),
            block_full: self.block_full,
        });
        match command {
            Command::Open { timestamp_ms } => self.open(&view, timestamp_ms).await,
            Command::Admit { until_ms } => self.admit(&view, until_ms).await,
            Command::Seal => {
                let sealed = self.seal(&view).await?;
                let members = self.seq.config.members.borrow().clone();
                let rotation = policy::after_seal(
                    self.seq.consensus.node_id(),
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

    async fn hand_over(&mut self, to: NodeId, why: ChangeReason) -> StopReason {
        self.seq.hand_over(self.term.term(), to, why).await
    }

    /// Writes `entry` behind everything proposed before, and waits until it is
    /// committed and applied here, so the next decision sees its effect.
    pub(crate) async fn propose(&mut self, entry: SequencerEntry) -> Result<u64, StopReason> {
        let proposal = self.seq.consensus.propose(&self.term, entry).await?;
        Ok(proposal.applied().await?)
    }

    async fn open(&mut self, view: &ChainView, timestamp_ms: u64) -> Result<(), StopReason> {
        self.speculative = None;
        self.block_full = false;
        let head = &view.head;
        let start = BlockStart {
            number: head.number() + 1,
            timestamp_ms,
            parent_hash: head.hash,
            base_fee: next_base_fee(&head.header),
            gas_limit: self.seq.config.gas_limit,
            coinbase: self.seq.config.coinbase,
        };
        self.propose(SequencerEntry::BlockStart(start)).await?;
        Ok(())
    }

    /// Seals the open block from the speculative block when it matches what was
    /// applied (else from a replay of the stored open block); returns its number.
    async fn seal(&mut self, view: &ChainView) -> Result<u64, StopReason> {
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
        self.propose(SequencerEntry::BlockEnd(end)).await?;
        Ok(number)
    }
}
