//! The operator's admin API: op-conductor's `conductor_` names, reads open to all,
//! writes only with the node's bearer token.

use std::time::Duration;

use baton_consensus::ChangeReason;
use baton_testing::{RARE_SNAPSHOTS, TestCluster};
use jsonrpsee::{
    core::{ClientError, client::ClientT},
    http_client::{HeaderMap, HttpClient, HttpClientBuilder},
    rpc_params,
};

const LONG: Duration = Duration::from_secs(30);
const TOKEN: &str = "a-test-token-of-some-length";

fn client(url: &str, token: Option<&str>) -> HttpClient {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    HttpClientBuilder::default()
        .set_headers(headers)
        .build(url)
        .expect("client")
}

fn refusal(result: Result<(), ClientError>) -> String {
    match result {
        Err(ClientError::Call(e)) => {
            assert_eq!(e.code(), baton_rpc::UNAUTHORIZED, "{e:?}");
            e.message().to_string()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_writes_need_the_token_and_move_leadership() {
    let cluster = TestCluster::start_with(3, 300, RARE_SNAPSHOTS, |_, config| {
        config.rpc.admin_token = Some(TOKEN.to_string());
    })
    .await;
    let leader = cluster.wait_for_leader(LONG).await;
    let url = cluster.url(leader);
    let open = client(&url, None);

    // Reads are open.
    let healthy: bool = open
        .request("conductor_sequencerHealthy", rpc_params![])
        .await
        .expect("healthy");
    cluster.wait_for_height(2, LONG).await;
    let active: bool = open
        .request("conductor_active", rpc_params![])
        .await
        .expect("active");
    assert!(active);
    let _ = healthy;

    // Writes without the token, or with a wrong one, are refused and change nothing.
    let why = refusal(open.request("conductor_pause", rpc_params![]).await);
    assert!(why.contains("Authorization: Bearer"), "{why}");
    let wrong = client(&url, Some("not-the-token-at-all-no"));
    refusal(wrong.request("conductor_pause", rpc_params![]).await);
    refusal(
        wrong
            .request("conductor_transferLeaderToServer", rpc_params![1, ""])
            .await,
    );
    assert!(!cluster.nodes[&leader].consensus().paused());
    assert_eq!(cluster.wait_for_leader(LONG).await, leader);

    // With the token: pause and resume, then move leadership on purpose.
    let admin = client(&url, Some(TOKEN));
    admin
        .request::<(), _>("conductor_pause", rpc_params![])
        .await
        .expect("pause");
    assert!(
        open.request::<bool, _>("conductor_paused", rpc_params![])
            .await
            .expect("paused")
    );
    admin
        .request::<(), _>("conductor_resume", rpc_params![])
        .await
        .expect("resume");
    let target = cluster.follower_of(leader);
    admin
        .request::<(), _>(
            "conductor_transferLeaderToServer",
            rpc_params![target.to_string(), ""],
        )
        .await
        .expect("transfer");
    let deadline = std::time::Instant::now() + LONG;
    while cluster.status(target).leader_id != Some(target) {
        assert!(std::time::Instant::now() < deadline, "no transfer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let change = cluster.status(target).last_leader_change.expect("a change");
    assert_eq!(change.reason, ChangeReason::Transfer);

    // conductor_transferLeader on the new leader picks the next ready member.
    let admin = client(&cluster.url(target), Some(TOKEN));
    admin
        .request::<(), _>("conductor_transferLeader", rpc_params![])
        .await
        .expect("transfer to the next");
    let next = target % 3 + 1;
    while cluster.status(next).leader_id != Some(next) {
        assert!(std::time::Instant::now() < deadline, "no second transfer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A follower refuses: only the leader can hand leadership on.
    let follower = client(&cluster.url(target), Some(TOKEN));
    let answer: Result<(), _> = follower
        .request("conductor_transferLeader", rpc_params![])
        .await;
    assert!(
        matches!(&answer, Err(ClientError::Call(e)) if e.message().contains("does not lead")),
        "{answer:?}"
    );
    let height = cluster.max_head();
    cluster.wait_for_height(height + 2, LONG).await;
    cluster.assert_identical_chains().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_token_file_admin_writes_are_off() {
    let cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let anyone = client(&cluster.url(leader), Some(TOKEN));
    let why = refusal(anyone.request("conductor_resume", rpc_params![]).await);
    assert!(why.contains("--admin-token-file"), "{why}");
    cluster.stop().await;
}
