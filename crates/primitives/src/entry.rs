//! Sequencer entries: the application payload of the Raft log.
//!
//! The committed stream of entries *is* the chain. For every block the leader
//! writes, in order:
//!
//! ```text
//! BlockStart{n} ── Transactions* ── BlockEnd{n, hash} ── BlockStart{n+1} ── …
//! ```
//!
//! Invariant: at most one block is open at a time; `BlockStart{n}` follows
//! `BlockEnd{n-1}` and `Transactions`/`BlockEnd{n}` only follow `BlockStart{n}`.
//! The state machine refuses (and halts on) a stream that breaks this.

use std::fmt;

use alloy_primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

/// Version of the on-disk and on-wire encoding of [`SequencerEntry`]. Bumped when a
/// variant changes shape; a node refuses entries of a version it does not know.
pub const ENTRY_FORMAT_VERSION: u8 = 1;

/// One application entry in the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SequencerEntry {
    /// Opens a block and fixes its execution environment.
    BlockStart(BlockStart),
    /// A batch of transactions for the open block.
    Transactions(TxBatch),
    /// Seals the open block.
    BlockEnd(BlockEnd),
}

/// Opens block `number`; everything that affects how its transactions execute is
/// fixed here, before any of them run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStart {
    pub number: u64,
    /// Leader's wall clock when it opened the block, in milliseconds since the epoch.
    /// The header's `timestamp` is this value in whole seconds.
    pub timestamp_ms: u64,
    pub parent_hash: B256,
    pub base_fee: u64,
    pub gas_limit: u64,
    pub coinbase: Address,
}

/// Transactions for the open block, each with the sender the leader recovered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxBatch {
    /// `(EIP-2718 encoded transaction, recovered sender)`.
    pub txs: Vec<(Bytes, Address)>,
}

/// Seals block `number`; `hash` is the leader's own result, which every node checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEnd {
    pub number: u64,
    pub hash: B256,
}

impl SequencerEntry {
    /// The block this entry belongs to, where the entry names it.
    pub fn block_number(&self) -> Option<u64> {
        match self {
            Self::BlockStart(start) => Some(start.number),
            Self::BlockEnd(end) => Some(end.number),
            Self::Transactions(_) => None,
        }
    }
}

impl fmt::Display for SequencerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BlockStart(s) => write!(f, "BlockStart({} @ {}ms)", s.number, s.timestamp_ms),
            Self::Transactions(b) => write!(f, "Transactions({})", b.txs.len()),
            Self::BlockEnd(e) => write!(f, "BlockEnd({} {})", e.number, e.hash),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn every_kind_round_trips_through_the_codec() {
        let entries = [
            SequencerEntry::BlockStart(BlockStart {
                number: 9,
                timestamp_ms: 1_700_000_000_123,
                parent_hash: B256::repeat_byte(1),
                base_fee: 1_000_000_000,
                gas_limit: 30_000_000,
                coinbase: Address::repeat_byte(2),
            }),
            SequencerEntry::Transactions(TxBatch {
                txs: vec![(Bytes::from_static(&[0x02, 0xf8]), Address::repeat_byte(3))],
            }),
            SequencerEntry::BlockEnd(BlockEnd {
                number: 9,
                hash: B256::repeat_byte(4),
            }),
        ];
        for entry in entries {
            let bytes = codec::encode(&entry).expect("encode");
            assert_eq!(
                codec::decode::<SequencerEntry>(&bytes).expect("decode"),
                entry
            );
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(codec::decode::<SequencerEntry>(&[0xff, 0xff, 0xff, 0xff, 1, 2]).is_err());
        assert!(codec::decode::<SequencerEntry>(&[]).is_err());
    }
}
