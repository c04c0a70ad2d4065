//! Hostile RPC load (DESIGN invariant 5: leadership moves only for a reason of the
//! cluster's own): strangers sending endless `eth_call`s to the leader get clear
//! errors at their limits, while blocks keep their cadence and nobody leads but the
//! leader they started with.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use baton_testing::{RARE_SNAPSHOTS, TestCluster};
use jsonrpsee::{
    core::{
        ClientError,
        client::{ClientT, SubscriptionClientT},
    },
    http_client::HttpClientBuilder,
    rpc_params,
    ws_client::WsClientBuilder,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LONG: Duration = Duration::from_secs(30);

/// `JUMPDEST PUSH1 0 JUMP`, run as a contract creation: loops until out of gas.
const ENDLESS: &str = "0x5b600056";

/// A call that runs past its time limit is stopped with geth's words; one that
/// burns the gas cap ends out of gas. Neither holds a thread afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endless_call_is_stopped_at_the_time_limit_with_a_clear_error() {
    let cluster = TestCluster::start_with(1, 300, RARE_SNAPSHOTS, |_, config| {
        config.rpc.exec.timeout = Duration::from_millis(1);
        config.rpc.exec.gas_cap = u64::MAX / 4;
    })
    .await;
    let leader = cluster.wait_for_leader(LONG).await;
    let client = HttpClientBuilder::default()
        .request_timeout(LONG)
        .build(cluster.url(leader))
        .expect("client");
    for method in ["eth_call", "eth_estimateGas"] {
        let error = client
            .request::<serde_json::Value, _>(method, rpc_params![json!({ "data": ENDLESS })])
            .await
            .expect_err("an endless loop cannot finish");
        let error = call_error(error, method);
        assert_eq!(error.code(), -32000, "{method}");
        assert_eq!(
            error.message(),
            "execution aborted (timeout exceeded)",
            "{method}"
        );
    }
    cluster.stop().await;
}

/// The issue's attack: 8 clients send `eth_call`s of an endless loop at the full
/// gas cap to the leader, back to back. They get answers or "busy" errors; the
/// leader keeps producing blocks and keeps leading.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endless_calls_to_the_leader_do_not_move_leadership() {
    let cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    let leader = cluster.wait_for_leader(LONG).await;
    cluster.wait_for_height(2, LONG).await;
    let start_head = cluster.max_head();
    let start_term = cluster.status(leader).term;
    let url = cluster.url(leader);

    let stop = Arc::new(AtomicBool::new(false));
    let (answered, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut attackers = Vec::new();
    for _ in 0..8 {
        let client = HttpClientBuilder::default()
            .request_timeout(LONG)
            .build(&url)
            .expect("client");
        let (stop, answered, refused) = (stop.clone(), answered.clone(), refused.clone());
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = client
                    .request::<serde_json::Value, _>(
                        "eth_call",
                        rpc_params![json!({ "data": ENDLESS })],
                    )
                    .await;
                match result {
                    Err(ClientError::Call(e))
                        if e.code() == -32000 || e.code() == baton_rpc::LIMIT_EXCEEDED =>
                    {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("an unclear answer to an endless call: {e}"),
                }
            }
        }));
    }
    let attack = Duration::from_secs(8);
    let began = Instant::now();
    while began.elapsed() < attack {
        assert_eq!(
            cluster.wait_for_leader(LONG).await,
            leader,
            "leadership moved under RPC load"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.expect("attacker");
    }
    let blocks = cluster.max_head() - start_head;
    // 8 s of 0.3 s blocks is ~26; a leader starved by the calls would seal few.
    assert!(blocks >= 13, "only {blocks} blocks under RPC load");
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the endless calls ended in errors"
    );
    let term = cluster.status(leader).term;
    assert_eq!(term, start_term, "the leader's term changed");
    for id in 1..=3 {
        let status = cluster.status(id);
        assert_eq!(status.term, term, "node {id}: an election happened");
        assert_eq!(status.leader_id, Some(leader), "node {id}");
    }
    cluster.assert_identical_chains().await;
    cluster.stop().await;
}

/// One host cannot hold every connection: past its per-address limit a new
/// connection is answered 429 with a JSON-RPC error naming the limit, and a
/// connection that closes frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_cannot_take_every_connection() {
    let cluster = TestCluster::start_with(1, 300, RARE_SNAPSHOTS, |_, config| {
        config.rpc.connections.per_ip = 3;
    })
    .await;
    let node = cluster.wait_for_leader(LONG).await;
    let ws_url = cluster.url(node).replace("http://", "ws://");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(WsClientBuilder::default().build(&ws_url).await.expect("ws"));
    }

    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    let answer = raw_post(&cluster.nodes[&node].rpc_addr().to_string(), body).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("-32005"), "{answer}");
    assert!(
        answer.contains("too many connections from 127.0.0.1: at most 3 per address"),
        "{answer}"
    );
    let number: String = held[0]
        .request("eth_blockNumber", rpc_params![])
        .await
        .expect("the connections it holds still work");
    assert!(number.starts_with("0x"));

    drop(held.pop());
    wait_for_a_free_place(&cluster.nodes[&node].rpc_addr().to_string()).await;
    cluster.stop().await;
}

/// Members talk to each other over p2p, never through the public JSON-RPC port
/// (DESIGN invariant 5: leadership moves only for a reason of the cluster's own):
/// with every place 127.0.0.1 has on every node's RPC port taken by idle sockets, a
/// write through a follower is still forwarded and included once, the leader still
/// sees its members ready, and it hands over when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_held_on_the_rpc_ports_do_not_cut_the_members_off() {
    const PER_IP: u32 = 4;
    const TOKEN: &str = "a-test-token-of-some-length";
    let cluster = TestCluster::start_with(3, 300, RARE_SNAPSHOTS, |_, config| {
        config.rpc.connections.per_ip = PER_IP;
        config.rpc.admin_token = Some(TOKEN.to_string());
    })
    .await;
    let leader = cluster.wait_for_leader(LONG).await;
    let follower = cluster.follower_of(leader);
    let ws_url = |id| cluster.url(id).replace("http://", "ws://");
    // One client of ours per node, then idle sockets take every other place.
    let to_follower = WsClientBuilder::default()
        .build(&ws_url(follower))
        .await
        .expect("ws");
    let mut admin = jsonrpsee::http_client::HeaderMap::new();
    admin.insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("header"),
    );
    let to_leader = WsClientBuilder::default()
        .set_headers(admin)
        .build(&ws_url(leader))
        .await
        .expect("ws");
    let mut held = Vec::new();
    for &id in cluster.nodes.keys() {
        let ours = u32::from(id == leader || id == follower);
        for _ in ours..PER_IP {
            held.push(hold_a_place(&ws_url(id)).await);
        }
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
        let answer = raw_post(&cluster.nodes[&id].rpc_addr().to_string(), body).await;
        assert!(answer.starts_with("HTTP/1.1 429"), "node {id}: {answer}");
    }
    // Several readiness polls go by with the ports full.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let key = alloy_signer_local::PrivateKeySigner::from_bytes(
        &baton_primitives::dev_accounts(1)[0].private_key,
    )
    .expect("key");
    let wallet = alloy_network::EthereumWallet::from(key);
    let transfer = alloy_rpc_types_eth::TransactionRequest::default()
        .to(alloy_primitives::Address::repeat_byte(0x77))
        .value(alloy_primitives::U256::from(1))
        .gas_limit(21_000);
    let (hash, raw) = baton_testing::signed_raw(transfer, 0, &wallet).await;
    let acked: alloy_primitives::B256 = to_follower
        .request("eth_sendRawTransaction", rpc_params![raw])
        .await
        .expect("a follower forwards the write to the leader over p2p");
    assert_eq!(acked, hash);

    to_leader
        .request::<(), _>("conductor_transferLeader", rpc_params![])
        .await
        .expect("the leader sees a ready member to hand over to");
    let deadline = Instant::now() + LONG;
    let successor = loop {
        if let Some(new) = cluster
            .status(follower)
            .leader_id
            .filter(|&id| id != leader)
        {
            break new;
        }
        assert!(Instant::now() < deadline, "leadership never moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(successor, leader);
    let height = cluster.max_head();
    cluster.wait_for_height(height + 2, LONG).await;

    // Invariants 1–3, read through the connection held to the follower.
    let receipt: serde_json::Value = to_follower
        .request("eth_getTransactionReceipt", rpc_params![hash])
        .await
        .expect("receipt");
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    let mut included = 0;
    for number in 1..=cluster.max_head() {
        let block: serde_json::Value = to_follower
            .request(
                "eth_getBlockByNumber",
                rpc_params![format!("{number:#x}"), false],
            )
            .await
            .expect("block");
        included += block["transactions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|tx| **tx == json!(hash))
            .count();
    }
    assert_eq!(included, 1, "included exactly once");
    drop((held, to_leader, to_follower));
    for id in cluster.nodes.keys() {
        wait_for_a_free_place(&cluster.nodes[id].rpc_addr().to_string()).await;
    }
    cluster.assert_identical_chains().await;
    cluster.stop().await;
}

/// Waits until a plain HTTP call to `addr` is answered (the sockets a test held
/// there have closed).
async fn wait_for_a_free_place(addr: &str) {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    let deadline = Instant::now() + LONG;
    loop {
        let answer = raw_post(addr, body).await;
        if answer.starts_with("HTTP/1.1 200") {
            assert!(answer.contains(r#""result":"0x"#), "{answer}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no place freed on {addr}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An idle WebSocket on `url`, retried while an earlier one is still closing.
async fn hold_a_place(url: &str) -> jsonrpsee::ws_client::WsClient {
    let deadline = Instant::now() + LONG;
    loop {
        match WsClientBuilder::default().build(url).await {
            Ok(client) => return client,
            Err(e) => assert!(Instant::now() < deadline, "cannot connect to {url}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The JSON-RPC error object `error` carries; a transport error fails the test.
fn call_error(error: ClientError, what: &str) -> jsonrpsee::types::ErrorObjectOwned {
    let ClientError::Call(error) = error else {
        panic!("{what}: not a JSON-RPC error: {error}");
    };
    error
}

/// POSTs `body` on a fresh connection and returns the whole answer, head and body.
async fn raw_post(addr: &str, body: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.expect("read");
    answer
}

/// Filters and log subscriptions are bounded by what their criteria hold, not
/// only by count: a stranger naming thousands of addresses per filter meets a
/// clear `-32005` once the configured bytes are held, over HTTP and over
/// WebSocket, and what uninstalling or disconnecting gives back can be used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_and_log_subscriptions_are_bounded_by_the_bytes_they_hold() {
    // 256 bytes a filter and 64 an address: 2,000 addresses are 128,256 bytes,
    // so eight such filters fit in 1 MiB and a ninth does not.
    const BYTES: usize = 1 << 20;
    let cluster = TestCluster::start_with(1, 300, RARE_SNAPSHOTS, |_, config| {
        config.rpc.queries.max_filter_bytes = BYTES;
        config.rpc.queries.max_filters = 12;
    })
    .await;
    let node = cluster.wait_for_leader(LONG).await;
    let http = HttpClientBuilder::default()
        .build(cluster.url(node))
        .expect("client");
    let wide = |seed: u8| {
        let addresses: Vec<String> = (0..2_000u32)
            .map(|i| {
                let mut address = [seed; 20];
                address[16..].copy_from_slice(&i.to_be_bytes());
                format!("0x{}", alloy_primitives::hex::encode(address))
            })
            .collect();
        json!({ "address": addresses })
    };
    let limit = |error: ClientError, what: &str| {
        let error = call_error(error, what);
        assert_eq!(error.code(), -32005, "{what}: {}", error.message());
        error.message().to_string()
    };

    let mut installed = Vec::new();
    for seed in 0..8 {
        let id: String = http
            .request("eth_newFilter", rpc_params![wide(seed)])
            .await
            .expect("a filter within the bytes");
        installed.push(id);
    }
    let refused = http
        .request::<String, _>("eth_newFilter", rpc_params![wide(8)])
        .await
        .expect_err("a ninth wide filter is over the bytes");
    let message = limit(refused, "eth_newFilter");
    assert!(message.contains("uninstall some"), "{message}");

    // Over WebSocket, a wide log subscription meets the same bound; newHeads,
    // which names nothing, and a narrow filter still fit.
    let ws_url = cluster.url(node).replace("http://", "ws://");
    let ws = WsClientBuilder::default().build(&ws_url).await.expect("ws");
    let refused = ws
        .subscribe::<serde_json::Value, _>(
            "eth_subscribe",
            rpc_params!["logs", wide(9)],
            "eth_unsubscribe",
        )
        .await
        .expect_err("a wide log subscription is over the bytes");
    limit(refused, "eth_subscribe logs");
    let _heads = ws
        .subscribe::<serde_json::Value, _>(
            "eth_subscribe",
            rpc_params!["newHeads"],
            "eth_unsubscribe",
        )
        .await
        .expect("newHeads names nothing");
    let _narrow: String = http
        .request(
            "eth_newFilter",
            rpc_params![json!({ "address": [format!("0x{}", "11".repeat(20))] })],
        )
        .await
        .expect("a narrow filter fits in what is left");

    // Uninstalling gives the bytes back: the wide subscription fits now, and
    // holds them until its connection goes.
    let uninstalled: bool = http
        .request(
            "eth_uninstallFilter",
            rpc_params![installed.pop().expect("one")],
        )
        .await
        .expect("uninstall");
    assert!(uninstalled);
    let _logs = ws
        .subscribe::<serde_json::Value, _>(
            "eth_subscribe",
            rpc_params!["logs", wide(9)],
            "eth_unsubscribe",
        )
        .await
        .expect("a wide log subscription after an uninstall");
    let refused = http
        .request::<String, _>("eth_newFilter", rpc_params![wide(10)])
        .await
        .expect_err("the subscription holds the bytes");
    limit(refused, "eth_newFilter while subscribed");
    drop(ws);
    let deadline = Instant::now() + LONG;
    loop {
        match http
            .request::<String, _>("eth_newFilter", rpc_params![wide(10)])
            .await
        {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                limit(error, "eth_newFilter after the subscriber left");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("a closed subscription kept its bytes: {error}"),
        }
    }

    // And the count stays bounded too (12 here): eight wide filters and the
    // narrow one are installed; three more reach 12, the next is refused.
    for _ in 0..3 {
        http.request::<String, _>("eth_newFilter", rpc_params![json!({})])
            .await
            .expect("within the count");
    }
    let refused = http
        .request::<String, _>("eth_newFilter", rpc_params![json!({})])
        .await
        .expect_err("over the count");
    let message = limit(refused, "eth_newFilter over the count");
    assert!(message.contains("12 filters are installed"), "{message}");
    cluster.stop().await;
}

/// `eth_getLogs` scans at most the configured number of blocks, with the error
/// geth and reth give a range too wide (`-32602`, naming the limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_log_query_wider_than_the_configured_range_is_refused() {
    let cluster = TestCluster::start_with(1, 200, RARE_SNAPSHOTS, |_, config| {
        config.rpc.queries.max_blocks_per_filter = 5;
    })
    .await;
    let node = cluster.wait_for_leader(LONG).await;
    cluster.wait_for_height(6, LONG).await;
    let http = HttpClientBuilder::default()
        .build(cluster.url(node))
        .expect("client");
    let logs: Vec<serde_json::Value> = http
        .request(
            "eth_getLogs",
            rpc_params![json!({ "fromBlock": "0x1", "toBlock": "0x5" })],
        )
        .await
        .expect("five blocks are within the range");
    assert!(logs.is_empty());
    let error = http
        .request::<Vec<serde_json::Value>, _>(
            "eth_getLogs",
            rpc_params![json!({ "fromBlock": "0x0", "toBlock": "0x5" })],
        )
        .await
        .expect_err("six blocks are not");
    let error = call_error(error, "eth_getLogs");
    assert_eq!(error.code(), -32602);
    assert_eq!(error.message(), "block range of 6 exceeds the limit of 5");
    cluster.stop().await;
}

/// Numbers at the top of their range in a stranger's request get an answer, not
/// a panic: a revert whose reason offset is 2^64 - 1, a simulated block numbered
/// 2^64 - 1 followed by another, a simulated base fee of 2^64 - 1 that must rise,
/// and a tip of 2^128 - 1 to fill in. Each used to overflow (with overflow checks
/// on, as the devnet runs): the first three inside the RPC threads, which
/// answered "the call failed while executing", the last on the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn numbers_at_the_top_of_their_range_get_answers_not_panics() {
    let cluster = TestCluster::start(1, 300, RARE_SNAPSHOTS).await;
    let node = cluster.wait_for_leader(LONG).await;
    let http = HttpClientBuilder::default()
        .request_timeout(LONG)
        .build(cluster.url(node))
        .expect("client");
    let max64 = "0xffffffffffffffff";
    let answer = |what: &str, answer: Result<serde_json::Value, ClientError>| match answer {
        Ok(_) => String::new(),
        Err(ClientError::Call(error)) => {
            assert_ne!(
                error.message(),
                "the call failed while executing",
                "{what} panicked"
            );
            error.message().to_string()
        }
        Err(error) => panic!("{what}: no JSON-RPC answer: {error}"),
    };

    // Creation code reverting with Error(string) whose offset word is 2^64 - 1.
    let revert = "0x7f08c379a00000000000000000000000000000000000000000000000000000000060005267ffffffffffffffff60045260246000fd";
    let reverted = answer(
        "eth_call",
        http.request("eth_call", rpc_params![json!({ "data": revert }), "latest"])
            .await,
    );
    assert_eq!(reverted, "execution reverted");

    let numbered = answer(
        "eth_simulateV1 numbers",
        http.request(
            "eth_simulateV1",
            rpc_params![
                json!({ "blockStateCalls": [{ "blockOverrides": { "number": max64 } }, {}] }),
                "latest"
            ],
        )
        .await,
    );
    assert!(numbered.contains("2^64"), "{numbered}");

    let funded = "0x00000000000000000000000000000000000000aa";
    answer(
        "eth_simulateV1 base fee",
        http.request(
            "eth_simulateV1",
            rpc_params![
                json!({
                    "validation": true,
                    "blockStateCalls": [
                        {
                            "blockOverrides": { "baseFeePerGas": max64, "gasLimit": "0x5208" },
                            "stateOverrides": { funded: { "balance": "0xffffffffffffffffffffffffffffffff" } },
                            "calls": [{ "from": funded, "to": "0x00000000000000000000000000000000000000bb", "gas": "0x5208", "gasPrice": max64 }]
                        },
                        {}
                    ]
                }),
                "latest"
            ],
        )
        .await,
    );

    answer(
        "eth_fillTransaction",
        http.request(
            "eth_fillTransaction",
            rpc_params![json!({
                "from": "0x0000000000000000000000000000000000000001",
                "to": "0x0000000000000000000000000000000000000002",
                "maxPriorityFeePerGas": "0xffffffffffffffffffffffffffffffff"
            })],
        )
        .await,
    );
    let head: String = http
        .request("eth_blockNumber", rpc_params![])
        .await
        .expect("the node still answers");
    assert!(head.starts_with("0x"));
    cluster.stop().await;
}

/// Request and response sizes and batch lengths are the node's configuration:
/// a body over the configured size is refused (413), an answer over it is the
/// `-32008` error, a batch over the length is refused, and calls within them work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_and_response_sizes_follow_the_configuration() {
    let cluster = TestCluster::start_with(1, 300, RARE_SNAPSHOTS, |_, config| {
        config.rpc.connections.max_request_bytes = 1_024;
        config.rpc.connections.max_response_bytes = 400;
        config.rpc.connections.max_batch_len = 2;
    })
    .await;
    let node = cluster.wait_for_leader(LONG).await;
    let addr = cluster.nodes[&node].rpc_addr().to_string();
    let call = |id: u32, method: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": []}).to_string()
    };

    let small = raw_post(&addr, &call(1, "eth_chainId")).await;
    assert!(small.contains("\"result\""), "{small}");
    let padded = format!("{}{}", call(1, "eth_chainId"), " ".repeat(1_100));
    let large = raw_post(&addr, &padded).await;
    assert!(large.starts_with("HTTP/1.1 413"), "{large}");

    let block = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["latest", false]});
    let oversized = raw_post(&addr, &block.to_string()).await;
    assert!(oversized.contains("-32008"), "{oversized}");

    let two = format!("[{},{}]", call(1, "eth_chainId"), call(2, "eth_chainId"));
    let answered = raw_post(&addr, &two).await;
    assert_eq!(answered.matches("\"result\"").count(), 2, "{answered}");
    let three = format!(
        "[{},{},{}]",
        call(1, "eth_chainId"),
        call(2, "eth_chainId"),
        call(3, "eth_chainId")
    );
    let refused = raw_post(&addr, &three).await;
    assert!(!refused.contains("\"result\""), "{refused}");
    assert!(refused.contains("\"error\""), "{refused}");
    cluster.stop().await;
}

/// A WebSocket subscriber that stops reading holds at most the configured bytes of
/// notifications on the node: its subscription ends with an error notification
/// naming the limit (read once it reads again), its connection still answers calls,
/// and a subscriber on another connection that reads gets every transaction.
/// Invariant 5 too: the node keeps its leadership throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_that_stops_reading_is_dropped_at_the_byte_limit() {
    const BUDGET: usize = 256 << 10;
    const TXS: u64 = 40;
    let cluster = TestCluster::start_with(1, 300, RARE_SNAPSHOTS, |_, config| {
        config.rpc.connections.subscription_buffer_bytes = BUDGET;
    })
    .await;
    let node = cluster.wait_for_leader(LONG).await;
    let addr = cluster.nodes[&node].rpc_addr().to_string();
    let http = HttpClientBuilder::default()
        .build(cluster.url(node))
        .expect("client");

    let mut stalled = RawWebSocket::connect(&addr).await;
    stalled
        .send(r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newFlashblocks"]}"#)
        .await;
    let subscribed = stalled.next_json().await;
    assert!(subscribed["result"].is_string(), "{subscribed}");
    let reader = WsClientBuilder::default()
        .max_response_size(64 << 20)
        .build(cluster.url(node).replace("http://", "ws://"))
        .await
        .expect("ws");
    let mut transactions = reader
        .subscribe::<serde_json::Value, _>(
            "eth_subscribe",
            rpc_params!["newFlashblockTransactions"],
            "eth_unsubscribe",
        )
        .await
        .expect("newFlashblockTransactions");

    // 40 transactions of 100 KB calldata: each frame carries them raw (200 KB of
    // hex apiece), some 8 MB in all, far over the budget and the socket's buffers.
    let key = alloy_signer_local::PrivateKeySigner::from_bytes(
        &baton_primitives::dev_accounts(1)[0].private_key,
    )
    .expect("key");
    let wallet = alloy_network::EthereumWallet::from(key);
    let mut hashes = Vec::new();
    for nonce in 0..TXS {
        let bulky = alloy_rpc_types_eth::TransactionRequest::default()
            .to(alloy_primitives::Address::repeat_byte(0x55))
            .input(vec![0u8; 100_000].into())
            .gas_limit(1_500_000);
        let (hash, raw) = baton_testing::signed_raw(bulky, nonce, &wallet).await;
        let acked: alloy_primitives::B256 = http
            .request("eth_sendRawTransaction", rpc_params![raw])
            .await
            .expect("sent");
        assert_eq!(acked, hash);
        hashes.push(hash);
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < hashes.len() {
        let tx = tokio::time::timeout(LONG, transactions.next())
            .await
            .expect("the reading subscriber gets every transaction in time")
            .expect("stream open")
            .expect("a transaction");
        seen.insert(tx["hash"].as_str().expect("hash").to_string());
    }
    assert!(
        hashes.iter().all(|h| seen.contains(&format!("{h:#x}"))),
        "the reading subscriber saw every transaction"
    );

    // A notification waits at most 5 s for room; then the stalled subscriber reads
    // again: frames, then the reason it was dropped.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let deadline = Instant::now() + LONG;
    let reason = loop {
        assert!(
            Instant::now() < deadline,
            "no error notification: the stalled subscriber was never dropped"
        );
        let message = stalled.next_json().await;
        if let Some(error) = message["params"]["error"].as_str() {
            break error.to_string();
        }
        assert_eq!(message["method"], json!("eth_subscription"), "{message}");
    };
    assert!(
        reason.contains("read too slowly") && reason.contains(&format!("{BUDGET} bytes")),
        "{reason}"
    );
    stalled
        .send(r#"{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber","params":[]}"#)
        .await;
    let answer = stalled.next_json().await;
    assert_eq!(answer["id"], json!(2), "{answer}");
    assert!(
        answer["result"].is_string(),
        "the connection still answers: {answer}"
    );
    assert_eq!(cluster.status(node).leader_id, Some(node));
    cluster.stop().await;
}

/// A WebSocket client by hand, so that it can stop reading: a small receive
/// buffer, masked text frames out, whole messages in.
struct RawWebSocket {
    socket: tokio::net::TcpStream,
}

impl RawWebSocket {
    async fn connect(addr: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4_096).expect("receive buffer");
        let mut socket = socket
            .connect(addr.parse().expect("address"))
            .await
            .expect("connect");
        let upgrade = format!(
            "GET / HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        );
        socket.write_all(upgrade.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(socket.read_u8().await.expect("upgrade answer"));
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { socket }
    }

    /// Sends `text` as one masked text frame (an all-zero mask).
    async fn send(&mut self, text: &str) {
        let mut frame = vec![0x81u8];
        match text.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&u16::try_from(len).expect("short").to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(text.as_bytes());
        self.socket.write_all(&frame).await.expect("send");
    }

    /// The next whole text message, as JSON (pings and pongs skipped).
    async fn next_json(&mut self) -> serde_json::Value {
        let mut message = Vec::new();
        loop {
            let read = async {
                let first = self.socket.read_u8().await?;
                let len = match self.socket.read_u8().await? & 0x7f {
                    126 => u64::from(self.socket.read_u16().await?),
                    127 => self.socket.read_u64().await?,
                    len => u64::from(len),
                };
                let mut payload = vec![0; usize::try_from(len).expect("fits")];
                self.socket.read_exact(&mut payload).await?;
                std::io::Result::Ok((first, payload))
            };
            let (first, payload) = tokio::time::timeout(LONG, read)
                .await
                .expect("a message in time")
                .expect("read");
            if first & 0x0f >= 0x8 {
                continue;
            }
            message.extend_from_slice(&payload);
            if first & 0x80 != 0 {
                return serde_json::from_slice(&message).expect("JSON");
            }
        }
    }
}
