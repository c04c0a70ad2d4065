//! Why the entry stream could not be applied. Each of these means the leader and
//! this node disagree about the chain: the state machine stops rather than fork.

use alloy_primitives::B256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    #[error("BlockStart({got}) while block {open} is still open")]
    BlockAlreadyOpen { open: u64, got: u64 },
    #[error("BlockStart({got}) does not follow head {head}")]
    WrongNumber { head: u64, got: u64 },
    #[error("BlockStart({number}) names parent {got}, head is {head}")]
    WrongParent { number: u64, head: B256, got: B256 },
    #[error("BlockStart({number}) timestamp {got_ms}ms is before its parent's {parent_s}s")]
    TimestampBeforeParent {
        number: u64,
        parent_s: u64,
        got_ms: u64,
    },
    #[error("BlockStart({number}) base fee {got}, EIP-1559 gives {expected}")]
    WrongBaseFee {
        number: u64,
        expected: u64,
        got: u64,
    },
    #[error("{entry} with no open block")]
    NoOpenBlock { entry: &'static str },
    #[error("BlockEnd({got}) while block {open} is open")]
    WrongBlockEnd { open: u64, got: u64 },
    #[error("non-determinism: block {number} hashes to {ours} here, the leader sealed {leader}")]
    HashMismatch {
        number: u64,
        leader: B256,
        ours: B256,
    },
    #[error("state: {0}")]
    State(String),
}
