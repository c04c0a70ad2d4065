//! `net_` and `web3_`: facts about this node.

use alloy_primitives::U64;
use baton_p2p::Network;
use jsonrpsee::{
    core::{RpcResult, async_trait},
    proc_macros::rpc,
};

use crate::internal;

/// `net_`: the chain id as a network id, and this node's peers.
#[derive(Debug, Clone)]
pub struct NetHandler {
    chain_id: u64,
    network: Network,
}

impl NetHandler {
    pub fn new(chain_id: u64, network: Network) -> Self {
        Self { chain_id, network }
    }
}

#[rpc(server)]
pub trait NetApi {
    #[method(name = "net_version")]
    fn version(&self) -> RpcResult<String>;

    #[method(name = "net_listening")]
    fn listening(&self) -> RpcResult<bool>;

    #[method(name = "net_peerCount")]
    async fn peer_count(&self) -> RpcResult<U64>;
}

#[async_trait]
impl NetApiServer for NetHandler {
    fn version(&self) -> RpcResult<String> {
        Ok(self.chain_id.to_string())
    }

    fn listening(&self) -> RpcResult<bool> {
        Ok(true)
    }

    async fn peer_count(&self) -> RpcResult<U64> {
        let peers = self.network.connected_peers().await.map_err(internal)?;
        Ok(U64::from(peers))
    }
}

/// `web3_`: the client's name and version.
#[derive(Debug, Clone)]
pub struct Web3Handler {
    client_version: String,
}

impl Web3Handler {
    pub fn new(client_version: String) -> Self {
        Self { client_version }
    }
}

#[rpc(server)]
pub trait Web3Api {
    #[method(name = "web3_clientVersion")]
    fn client_version(&self) -> RpcResult<String>;
}

impl Web3ApiServer for Web3Handler {
    fn client_version(&self) -> RpcResult<String> {
        Ok(self.client_version.clone())
    }
}
