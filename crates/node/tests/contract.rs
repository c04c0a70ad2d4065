//! A contract's life through a follower with a real client: deploy from checked-in
//! bytecode (tests/contracts/Counter.vy beside it), estimate, call, read logs by
//! address and topic, and see a revert reason.

use std::time::Duration;

use alloy_network::{EthereumWallet, TransactionBuilder};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::{Filter, TransactionRequest};
use alloy_signer_local::PrivateKeySigner;
use baton_primitives::dev_accounts;
use baton_testing::{RARE_SNAPSHOTS, TestCluster, mined};
use jsonrpsee::{
    core::client::{Subscription, SubscriptionClientT},
    rpc_params,
    ws_client::WsClientBuilder,
};

const LONG: Duration = Duration::from_secs(30);
const COUNTER_BIN: &str = include_str!("contracts/Counter.bin");

fn selector(signature: &str) -> [u8; 4] {
    let hash = keccak256(signature);
    [hash[0], hash[1], hash[2], hash[3]]
}

fn increment(amount: u64) -> Bytes {
    let mut data = selector("increment(uint256)").to_vec();
    data.extend_from_slice(&U256::from(amount).to_be_bytes::<32>());
    data.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_call_and_read_logs_of_a_contract() {
    let cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let key = PrivateKeySigner::from_bytes(&dev_accounts(3)[2].private_key).expect("key");
    let me = key.address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key))
        .connect_http(cluster.url(follower).parse().expect("url"));

    // Deploy: gas estimated by the node, bytecode from the checked-in build.
    let code: Bytes = COUNTER_BIN.trim().parse().expect("hex bytecode");
    let deploy = TransactionRequest::default().with_deploy_code(code);
    let receipt = mined(&provider, deploy).await;
    assert!(receipt.status());
    let counter: Address = receipt.contract_address.expect("contract address");
    assert!(
        !provider
            .get_code_at(counter)
            .await
            .expect("code")
            .is_empty()
    );

    // Subscribe (WebSocket) to heads and to the counter's logs, and install polling
    // filters, before the calls.
    let ws = WsClientBuilder::default()
        .build(cluster.url(follower).replace("http://", "ws://"))
        .await
        .expect("ws");
    let mut heads: Subscription<alloy_rpc_types_eth::Header> = ws
        .subscribe("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect("newHeads");
    let mut log_feed: Subscription<alloy_rpc_types_eth::Log> = ws
        .subscribe(
            "eth_subscribe",
            rpc_params!["logs", serde_json::json!({ "address": counter })],
            "eth_unsubscribe",
        )
        .await
        .expect("logs");
    // Subscription ids are hex strings, as geth's (web3.py needs them so).
    for id in [heads.kind(), log_feed.kind()] {
        let jsonrpsee::core::client::SubscriptionKind::Subscription(
            jsonrpsee::types::SubscriptionId::Str(id),
        ) = id
        else {
            panic!("subscription id is not a string: {id:?}");
        };
        assert!(id.starts_with("0x") && id.len() == 34, "{id}");
    }
    let bad: Result<Subscription<serde_json::Value>, _> = ws
        .subscribe(
            "eth_subscribe",
            rpc_params!["newPendingNothing"],
            "eth_unsubscribe",
        )
        .await;
    assert!(bad.is_err(), "an unknown subscription is refused");
    let block_filter = provider.new_block_filter().await.expect("block filter");
    let log_filter = provider
        .new_filter(&Filter::new().address(counter).from_block(0))
        .await
        .expect("log filter");

    // Call increment(5) and increment(2); each logs Incremented(by, total).
    for amount in [5, 2] {
        let call = TransactionRequest::default()
            .with_to(counter)
            .with_input(increment(amount));
        let gas = provider.estimate_gas(call.clone()).await.expect("estimate");
        assert!(gas > 21_000);
        // EIP-2930 through the follower: the counter's storage slot is listed
        // (geth lists the recipient's slots), and the gas with it is given.
        let listed = provider
            .create_access_list(&call.clone().with_from(me))
            .await
            .expect("access list");
        assert!(listed.error.is_none(), "{listed:?}");
        let item = listed
            .access_list
            .0
            .iter()
            .find(|item| item.address == counter)
            .expect("the counter is listed with its storage");
        assert!(!item.storage_keys.is_empty());
        assert!(listed.gas_used > U256::from(21_000));
        let receipt = mined(&provider, call).await;
        assert!(receipt.status());
        assert_eq!(receipt.inner.logs().len(), 1);
    }

    // Both logs were pushed, and heads arrive in order.
    for total in [5u64, 7] {
        let log = tokio::time::timeout(LONG, log_feed.next())
            .await
            .expect("pushed")
            .expect("open")
            .expect("log");
        assert_eq!(U256::from_be_slice(&log.data().data), U256::from(total));
    }
    let first = tokio::time::timeout(LONG, heads.next())
        .await
        .expect("pushed")
        .expect("open")
        .expect("head");
    let second = tokio::time::timeout(LONG, heads.next())
        .await
        .expect("pushed")
        .expect("open")
        .expect("head");
    assert_eq!(second.number, first.number + 1);
    assert_eq!(second.parent_hash, first.hash);

    // The polling filters saw the same.
    let hashes: Vec<B256> = provider
        .get_filter_changes(block_filter)
        .await
        .expect("changes");
    assert!(!hashes.is_empty());
    let logs: Vec<alloy_rpc_types_eth::Log> = provider
        .get_filter_changes(log_filter)
        .await
        .expect("changes");
    assert_eq!(logs.len(), 2);
    let again: Vec<alloy_rpc_types_eth::Log> = provider
        .get_filter_changes(log_filter)
        .await
        .expect("changes");
    assert!(again.is_empty(), "changes are reported once");
    assert_eq!(
        provider
            .get_filter_logs(log_filter)
            .await
            .expect("logs")
            .len(),
        2
    );
    assert!(
        provider
            .uninstall_filter(log_filter)
            .await
            .expect("uninstall")
    );
    assert!(
        !provider
            .uninstall_filter(log_filter)
            .await
            .expect("uninstall")
    );

    // eth_call reads the state the two calls left.
    let count = TransactionRequest::default()
        .with_to(counter)
        .with_input(Bytes::from(selector("count()").to_vec()));
    let out = provider.call(count).await.expect("call");
    assert_eq!(U256::from_be_slice(&out), U256::from(7));

    // Logs by address and by topic (the indexed sender).
    let topic0 = keccak256("Incremented(address,uint256)");
    let by_address = provider
        .get_logs(&Filter::new().address(counter).from_block(0))
        .await
        .expect("logs");
    assert_eq!(by_address.len(), 2);
    assert_eq!(by_address[0].topics()[0], topic0);
    assert_eq!(
        U256::from_be_slice(&by_address[1].data().data),
        U256::from(7)
    );
    let by_sender = provider
        .get_logs(
            &Filter::new()
                .from_block(0)
                .event_signature(topic0)
                .topic1(B256::left_padding_from(me.as_slice())),
        )
        .await
        .expect("logs");
    assert_eq!(by_sender.len(), 2);
    let nobody = provider
        .get_logs(&Filter::new().from_block(0).topic1(B256::repeat_byte(1)))
        .await
        .expect("logs");
    assert!(nobody.is_empty());

    // A revert carries its reason, and is refused at estimation, both as geth
    // answers it: code 3, "execution reverted: <reason>", the revert bytes as data.
    let zero = TransactionRequest::default()
        .with_to(counter)
        .with_input(increment(0));
    let call_err = provider.call(zero.clone()).await.expect_err("revert");
    let estimate_err = provider.estimate_gas(zero).await.expect_err("revert");
    for err in [call_err, estimate_err] {
        let payload = err.as_error_resp().expect("a JSON-RPC error");
        assert_eq!(payload.code, 3, "{err}");
        assert_eq!(
            payload.message,
            "execution reverted: amount must be positive"
        );
        let data: Bytes = payload
            .try_data_as::<Bytes>()
            .expect("revert data")
            .expect("hex bytes");
        assert_eq!(
            &data[..4],
            &selector("Error(string)"),
            "Error(string) revert data"
        );
    }

    cluster.assert_identical_chains().await;
    cluster.stop().await;
}
