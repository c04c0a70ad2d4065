//! A wallet's view, through a follower, with a real client (alloy provider over
//! HTTP and WebSocket, and a local signer): transfers, nonce bursts, refusals with
//! the words wallets match, and the same client carrying on after the leader is
//! killed.

use std::time::Duration;

use alloy_network::{EthereumWallet, TransactionBuilder};
use alloy_primitives::{Address, B256, U256};
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::{TransactionReceipt, TransactionRequest};
use alloy_signer_local::PrivateKeySigner;
use baton_primitives::{dev_accounts, genesis::DEV_CHAIN_ID};
use baton_testing::{RARE_SNAPSHOTS, TestCluster, mined, receipt_of, signed_raw};

const LONG: Duration = Duration::from_secs(30);

fn signer(index: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&dev_accounts(10)[index].private_key).expect("dev key")
}

fn transfer(to: Address, value: u64) -> TransactionRequest {
    TransactionRequest::default()
        .with_to(to)
        .with_value(U256::from(value))
        .with_gas_limit(21_000)
}

/// DESIGN invariant 3 (acknowledged means committed) and invariant 2 (a new leader
/// builds on everything committed): every acknowledged transfer is in exactly one
/// block, before and after the leader dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfers_through_a_follower_survive_a_leader_crash() {
    let mut cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let url = cluster.url(follower).parse().expect("url");
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer(0)))
        .connect_http(url);
    let to = Address::repeat_byte(0x55);

    // An EIP-1559 transfer, and a legacy one.
    let receipt = mined(&provider, transfer(to, 1)).await;
    assert!(receipt.status());
    let legacy = transfer(to, 2).with_gas_price(u128::from(2_000_000_000u64));
    let receipt = mined(&provider, legacy).await;
    assert!(receipt.status());
    // An EIP-2930 transfer (legacy fee, with an access list).
    let access_listed = transfer(to, 4)
        .with_gas_price(2_000_000_000)
        .with_access_list(alloy_eips::eip2930::AccessList::default())
        .with_gas_limit(21_000);
    let receipt = mined(&provider, access_listed).await;
    assert!(receipt.status());
    assert_eq!(receipt.inner.tx_type(), alloy_consensus::TxType::Eip2930);
    assert_eq!(
        provider.get_balance(to).await.expect("balance"),
        U256::from(7)
    );

    // A burst of sequential nonces, all acknowledged, all included in order.
    let mut hashes = Vec::new();
    for _ in 0..20 {
        hashes.push(
            *provider
                .send_transaction(transfer(to, 1))
                .await
                .expect("sent")
                .tx_hash(),
        );
    }

    // Kill the leader; the same client goes on against the same follower.
    cluster.kill(leader).await;
    for _ in 0..5 {
        hashes.push(
            *provider
                .send_transaction(transfer(to, 1))
                .await
                .expect("sent after failover")
                .tx_hash(),
        );
    }
    let mut last = (0, 0);
    for hash in &hashes {
        let receipt = receipt_of(&provider, hash).await;
        let here = (
            receipt.block_number.expect("block"),
            receipt.transaction_index.expect("index"),
        );
        assert!(here > last, "included in order: {here:?} after {last:?}");
        last = here;
    }
    assert_eq!(
        provider.get_balance(to).await.expect("balance"),
        U256::from(7 + 25)
    );
    assert_eq!(
        provider
            .get_transaction_count(signer(0).address())
            .await
            .expect("nonce"),
        28
    );

    // The block holding the last transfer: full transactions, its receipts, and
    // the transaction by position.
    let (number, index) = last;
    let block = provider
        .get_block_by_number(number.into())
        .full()
        .await
        .expect("block")
        .expect("exists");
    let txs = block
        .transactions
        .as_transactions()
        .expect("full transactions");
    let last_hash = *hashes.last().expect("hashes");
    assert_eq!(*txs[index as usize].inner.tx_hash(), last_hash);
    let receipts = provider
        .get_block_receipts(number.into())
        .await
        .expect("receipts")
        .expect("exists");
    assert_eq!(receipts.len(), txs.len());
    let genesis_receipts = provider
        .get_block_receipts(0.into())
        .await
        .expect("genesis receipts")
        .expect("genesis exists");
    assert!(
        genesis_receipts.is_empty(),
        "the genesis block has no receipts"
    );
    let by_index: Option<alloy_rpc_types_eth::Transaction> = provider
        .raw_request(
            "eth_getTransactionByBlockNumberAndIndex".into(),
            (format!("{number:#x}"), format!("{index:#x}")),
        )
        .await
        .expect("by index");
    assert_eq!(*by_index.expect("exists").inner.tx_hash(), last_hash);

    // EIP-7966: send and get the receipt in one call.
    let (hash, raw) = signed_raw(transfer(to, 1), 28, &EthereumWallet::from(signer(0))).await;
    let receipt: TransactionReceipt = provider
        .raw_request(
            "eth_sendRawTransactionSync".into(),
            (raw.clone(), 10_000u64),
        )
        .await
        .expect("sync send");
    assert!(receipt.status());
    assert_eq!(receipt.transaction_hash, hash);

    // A wallet retrying across the failover: resending a committed transaction
    // (here, one the killed leader committed) answers with its hash, not an error.
    let committed_before_the_kill = provider
        .get_raw_transaction_by_hash(hashes[19])
        .await
        .expect("raw by hash")
        .expect("exists");
    let resent = provider
        .send_raw_transaction(&committed_before_the_kill)
        .await
        .expect("a resend of a committed transaction is not refused");
    assert_eq!(*resent.tx_hash(), hashes[19]);
    let resent_sync = provider
        .send_raw_transaction(&raw)
        .await
        .expect("a resend of the block's last transaction is not refused");
    assert_eq!(*resent_sync.tx_hash(), hash);

    cluster.assert_identical_chains().await;
    cluster.stop().await;
}

/// DESIGN invariant 3: a transaction that can never execute is refused with a clear
/// JSON-RPC error, in the words wallets match, and never enters the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_transactions_are_refused_with_wallet_words() {
    let cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let url = cluster.url(follower);
    let with_key = |key: PrivateKeySigner| {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(key))
            .connect_http(url.parse().expect("url"))
    };
    let provider = with_key(signer(1));
    let to = Address::repeat_byte(0x66);

    let expect_refusal = |error: String, words: &str| {
        assert!(error.contains(words), "expected {words:?} in {error}");
    };

    // nonce too low: resend with an old nonce after one is sealed.
    mined(&provider, transfer(to, 1)).await;
    let err = provider
        .send_transaction(transfer(to, 1).with_nonce(0))
        .await
        .expect_err("nonce too low");
    expect_refusal(err.to_string(), "nonce too low");

    // insufficient funds: a fresh key with no balance.
    let broke = with_key(PrivateKeySigner::random());
    let err = broke
        .send_transaction(
            transfer(to, 1)
                .with_max_fee_per_gas(2_000_000_000)
                .with_max_priority_fee_per_gas(1),
        )
        .await
        .expect_err("no funds");
    expect_refusal(err.to_string(), "insufficient funds");

    // invalid chain id
    let err = provider
        .send_transaction(transfer(to, 1).with_chain_id(DEV_CHAIN_ID + 1))
        .await
        .expect_err("chain id");
    expect_refusal(err.to_string(), "invalid chain id");

    // intrinsic gas too low
    let err = provider
        .send_transaction(transfer(to, 1).with_gas_limit(20_000))
        .await
        .expect_err("intrinsic gas");
    expect_refusal(err.to_string(), "intrinsic gas too low");

    // max fee below the base fee
    let err = provider
        .send_transaction(
            transfer(to, 1)
                .with_max_fee_per_gas(1)
                .with_max_priority_fee_per_gas(1),
        )
        .await
        .expect_err("fee cap");
    expect_refusal(err.to_string(), "max fee per gas less than block base fee");

    // oversized data
    let big = transfer(to, 1)
        .with_input(vec![1u8; 200 * 1024])
        .with_gas_limit(29_000_000);
    let err = provider.send_transaction(big).await.expect_err("oversized");
    expect_refusal(err.to_string(), "oversized data");

    // garbage bytes
    let err = provider
        .send_raw_transaction(b"not a transaction")
        .await
        .expect_err("garbage");
    expect_refusal(err.to_string(), "invalid transaction");

    // None of the refused transactions entered the log: only the one transfer did.
    assert_eq!(
        provider
            .get_transaction_count(signer(1).address())
            .await
            .expect("nonce"),
        1
    );
    cluster.stop().await;
}

/// A transaction whose nonce is ahead waits for the gap to fill, then both are
/// acknowledged and included in nonce order; a gap that never fills is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nonce_gap_waits_for_the_missing_transaction() {
    let cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let provider = ProviderBuilder::new().connect_http(cluster.url(follower).parse().expect("url"));
    let wallet = EthereumWallet::from(signer(3));
    let to = Address::repeat_byte(0x77);
    let signed = |nonce: u64| {
        let wallet = wallet.clone();
        async move { signed_raw(transfer(to, 1), nonce, &wallet).await.1 }
    };
    let (first, second) = (signed(0).await, signed(1).await);
    let ahead_copy = second.clone();

    // Nonce 1 first: it waits; nonce 0 then fills the gap.
    let ahead = {
        let provider = provider.clone();
        tokio::spawn(async move {
            provider
                .send_raw_transaction(&ahead_copy)
                .await
                .map(|p| *p.tx_hash())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The same transaction again while it waits: refused as a duplicate.
    let err = provider
        .send_raw_transaction(&second)
        .await
        .expect_err("duplicate");
    assert!(err.to_string().contains("already known"), "{err}");
    let filled = *provider
        .send_raw_transaction(&first)
        .await
        .expect("nonce 0")
        .tx_hash();
    let waited = ahead
        .await
        .expect("task")
        .expect("nonce 1 acknowledged once the gap filled");
    let mut places = Vec::new();
    for hash in [filled, waited] {
        let receipt = receipt_of(&provider, hash).await;
        places.push((receipt.block_number, receipt.transaction_index));
    }
    assert!(places[0] < places[1], "included in nonce order: {places:?}");

    // A gap nobody fills is refused, clearly, after a short wait.
    let lonely = signed(5).await;
    let err = provider
        .send_raw_transaction(&lonely)
        .await
        .expect_err("gap never fills");
    assert!(err.to_string().contains("nonce too high"), "{err}");
    cluster.stop().await;
}

/// Read-your-writes through a follower (DESIGN invariant 1 on the node answering):
/// once a follower returns a transaction's hash, that follower already shows it and
/// counts it in the sender's pending nonce, so a client that asks for the pending
/// nonce before every send never gets "nonce too low". `eth_sendRawTransactionSync`
/// answers with the preconfirmed receipt before the block is sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_shows_its_own_writes_at_once() {
    let cluster = TestCluster::start(3, 1_000, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let provider = ProviderBuilder::new().connect_http(cluster.url(follower).parse().expect("url"));
    let wallet = EthereumWallet::from(signer(3));
    let from = signer(3).address();
    let to = Address::repeat_byte(0x66);
    let pending_filter: U256 = provider
        .raw_request("eth_newPendingTransactionFilter".into(), ())
        .await
        .expect("pending transaction filter");
    let mut sent_hashes = Vec::new();

    for _ in 0..10 {
        let nonce = provider
            .get_transaction_count(from)
            .pending()
            .await
            .expect("pending nonce");
        let (sent_hash, raw) = signed_raw(transfer(to, 1), nonce, &wallet).await;
        let sent = provider
            .send_raw_transaction(&raw)
            .await
            .expect("sent with the pending nonce");
        assert_eq!(*sent.tx_hash(), sent_hash);
        let seen = provider
            .get_transaction_by_hash(sent_hash)
            .await
            .expect("by hash")
            .expect("the follower shows its own write");
        assert_eq!(seen.inner.signer(), from);
        let after = provider
            .get_transaction_count(from)
            .pending()
            .await
            .expect("pending nonce");
        assert_eq!(after, nonce + 1, "the pending nonce counts the write");
        sent_hashes.push(sent_hash);
    }
    let sent = sent_hashes;
    // The pending-transaction filter reported each of them once, as it was applied.
    let mut reported: Vec<B256> = Vec::new();
    let deadline = std::time::Instant::now() + LONG;
    while reported.len() < sent.len() {
        let changes: Vec<B256> = provider
            .raw_request("eth_getFilterChanges".into(), (pending_filter,))
            .await
            .expect("filter changes");
        reported.extend(changes);
        assert!(
            std::time::Instant::now() < deadline,
            "reported {reported:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reported, sent, "each once, in order");
    // Once sealed, each is at its block and index, raw as it was sent.
    let first = receipt_of(&provider, sent[0]).await;
    let raw_by_hash = provider
        .get_raw_transaction_by_hash(sent[0])
        .await
        .expect("raw by hash")
        .expect("exists");
    let raw_at: alloy_primitives::Bytes = provider
        .raw_request(
            "eth_getRawTransactionByBlockHashAndIndex".into(),
            (
                first.block_hash.expect("sealed"),
                U256::from(first.transaction_index.expect("index")),
            ),
        )
        .await
        .expect("raw by block hash and index");
    assert_eq!(raw_at, raw_by_hash);
    let blob_base_fee: U256 = provider
        .raw_request("eth_blobBaseFee".into(), ())
        .await
        .expect("blob base fee");
    assert_eq!(blob_base_fee, U256::from(1));
    let _: Address = provider
        .raw_request("eth_coinbase".into(), ())
        .await
        .expect("coinbase");

    // The synchronous send answers with the receipt as soon as the batch is
    // applied here: with 1 s blocks, before the block is sealed (zero block hash).
    let nonce = provider
        .get_transaction_count(from)
        .pending()
        .await
        .expect("pending nonce");
    let (hash, raw) = signed_raw(transfer(to, 1), nonce, &wallet).await;
    let receipt: TransactionReceipt = provider
        .raw_request("eth_sendRawTransactionSync".into(), (raw, 10_000u64))
        .await
        .expect("sync send");
    assert!(receipt.status());
    assert_eq!(receipt.transaction_hash, hash);
    let number = receipt
        .block_number
        .expect("preconfirmed at a block number");
    // Whether or not the block was sealed by the time the answer was read, the
    // sealed receipt agrees with the preconfirmed one.
    let sealed = receipt_of(&provider, hash).await;
    assert_eq!(sealed.block_number, Some(number));
    assert_eq!(sealed.transaction_index, receipt.transaction_index);
    assert_eq!(sealed.gas_used, receipt.gas_used);
    cluster.stop().await;
}

/// alloy over WebSocket, through a follower, across the leader's crash: transfers
/// sent on the socket are each acknowledged and in exactly one block (DESIGN
/// invariant 3), and the `newHeads` subscription on the same socket carries on
/// through the failover with every height once, each block on the one before
/// (invariant 2: the new leader builds on everything committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alloy_over_websocket_carries_on_across_a_leader_crash() {
    use futures::StreamExt;

    let mut cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let ws = cluster.url(follower).replacen("http://", "ws://", 1);
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer(8)))
        .connect_ws(alloy_provider::WsConnect::new(ws))
        .await
        .expect("WebSocket");
    let mut heads = provider
        .subscribe_blocks()
        .await
        .expect("newHeads")
        .into_stream();
    let to = Address::repeat_byte(0x5e);

    let mut receipts = Vec::new();
    for round in 0..6u64 {
        if round == 3 {
            cluster.kill(leader).await;
        }
        receipts.push(mined(&provider, transfer(to, round + 1)).await);
    }
    assert!(receipts.iter().all(TransactionReceipt::status));
    assert_eq!(
        provider.get_balance(to).await.expect("balance"),
        U256::from(21)
    );
    for receipt in &receipts {
        let number = receipt.block_number.expect("sealed");
        let block = provider
            .get_block_by_number(number.into())
            .await
            .expect("block")
            .expect("sealed block");
        let hashes: Vec<B256> = block.transactions.hashes().collect();
        let found = hashes
            .iter()
            .filter(|hash| **hash == receipt.transaction_hash)
            .count();
        assert_eq!(found, 1, "invariant 3: in its block exactly once");
    }

    let last = receipts
        .last()
        .and_then(|r| r.block_number)
        .expect("sealed");
    let mut seen: Vec<(u64, B256, B256)> = Vec::new();
    while seen.last().is_none_or(|(number, ..)| *number < last) {
        let header = tokio::time::timeout(LONG, heads.next())
            .await
            .expect("heads keep coming")
            .expect("subscription open");
        seen.push((header.number, header.hash, header.parent_hash));
    }
    for pair in seen.windows(2) {
        let ((number, hash, _), (next, _, parent)) = (pair[0], pair[1]);
        assert_eq!(next, number + 1, "invariant 2: every height once: {seen:?}");
        assert_eq!(parent, hash, "invariant 2: each block on the one before");
    }
    cluster.stop().await;
}
