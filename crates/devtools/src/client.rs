//! A small JSON-RPC client for the CLI tools (`status`, `devnet`, `bench`, `chaos`),
//! and the transfers the load generators sign.

use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use baton_consensus::{MemberInfo, NodeStatus};
use baton_primitives::{NodeId, genesis::DEV_CHAIN_ID};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Membership {
    servers: Vec<MemberInfo>,
}

fn client(url: &str, timeout: Duration) -> eyre::Result<HttpClient> {
    Ok(HttpClientBuilder::default()
        .request_timeout(timeout)
        .build(url)?)
}

/// `baton_nodeStatus` of the node at `url`.
pub async fn node_status(url: &str, timeout: Duration) -> eyre::Result<NodeStatus> {
    Ok(client(url, timeout)?
        .request("baton_nodeStatus", rpc_params![])
        .await?)
}

/// `conductor_clusterMembership` as the node at `url` knows it.
pub async fn members(url: &str, timeout: Duration) -> eyre::Result<Vec<MemberInfo>> {
    let membership: Membership = client(url, timeout)?
        .request("conductor_clusterMembership", rpc_params![])
        .await?;
    Ok(membership.servers)
}

/// Stops critical task `name` of the node at `url` (a node started with fault
/// injection), as a crash of that task would.
pub async fn fault_stop_task(url: &str, name: &str, timeout: Duration) -> eyre::Result<()> {
    Ok(client(url, timeout)?
        .request("baton_faultStopTask", rpc_params![name])
        .await?)
}

/// Makes the node at `url` (started with fault injection) wait `ms` before
/// sealing each block it leads; `0` ends it.
pub async fn fault_seal_delay(url: &str, ms: u64, timeout: Duration) -> eyre::Result<()> {
    Ok(client(url, timeout)?
        .request("baton_faultSealDelay", rpc_params![ms])
        .await?)
}

/// The hash of block `number` on the node at `url` (an error if it has none).
pub async fn block_hash(url: &str, number: u64, timeout: Duration) -> eyre::Result<String> {
    let block: Option<serde_json::Value> = client(url, timeout)?
        .request(
            "eth_getBlockByNumber",
            rpc_params![format!("{number:#x}"), false],
        )
        .await?;
    block
        .and_then(|b| b.get("hash").and_then(|h| h.as_str()).map(str::to_string))
        .ok_or_else(|| eyre::eyre!("{url} has no block {number}"))
}

/// `conductor_transferLeaderToServer`: asks the leader at `url` (admin API, bearer
/// `token`) to hand leadership to member `to`.
pub async fn transfer_leader(
    url: &str,
    token: &str,
    to: NodeId,
    timeout: Duration,
) -> eyre::Result<()> {
    let mut headers = jsonrpsee::http_client::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse()?);
    let admin = HttpClientBuilder::default()
        .set_headers(headers)
        .request_timeout(timeout)
        .build(url)?;
    Ok(admin
        .request(
            "conductor_transferLeaderToServer",
            rpc_params![to.to_string(), ""],
        )
        .await?)
}

/// `eth_sendRawTransaction` of `raw` to the node at `url`: the hash it answers.
pub async fn send_raw_transaction(url: &str, raw: &Bytes, timeout: Duration) -> eyre::Result<B256> {
    Ok(client(url, timeout)?
        .request("eth_sendRawTransaction", rpc_params![raw])
        .await?)
}

/// Checks that the nodes at `urls` hold the same hash at every height up to the
/// lowest head among them (no fork); returns that height.
pub async fn identical_chains(urls: &[(NodeId, String)]) -> eyre::Result<u64> {
    let timeout = Duration::from_secs(5);
    let mut lowest = u64::MAX;
    for (_, url) in urls {
        lowest = lowest.min(node_status(url, timeout).await?.head_number);
    }
    for number in 0..=lowest {
        let mut first: Option<(NodeId, String)> = None;
        for (id, url) in urls {
            let hash = block_hash(url, number, timeout).await?;
            match &first {
                None => first = Some((*id, hash)),
                Some((first_id, expected)) if *expected != hash => eyre::bail!(
                    "fork at block {number}: node {first_id} has {expected}, node {id} has {hash}"
                ),
                Some(_) => {}
            }
        }
    }
    Ok(lowest)
}

/// The Prometheus page a node serves at `GET /metrics` on its RPC port.
pub async fn metrics(url: &str, timeout: Duration) -> eyre::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| eyre::eyre!("{url} is not an http:// URL"))?
        .trim_end_matches('/');
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {authority}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(timeout, fetch).await??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| eyre::eyre!("{url}/metrics: no HTTP body"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        eyre::bail!("{url}/metrics: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_string())
}

/// The value of the sample `name` (labels included, e.g.
/// `baton_block_seal_seconds{quantile="0.5"}`) on a Prometheus page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

/// Sample `name` on the node at `url` (0 where it is absent or the node is down).
pub async fn node_metric(url: &str, name: &str) -> f64 {
    metrics(url, Duration::from_secs(2))
        .await
        .ok()
        .and_then(|page| metric(&page, name))
        .unwrap_or(0.0)
}

/// A signed 1-wei EIP-1559 transfer to `to` on the dev chain: (hash, raw).
pub fn signed_transfer(
    signer: &PrivateKeySigner,
    nonce: u64,
    to: Address,
) -> eyre::Result<(B256, Bytes)> {
    let mut tx = TxEip1559 {
        chain_id: DEV_CHAIN_ID,
        nonce,
        gas_limit: 21_000,
        // High enough to stay above a base fee that climbs while blocks are full;
        // dev accounts can afford it.
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(to),
        value: U256::from(1),
        ..Default::default()
    };
    let signature = signer.sign_transaction_sync(&mut tx)?;
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    Ok((*envelope.tx_hash(), envelope.encoded_2718().into()))
}
