//! Membership changes at runtime, on the leader: a new member joins as a non-voter
//! (a Raft learner) and catches up by replication or snapshot, is then promoted to
//! voter, and members leave. Each change is one Raft membership entry; every node
//! follows it (its p2p allowlist too, see `baton-node`'s peers module).

use std::collections::{BTreeMap, BTreeSet};

use baton_primitives::{Member, NodeId};
use openraft::ChangeMembers;

use crate::{Consensus, ConsensusError};

impl Consensus {
    /// Adds `id` as a non-voter and waits until it holds the entry that added it
    /// (by replication, or by snapshot when the log it needs was purged); with
    /// `voter`, then promotes it.
    pub async fn add_member(
        &self,
        id: NodeId,
        member: Member,
        voter: bool,
    ) -> Result<(), ConsensusError> {
        let known = self.members().into_iter().find(|m| m.id == id);
        if known.is_none() {
            let added = self
                .raft
                .add_learner(id, member, true)
                .await
                .map_err(|e| ConsensusError::raft(e, ConsensusError::write))?;
            // openraft answers once the new member is within its lag threshold
            // (5,000 entries), which on a short log is at once: wait for the entry
            // itself, so that an answer means the member has caught up.
            let index = added.log_id.index();
            let metrics = self
                .raft
                .wait(None)
                .metrics(
                    |m| {
                        m.replication.as_ref().is_none_or(|progress| {
                            progress
                                .get(&id)
                                .and_then(Option::as_ref)
                                .is_some_and(|matched| matched.index() >= index)
                        })
                    },
                    "the new member to hold the entry that added it",
                )
                .await
                .map_err(|e| ConsensusError::Stopped(e.to_string()))?;
            if metrics.replication.is_none() {
                return Err(ConsensusError::NotLeader {
                    leader: metrics.current_leader,
                });
            }
        }
        if voter {
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map_err(|e| ConsensusError::raft(e, ConsensusError::write))?;
        }
        Ok(())
    }

    /// Removes `id` from the cluster (as voter and as node).
    pub async fn remove_member(&self, id: NodeId) -> Result<(), ConsensusError> {
        let member = self
            .members()
            .into_iter()
            .find(|m| m.id == id)
            .ok_or(ConsensusError::UnknownMember(id))?;
        let change = if member.suffrage == crate::Suffrage::Voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(|e| ConsensusError::raft(e, ConsensusError::write))?;
        Ok(())
    }

    /// Every member of the membership in force, voters and non-voters.
    pub fn member_nodes(&self) -> BTreeMap<NodeId, Member> {
        use openraft::type_config::async_runtime::WatchReceiver;
        let metrics = self.raft.metrics().borrow_watched().clone();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, member)| (*id, member.clone()))
            .collect()
    }
}
