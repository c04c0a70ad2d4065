//! In-process 3-node clusters (DESIGN §6, layer 3): election, block production,
//! leader crash and failover, restart and catch-up (by log and by snapshot).

use std::time::Duration;

use baton_devtools::client;
use baton_testing::{RARE_SNAPSHOTS, TestCluster};

const BLOCK_MS: u64 = 300;
const LONG: Duration = Duration::from_secs(30);

/// Blocks are produced with no traffic, every node applies the same stream, and
/// heights are contiguous with parent links (DESIGN invariant 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn elects_a_leader_and_every_node_holds_the_same_chain() {
    let cluster = TestCluster::start(3, BLOCK_MS, RARE_SNAPSHOTS).await;
    cluster.wait_for_leader(LONG).await;
    cluster.wait_for_height(5, LONG).await;
    let upto = cluster.assert_identical_chains().await;
    assert!(upto >= 5);

    let url = cluster.url(1);
    let mut parent = None;
    for number in 0..=upto {
        let block: serde_json::Value = jsonrpsee::core::client::ClientT::request(
            &jsonrpsee::http_client::HttpClientBuilder::default()
                .build(&url)
                .expect("client"),
            "eth_getBlockByNumber",
            jsonrpsee::rpc_params![format!("{number:#x}"), false],
        )
        .await
        .expect("block");
        assert_eq!(block["number"], format!("{number:#x}"));
        if let Some(parent) = parent {
            assert_eq!(
                block["parentHash"], parent,
                "block {number} links to its parent"
            );
        }
        parent = Some(block["hash"].clone());
    }
    cluster.stop().await;
}

/// DESIGN invariants 1 and 2: after the leader crashes, a survivor leads, builds on
/// everything committed (no height is produced twice, nothing committed is lost)
/// and the survivors agree on every block.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_crash_fails_over_with_no_fork() {
    let mut cluster = TestCluster::start(3, BLOCK_MS, RARE_SNAPSHOTS).await;
    let old_leader = cluster.wait_for_leader(LONG).await;
    cluster.wait_for_height(3, LONG).await;
    let survivor = cluster.follower_of(old_leader);

    cluster.kill(old_leader).await;
    let committed = cluster.max_head();
    let before = cluster.hashes(survivor, committed).await;

    let new_leader = cluster.wait_for_leader(LONG).await;
    assert_ne!(new_leader, old_leader);
    cluster.wait_for_height(committed + 3, LONG).await;
    cluster.assert_identical_chains().await;
    assert_eq!(
        cluster.hashes(survivor, committed).await,
        before,
        "no committed block was replaced after failover"
    );
    cluster.stop().await;
}

/// A crashed node restarts as a follower and catches up by log replication.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_node_rejoins_and_catches_up() {
    let mut cluster = TestCluster::start(3, BLOCK_MS, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    cluster.wait_for_height(2, LONG).await;

    // Kill the leader: the restarted node must come back as a follower.
    cluster.kill(leader).await;
    cluster.wait_for_leader(LONG).await;
    let target = cluster.max_head() + 5;
    cluster.wait_for_height(target, LONG).await;

    cluster.restart(leader).await;
    cluster.wait_for_height(target + 2, LONG).await;
    let new_leader = cluster.wait_for_leader(LONG).await;
    assert_ne!(
        new_leader, leader,
        "pre-vote keeps the rejoining node from deposing the leader"
    );
    cluster.assert_identical_chains().await;
    cluster.stop().await;
}

/// A node that was down while the others snapshotted and purged their logs
/// catches up by installing a snapshot, sent in many small chunks (invariant 7:
/// what it installs is a state some member applied, whole or not at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_absent_node_catches_up_from_a_snapshot() {
    let mut cluster = TestCluster::start_with(3, 100 + BLOCK_MS / 3, 4_000, |_, config| {
        config.data.snapshots.keep_entries = 4;
        config.data.snapshots.chunk_bytes = 64 << 10;
    })
    .await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    cluster.wait_for_height(2, LONG).await;
    cluster.kill(follower).await;

    // Each block is two entries: 60 blocks is six snapshots' worth of log.
    let target = cluster.max_head() + 60;
    cluster
        .wait_for_height(target, Duration::from_secs(60))
        .await;
    let purged = cluster.status(leader).purged_index;
    assert!(
        purged.is_some(),
        "the leader purged its log behind a snapshot"
    );

    cluster.restart(follower).await;
    cluster.wait_for_height(target + 2, LONG).await;
    let snapshot = cluster.status(follower).snapshot_index;
    assert!(
        snapshot.is_some(),
        "the follower caught up through a snapshot"
    );
    cluster.assert_identical_chains().await;

    // And it serves the blocks it never replicated entry by entry.
    let hash =
        client::block_hash(&cluster.url(follower), target - 30, Duration::from_secs(5)).await;
    assert!(hash.is_ok(), "{hash:?}");
    cluster.stop().await;
}
