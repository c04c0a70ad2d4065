//! The status page every node serves (`GET /status`) and its live feed, the
//! `baton_subscribeClusterView` subscription, through a follower while the leader
//! dies. (testnet/status_page.py drives the page itself in headless Chromium.)

use std::time::Duration;

use baton_testing::{RARE_SNAPSHOTS, TestCluster};
use jsonrpsee::{
    core::client::{Subscription, SubscriptionClientT},
    rpc_params,
    ws_client::WsClientBuilder,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LONG: Duration = Duration::from_secs(30);

/// The next view the subscription pushes (one comes every half second).
async fn next(views: &mut Subscription<Value>) -> Value {
    tokio::time::timeout(LONG, views.next())
        .await
        .expect("a view every half second")
        .expect("subscription open")
        .expect("a view")
}

/// The id of the member the view shows leading, if one does.
fn leader_in(view: &Value) -> Option<u64> {
    view["members"]
        .as_array()?
        .iter()
        .find(|m| m["status"]["role"] == "leader")
        .and_then(|m| m["id"].as_u64())
}

/// GET `path` over plain HTTP/1.1: (status line, content type, body).
async fn get(url: &str, path: &str) -> (String, String, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("headers");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, content_type, body.to_string())
}

/// DESIGN invariant 2 as a watcher sees it: the page's feed from a follower keeps
/// coming while the leader dies, then shows another leader (elected: the reason
/// recorded), the dead member unreachable, and blocks after the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followers_status_feed_shows_the_failover_live() {
    let mut cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let url = cluster.url(follower);

    let (status, content_type, page) = get(&url, "/status").await;
    assert!(status.contains("200"), "{status}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("baton_subscribeClusterView"));

    let ws = WsClientBuilder::default()
        .build(url.replacen("http://", "ws://", 1))
        .await
        .expect("WebSocket");
    let mut views: Subscription<Value> = ws
        .subscribe(
            "baton_subscribeClusterView",
            rpc_params![],
            "baton_unsubscribeClusterView",
        )
        .await
        .expect("subscribe");
    let first = next(&mut views).await;
    assert_eq!(first["node"], follower);
    assert_eq!(leader_in(&first), Some(leader));
    assert_eq!(first["members"].as_array().map(Vec::len), Some(3));

    cluster.kill(leader).await;
    // The change log is written by a watcher of Raft's metrics, so for a moment a
    // view can name the new leader before its change is logged: wait for both.
    let after = loop {
        let view = next(&mut views).await;
        let logged = view["leaderChanges"]
            .as_array()
            .and_then(|changes| changes.last())
            .map(|change| change["leader"].clone());
        if let Some(now) = leader_in(&view)
            && now != leader
            && logged == Some(Value::from(now))
        {
            break view;
        }
    };
    let new_leader = leader_in(&after).expect("a leader");
    let dead = after["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["id"] == leader))
        .expect("the dead member is still listed");
    assert!(dead["status"].is_null(), "unreachable: {dead}");
    let change = after["leaderChanges"]
        .as_array()
        .and_then(|changes| changes.last())
        .expect("a change recorded");
    assert_eq!(change["leader"], new_leader);
    assert_eq!(change["reason"], "election");

    let last_block = |view: &Value| view["blocks"].as_array().and_then(|b| b.last()).cloned();
    let before = last_block(&after).expect("blocks")["number"].as_u64();
    let later = loop {
        let view = next(&mut views).await;
        let number = last_block(&view).expect("blocks")["number"].as_u64();
        if number > before {
            break number;
        }
    };
    assert!(later > before, "blocks after the failover show");
    cluster.stop().await;
}
