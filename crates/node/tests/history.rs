//! State at older blocks through a follower, with a real client (DESIGN §6): every
//! state method answers at any kept block by number, hash or tag; eth_getProof's
//! proofs verify against that block's state root; pruned and unknown blocks get
//! clear errors.

use std::time::Duration;

use alloy_eips::BlockId;
use alloy_network::{EthereumWallet, TransactionBuilder};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, TransactionRequest};
use alloy_signer_local::PrivateKeySigner;
use alloy_trie::{Nibbles, TrieAccount, proof::verify_proof};
use baton_primitives::dev_accounts;
use baton_testing::{RARE_SNAPSHOTS, TestCluster, mined};

const LONG: Duration = Duration::from_secs(30);
const COUNTER_BIN: &str = include_str!("contracts/Counter.bin");

fn call_data(signature: &str, argument: Option<u64>) -> Bytes {
    let mut data = keccak256(signature)[..4].to_vec();
    if let Some(argument) = argument {
        data.extend_from_slice(&U256::from(argument).to_be_bytes::<32>());
    }
    data.into()
}

/// Checks `proof` against `root`: the account (or its absence) and each slot.
fn verify(proof: &EIP1186AccountProofResponse, root: B256) {
    let account = TrieAccount {
        nonce: proof.nonce,
        balance: proof.balance,
        storage_root: proof.storage_hash,
        code_hash: proof.code_hash,
    };
    // An absent account is reported empty; the trie must not hold it.
    let exists = !proof.is_empty();
    verify_proof(
        root,
        Nibbles::unpack(keccak256(proof.address)),
        exists.then(|| alloy_rlp::encode(account)),
        &proof.account_proof,
    )
    .expect("account proof verifies");
    for slot in &proof.storage_proof {
        verify_proof(
            proof.storage_hash,
            Nibbles::unpack(keccak256(slot.key.as_b256())),
            (!slot.value.is_zero()).then(|| alloy_rlp::encode(slot.value)),
            &slot.proof,
        )
        .expect("storage proof verifies");
    }
}

/// DESIGN §6 (state history): a contract's storage, code, an account's balance and
/// nonce, and eth_call read at the block before a write and at the write's block,
/// by number and by hash, through a follower; proofs at both blocks, of a present
/// and an absent account and slot, verify against each block's state root.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_and_proofs_answer_at_older_blocks_through_a_follower() {
    let cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let key = PrivateKeySigner::from_bytes(&dev_accounts(3)[1].private_key).expect("key");
    let me = key.address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key))
        .connect_http(cluster.url(follower).parse().expect("url"));

    let code: Bytes = COUNTER_BIN.trim().parse().expect("hex bytecode");
    let deployed = mined(
        &provider,
        TransactionRequest::default().with_deploy_code(code),
    )
    .await;
    let counter = deployed.contract_address.expect("contract");
    let created = deployed.block_number.expect("block");
    let call = TransactionRequest::default()
        .with_to(counter)
        .with_input(call_data("increment(uint256)", Some(5)));
    let written = mined(&provider, call).await.block_number.expect("block");
    assert!(written > created);
    let before = BlockId::number(written - 1);
    let after = BlockId::number(written);

    // Storage, code, balance and nonce at both blocks.
    let slot = U256::ZERO;
    let at = |block| provider.get_storage_at(counter, slot).block_id(block);
    assert_eq!(at(before).await.expect("slot"), U256::ZERO);
    assert_eq!(at(after).await.expect("slot"), U256::from(5));
    let block_before = provider
        .get_block_by_number((written - 1).into())
        .await
        .expect("block")
        .expect("exists");
    let by_hash = provider
        .get_storage_at(counter, slot)
        .block_id(BlockId::hash(block_before.header.hash))
        .await
        .expect("slot by hash");
    assert_eq!(by_hash, U256::ZERO);
    let code_then = provider
        .get_code_at(counter)
        .block_id(BlockId::number(created - 1))
        .await
        .expect("code");
    assert!(code_then.is_empty(), "no code before the deploying block");
    assert!(
        !provider
            .get_code_at(counter)
            .block_id(before)
            .await
            .expect("code")
            .is_empty()
    );
    let nonce = |block| provider.get_transaction_count(me).block_id(block);
    assert_eq!(
        nonce(before).await.expect("nonce") + 1,
        nonce(after).await.expect("nonce")
    );
    let balance = |block| provider.get_balance(me).block_id(block);
    assert!(balance(after).await.expect("balance") < balance(before).await.expect("balance"));

    // eth_call reads the same state.
    let count = TransactionRequest::default()
        .with_to(counter)
        .with_input(call_data("count()", None));
    let then = provider
        .call(count.clone())
        .block(before)
        .await
        .expect("call");
    let now = provider.call(count).block(after).await.expect("call");
    assert_eq!(U256::from_be_slice(&then), U256::ZERO);
    assert_eq!(U256::from_be_slice(&now), U256::from(5));

    // Proofs at both blocks verify against their own state roots.
    let absent_slot = B256::with_last_byte(99);
    for number in [written - 1, written, created - 1] {
        let root = provider
            .get_block_by_number(number.into())
            .await
            .expect("block")
            .expect("exists")
            .header
            .state_root;
        for address in [counter, me, Address::repeat_byte(0x5a)] {
            let proof = provider
                .get_proof(address, vec![B256::ZERO, absent_slot])
                .block_id(BlockId::number(number))
                .await
                .expect("proof");
            verify(&proof, root);
            if address == counter && number == written {
                assert_eq!(proof.storage_proof[0].value, U256::from(5));
            }
        }
    }

    // Beyond the head, and an unknown hash: geth's "header not found".
    let head = provider.get_block_number().await.expect("head");
    let err = provider
        .get_balance(me)
        .block_id(BlockId::number(head + 1_000))
        .await
        .expect_err("future block");
    assert!(err.to_string().contains("header not found"), "{err}");
    let err = provider
        .get_balance(me)
        .block_id(BlockId::hash(B256::repeat_byte(7)))
        .await
        .expect_err("unknown hash");
    assert!(err.to_string().contains("header not found"), "{err}");
    cluster.stop().await;
}

/// DESIGN §6 (retention): with `--state-history-blocks 2`, state older than two
/// blocks behind the head is refused with an error naming the oldest kept block,
/// while recent state still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pruned_state_is_refused_naming_the_oldest_kept_block() {
    let cluster = TestCluster::start_with(3, 200, RARE_SNAPSHOTS, |_, config| {
        config.data.state_history_blocks = Some(2);
    })
    .await;
    let leader = cluster.wait_for_leader(LONG).await;
    cluster.wait_for_height(8, LONG).await;
    let provider = ProviderBuilder::new().connect_http(
        cluster
            .url(cluster.follower_of(leader))
            .parse()
            .expect("url"),
    );
    let me = dev_accounts(1)[0].address;
    let head = provider.get_block_number().await.expect("head");
    provider
        .get_balance(me)
        .block_id(BlockId::number(head - 1))
        .await
        .expect("recent state is kept");
    let err = provider
        .get_balance(me)
        .block_id(BlockId::number(1))
        .await
        .expect_err("pruned");
    let message = err.to_string();
    assert!(message.contains("pruned"), "{message}");
    assert!(message.contains("keeps state from block"), "{message}");
    cluster.stop().await;
}
