//! JSON-RPC through a follower, with a real client (alloy's provider): chain
//! facts, blocks, and the dev genesis state every node serves.

use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_provider::{Provider, ProviderBuilder};
use alloy_rpc_types_eth::BlockNumberOrTag;
use baton_primitives::{
    dev_accounts,
    genesis::{DEV_BALANCE, DEV_CHAIN_ID},
};
use baton_testing::{RARE_SNAPSHOTS, TestCluster};

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wallet_client_reads_chain_and_dev_state_from_a_follower() {
    let cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    cluster.wait_for_height(2, LONG).await;
    let follower = cluster.follower_of(leader);
    let url = cluster.url(follower).parse().expect("url");
    let provider = ProviderBuilder::new().connect_http(url);

    assert_eq!(
        provider.get_chain_id().await.expect("chain id"),
        DEV_CHAIN_ID
    );
    let number = provider.get_block_number().await.expect("block number");
    assert!(number >= 2);

    let latest = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await
        .expect("block")
        .expect("latest exists");
    assert!(latest.header.number >= number);
    let by_hash = provider
        .get_block_by_hash(latest.header.hash)
        .await
        .expect("block")
        .expect("by hash");
    assert_eq!(by_hash.header.number, latest.header.number);
    assert_eq!(latest.header.hash, latest.header.inner.hash_slow());

    for account in dev_accounts(10) {
        assert_eq!(
            provider
                .get_balance(account.address)
                .await
                .expect("balance"),
            DEV_BALANCE
        );
        assert_eq!(
            provider
                .get_transaction_count(account.address)
                .await
                .expect("nonce"),
            0
        );
    }
    let stranger = Address::repeat_byte(0x42);
    assert_eq!(
        provider.get_balance(stranger).await.expect("balance"),
        U256::ZERO
    );
    assert!(
        provider
            .get_code_at(stranger)
            .await
            .expect("code")
            .is_empty()
    );

    let fees = provider.estimate_eip1559_fees().await.expect("fees");
    assert!(fees.max_fee_per_gas >= fees.max_priority_fee_per_gas);
    assert!(
        !provider
            .syncing()
            .await
            .is_ok_and(|s| matches!(s, alloy_rpc_types_eth::SyncStatus::Info(_)))
    );

    // State at an old block: the genesis allocation (DESIGN §6, state history).
    let old = provider
        .get_balance(dev_accounts(1)[0].address)
        .number(0)
        .await
        .expect("state at block 0");
    assert_eq!(old, baton_primitives::genesis::DEV_BALANCE);

    cluster.stop().await;
}
