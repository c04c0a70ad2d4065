//! baton-testing: what the tests of baton-node and baton-devtools share: an
//! in-process cluster harness ([`TestCluster`]) whose nodes are real `launch()`ed
//! nodes on 127.0.0.1, talking libp2p to each other ("killing" one stops it
//! abruptly), and a wallet helper.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use baton_consensus::{NodeStatus, Role};
use baton_devtools::client;
use baton_node::{
    config::{MemberEntry, NodeArgs, NodeConfig},
    launch::{Node, launch},
};
use baton_primitives::NodeId;
use tempfile::TempDir;

/// Sends `request` through `provider` and waits for its receipt.
pub async fn mined(
    provider: &impl alloy_provider::Provider,
    request: alloy_rpc_types_eth::TransactionRequest,
) -> alloy_rpc_types_eth::TransactionReceipt {
    provider
        .send_transaction(request)
        .await
        .expect("sent")
        .get_receipt()
        .await
        .expect("receipt")
}

/// Waits (up to 30 s) for `hash`'s receipt: its block is sealed at most a block
/// time after the transaction is acknowledged.
pub async fn receipt_of(
    provider: &impl alloy_provider::Provider,
    hash: impl std::borrow::Borrow<alloy_primitives::B256>,
) -> alloy_rpc_types_eth::TransactionReceipt {
    let hash = *hash.borrow();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(receipt) = provider
            .get_transaction_receipt(hash)
            .await
            .expect("receipt")
        {
            return receipt;
        }
        assert!(Instant::now() < deadline, "no receipt for {hash}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `request` with `nonce`, the dev chain's id and the fees tests pay (2 gwei cap,
/// 1 wei tip), signed by `wallet` as a wallet sends it raw: (hash, EIP-2718 bytes).
pub async fn signed_raw(
    request: alloy_rpc_types_eth::TransactionRequest,
    nonce: u64,
    wallet: &alloy_network::EthereumWallet,
) -> (alloy_primitives::B256, alloy_primitives::Bytes) {
    use alloy_network::{NetworkTransactionBuilder, TransactionBuilder};
    let request = request
        .with_nonce(nonce)
        .with_chain_id(baton_primitives::genesis::DEV_CHAIN_ID)
        .with_max_fee_per_gas(2_000_000_000)
        .with_max_priority_fee_per_gas(1);
    let tx = NetworkTransactionBuilder::<alloy_network::Ethereum>::build(request, wallet)
        .await
        .expect("signed");
    let raw = alloy_eips::eip2718::Encodable2718::encoded_2718(&tx);
    (*tx.tx_hash(), raw.into())
}

/// A snapshot threshold (bytes of log) no test reaches: snapshots only when a
/// test asks for them.
pub const RARE_SNAPSHOTS: u64 = 64 << 20;

/// A cluster of in-process nodes in one temporary dir.
#[derive(Debug)]
pub struct TestCluster {
    _dir: TempDir,
    pub configs: BTreeMap<NodeId, NodeConfig>,
    pub nodes: BTreeMap<NodeId, Node>,
}

fn free_port() -> u16 {
    baton_devtools::cluster::unused_port().expect("free port")
}

impl TestCluster {
    pub async fn start(size: u64, block_time_ms: u64, snapshot_log_bytes: u64) -> Self {
        Self::start_with(size, block_time_ms, snapshot_log_bytes, |_, _| {}).await
    }

    /// Like [`TestCluster::start`], with `tweak` applied to each node's config first.
    pub async fn start_with(
        size: u64,
        block_time_ms: u64,
        snapshot_log_bytes: u64,
        tweak: impl Fn(NodeId, &mut NodeConfig),
    ) -> Self {
        // `RUST_LOG=baton_consensus=debug cargo test …` shows what the nodes log.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut members = Vec::new();
        let mut ports = BTreeMap::new();
        for id in 1..=size {
            let key = baton_p2p::load_or_create_key(&dir.path().join(format!("node{id}/node.key")))
                .expect("key");
            let (rpc, p2p) = (free_port(), free_port());
            members.push(MemberEntry {
                id,
                peer_id: key.public().to_peer_id().to_string(),
                p2p_addr: format!("/ip4/127.0.0.1/tcp/{p2p}"),
                rpc_url: format!("http://127.0.0.1:{rpc}"),
            });
            ports.insert(id, (rpc, p2p));
        }
        let mut configs = BTreeMap::new();
        for (id, (rpc, p2p)) in ports {
            let mut args = NodeArgs::default();
            args.cluster.id = Some(id);
            args.cluster.p2p_addr = Some(format!("/ip4/127.0.0.1/tcp/{p2p}"));
            args.cluster.members = members.clone();
            args.data.data_dir = Some(dir.path().join(format!("node{id}")));
            args.data.snapshot_log_bytes = Some(snapshot_log_bytes);
            args.rpc.rpc_addr = Some(format!("127.0.0.1:{rpc}").parse().expect("addr"));
            args.timing.block_time_ms = Some(block_time_ms);
            let mut config = args.resolve().expect("valid config");
            tweak(id, &mut config);
            configs.insert(id, config);
        }
        let mut cluster = Self {
            _dir: dir,
            configs,
            nodes: BTreeMap::new(),
        };
        for id in 1..=size {
            cluster.restart(id).await;
        }
        cluster
    }

    /// Starts (or restarts) node `id` on its data dir.
    pub async fn restart(&mut self, id: NodeId) {
        let config = self.configs[&id].clone();
        let node = launch(config, None).await.expect("launch");
        self.nodes.insert(id, node);
    }

    /// Stops node `id` without warning the others.
    pub async fn kill(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).expect("node is running");
        node.stop().await;
    }

    /// Some running node other than `leader`.
    pub fn follower_of(&self, leader: NodeId) -> NodeId {
        *self
            .nodes
            .keys()
            .find(|id| **id != leader)
            .expect("a running follower")
    }

    pub fn status(&self, id: NodeId) -> NodeStatus {
        self.nodes[&id].consensus().status()
    }

    pub fn url(&self, id: NodeId) -> String {
        format!("http://{}", self.nodes[&id].rpc_addr())
    }

    /// Waits until exactly one running node leads and every running node agrees.
    pub async fn wait_for_leader(&self, timeout: Duration) -> NodeId {
        let deadline = Instant::now() + timeout;
        loop {
            let leaders: Vec<NodeId> = self
                .nodes
                .keys()
                .copied()
                .filter(|id| self.status(*id).role == Role::Leader)
                .collect();
            if let [leader] = leaders[..]
                && self
                    .nodes
                    .keys()
                    .all(|id| self.status(*id).leader_id == Some(leader))
            {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running node's head is at least `number`.
    pub async fn wait_for_height(&self, number: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self
            .nodes
            .keys()
            .all(|id| self.status(*id).head_number >= number)
        {
            let heads: Vec<_> = self
                .nodes
                .keys()
                .map(|id| (id, self.status(*id).head_number))
                .collect();
            assert!(
                Instant::now() < deadline,
                "not all nodes reached {number} within {timeout:?}: {heads:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn max_head(&self) -> u64 {
        self.nodes
            .keys()
            .map(|id| self.status(*id).head_number)
            .max()
            .unwrap_or(0)
    }

    /// Block hashes 0..=upto as node `id` serves them over JSON-RPC.
    pub async fn hashes(&self, id: NodeId, upto: u64) -> Vec<String> {
        let url = self.url(id);
        let mut hashes = Vec::new();
        for number in 0..=upto {
            hashes.push(
                client::block_hash(&url, number, Duration::from_secs(5))
                    .await
                    .expect("block"),
            );
        }
        hashes
    }

    /// Every running node serves the same hash at every height up to the lowest
    /// head (no fork); returns that height.
    pub async fn assert_identical_chains(&self) -> u64 {
        let urls: Vec<(NodeId, String)> =
            self.nodes.keys().map(|id| (*id, self.url(*id))).collect();
        client::identical_chains(&urls)
            .await
            .expect("identical chains")
    }

    pub async fn stop(mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill(id).await;
        }
    }
}
