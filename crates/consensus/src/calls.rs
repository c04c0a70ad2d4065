//! Calls between members besides Raft's own: a member's status (the readiness
//! poll that rotation and step-down choose by) and a write a follower forwards to
//! the leader. They ride the members' p2p links next to Raft, so a flood on the
//! public JSON-RPC port (its connection limits, a slow pool) never reaches them.
//!
//! ```text
//!  Consensus::member_status ──Status──▶ member: Consensus::status()
//!  Consensus::forward_write ──Write───▶ leader: ForwardedWrite ──▶ its sequencer
//! ```

use std::time::Duration;

use alloy_primitives::{B256, Bytes};
use baton_primitives::NodeId;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::{Consensus, ConsensusError, NodeStatus, network};

/// Why the leader did not take a forwarded write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WriteRefused {
    /// Refused for good: it can never execute as sent.
    #[error("{0}")]
    Refused(String),
    /// The member does not lead (any more); the sender should find the leader.
    #[error("not the leader")]
    NotLeader,
}

/// A raw transaction a member forwarded here. Whoever serves them answers each
/// once; one dropped unanswered reads as [`WriteRefused::NotLeader`], so the
/// sender retries.
#[derive(Debug)]
pub struct ForwardedWrite {
    pub raw: Bytes,
    reply: oneshot::Sender<Result<B256, WriteRefused>>,
}

impl ForwardedWrite {
    pub fn answer(self, result: Result<B256, WriteRefused>) {
        // The sender gave up waiting: nobody is left to tell.
        let _ = self.reply.send(result);
    }

    /// Passes `raw` to whoever serves forwarded writes and waits for the answer.
    pub(crate) async fn hand_on(
        writes: &mpsc::Sender<ForwardedWrite>,
        raw: Bytes,
    ) -> Result<B256, WriteRefused> {
        let (reply, answer) = oneshot::channel();
        if writes.send(ForwardedWrite { raw, reply }).await.is_err() {
            return Err(WriteRefused::NotLeader);
        }
        answer.await.unwrap_or(Err(WriteRefused::NotLeader))
    }
}

impl Consensus {
    /// Member `id`'s status (`baton_nodeStatus`), asked over p2p.
    pub async fn member_status(
        &self,
        id: NodeId,
        timeout: Duration,
    ) -> Result<NodeStatus, ConsensusError> {
        network::status_of(self, id, timeout).await
    }

    /// Forwards a raw transaction to member `to` (the leader, as this node
    /// believes) and waits for its answer: the hash once committed, or why not.
    pub async fn forward_write(
        &self,
        to: NodeId,
        raw: Bytes,
        timeout: Duration,
    ) -> Result<Result<B256, WriteRefused>, ConsensusError> {
        network::write_to(self, to, raw, timeout).await
    }
}
