//! What a node reports about itself and its cluster (`baton_nodeStatus`,
//! `conductor_*`).

use std::fmt;

use alloy_primitives::B256;
use baton_primitives::{Member, NodeId, clock::now_ms};
use openraft::{ServerState, type_config::async_runtime::WatchReceiver};
use serde::{Deserialize, Serialize};

use crate::{Consensus, LeaderChange, Readiness};

/// This node's part in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Leader => "leader",
            Self::Follower => "follower",
            Self::Candidate => "candidate",
            Self::Learner => "learner",
            Self::Shutdown => "shutdown",
        })
    }
}

impl From<ServerState> for Role {
    fn from(state: ServerState) -> Self {
        match state {
            ServerState::Leader => Self::Leader,
            ServerState::Follower => Self::Follower,
            ServerState::Candidate => Self::Candidate,
            ServerState::Learner => Self::Learner,
            ServerState::Shutdown => Self::Shutdown,
        }
    }
}

/// Whether a member votes (op-conductor's word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suffrage {
    Voter,
    Nonvoter,
}

/// One member of the cluster as this node's membership config lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    pub id: NodeId,
    pub addr: String,
    pub rpc_url: String,
    pub peer_id: String,
    pub suffrage: Suffrage,
}

/// A node's own account of where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub id: NodeId,
    pub role: Role,
    pub term: u64,
    pub leader_id: Option<NodeId>,
    pub applied_index: u64,
    pub committed_index: u64,
    pub head_number: u64,
    pub head_hash: B256,
    /// Whether this node may lead (invariant 5), and if not, why.
    pub readiness: Readiness,
    /// Raft runs here and the chain it applies has not stalled (a block committed
    /// within three block times).
    pub healthy: bool,
    /// The last change of leader this node saw, and why where it knows.
    pub last_leader_change: Option<LeaderChange>,
    /// Log index of the newest snapshot this node built or installed.
    pub snapshot_index: Option<u64>,
    /// Log entries up to this index are purged from this node's log.
    pub purged_index: Option<u64>,
}

impl Consensus {
    pub fn status(&self) -> NodeStatus {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let chain = self.chain.borrow();
        let committed = metrics.local_committed.as_ref().map_or(0, |id| id.index());
        NodeStatus {
            id: self.node_id,
            role: metrics.state.into(),
            term: metrics.current_term,
            leader_id: metrics.current_leader,
            applied_index: chain.applied_index,
            committed_index: committed,
            head_number: chain.head.number(),
            head_hash: chain.head.hash,
            readiness: self.readiness_of(committed, chain.applied_index),
            // The head opened one block time before it was sealed; three more
            // block times without a new block is a stall (invariant 6's bound).
            healthy: metrics.state != ServerState::Shutdown
                && !self.failed()
                && now_ms().saturating_sub(chain.head_start_ms)
                    <= 4 * self.block_time.as_millis() as u64,
            last_leader_change: self.last_leader_change(),
            snapshot_index: metrics.snapshot.map(|id| id.index()),
            purged_index: metrics.purged.map(|id| id.index()),
        }
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.current_leader == Some(self.node_id) && metrics.state == ServerState::Leader
    }

    /// Whether this node leads and a quorum acknowledged it within the longest
    /// election timeout (its lease). A leader cut off from a quorum stops claiming
    /// leadership, and taking writes, by the time the others may elect another,
    /// rather than when the partition heals.
    pub fn leads_with_quorum(&self) -> bool {
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.current_leader != Some(self.node_id) || metrics.state != ServerState::Leader {
            return false;
        }
        if metrics.membership_config.membership().voter_ids().count() <= 1 {
            return true;
        }
        let lease = std::time::Duration::from_millis(self.raft.config().election_timeout_max);
        metrics
            .last_quorum_acked
            .as_deref()
            .is_some_and(|acked| openraft::Instant::elapsed(acked) < lease)
    }

    /// Every member in the current membership config, voters first.
    pub fn members(&self) -> Vec<MemberInfo> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let mut members: Vec<MemberInfo> = membership
            .nodes()
            .map(|(id, member)| info(*id, member, voters.contains(id)))
            .collect();
        members.sort_by_key(|m| (m.suffrage != Suffrage::Voter, m.id));
        members
    }

    /// Log index of the membership config in force: changes whenever membership does.
    pub fn membership_version(&self) -> u64 {
        let metrics = self.raft.metrics().borrow_watched().clone();
        metrics
            .membership_config
            .log_id()
            .as_ref()
            .map_or(0, |id| id.index())
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<MemberInfo> {
        let leader = self.raft.metrics().borrow_watched().current_leader?;
        self.members().into_iter().find(|m| m.id == leader)
    }
}

fn info(id: NodeId, member: &Member, voter: bool) -> MemberInfo {
    MemberInfo {
        id,
        addr: member.p2p_addr.clone(),
        rpc_url: member.rpc_url.clone(),
        peer_id: member.peer_id.clone(),
        suffrage: if voter {
            Suffrage::Voter
        } else {
            Suffrage::Nonvoter
        },
    }
}
