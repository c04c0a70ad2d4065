//! Opening, filling and sealing blocks.

use alloy_consensus::{
    EMPTY_OMMER_ROOT_HASH, Header, ReceiptEnvelope, TxReceipt, constants::EMPTY_WITHDRAWALS,
    proofs::calculate_receipt_root,
};
use alloy_eips::{eip1559::BaseFeeParams, eip7685::EMPTY_REQUESTS_HASH};
use alloy_primitives::{Address, B256, Bloom, Bytes, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, root::ordered_trie_root_with_encoder};
use baton_primitives::{BlockStart, SealedBlock, SequencerEntry};
use baton_storage::Store;

use crate::{BlockBuilder, ExecutionError, SealOutcome, TxError};

/// What applying one entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockStep {
    Opened,
    /// A batch was executed; `skipped` lists transactions that could not execute
    /// (every node skips the same ones: admission makes this not happen).
    Extended {
        skipped: Vec<(B256, String)>,
    },
    Sealed(Box<SealOutcome>),
}

/// EIP-1559 base fee of the block after `parent` (Ethereum's parameters), worked
/// out in 128 bits: a base fee near `u64::MAX` (a genesis or a simulation may set
/// one) stays there instead of overflowing, and a gas limit under 2 keeps the fee.
pub fn next_base_fee(parent: &Header) -> u64 {
    let params = BaseFeeParams::ethereum();
    let base_fee = u128::from(parent.base_fee_per_gas.unwrap_or_default());
    let target = u128::from(parent.gas_limit) / params.elasticity_multiplier;
    let used = u128::from(parent.gas_used);
    if target == 0 || used == target {
        return base_fee as u64;
    }
    let denominator = target * params.max_change_denominator;
    let next = if used > target {
        base_fee + (base_fee * (used - target) / denominator).max(1)
    } else {
        base_fee - base_fee * (target - used) / denominator
    };
    u64::try_from(next).unwrap_or(u64::MAX)
}

/// The start of the block right after `head` (what [`check_start`] accepts): its
/// number, parent and base fee follow from `head`; the rest is the opener's choice.
pub fn start_on(
    head: &SealedBlock,
    timestamp_ms: u64,
    gas_limit: u64,
    coinbase: Address,
) -> BlockStart {
    BlockStart {
        number: head.number() + 1,
        timestamp_ms,
        parent_hash: head.hash,
        base_fee: next_base_fee(&head.header),
        gas_limit,
        coinbase,
    }
}

/// Checks that `start` opens the block right after `head`.
pub fn check_start(head: &SealedBlock, start: &BlockStart) -> Result<(), ExecutionError> {
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
    Ok(())
}

/// Applies one committed entry to the chain whose newest block is `head`, with the
/// head state in `store`.
///
/// Pre: `open`, if any, was opened on top of `head`.
/// Post: on `Sealed`, the caller writes the outcome, makes its block the new head,
/// and `open` is `None`.
pub fn apply_entry(
    store: &Store,
    chain_id: u64,
    head: &SealedBlock,
    open: &mut Option<BlockBuilder>,
    entry: &SequencerEntry,
) -> Result<BlockStep, ExecutionError> {
    match entry {
        SequencerEntry::BlockStart(start) => {
            if let Some(current) = open {
                return Err(ExecutionError::BlockAlreadyOpen {
                    open: current.start().number,
                    got: start.number,
                });
            }
            check_start(head, start)?;
            *open = Some(BlockBuilder::new(store.clone(), chain_id, start.clone()));
            Ok(BlockStep::Opened)
        }
        SequencerEntry::Transactions(batch) => {
            let builder = open.as_mut().ok_or(ExecutionError::NoOpenBlock {
                entry: "Transactions",
            })?;
            debug_assert_eq!(
                builder.start().number,
                head.number() + 1,
                "a batch only for the open block, on top of the head"
            );
            let mut skipped = Vec::new();
            for (raw, sender) in &batch.txs {
                match builder.execute(raw, *sender) {
                    Ok(_) => {}
                    Err(TxError::State(e)) => return Err(ExecutionError::State(e.to_string())),
                    Err(e) => skipped.push((keccak256(raw), e.to_string())),
                }
            }
            Ok(BlockStep::Extended { skipped })
        }
        SequencerEntry::BlockEnd(end) => {
            let builder = open
                .as_ref()
                .ok_or(ExecutionError::NoOpenBlock { entry: "BlockEnd" })?;
            if builder.start().number != end.number {
                return Err(ExecutionError::WrongBlockEnd {
                    open: builder.start().number,
                    got: end.number,
                });
            }
            let outcome = builder
                .seal(&head.header)
                .map_err(|e| ExecutionError::State(e.to_string()))?;
            if outcome.block.hash != end.hash {
                return Err(ExecutionError::HashMismatch {
                    number: end.number,
                    leader: end.hash,
                    ours: outcome.block.hash,
                });
            }
            debug_assert_eq!(
                outcome.block.hash,
                outcome.block.header.hash_slow(),
                "invariant 4: the sealed hash is the hash of the executed header"
            );
            *open = None;
            Ok(BlockStep::Sealed(Box::new(outcome)))
        }
    }
}

/// The header of the block opened by `start` on top of `parent`: what every node
/// derives identically from the same transactions, receipts and state.
pub fn seal_header(
    start: &BlockStart,
    parent: &Header,
    txs: &[(Bytes, Address)],
    state_root: B256,
    receipts: &[ReceiptEnvelope],
    gas_used: u64,
) -> Header {
    let receipts_root = if receipts.is_empty() {
        EMPTY_ROOT_HASH
    } else {
        calculate_receipt_root(receipts)
    };
    let mut logs_bloom = Bloom::ZERO;
    for receipt in receipts {
        logs_bloom.accrue_bloom(&receipt.bloom());
    }
    let transactions_root = if txs.is_empty() {
        EMPTY_ROOT_HASH
    } else {
        // The transaction trie's leaves are the EIP-2718 encodings, which is
        // exactly what the log carries.
        ordered_trie_root_with_encoder(txs, |(raw, _), out| out.extend_from_slice(raw))
    };
    debug_assert_eq!(
        start.parent_hash,
        parent.hash_slow(),
        "sealed on its own parent"
    );
    Header {
        parent_hash: start.parent_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: start.coinbase,
        state_root,
        transactions_root,
        receipts_root,
        logs_bloom,
        difficulty: Default::default(),
        number: start.number,
        gas_limit: start.gas_limit,
        gas_used,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_network::TxSignerSync;
    use alloy_primitives::{TxKind, U256};
    use alloy_signer_local::PrivateKeySigner;
    use baton_primitives::{BlockEnd, ChainSpec, TxBatch, dev_accounts, genesis::DEV_BALANCE};

    /// A store holding the dev genesis, and the head block.
    fn chain() -> (tempfile::TempDir, Store, SealedBlock, ChainSpec) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let spec = ChainSpec::dev_with_accounts(2);
        crate::write_genesis(&store, &spec).expect("genesis");
        let genesis = store.block(0).expect("read").expect("genesis");
        (dir, store, genesis, spec)
    }

    fn start_after(head: &SealedBlock, timestamp_ms: u64) -> BlockStart {
        start_on(head, timestamp_ms, head.header.gas_limit, Address::ZERO)
    }

    fn signer(index: usize) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&dev_accounts(2)[index].private_key).expect("key")
    }

    fn transfer(
        from: usize,
        nonce: u64,
        to: Address,
        value: u64,
        chain_id: u64,
    ) -> (Bytes, Address) {
        let signer = signer(from);
        let mut tx = TxEip1559 {
            chain_id,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(to),
            value: U256::from(value),
            ..Default::default()
        };
        let signature = signer.sign_transaction_sync(&mut tx).expect("sign");
        let envelope = TxEnvelope::from(tx.into_signed(signature));
        (envelope.encoded_2718().into(), signer.address())
    }

    /// Applies a whole block (start, one batch, end) as every node would, writes it,
    /// and returns it with the batch's skipped transactions.
    fn block(
        store: &Store,
        spec: &ChainSpec,
        head: &SealedBlock,
        timestamp_ms: u64,
        txs: Vec<(Bytes, Address)>,
    ) -> (SealOutcome, Vec<(B256, String)>) {
        let mut open = None;
        let apply = |open: &mut Option<BlockBuilder>, entry| {
            apply_entry(store, spec.chain_id, head, open, &entry)
        };
        apply(
            &mut open,
            SequencerEntry::BlockStart(start_after(head, timestamp_ms)),
        )
        .expect("start");
        let skipped =
            match apply(&mut open, SequencerEntry::Transactions(TxBatch { txs })).expect("batch") {
                BlockStep::Extended { skipped } => skipped,
                other => panic!("expected Extended, got {other:?}"),
            };
        let leader = open
            .as_ref()
            .expect("open")
            .seal(&head.header)
            .expect("seal");
        let end = SequencerEntry::BlockEnd(BlockEnd {
            number: leader.block.number(),
            hash: leader.block.hash,
        });
        let BlockStep::Sealed(outcome) = apply(&mut open, end).expect("end") else {
            panic!("expected a sealed block");
        };
        let mut write = store.chain_write();
        crate::write_sealed(&mut write, &outcome).expect("write");
        write.commit().expect("commit");
        (*outcome, skipped)
    }

    /// Alloy's EIP-1559 arithmetic wherever that does not overflow; where it
    /// would (a base fee near `u64::MAX`), the fee stays at the top.
    #[test]
    fn the_next_base_fee_is_eip_1559_and_saturates() {
        let header = |base_fee: u64, gas_used: u64, gas_limit: u64| Header {
            base_fee_per_gas: Some(base_fee),
            gas_used,
            gas_limit,
            ..Default::default()
        };
        for base_fee in [0, 7, 1_000_000_000, u64::MAX / 3] {
            for gas_limit in [2, 21_000, 30_000_000] {
                for gas_used in [0, gas_limit / 4, gas_limit / 2, gas_limit] {
                    let expected = alloy_eips::eip1559::calc_next_block_base_fee(
                        gas_used,
                        gas_limit,
                        base_fee,
                        BaseFeeParams::ethereum(),
                    );
                    let next = next_base_fee(&header(base_fee, gas_used, gas_limit));
                    assert_eq!(next, expected, "{base_fee} {gas_used}/{gas_limit}");
                }
            }
        }
        assert_eq!(
            next_base_fee(&header(u64::MAX, 30_000_000, 30_000_000)),
            u64::MAX
        );
        assert_eq!(
            next_base_fee(&header(9, 1, 1)),
            9,
            "no target: the fee stays"
        );
    }

    /// A block whose gas limit is `u64::MAX` (a genesis may say so): a
    /// transaction asking for all of it once some is used is refused as not
    /// fitting, where the sum used to overflow in the leader's sequencer.
    #[test]
    fn a_transaction_that_cannot_fit_a_huge_block_is_refused_not_overflowed() {
        let (_dir, store, genesis, spec) = chain();
        let mut start = start_after(&genesis, 1_000);
        start.gas_limit = u64::MAX;
        let mut builder = BlockBuilder::new(store, spec.chain_id, start);
        let (first, sender) = transfer(0, 0, Address::repeat_byte(0x77), 1, spec.chain_id);
        builder.execute(&first, sender).expect("a transfer");
        let mut tx = TxEip1559 {
            chain_id: spec.chain_id,
            nonce: 1,
            gas_limit: u64::MAX,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::repeat_byte(0x77)),
            ..Default::default()
        };
        let signature = signer(0).sign_transaction_sync(&mut tx).expect("sign");
        let raw: Bytes = TxEnvelope::from(tx.into_signed(signature))
            .encoded_2718()
            .into();
        let refused = builder.execute(&raw, sender).map(|_| ()).expect_err("full");
        assert!(matches!(refused, TxError::BlockFull), "{refused:?}");
    }

    #[test]
    fn empty_blocks_link_to_their_parent_and_lower_the_base_fee() {
        let (_dir, store, genesis, spec) = chain();
        let (one, _) = block(&store, &spec, &genesis, 1_000, vec![]);
        let (two, _) = block(&store, &spec, &one.block, 2_000, vec![]);
        assert_eq!(one.block.header.parent_hash, genesis.hash);
        assert_eq!(two.block.header.parent_hash, one.block.hash);
        assert_eq!(two.block.hash, two.block.header.hash_slow());
        assert_eq!(two.block.header.timestamp, 2);
        assert_eq!(one.block.header.state_root, genesis.header.state_root);
        let base = |b: &SealedBlock| b.header.base_fee_per_gas.expect("london");
        assert!(base(&one.block) < base(&genesis));
    }

    #[test]
    fn a_transfer_moves_value_pays_gas_and_changes_the_state_root() {
        let (_dir, store, genesis, spec) = chain();
        let to = Address::repeat_byte(0x77);
        let (one, skipped) = block(
            &store,
            &spec,
            &genesis,
            1_000,
            vec![transfer(0, 0, to, 5, spec.chain_id)],
        );
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(one.block.header.gas_used, 21_000);
        assert_ne!(one.block.header.state_root, genesis.header.state_root);
        assert_ne!(one.block.header.receipts_root, EMPTY_ROOT_HASH);
        assert_eq!(one.receipts.len(), 1);
        assert!(one.receipts[0].receipt.status());

        let sender = signer(0).address();
        assert_eq!(
            store.account(to).expect("read").expect("created").balance,
            U256::from(5)
        );
        let paid = store.account(sender).expect("read").expect("sender");
        assert_eq!(paid.nonce, 1);
        let gas = U256::from(21_000u64) * U256::from(one.receipts[0].effective_gas_price);
        assert_eq!(paid.balance, DEV_BALANCE - U256::from(5) - gas);
        assert_eq!(
            store.tx_location(one.receipts[0].hash).expect("index"),
            Some((1, 0))
        );
    }

    /// EIP-161: an account touched and left empty is not kept (every Ethereum
    /// client computes the root without it).
    #[test]
    fn a_zero_value_transfer_to_a_fresh_address_creates_no_account() {
        let (_dir, store, genesis, spec) = chain();
        let to = Address::repeat_byte(0x55);
        let (_, skipped) = block(
            &store,
            &spec,
            &genesis,
            1_000,
            vec![transfer(0, 0, to, 0, spec.chain_id)],
        );
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(store.account(to).expect("read"), None);
    }

    #[test]
    fn a_deployed_contract_runs_and_logs() {
        let (_dir, store, genesis, spec) = chain();
        let code: Bytes = include_str!("../../node/tests/contracts/Counter.bin")
            .trim()
            .parse()
            .expect("hex");
        let signer = signer(0);
        let mut create = TxEip1559 {
            chain_id: spec.chain_id,
            nonce: 0,
            gas_limit: 1_000_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Create,
            input: code,
            ..Default::default()
        };
        let signature = signer.sign_transaction_sync(&mut create).expect("sign");
        let raw: Bytes = TxEnvelope::from(create.into_signed(signature))
            .encoded_2718()
            .into();
        let (one, skipped) = block(
            &store,
            &spec,
            &genesis,
            1_000,
            vec![(raw, signer.address())],
        );
        assert!(skipped.is_empty(), "{skipped:?}");
        let counter = one.receipts[0].contract_address.expect("created");
        let account = store.account(counter).expect("read").expect("exists");
        let runtime = store.code(account.code_hash).expect("read").expect("code");
        assert_eq!(keccak256(&runtime), account.code_hash);
        let mut input = vec![0x7c, 0xf5, 0xda, 0xb0];
        input.extend_from_slice(&U256::from(5).to_be_bytes::<32>());
        let mut call = TxEip1559 {
            chain_id: spec.chain_id,
            nonce: 1,
            gas_limit: 200_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(counter),
            input: input.into(),
            ..Default::default()
        };
        let signature = signer.sign_transaction_sync(&mut call).expect("sign");
        let raw: Bytes = TxEnvelope::from(call.into_signed(signature))
            .encoded_2718()
            .into();
        let (two, _) = block(
            &store,
            &spec,
            &one.block,
            2_000,
            vec![(raw, signer.address())],
        );
        assert!(two.receipts[0].receipt.status());
        assert_eq!(
            two.receipts[0].receipt.logs().len(),
            1,
            "gas used {}",
            two.receipts[0].gas_used
        );
        assert_eq!(
            store.storage_slot(counter, U256::ZERO).expect("slot"),
            U256::from(5)
        );
    }

    #[test]
    fn sealing_is_deterministic_across_replays() {
        let (_dir_a, store_a, genesis, spec) = chain();
        let (_dir_b, store_b, _, _) = chain();
        let txs = vec![transfer(0, 0, Address::repeat_byte(1), 1, spec.chain_id)];
        let (a, _) = block(&store_a, &spec, &genesis, 5_500, txs.clone());
        let (b, _) = block(&store_b, &spec, &genesis, 5_500, txs.clone());
        assert_eq!(a, b);

        let open = baton_primitives::OpenBlock {
            start: start_after(&genesis, 5_500),
            txs,
        };
        let (_dir_c, store_c, _, _) = chain();
        let replayed = BlockBuilder::replay(store_c, spec.chain_id, &open).expect("replay");
        assert_eq!(
            replayed.seal(&genesis.header).expect("seal").block.hash,
            a.block.hash
        );
    }

    #[test]
    fn invalid_transactions_are_refused_with_wallet_words() {
        let (_dir, store, genesis, spec) = chain();
        let mut builder = BlockBuilder::new(store, spec.chain_id, start_after(&genesis, 1_000));
        let to = Address::repeat_byte(2);
        let wrong_chain = transfer(0, 0, to, 1, spec.chain_id + 1);
        let err = builder
            .execute(&wrong_chain.0, wrong_chain.1)
            .expect_err("chain id");
        assert!(err.to_string().contains("invalid chain id"), "{err}");

        let ok = transfer(0, 0, to, 1, spec.chain_id);
        builder.execute(&ok.0, ok.1).expect("valid");
        let err = builder.execute(&ok.0, ok.1).expect_err("replay");
        assert!(err.to_string().contains("nonce too low"), "{err}");

        let rich = transfer(1, 0, to, u64::MAX, spec.chain_id);
        let poor_sender = Address::repeat_byte(9);
        let err = builder.execute(&rich.0, poor_sender).expect_err("funds");
        assert!(err.to_string().contains("insufficient funds"), "{err}");

        let mut legacy = TxLegacy {
            chain_id: Some(spec.chain_id),
            nonce: 0,
            gas_price: 1,
            gas_limit: 21_000,
            to: TxKind::Call(to),
            value: U256::from(1),
            ..Default::default()
        };
        let signature = signer(1).sign_transaction_sync(&mut legacy).expect("sign");
        let raw: Bytes = TxEnvelope::from(legacy.into_signed(signature))
            .encoded_2718()
            .into();
        let err = builder.execute(&raw, signer(1).address()).expect_err("fee");
        assert!(
            err.to_string()
                .contains("max fee per gas less than block base fee"),
            "{err}"
        );

        let err = builder
            .execute(&Bytes::from_static(b"garbage"), to)
            .expect_err("garbage");
        assert!(matches!(err, TxError::Malformed(_)), "{err}");
        assert_eq!(
            builder.txs().len(),
            1,
            "only the valid transaction joined the block"
        );
    }

    #[test]
    fn out_of_order_entries_are_refused() {
        let (_dir, store, genesis, spec) = chain();
        let mut open = None;
        let mut apply = |entry| apply_entry(&store, spec.chain_id, &genesis, &mut open, &entry);
        let end = SequencerEntry::BlockEnd(BlockEnd {
            number: 1,
            hash: B256::ZERO,
        });
        assert!(matches!(
            apply(end),
            Err(ExecutionError::NoOpenBlock { .. })
        ));
        assert!(apply(SequencerEntry::Transactions(TxBatch::default())).is_err());

        let mut skip = start_after(&genesis, 1_000);
        skip.number = 2;
        assert!(matches!(
            apply(SequencerEntry::BlockStart(skip)),
            Err(ExecutionError::WrongNumber { .. })
        ));

        let start = SequencerEntry::BlockStart(start_after(&genesis, 1_000));
        apply(start.clone()).expect("start");
        assert!(matches!(
            apply(start),
            Err(ExecutionError::BlockAlreadyOpen { .. })
        ));

        let end = SequencerEntry::BlockEnd(BlockEnd {
            number: 1,
            hash: B256::repeat_byte(7),
        });
        assert!(matches!(
            apply(end),
            Err(ExecutionError::HashMismatch { .. })
        ));
    }
}
