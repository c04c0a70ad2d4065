//! Blocks as the state machine holds them: the one open block and sealed blocks.

use alloy_consensus::Header;
use alloy_primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

use crate::entry::BlockStart;

/// The block between its `BlockStart` and its `BlockEnd`.
///
/// Invariant: `txs` holds exactly the transactions of the committed
/// `Transactions` entries applied since `start`, in log order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenBlock {
    pub start: BlockStart,
    pub txs: Vec<(Bytes, Address)>,
}

/// A sealed block: its header, its hash (keccak of the header's RLP) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlock {
    pub header: Header,
    pub hash: B256,
    /// `(EIP-2718 encoded transaction, sender)` in execution order.
    pub txs: Vec<(Bytes, Address)>,
}

impl SealedBlock {
    /// Seals `header`, computing its hash.
    pub fn new(header: Header, txs: Vec<(Bytes, Address)>) -> Self {
        let hash = header.hash_slow();
        Self { header, hash, txs }
    }

    pub fn number(&self) -> u64 {
        self.header.number
    }
}
