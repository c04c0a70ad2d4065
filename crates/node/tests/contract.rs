//! A contract's life through a follower with a real client: deploy from checked-in
//! bytecode (tests/contracts/Counter.vy beside it), estimate, call, read logs by
//! address and topic, and see a revert reason.

mod common;

use std::time::Duration;

use alloy_network::{EthereumWallet, TransactionBuilder};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::{Filter, TransactionRequest};
use alloy_signer_local::PrivateKeySigner;
use baton_primitives::dev_accounts;
use common::TestCluster;

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
    let cluster = TestCluster::start(3, 300, 10_000).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = *cluster
        .nodes
        .keys()
        .find(|id| **id != leader)
        .expect("follower");
    let key = PrivateKeySigner::from_bytes(&dev_accounts(3)[2].private_key).expect("key");
    let me = key.address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key))
        .connect_http(cluster.url(follower).parse().expect("url"));

    // Deploy: gas estimated by the node, bytecode from the checked-in build.
    let code: Bytes = COUNTER_BIN.trim().parse().expect("hex bytecode");
    let deploy = TransactionRequest::default().with_deploy_code(code);
    let receipt = provider
        .send_transaction(deploy)
        .await
        .expect("deploy sent")
        .get_receipt()
        .await
        .expect("deploy receipt");
    assert!(receipt.status());
    let counter: Address = receipt.contract_address.expect("contract address");
    assert!(
        !provider
            .get_code_at(counter)
            .await
            .expect("code")
            .is_empty()
    );

    // Call increment(5) and increment(2); each logs Incremented(by, total).
    for amount in [5, 2] {
        let call = TransactionRequest::default()
            .with_to(counter)
            .with_input(increment(amount));
        let gas = provider.estimate_gas(call.clone()).await.expect("estimate");
        assert!(gas > 21_000);
        let receipt = provider
            .send_transaction(call)
            .await
            .expect("sent")
            .get_receipt()
            .await
            .expect("receipt");
        assert!(receipt.status());
        assert_eq!(receipt.inner.logs().len(), 1);
    }

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

    // A revert carries its reason, and is refused at estimation.
    let zero = TransactionRequest::default()
        .with_to(counter)
        .with_input(increment(0));
    let err = provider.call(zero.clone()).await.expect_err("revert");
    assert!(err.to_string().contains("amount must be positive"), "{err}");
    let err = provider.estimate_gas(zero).await.expect_err("revert");
    assert!(err.to_string().contains("amount must be positive"), "{err}");

    cluster.assert_identical_chains().await;
    cluster.stop().await;
}
