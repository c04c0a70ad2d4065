//! The wiring: one function that assembles a node in the order data flows
//! through it (DESIGN §1).
//!
//! ```text
//!  genesis ─▶ Store (RocksDB) ─▶ p2p (allowlisted members) ─▶ Raft + state machine
//!          ─▶ sequencer (acts while leader) ─▶ JSON-RPC (reads applied state)
//! ```

use std::{net::SocketAddr, time::Duration};

use baton_consensus::{Consensus, ConsensusConfig};
use baton_p2p::{Network, P2pConfig, load_or_create_key};
use baton_primitives::ChainSpec;
use baton_rpc::RpcContext;
use baton_sequencer::{Sequencer, SequencerConfig};
use baton_storage::{Identity, Store};
use eyre::{WrapErr, bail, eyre};
use jsonrpsee::server::ServerHandle;
use tokio::{sync::watch, task::JoinHandle};

use crate::config::NodeConfig;

/// Largest Raft message: a snapshot of the chain, or a batch of full blocks.
const MAX_P2P_MESSAGE: usize = 256 * 1024 * 1024;

/// A running node. Dropping it does not stop it; call [`Node::stop`].
#[derive(Debug)]
pub struct Node {
    consensus: Consensus,
    network: Network,
    rpc: ServerHandle,
    rpc_addr: SocketAddr,
    sequencer: JoinHandle<()>,
    readiness_poller: JoinHandle<()>,
    allowlist: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

/// Starts a node. `rpc_listener`, when given, is served instead of binding
/// `config.rpc_addr` (tests pass a port-0 listener).
pub async fn launch(
    config: NodeConfig,
    rpc_listener: Option<std::net::TcpListener>,
) -> eyre::Result<Node> {
    let spec = match &config.genesis {
        Some(path) => ChainSpec::from_file(path)?,
        None => ChainSpec::dev_with_accounts(config.dev_accounts),
    };

    let store = Store::open(&config.data_dir.join("db"))?;
    check_identity(&store, &config, &spec)?;

    let keypair = load_or_create_key(&config.node_key)?;
    let me = &config.members[&config.id];
    if keypair.public().to_peer_id() != me.peer_id {
        bail!(
            "the key in {} is peer {}, but member {} is configured as peer {}",
            config.node_key.display(),
            keypair.public().to_peer_id(),
            config.id,
            me.peer_id
        );
    }
    let peers = config
        .members
        .iter()
        .filter(|(id, _)| **id != config.id)
        .map(|(_, m)| (m.peer_id, m.p2p_addr.clone()))
        .collect();
    let (network, inbound) = Network::start(P2pConfig {
        keypair,
        listen: config.p2p_addr.clone(),
        peers,
        max_message_bytes: MAX_P2P_MESSAGE,
        request_timeout: Duration::from_secs(10),
    })
    .await
    .wrap_err_with(|| format!("cannot start p2p on {}", config.p2p_addr))?;

    let consensus_config = ConsensusConfig {
        node_id: config.id,
        heartbeat: config.timing.heartbeat,
        election_timeout_min: config.timing.election_timeout_min,
        election_timeout_max: config.timing.election_timeout_max,
        snapshot_every: config.snapshot_every,
        standby_only: config.standby_only,
        block_time: config.timing.block_time,
    };
    let consensus = Consensus::start(
        &consensus_config,
        &spec,
        store.clone(),
        network.clone(),
        inbound,
    )
    .await?;
    // A founder initializes the cluster (all founders alike, harmlessly); a node
    // that joins a running cluster waits for the leader to add it.
    if !config.join {
        consensus
            .bootstrap(
                config
                    .members
                    .iter()
                    .map(|(id, m)| (*id, m.member.clone()))
                    .collect(),
            )
            .await?;
    }
    let allowlist = crate::peers::follow_membership(
        consensus.clone(),
        network.clone(),
        config
            .members
            .iter()
            .filter(|(id, _)| **id != config.id)
            .map(|(id, m)| (*id, m.peer_id))
            .collect(),
    );

    let (members, readiness_poller) = crate::peers::watch_readiness(
        consensus.clone(),
        (config.timing.block_time / 4)
            .clamp(Duration::from_millis(100), Duration::from_millis(500)),
    );
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (sequencer, submit) = Sequencer::new(
        SequencerConfig {
            chain_id: spec.chain_id,
            block_time: config.timing.block_time,
            gas_limit: spec.gas_limit,
            coinbase: config.coinbase,
            rotation_blocks: config.rotation_blocks,
            members: members.clone(),
            fault_no_produce: config.fault_no_produce,
        },
        consensus.clone(),
        store.clone(),
    );
    let sequencer = tokio::spawn(sequencer.run(shutdown_rx));

    let listener = match rpc_listener {
        Some(listener) => listener,
        None => std::net::TcpListener::bind(config.rpc_addr)
            .wrap_err_with(|| format!("cannot listen for JSON-RPC on {}", config.rpc_addr))?,
    };
    let (rpc, rpc_addr) = baton_rpc::serve(
        listener,
        RpcContext {
            chain_id: spec.chain_id,
            consensus: consensus.clone(),
            store,
            network: network.clone(),
            submit,
            forwarder: Default::default(),
            filters: Default::default(),
            client_version: format!("baton/v{}", env!("CARGO_PKG_VERSION")),
            fault_injection: config.fault_injection,
            admin_token: config.admin_token.as_deref().map(Into::into),
            members: members.clone(),
        },
    )
    .await?;
    tracing::info!(id = config.id, %rpc_addr, p2p = %config.p2p_addr, chain_id = spec.chain_id, "node started");

    Ok(Node {
        consensus,
        network,
        rpc,
        rpc_addr,
        sequencer,
        readiness_poller,
        allowlist,
        shutdown,
    })
}

/// Refuses a data dir written by another member or for another chain.
fn check_identity(store: &Store, config: &NodeConfig, spec: &ChainSpec) -> eyre::Result<()> {
    let ours = Identity {
        node_id: config.id,
        genesis_hash: spec.genesis_hash,
    };
    match store.identity()? {
        None => store.set_identity(&ours)?,
        Some(found) if found == ours => {}
        Some(found) if found.genesis_hash != ours.genesis_hash => {
            return Err(eyre!(
                "data dir {} belongs to another chain (genesis {}), this node runs genesis {}",
                config.data_dir.display(),
                found.genesis_hash,
                ours.genesis_hash
            ));
        }
        Some(found) => {
            return Err(eyre!(
                "data dir {} belongs to member {}, not {}",
                config.data_dir.display(),
                found.node_id,
                ours.node_id
            ));
        }
    }
    Ok(())
}

impl Node {
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    pub fn consensus(&self) -> &Consensus {
        &self.consensus
    }

    /// Resolves when the RPC server stops (it only stops through [`Node::stop`]).
    pub async fn stopped(&self) {
        self.rpc.clone().stopped().await;
    }

    /// Stops every part and releases the data dir.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.rpc.stop();
        self.rpc.stopped().await;
        let _ = self.sequencer.await;
        self.readiness_poller.abort();
        self.allowlist.abort();
        self.consensus.shutdown().await;
        self.network.shutdown().await;
    }
}
