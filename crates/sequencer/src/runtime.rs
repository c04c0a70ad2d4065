//! The sequencer's runtime: follows leadership, and while this node leads, carries
//! out what [`policy`](crate::policy) decides (see [`Producer`](crate::produce)).

use std::time::{Duration, Instant};

use alloy_primitives::Address;
use baton_consensus::{ChangeReason, Consensus, Executed};
use baton_primitives::NodeId;
use baton_storage::Store;
use tokio::sync::{mpsc, watch};

use crate::{
    admission::{AdmissionError, MAX_BATCH, SharedGaps, Submission, SubmitHandle},
    policy::{self, Command, HANDOVER_PATIENCE, StopReason},
    produce::Producer,
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
    /// Test-only fault: wait this long before sealing each block, like a leader
    /// whose executor crawls while its Raft heartbeats on (zero: no wait).
    pub fault_seal_delay: watch::Receiver<Duration>,
}

/// Produces blocks whenever this node leads.
#[derive(Debug)]
pub struct Sequencer {
    pub(crate) config: SequencerConfig,
    pub(crate) consensus: Consensus,
    pub(crate) store: Store,
    /// Shared with this node's state machine (execute once).
    pub(crate) executed: Executed,
    pub(crate) submissions: mpsc::Receiver<Submission>,
    /// Transactions waiting on nonce gaps (empty unless this node leads).
    pub(crate) gaps: SharedGaps,
    /// The term in which this node handed leadership on, and when.
    handed_over: Option<(u64, Instant)>,
}

impl Sequencer {
    /// `executed` is the one the state machine was started with.
    pub fn new(
        config: SequencerConfig,
        consensus: Consensus,
        store: Store,
        executed: Executed,
    ) -> (Self, SubmitHandle) {
        let gaps = SharedGaps::default();
        let (handle, submissions) = SubmitHandle::channel(16 * MAX_BATCH, gaps.clone());
        (
            Self {
                config,
                consensus,
                store,
                executed,
                submissions,
                gaps,
                handed_over: None,
            },
            handle,
        )
    }

    /// Runs until `shutdown` flips to true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut leadership = self.consensus.leadership();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let term = leadership.current().term;
            let waiting = policy::waiting_for_successor(
                self.handed_over.map(|(t, at)| (t, at.elapsed())),
                term,
            );
            if leadership.leading() && !waiting {
                tokio::select! {
                    why = self.lead(term) => tracing::info!(term, %why, "stopped producing blocks"),
                    _ = shutdown.changed() => return,
                }
            }
            tokio::select! {
                changed = leadership.changed() => if changed.is_err() { return },
                // A leader waiting for its successor looks again when its patience ends.
                _ = tokio::time::sleep(HANDOVER_PATIENCE), if waiting => {}
                Some(submission) = self.submissions.recv() => {
                    // Not leading: the caller forwards to whoever is.
                    let _ = submission.reply.send(Err(AdmissionError::NotLeader));
                }
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Produces blocks for as long as this node leads in `term`; returns why it
    /// stopped. Whoever still waits for an answer then hears "not the leader".
    async fn lead(&mut self, term: u64) -> StopReason {
        let readiness = self.consensus.readiness();
        let members = self.config.members.borrow().clone();
        let me = self.consensus.node_id();
        if let Some(Command::HandOver { to, why }) =
            policy::on_elected(me, readiness.is_ready(), self.consensus.paused(), &members)
        {
            tracing::info!(term, %readiness, "leading while not ready");
            return self.hand_over(term, to, why).await;
        }
        // DESIGN invariant 2: nothing is produced before the barrier.
        let leader_term = match self.consensus.barrier(self.config.block_time * 10).await {
            Ok(leader_term) => leader_term,
            Err(e) => return e.into(),
        };
        if self.config.fault_no_produce {
            tracing::warn!("fault injection: leading without producing");
            let mut leadership = self.consensus.leadership();
            while leadership.leading() && leadership.current().term == term {
                if leadership.changed().await.is_err() {
                    break;
                }
            }
            return StopReason::FaultNoProduce;
        }
        let mut producer = Producer::new(self, leader_term);
        let stop = producer.produce().await;
        producer.refuse_waiting();
        stop
    }

    /// Carries out [`Command::HandOver`]: hands leadership to `to` because of `why`,
    /// which ends this node's production in `term`.
    pub(crate) async fn hand_over(
        &mut self,
        term: u64,
        to: NodeId,
        why: ChangeReason,
    ) -> StopReason {
        if let Err(e) = self.consensus.hand_over(to, why).await {
            return StopReason::Consensus(e);
        }
        self.handed_over = Some((term, Instant::now()));
        tracing::info!(term, to, %why, "handing leadership on");
        StopReason::HandedOver { to, why }
    }
}
