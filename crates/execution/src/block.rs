//! Opening, filling and sealing blocks.

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header, constants::EMPTY_WITHDRAWALS};
use alloy_eips::{
    eip1559::BaseFeeParams, eip1559::calc_next_block_base_fee, eip7685::EMPTY_REQUESTS_HASH,
};
use alloy_primitives::{B256, Bloom, Bytes};
use alloy_trie::{EMPTY_ROOT_HASH, root::ordered_trie_root_with_encoder};
use baton_primitives::{OpenBlock, SealedBlock, SequencerEntry};

use crate::ExecutionError;

/// What applying one entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockStep {
    Opened,
    Extended,
    Sealed(Box<SealedBlock>),
}

/// EIP-1559 base fee of the block after `parent`.
pub fn next_base_fee(parent: &Header) -> u64 {
    calc_next_block_base_fee(
        parent.gas_used,
        parent.gas_limit,
        parent.base_fee_per_gas.unwrap_or_default(),
        BaseFeeParams::ethereum(),
    )
}

/// Applies one committed entry to the chain whose newest block is `head`.
///
/// Pre: `open`, if any, was opened on top of `head`.
/// Post: on `Sealed`, the caller makes the returned block the new head and
/// `open` is `None`.
pub fn apply_entry(
    head: &SealedBlock,
    open: &mut Option<OpenBlock>,
    entry: &SequencerEntry,
) -> Result<BlockStep, ExecutionError> {
    match entry {
        SequencerEntry::BlockStart(start) => {
            if let Some(current) = open {
                return Err(ExecutionError::BlockAlreadyOpen {
                    open: current.start.number,
                    got: start.number,
                });
            }
            if start.number != head.number() + 1 {
                return Err(ExecutionError::WrongNumber {
                    head: head.number(),
                    got: start.number,
                });
            }
            if start.parent_hash != head.hash {
                return Err(ExecutionError::WrongParent {
                    number: start.number,
                    head: head.hash,
                    got: start.parent_hash,
                });
            }
            if start.timestamp_ms / 1000 < head.header.timestamp {
                return Err(ExecutionError::TimestampBeforeParent {
                    number: start.number,
                    parent_s: head.header.timestamp,
                    got_ms: start.timestamp_ms,
                });
            }
            let expected = next_base_fee(&head.header);
            if start.base_fee != expected {
                return Err(ExecutionError::WrongBaseFee {
                    number: start.number,
                    expected,
                    got: start.base_fee,
                });
            }
            *open = Some(OpenBlock {
                start: start.clone(),
                txs: Vec::new(),
            });
            Ok(BlockStep::Opened)
        }
        SequencerEntry::Transactions(batch) => {
            let current = open.as_mut().ok_or(ExecutionError::NoOpenBlock {
                entry: "Transactions",
            })?;
            current.txs.extend(batch.txs.iter().cloned());
            Ok(BlockStep::Extended)
        }
        SequencerEntry::BlockEnd(end) => {
            let current = open
                .as_ref()
                .ok_or(ExecutionError::NoOpenBlock { entry: "BlockEnd" })?;
            if current.start.number != end.number {
                return Err(ExecutionError::WrongBlockEnd {
                    open: current.start.number,
                    got: end.number,
                });
            }
            let sealed = seal(current, &head.header);
            if sealed.hash != end.hash {
                return Err(ExecutionError::HashMismatch {
                    number: end.number,
                    leader: end.hash,
                    ours: sealed.hash,
                });
            }
            *open = None;
            Ok(BlockStep::Sealed(Box::new(sealed)))
        }
    }
}

/// Seals `open` on top of `parent`: the header every node derives identically.
pub fn seal(open: &OpenBlock, parent: &Header) -> SealedBlock {
    let start = &open.start;
    let transactions_root = if open.txs.is_empty() {
        EMPTY_ROOT_HASH
    } else {
        // The transaction trie's leaves are the EIP-2718 encodings, which is
        // exactly what the log carries.
        ordered_trie_root_with_encoder(&open.txs, |(raw, _), out| out.extend_from_slice(raw))
    };
    let header = Header {
        parent_hash: start.parent_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: start.coinbase,
        // No execution yet ([2/5]): state is unchanged from the parent.
        state_root: parent.state_root,
        transactions_root,
        receipts_root: EMPTY_ROOT_HASH,
        logs_bloom: Bloom::ZERO,
        difficulty: Default::default(),
        number: start.number,
        gas_limit: start.gas_limit,
        gas_used: 0,
        timestamp: start.timestamp_ms / 1000,
        extra_data: Bytes::new(),
        mix_hash: B256::ZERO,
        nonce: Default::default(),
        base_fee_per_gas: Some(start.base_fee),
        withdrawals_root: Some(EMPTY_WITHDRAWALS),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: Some(EMPTY_REQUESTS_HASH),
        ..Default::default()
    };
    SealedBlock::new(header, open.txs.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;
    use baton_primitives::{BlockEnd, BlockStart, ChainSpec, TxBatch};

    fn genesis() -> SealedBlock {
        SealedBlock::new(ChainSpec::dev().genesis_header, vec![])
    }

    fn start_on(head: &SealedBlock, timestamp_ms: u64) -> BlockStart {
        BlockStart {
            number: head.number() + 1,
            timestamp_ms,
            parent_hash: head.hash,
            base_fee: next_base_fee(&head.header),
            gas_limit: head.header.gas_limit,
            coinbase: Address::ZERO,
        }
    }

    fn build(head: &SealedBlock, timestamp_ms: u64) -> SealedBlock {
        let mut open = None;
        let start = start_on(head, timestamp_ms);
        apply_entry(head, &mut open, &SequencerEntry::BlockStart(start)).expect("start");
        let leader = seal(open.as_ref().expect("open"), &head.header);
        let end = SequencerEntry::BlockEnd(BlockEnd {
            number: leader.number(),
            hash: leader.hash,
        });
        match apply_entry(head, &mut open, &end).expect("end") {
            BlockStep::Sealed(block) => *block,
            other => panic!("expected a sealed block, got {other:?}"),
        }
    }

    #[test]
    fn blocks_link_to_their_parent_and_hash_their_header() {
        let genesis = genesis();
        let one = build(&genesis, 1_000);
        let two = build(&one, 2_000);
        assert_eq!(one.header.parent_hash, genesis.hash);
        assert_eq!(two.header.parent_hash, one.hash);
        assert_eq!(two.hash, two.header.hash_slow());
        assert_eq!(two.header.timestamp, 2);
    }

    #[test]
    fn sealing_is_deterministic() {
        let genesis = genesis();
        assert_eq!(build(&genesis, 5_500), build(&genesis, 5_500));
        assert_ne!(build(&genesis, 5_500).hash, build(&genesis, 6_500).hash);
    }

    #[test]
    fn empty_blocks_lower_the_base_fee() {
        let genesis = genesis();
        let one = build(&genesis, 1_000);
        let base = |b: &SealedBlock| b.header.base_fee_per_gas.expect("london");
        assert!(base(&one) < base(&genesis));
    }

    #[test]
    fn out_of_order_entries_are_refused() {
        let genesis = genesis();
        let mut open = None;
        let end = SequencerEntry::BlockEnd(BlockEnd {
            number: 1,
            hash: B256::ZERO,
        });
        assert!(matches!(
            apply_entry(&genesis, &mut open, &end),
            Err(ExecutionError::NoOpenBlock { .. })
        ));
        let batch = SequencerEntry::Transactions(TxBatch::default());
        assert!(apply_entry(&genesis, &mut open, &batch).is_err());

        let mut skip = start_on(&genesis, 1_000);
        skip.number = 2;
        assert!(matches!(
            apply_entry(&genesis, &mut open, &SequencerEntry::BlockStart(skip)),
            Err(ExecutionError::WrongNumber { .. })
        ));

        let start = SequencerEntry::BlockStart(start_on(&genesis, 1_000));
        apply_entry(&genesis, &mut open, &start).expect("start");
        assert!(matches!(
            apply_entry(&genesis, &mut open, &start),
            Err(ExecutionError::BlockAlreadyOpen { .. })
        ));
    }

    #[test]
    fn a_hash_that_differs_from_ours_halts() {
        let genesis = genesis();
        let mut open = None;
        let start = SequencerEntry::BlockStart(start_on(&genesis, 1_000));
        apply_entry(&genesis, &mut open, &start).expect("start");
        let end = SequencerEntry::BlockEnd(BlockEnd {
            number: 1,
            hash: B256::repeat_byte(7),
        });
        assert!(matches!(
            apply_entry(&genesis, &mut open, &end),
            Err(ExecutionError::HashMismatch { .. })
        ));
    }
}
