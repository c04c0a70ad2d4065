//! Leadership as the sequencer uses it: who leads in which term, the barrier a new
//! leader passes before it produces (DESIGN invariant 2), proposals that keep their
//! order and resolve when committed and when applied, and hand-overs with a reason.

use std::time::Duration;

use baton_primitives::{NodeId, SequencerEntry};
use openraft::{
    ReadPolicy, errors::LinearizableReadError, impls::ProgressResponder, raft::ClientWriteResult,
    type_config::alias::CommittedLeaderIdOf, type_config::async_runtime::WatchReceiver,
};

use crate::{
    Consensus, ConsensusError, Role,
    readiness::ChangeReason,
    types::{LogId, TypeConfig},
};

type C = TypeConfig;

/// Who leads, as this node sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    pub term: u64,
    pub leader: Option<NodeId>,
    pub role: Role,
}

/// Changes of [`Leadership`] (and of anything else Raft reports: wake-ups may
/// repeat the same leadership).
pub struct LeadershipWatch {
    node_id: NodeId,
    metrics: openraft::type_config::alias::WatchReceiverOf<C, openraft::RaftMetrics<C>>,
}

impl std::fmt::Debug for LeadershipWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LeadershipWatch")
            .field(&self.current())
            .finish()
    }
}

impl LeadershipWatch {
    pub fn current(&self) -> Leadership {
        let metrics = self.metrics.borrow_watched();
        Leadership {
            term: metrics.current_term,
            leader: metrics.current_leader,
            role: metrics.state.into(),
        }
    }

    /// Whether this node leads now.
    pub fn leading(&self) -> bool {
        let now = self.current();
        now.role == Role::Leader && now.leader == Some(self.node_id)
    }

    /// Waits for the next change; an error means Raft has stopped.
    pub async fn changed(&mut self) -> Result<(), ConsensusError> {
        self.metrics
            .changed()
            .await
            .map_err(|_| ConsensusError::Stopped("Raft's metrics closed".into()))
    }
}

/// The right to propose in one term, earned by passing [`Consensus::barrier`].
#[derive(Debug, Clone)]
pub struct LeaderTerm {
    id: CommittedLeaderIdOf<C>,
    term: u64,
}

impl LeaderTerm {
    pub fn term(&self) -> u64 {
        self.term
    }
}

/// A proposed entry, queued on the log behind every earlier proposal of its term.
/// Both waits are cancel-safe: one dropped half-way can be started again. Once
/// either has failed, the entry's fate is told once; later waits say it is gone.
#[derive(Debug)]
pub struct Proposal {
    /// Resolves when a quorum holds the entry; `None` once it has resolved.
    committed: Option<openraft::type_config::alias::OneshotReceiverOf<C, LogId>>,
    /// Resolves when this node has applied the entry; `None` once it has resolved.
    applied: Option<openraft::type_config::alias::OneshotReceiverOf<C, ClientWriteResult<C>>>,
    /// The entry's log index, once committed.
    index: Option<u64>,
    /// Whether this node has applied it.
    is_applied: bool,
}

impl Proposal {
    /// Waits until a quorum holds the entry; returns its log index.
    pub async fn committed(&mut self) -> Result<u64, ConsensusError> {
        if let Some(index) = self.index {
            return Ok(index);
        }
        if let Some(committed) = self.committed.as_mut() {
            let outcome = committed.await;
            self.committed = None;
            if let Ok(log_id) = outcome {
                self.index = Some(log_id.index());
                return Ok(log_id.index());
            }
        }
        // Never committed here: the apply side says why.
        self.applied().await
    }

    /// Waits until this node has applied the entry; returns its log index.
    pub async fn applied(&mut self) -> Result<u64, ConsensusError> {
        if self.is_applied
            && let Some(index) = self.index
        {
            return Ok(index);
        }
        let Some(applied) = self.applied.as_mut() else {
            return Err(ConsensusError::Stopped("the write was dropped".into()));
        };
        let outcome = applied.await;
        self.applied = None;
        match outcome {
            Ok(Ok(response)) => {
                self.index = Some(response.log_id.index());
                self.is_applied = true;
                Ok(response.log_id.index())
            }
            Ok(Err(e)) => Err(ConsensusError::write(e)),
            Err(_) => Err(ConsensusError::Stopped("the write was dropped".into())),
        }
    }
}

impl Consensus {
    /// Changes of leadership, for a loop that acts while this node leads.
    pub fn leadership(&self) -> LeadershipWatch {
        LeadershipWatch {
            node_id: self.node_id,
            metrics: self.raft.metrics(),
        }
    }

    /// DESIGN invariant 2: returns once this node leads with its term's blank entry
    /// committed and its whole log, as of now, applied. A leader restored into the
    /// same term by a restart (openraft keeps a committed vote) passes the read
    /// barrier on its old blank entry, so the tail it appended before the crash is
    /// waited for too.
    pub async fn barrier(&self, timeout: Duration) -> Result<LeaderTerm, ConsensusError> {
        self.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map_err(|e| {
                ConsensusError::raft(e, |e| match e {
                    LinearizableReadError::ForwardToLeader(forward) => {
                        ConsensusError::forward(forward)
                    }
                    // Leading without a quorum: as good as not leading.
                    LinearizableReadError::QuorumNotEnough(_) => {
                        ConsensusError::NotLeader { leader: None }
                    }
                })
            })?;
        let tail = self.raft.metrics().borrow_watched().last_log_index;
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(tail, "the leader's whole log is applied")
            .await
            .map_err(|_| ConsensusError::Timeout("the leader's log to apply"))?;
        let leader = self.raft.as_leader().map_err(ConsensusError::forward)?;
        let id = leader.to_committed_leader_id();
        Ok(LeaderTerm { term: id.term, id })
    }

    /// Queues `entry` on the log, after every earlier proposal of this task, if this
    /// node still leads in `term`; nothing is appended otherwise.
    pub async fn propose(
        &self,
        term: &LeaderTerm,
        entry: SequencerEntry,
    ) -> Result<Proposal, ConsensusError> {
        let (responder, committed, applied) = ProgressResponder::new();
        self.raft
            .write(entry)
            .with_leader(term.id)
            .responder(responder)
            .await
            .map_err(ConsensusError::fatal)?;
        Ok(Proposal {
            committed: Some(committed),
            applied: Some(applied),
            index: None,
            is_applied: false,
        })
    }

    /// Hands leadership from this node (the leader) to `to` because of `why`; the
    /// reason goes with the request, so old and new leader both record it.
    pub async fn hand_over(&self, to: NodeId, why: ChangeReason) -> Result<(), ConsensusError> {
        *self.readiness.handover.lock() = Some((to, why));
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(ConsensusError::fatal)
    }
}
