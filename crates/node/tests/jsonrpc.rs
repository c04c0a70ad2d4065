//! JSON-RPC at the protocol level, over raw HTTP: the error codes wallets and
//! libraries act on, request limits, batches; and that bad input loses nothing
//! (the node keeps producing and answering afterwards).

use std::time::Duration;

use baton_testing::{RARE_SNAPSHOTS, TestCluster};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const LONG: Duration = Duration::from_secs(30);

/// POSTs `body` to `addr` and returns (HTTP status, response body).
async fn post(addr: std::net::SocketAddr, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    // A body over the limit may be cut off by the server before it is all sent.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn error_code(body: &str) -> i64 {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("json ({e}): {body}"));
    value["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error code: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn protocol_errors_limits_and_batches() {
    let cluster = TestCluster::start(3, 300, RARE_SNAPSHOTS).await;
    cluster.wait_for_leader(LONG).await;
    let addr = cluster.nodes[&1].rpc_addr();

    let (_, body) = post(addr, b"{ this is not json").await;
    assert_eq!(error_code(&body), -32700, "parse error");

    let (_, body) = post(addr, br#"{"jsonrpc":"2.0","id":1}"#).await;
    assert_eq!(error_code(&body), -32600, "invalid request");

    let (_, body) = post(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"eth_noSuchMethod","params":[]}"#,
    )
    .await;
    assert_eq!(error_code(&body), -32601, "method not found");

    let (_, body) = post(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x12"]}"#,
    )
    .await;
    assert_eq!(error_code(&body), -32602, "invalid params");

    let (_, body) = post(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0xdeadbeef"]}"#,
    )
    .await;
    assert!(body.contains("invalid transaction"), "{body}");

    // A request body over the limit is refused without being read whole.
    let huge = vec![b' '; baton_rpc::MAX_REQUEST_BYTES as usize + 1024];
    let (status, _) = post(addr, &huge).await;
    assert_eq!(status, 413, "payload too large");

    // Batches work, in order, each answer by its id.
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},
        {"jsonrpc":"2.0","id":2,"method":"eth_blockNumber","params":[]},
        {"jsonrpc":"2.0","id":3,"method":"eth_noSuchMethod","params":[]}
    ]);
    let (_, body) = post(addr, batch.to_string().as_bytes()).await;
    let answers: Vec<Value> = serde_json::from_str(&body).expect("batch answer");
    assert_eq!(answers.len(), 3);
    assert_eq!(
        answers.iter().find(|a| a["id"] == 1).expect("id 1")["result"],
        "0x1ca3"
    );
    assert_eq!(
        answers.iter().find(|a| a["id"] == 3).expect("id 3")["error"]["code"],
        -32601
    );

    // A batch over the limit is refused as a whole.
    let calls: Vec<Value> = (0..=baton_rpc::MAX_BATCH_LEN)
        .map(|id| json!({"jsonrpc":"2.0","id":id,"method":"eth_chainId","params":[]}))
        .collect();
    let (_, body) = post(
        addr,
        serde_json::to_string(&calls).expect("json").as_bytes(),
    )
    .await;
    assert!(body.contains("error"), "{body}");

    // Nothing was lost: the node still answers and the chain still advances.
    let before = cluster.status(1).head_number;
    cluster.wait_for_height(before + 2, LONG).await;
    cluster.stop().await;
}
