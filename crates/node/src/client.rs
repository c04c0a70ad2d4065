//! A small JSON-RPC client for the CLI tools (`status`, `devnet`, `bench`).

use std::time::Duration;

use baton_consensus::{MemberInfo, NodeStatus};
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
