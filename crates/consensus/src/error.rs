//! What can go wrong when baton asks Raft for something.

use baton_primitives::NodeId;

use crate::types::TypeConfig;

type C = TypeConfig;

/// Why the consensus layer could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("invalid Raft config: {0}")]
    Config(String),
    #[error("cannot load the state machine: {0}")]
    StateMachine(#[source] std::io::Error),
    /// This node does not lead (any more); `leader` leads, if known.
    #[error("not the leader{}", leader.map_or(String::new(), |l| format!(" (node {l} leads)")))]
    NotLeader { leader: Option<NodeId> },
    /// The entry was appended here, then replaced by another leader's log: it may
    /// or may not commit through the new leader.
    #[error("the entry was discarded by a leader change; its outcome is unknown")]
    Discarded,
    /// Raft did not get there in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The cluster refused a membership change.
    #[error("membership change refused: {0}")]
    Membership(String),
    #[error("no member {0}")]
    UnknownMember(NodeId),
    /// A member did not answer a call, or answered what this node cannot read.
    #[error("member {id} did not answer: {why}")]
    Unreachable { id: NodeId, why: String },
    /// Raft itself has stopped (a storage error or a panic inside it): this node is done.
    #[error("Raft has stopped: {0}")]
    Stopped(String),
}

impl ConsensusError {
    pub(crate) fn fatal(error: openraft::errors::Fatal<C>) -> Self {
        Self::Stopped(error.to_string())
    }

    pub(crate) fn forward(forward: openraft::errors::ForwardToLeader<C>) -> Self {
        Self::NotLeader {
            leader: forward.leader_id,
        }
    }

    /// Maps a failed write: a refusal before append is "not leader", a discarded
    /// entry is of unknown outcome, a membership refusal keeps its reason.
    pub(crate) fn write(error: openraft::errors::ClientWriteError<C>) -> Self {
        use openraft::errors::ClientWriteError as E;
        match error {
            E::ForwardToLeader(forward) => Self::forward(forward),
            E::LogEntryDiscarded(_) => Self::Discarded,
            other => Self::Membership(other.to_string()),
        }
    }

    pub(crate) fn raft<E>(
        error: openraft::errors::RaftError<C, E>,
        api: impl FnOnce(E) -> Self,
    ) -> Self
    where
        E: std::error::Error,
    {
        match error {
            openraft::errors::RaftError::APIError(e) => api(e),
            openraft::errors::RaftError::Fatal(fatal) => Self::fatal(fatal),
        }
    }
}
