//! Preconfirmations (DESIGN §7, invariants 1 and 3): a client subscribed on one
//! follower sees every transaction sent through another, in frames of the open
//! block, before the block is sealed; what a frame says (block number, position,
//! status, gas) is what the sealed chain says; the `pending` block shows it too.

use std::{collections::HashMap, time::Duration};

use alloy_network::{EthereumWallet, TransactionBuilder};
use alloy_primitives::{Address, B256, U256};
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::{BlockNumberOrTag, TransactionRequest};
use alloy_signer_local::PrivateKeySigner;
use baton_primitives::dev_accounts;
use baton_testing::{RARE_SNAPSHOTS, TestCluster, signed_raw};
use jsonrpsee::{
    core::client::{Subscription, SubscriptionClientT},
    rpc_params,
    ws_client::WsClientBuilder,
};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(30);

/// What the stream said about one transaction.
#[derive(Debug, Clone, PartialEq)]
struct Preconfirmed {
    block: u64,
    index: u64,
    status: Option<String>,
    gas_used: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frames_on_one_follower_preconfirm_what_another_follower_accepted() {
    let cluster = TestCluster::start(3, 1_000, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let watcher = cluster.follower_of(leader);
    let sender_node = (1..=3)
        .find(|id| *id != leader && *id != watcher)
        .expect("third node");

    let ws = WsClientBuilder::default()
        .build(cluster.url(watcher).replace("http://", "ws://"))
        .await
        .expect("ws");
    let mut frames: Subscription<Value> = ws
        .subscribe(
            "eth_subscribe",
            rpc_params!["newFlashblocks"],
            "eth_unsubscribe",
        )
        .await
        .expect("newFlashblocks");
    let mut transactions: Subscription<Value> = ws
        .subscribe(
            "eth_subscribe",
            rpc_params!["newFlashblockTransactions"],
            "eth_unsubscribe",
        )
        .await
        .expect("newFlashblockTransactions");

    let signer = PrivateKeySigner::from_bytes(&dev_accounts(6)[5].private_key).expect("key");
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(cluster.url(sender_node).parse().expect("url"));
    let mut sent = Vec::new();
    for _ in 0..12 {
        let request = TransactionRequest::default()
            .with_to(Address::repeat_byte(0x77))
            .with_value(U256::from(1))
            .with_gas_limit(21_000);
        let pending = provider.send_transaction(request).await.expect("sent");
        sent.push(*pending.tx_hash());
    }
    // The node that acknowledged them shows them in its pending block at once.
    let open = provider
        .get_block_by_number(BlockNumberOrTag::Pending)
        .await
        .expect("pending block")
        .expect("exists");
    let last = sent.last().expect("sent");
    assert!(
        open.transactions.hashes().any(|h| h == *last)
            || provider
                .get_transaction_receipt(*last)
                .await
                .expect("receipt")
                .is_some(),
        "the last transaction is pending or already sealed"
    );

    // Collect frames until every transaction was preconfirmed.
    let mut seen: HashMap<B256, Preconfirmed> = HashMap::new();
    let mut frame_index: HashMap<u64, (String, u64)> = HashMap::new();
    let deadline = tokio::time::Instant::now() + LONG;
    while !sent.iter().all(|h| seen.contains_key(h)) {
        let frame = tokio::time::timeout_at(deadline, frames.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame");
        let block = frame["metadata"]["block_number"]
            .as_u64()
            .expect("block_number");
        let index = frame["index"].as_u64().expect("index");
        let payload_id = frame["payload_id"]
            .as_str()
            .expect("payload_id")
            .to_string();
        assert_eq!(payload_id.len(), 18, "8-byte payload id: {payload_id}");
        assert_eq!(
            index == 0,
            frame.get("base").is_some(),
            "base on index 0 only: {frame}"
        );
        // A block's first frame seen may have index > 0 only for the block open
        // when we subscribed; after it, frames of a block are numbered in order.
        if let Some((id, last_index)) = frame_index.get(&block) {
            assert_eq!(*id, payload_id, "one payload id per block");
            assert_eq!(
                index,
                last_index + 1,
                "frames of a block are numbered in order"
            );
        }
        frame_index.insert(block, (payload_id, index));
        let receipts = frame["metadata"]["receipts"].as_object().expect("receipts");
        assert_eq!(
            receipts.len(),
            frame["diff"]["transactions"]
                .as_array()
                .expect("transactions")
                .len()
        );
        for (hash, receipt) in receipts {
            let hash: B256 = hash.parse().expect("hash");
            let preconfirmed = Preconfirmed {
                block,
                index: u64::from_str_radix(
                    receipt["transactionIndex"]
                        .as_str()
                        .expect("index")
                        .trim_start_matches("0x"),
                    16,
                )
                .expect("hex"),
                status: receipt["status"].as_str().map(str::to_string),
                gas_used: receipt["gasUsed"].as_str().map(str::to_string),
            };
            assert!(
                seen.insert(hash, preconfirmed).is_none(),
                "{hash} preconfirmed twice"
            );
        }
    }

    // Every preconfirmation is what the sealed chain says.
    let reader = ProviderBuilder::new().connect_http(cluster.url(watcher).parse().expect("url"));
    for hash in &sent {
        let receipt = loop {
            if let Some(receipt) = reader
                .get_transaction_receipt(*hash)
                .await
                .expect("receipt")
            {
                break receipt;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{hash} never sealed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let preconfirmed = &seen[hash];
        assert_eq!(receipt.block_number, Some(preconfirmed.block), "{hash}");
        assert_eq!(
            receipt.transaction_index,
            Some(preconfirmed.index),
            "{hash}"
        );
        assert_eq!(preconfirmed.status.as_deref(), Some("0x1"));
        assert_eq!(
            preconfirmed.gas_used.as_deref(),
            Some(format!("{:#x}", receipt.gas_used).as_str())
        );
    }

    // The transaction stream carried each of them once, with its block and position.
    let mut streamed = HashMap::new();
    while streamed.len() < sent.len() {
        let tx = tokio::time::timeout_at(deadline, transactions.next())
            .await
            .expect("a transaction in time")
            .expect("stream open")
            .expect("transaction");
        let hash: B256 = tx["hash"].as_str().expect("hash").parse().expect("hash");
        assert!(tx["blockNumber"].is_string(), "{tx}");
        streamed.insert(hash, tx);
    }
    assert!(sent.iter().all(|h| streamed.contains_key(h)));
    cluster.stop().await;
}

/// `eth_getLogs` up to `pending` includes the open block's logs: a contract call
/// answered by `eth_sendRawTransactionSync` (its preconfirmed receipt) shows its log
/// at once, whether or not its block has been sealed since.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_up_to_pending_include_a_preconfirmed_call() {
    let cluster = TestCluster::start(3, 2_000, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let signer = PrivateKeySigner::from_bytes(&dev_accounts(7)[6].private_key).expect("key");
    let wallet = EthereumWallet::from(signer.clone());
    let provider = ProviderBuilder::new()
        .wallet(wallet.clone())
        .connect_http(cluster.url(follower).parse().expect("url"));
    let code: alloy_primitives::Bytes = include_str!("contracts/Counter.bin")
        .trim()
        .parse()
        .expect("hex bytecode");
    let deployed = provider
        .send_transaction(TransactionRequest::default().with_deploy_code(code))
        .await
        .expect("deploy")
        .get_receipt()
        .await
        .expect("deployed");
    let counter = deployed.contract_address.expect("contract");

    let mut input = alloy_primitives::keccak256("increment(uint256)")[..4].to_vec();
    input.extend_from_slice(&U256::from(3).to_be_bytes::<32>());
    let nonce = provider
        .get_transaction_count(signer.address())
        .pending()
        .await
        .expect("nonce");
    let request = TransactionRequest::default()
        .with_to(counter)
        .with_input(input)
        .with_gas_limit(200_000);
    let (hash, raw) = signed_raw(request, nonce, &wallet).await;
    let receipt: Value = provider
        .raw_request("eth_sendRawTransactionSync".into(), (raw, 10_000u64))
        .await
        .expect("sync send");
    let block = receipt["blockNumber"]
        .as_str()
        .expect("block number")
        .to_string();
    let logs: Vec<Value> = provider
        .raw_request(
            "eth_getLogs".into(),
            (serde_json::json!({ "fromBlock": block, "toBlock": "pending", "address": counter }),),
        )
        .await
        .expect("logs");
    let hash = format!("{hash:#x}");
    assert!(
        logs.iter()
            .any(|log| log["transactionHash"] == hash.as_str()),
        "{hash} in {logs:?}"
    );
    cluster.stop().await;
}
