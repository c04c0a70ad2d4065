//! Membership changes at runtime, under load: a fourth node joins as a non-voter,
//! catches up, is promoted to voter, and another member is removed, while a client
//! keeps sending transfers through a follower.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use baton_devtools::client::signed_transfer;
use baton_primitives::{NodeId, dev_accounts};
use baton_testing::{RARE_SNAPSHOTS, TestCluster};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HeaderMap, HttpClient, HttpClientBuilder},
    rpc_params,
};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(30);
const TOKEN: &str = "membership-test-token-0123";

fn admin(url: &str) -> HttpClient {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("header"),
    );
    HttpClientBuilder::default()
        .set_headers(headers)
        .request_timeout(LONG)
        .build(url)
        .expect("client")
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn suffrage(url: &str, id: NodeId) -> Option<String> {
    let membership: Value = admin(url)
        .request("conductor_clusterMembership", rpc_params![])
        .await
        .expect("membership");
    membership["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|s| s["id"] == id)
        .map(|s| s["suffrage"].as_str().expect("suffrage").to_string())
}

/// DESIGN invariants 3 and 4 across membership changes: every acknowledged
/// transfer is in exactly one block, and the members hold identical chains.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_joins_is_promoted_and_another_leaves_under_load() {
    let mut cluster = TestCluster::start_with(4, 300, RARE_SNAPSHOTS, |id, config| {
        config.rpc.admin_token = Some(TOKEN.to_string());
        if id == 4 {
            config.cluster.join = true;
        } else {
            config.cluster.members.remove(&4);
        }
    })
    .await;
    // The founders agree on a leader; node 4 waits to be added.
    let founders_agree = || {
        let leaders: Vec<_> = [1, 2, 3]
            .iter()
            .map(|id| cluster.status(*id).leader_id)
            .collect();
        leaders[0].filter(|l| {
            leaders.iter().all(|x| *x == Some(*l))
                && cluster.status(*l).role == baton_consensus::Role::Leader
        })
    };
    wait_until("the founders to agree on a leader", || {
        founders_agree().is_some()
    })
    .await;
    let leader = founders_agree().expect("leader");
    let (sender, victim) = {
        let followers: Vec<NodeId> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
        (followers[0], followers[1])
    };

    // A client sends transfers through a follower the whole time, resending the
    // same signed transfer until a node answers with its hash.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<HashMap<B256, u64>>> = Arc::default();
    let load = {
        let (stop, acked, url) = (stop.clone(), acked.clone(), cluster.url(sender));
        tokio::spawn(async move {
            let signer =
                PrivateKeySigner::from_bytes(&dev_accounts(1)[0].private_key).expect("key");
            let client = HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(10))
                .build(url)
                .expect("client");
            let mut nonce = 0;
            while !stop.load(Ordering::Relaxed) {
                let (hash, raw) =
                    signed_transfer(&signer, nonce, Address::repeat_byte(0x44)).expect("sign");
                loop {
                    let answer: Result<B256, _> = client
                        .request("eth_sendRawTransaction", rpc_params![raw.clone()])
                        .await;
                    if answer.as_ref().is_ok_and(|h| *h == hash) {
                        acked.lock().expect("acked").insert(hash, nonce);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                nonce += 1;
            }
        })
    };

    let url = cluster.url(leader);
    let four = &cluster.configs[&4].cluster.members[&4];
    let addr = format!("{}/p2p/{}", four.p2p_addr, four.peer_id);
    let four_url = cluster.url(4);
    admin(&url)
        .request::<(), _>(
            "conductor_addServerAsNonvoter",
            rpc_params!["4", addr.clone(), 0, four_url.clone()],
        )
        .await
        .expect("add as non-voter");
    assert_eq!(suffrage(&url, 4).await.as_deref(), Some("nonvoter"));
    wait_until("node 4 to catch up", || {
        cluster.status(4).head_number + 1 >= cluster.status(leader).head_number
            && cluster.status(4).head_number > 0
    })
    .await;

    admin(&url)
        .request::<(), _>(
            "conductor_addServerAsVoter",
            rpc_params!["4", addr, 0, four_url],
        )
        .await
        .expect("promote");
    assert_eq!(suffrage(&url, 4).await.as_deref(), Some("voter"));

    admin(&url)
        .request::<(), _>("conductor_removeServer", rpc_params![victim.to_string(), 0])
        .await
        .expect("remove");
    assert_eq!(suffrage(&url, victim).await, None);
    cluster.kill(victim).await;

    // More blocks with the new membership, then stop sending.
    let height = cluster.status(leader).head_number;
    wait_until("blocks after the changes", || {
        cluster.status(4).head_number >= height + 3
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load");

    // Every acknowledged transfer is in exactly one block, as node 4 serves them.
    let acked = acked.lock().expect("acked").clone();
    assert!(acked.len() > 5, "the load sent little: {}", acked.len());
    // The last acknowledged transfers may sit in the open block: let it be sealed.
    let open = cluster.status(leader).head_number + 2;
    wait_until("the open block to be sealed", || {
        cluster.status(leader).head_number >= open
    })
    .await;
    let last = cluster.status(leader).head_number;
    wait_until("node 4 to reach the leader", || {
        cluster.status(4).head_number >= last
    })
    .await;
    let reader = HttpClientBuilder::default()
        .build(cluster.url(4))
        .expect("client");
    let mut seen: HashMap<B256, usize> = HashMap::new();
    for number in 0..=last {
        let block: Value = reader
            .request(
                "eth_getBlockByNumber",
                rpc_params![format!("{number:#x}"), false],
            )
            .await
            .expect("block");
        for tx in block["transactions"].as_array().expect("txs") {
            let hash: B256 = tx.as_str().expect("hash").parse().expect("hash");
            *seen.entry(hash).or_default() += 1;
        }
    }
    for hash in acked.keys() {
        assert_eq!(seen.get(hash), Some(&1), "acknowledged {hash}");
    }
    cluster.assert_identical_chains().await;
    cluster.stop().await;
}
