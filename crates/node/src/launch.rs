//! The wiring: one function that assembles a node in the order data flows
//! through it (DESIGN §1), every long-lived part a critical task.
//!
//! ```text
//!  genesis ─▶ Store (RocksDB) ─▶ p2p (allowlisted members) ─▶ Raft + state machine
//!          ─▶ peers (readiness, allowlist) ─▶ sequencer + watchdog (act while leader)
//!          ─▶ JSON-RPC (reads applied state; writes to the sequencer or the leader)
//! ```

use std::{net::SocketAddr, sync::Arc, time::Duration};

use baton_consensus::{Consensus, ConsensusConfig, Executed, MemberLinks, RaftRuntime, Storage};
use baton_p2p::{Network, P2pConfig, load_or_create_key};
use baton_primitives::{ChainSpec, mnemonic_accounts};
use baton_rpc::{
    BatonHandler, ConductorHandler, EthHandler, ExecPool, FaultHandler, Handlers, NetHandler,
    Outboxes, Submitter, Unlocked, Watcher, Web3Handler,
};
use baton_sequencer::{Sequencer, SequencerConfig};
use baton_storage::{DATA_FORMAT, Identity, RaftStore, Store};
use eyre::{WrapErr, bail, eyre};
use jsonrpsee::server::ServerHandle;
use tokio::sync::watch;

use crate::{
    config::{ClusterConfig, NodeConfig},
    peers,
    supervisor::{Supervisor, TaskFailure},
};

/// Largest Raft message: a snapshot of the chain, or a batch of full blocks.
const MAX_P2P_MESSAGE: usize = 256 * 1024 * 1024;
/// Forwarded writes waiting for the submitter; past it, members' forwarding
/// requests wait in turn (each on its own task).
const FORWARDED_WRITES_QUEUE: usize = 1024;

/// A running node. Dropping it does not stop it; call [`Node::stop`].
#[derive(Debug)]
pub struct Node {
    consensus: Consensus,
    network: Network,
    rpc: ServerHandle,
    rpc_addr: SocketAddr,
    rpc_methods: jsonrpsee::Methods,
    supervisor: Supervisor,
    shutdown: watch::Sender<bool>,
}

/// Starts a node. `rpc_listener`, when given, is served instead of binding
/// `config.rpc.addr` (tests pass a port-0 listener).
pub async fn launch(
    config: NodeConfig,
    rpc_listener: Option<std::net::TcpListener>,
) -> eyre::Result<Node> {
    if config.fault.clock_offset_ms != 0 {
        tracing::warn!(
            offset_ms = config.fault.clock_offset_ms,
            "fault injection: this process's clock is shifted"
        );
        baton_primitives::clock::shift(config.fault.clock_offset_ms);
    }
    let unlocked = if config.data.dev_unlocked {
        mnemonic_accounts(&config.data.dev_mnemonic, config.data.dev_accounts)?
    } else {
        Vec::new()
    };
    let spec = match &config.data.genesis {
        Some(path) => ChainSpec::from_file(path)?,
        None => ChainSpec::dev_with(&config.data.dev_mnemonic, config.data.dev_accounts)?
            .with_derived(&unlocked),
    };
    // <data_dir>/db holds the Raft store (raft/), the chain (chain, a link into
    // chain.d/ swapped whole by a snapshot install) and snapshots (snapshots/).
    let data = &config.data.data_dir.join("db");
    if data.join("CURRENT").exists() {
        eyre::bail!(
            "{} holds a database of data format 1 (one RocksDB for log and chain); this \
             baton keeps data format {}: start the node on an empty data dir (it catches \
             up from the others)",
            data.display(),
            baton_storage::DATA_FORMAT
        );
    }
    std::fs::create_dir_all(data)
        .wrap_err_with(|| format!("cannot create the data dir {}", data.display()))?;
    crate::disk::check(data, config.data.min_free_disk_bytes)?;
    let raft_store = RaftStore::open(&data.join("raft"))?;
    check_identity(&raft_store, &config, &spec)?;
    let store = Store::open_with_memory(&data.join("chain"), config.data.db_memory_bytes)?;
    // Sized for /metrics once the page's recorder is installed (below).
    let sized = (store.clone(), raft_store.clone());
    // Raft and the p2p transport get threads of their own (DESIGN §6).
    let runtime = Arc::new(RaftRuntime::new()?);
    let cluster = config.cluster.clone();
    let (network, inbound) = runtime
        .run(async move { start_p2p(&cluster).await })
        .await?;

    let supervisor = Supervisor::default();
    let executed = Executed::default();
    // Writes that followers forward here over p2p, for the RPC layer's submitter.
    let (forwarded, forwarded_writes) = tokio::sync::mpsc::channel(FORWARDED_WRITES_QUEUE);
    let (consensus, tasks) = Consensus::start(
        &ConsensusConfig {
            node_id: config.cluster.id,
            heartbeat: config.timing.heartbeat,
            election_timeout_min: config.timing.election_timeout_min,
            election_timeout_max: config.timing.election_timeout_max,
            snapshots: config.data.snapshots.clone(),
            standby_only: config.sequencer.standby_only,
            block_time: config.timing.block_time,
            state_history_blocks: config.data.state_history_blocks,
        },
        &spec,
        Storage {
            chain: store.clone(),
            raft: raft_store,
            snapshots: data.join("snapshots"),
        },
        runtime,
        MemberLinks {
            network: network.clone(),
            inbound,
            forwarded,
        },
        executed.clone(),
    )
    .await?;
    for (name, task) in tasks {
        supervisor.spawn_critical(name, task);
    }
    // A founder initializes the cluster (all founders alike, harmlessly); a node
    // that joins a running cluster waits for the leader to add it.
    if !config.cluster.join {
        let members = config
            .cluster
            .members
            .iter()
            .map(|(id, m)| (*id, m.member.clone()))
            .collect();
        consensus.bootstrap(members).await?;
    }
    let configured_peers = config
        .cluster
        .peers()
        .map(|(id, m)| (id, m.peer_id))
        .collect();
    supervisor.spawn_critical(
        "allowlist",
        peers::follow_membership(consensus.clone(), network.clone(), configured_peers),
    );
    let poll_every = (config.timing.block_time / 4)
        .clamp(Duration::from_millis(100), Duration::from_millis(500));
    let (members, readiness_poller) = peers::watch_readiness(consensus.clone(), poll_every);
    supervisor.spawn_critical("peers", readiness_poller);

    let (shutdown, shutdown_rx) = watch::channel(false);
    let (seal_delay, fault_seal_delay) = watch::channel(Duration::ZERO);
    let (sequencer, submit) = Sequencer::new(
        SequencerConfig {
            chain_id: spec.chain_id,
            block_time: config.timing.block_time,
            gas_limit: spec.gas_limit,
            coinbase: config.sequencer.coinbase,
            rotation_blocks: config.sequencer.rotation_blocks,
            members: members.clone(),
            fault_no_produce: config.fault.no_produce,
            fault_seal_delay,
        },
        consensus.clone(),
        store.clone(),
        executed,
    );
    // Admission executes and seals: on a thread of its own, off the RPC runtime.
    supervisor.spawn_critical_thread("sequencer", sequencer.run(shutdown_rx))?;
    supervisor.spawn_critical(
        "watchdog",
        baton_sequencer::watchdog(
            consensus.clone(),
            config.timing.block_time,
            members.clone(),
            config.sequencer.max_step_downs_per_minute,
        ),
    );

    let listener = match rpc_listener {
        Some(listener) => listener,
        None => std::net::TcpListener::bind(config.rpc.addr)
            .wrap_err_with(|| format!("cannot listen for JSON-RPC on {}", config.rpc.addr))?,
    };
    let submitter = Submitter::new(consensus.clone(), store.clone(), submit);
    supervisor.spawn_critical(
        "forwarded-writes",
        submitter.clone().serve_forwarded(forwarded_writes),
    );
    let admin_token: Option<Arc<str>> = config.rpc.admin_token.as_deref().map(Into::into);
    let outboxes = Outboxes::new(config.rpc.connections.subscription_buffer_bytes);
    let handlers = Handlers {
        watch: Watcher::new(consensus.clone(), store.clone(), outboxes.clone()),
        eth: EthHandler::new(
            spec.chain_id,
            consensus.clone(),
            store,
            submitter.clone(),
            ExecPool::start(config.rpc.exec.clone())
                .wrap_err("cannot start the RPC execution threads")?,
        )
        .with_flashblock_interval(config.rpc.flashblock_interval)
        .with_outboxes(outboxes)
        .with_query_limits(config.rpc.queries.clone())
        .with_unlocked(Unlocked::new(&unlocked))
        .with_state_history(config.data.state_history_blocks),
        net: NetHandler::new(spec.chain_id, network.clone()),
        web3: Web3Handler::new(format!("baton/v{}", env!("CARGO_PKG_VERSION"))),
        conductor: ConductorHandler::new(consensus.clone(), members, admin_token.is_some()),
        baton: BatonHandler::new(consensus.clone(), submitter),
        fault: config.fault.injection.then(|| {
            FaultHandler::new(
                consensus.clone(),
                network.clone(),
                Arc::new(supervisor.stopper()),
                seal_delay,
            )
        }),
    };
    let rpc_methods = baton_rpc::methods(handlers)?;
    let (rpc, rpc_addr) = baton_rpc::serve(
        listener,
        admin_token,
        crate::metrics::page(),
        &config.rpc.connections,
        rpc_methods.clone(),
    )
    .await?;
    supervisor.spawn_critical("rpc", rpc.clone().stopped());
    supervisor.spawn_critical("db-size", crate::metrics::record_db_sizes(sized.0, sized.1));
    if config.data.min_free_disk_bytes > 0 {
        supervisor.spawn_critical(
            "disk",
            crate::disk::guard(data.clone(), config.data.min_free_disk_bytes),
        );
    }
    tracing::info!(id = config.cluster.id, %rpc_addr, p2p = %config.cluster.p2p_addr, chain_id = spec.chain_id, "node started");

    Ok(Node {
        consensus,
        network,
        rpc,
        rpc_addr,
        rpc_methods,
        supervisor,
        shutdown,
    })
}

/// Starts libp2p with this node's key, allowing exactly the configured members.
async fn start_p2p(
    cluster: &ClusterConfig,
) -> eyre::Result<(
    Network,
    tokio::sync::mpsc::Receiver<baton_p2p::InboundRequest>,
)> {
    let keypair = load_or_create_key(&cluster.node_key)?;
    let me = &cluster.members[&cluster.id];
    if keypair.public().to_peer_id() != me.peer_id {
        bail!(
            "the key in {} is peer {}, but member {} is configured as peer {}",
            cluster.node_key.display(),
            keypair.public().to_peer_id(),
            cluster.id,
            me.peer_id
        );
    }
    Network::start(P2pConfig {
        keypair,
        listen: cluster.p2p_addr.clone(),
        peers: cluster
            .peers()
            .map(|(_, m)| (m.peer_id, m.p2p_addr.clone()))
            .collect(),
        max_message_bytes: MAX_P2P_MESSAGE,
        request_timeout: Duration::from_secs(10),
    })
    .await
    .wrap_err_with(|| format!("cannot start p2p on {}", cluster.p2p_addr))
}

/// Refuses a data dir written by another member, for another chain, or by a
/// version of baton with another data layout.
fn check_identity(store: &RaftStore, config: &NodeConfig, spec: &ChainSpec) -> eyre::Result<()> {
    let ours = Identity {
        node_id: config.cluster.id,
        genesis: spec.fingerprint,
        format: DATA_FORMAT,
    };
    let dir = config.data.data_dir.display();
    match store.identity()? {
        None => store.set_identity(&ours)?,
        Some(found) if found == ours => {}
        Some(found) if found.format != DATA_FORMAT => {
            return Err(eyre!(
                "data dir {dir} was written by another version of baton (data format {}, this \
                 build uses {DATA_FORMAT}): start this node on an empty data dir and it catches \
                 up from the cluster",
                found.format
            ));
        }
        Some(found) if found.genesis != ours.genesis => {
            return Err(eyre!(
                "data dir {dir} belongs to another chain (genesis {}), this node runs genesis {}",
                found.genesis,
                ours.genesis
            ));
        }
        Some(found) => {
            return Err(eyre!(
                "data dir {dir} belongs to member {}, not {}",
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

    /// The JSON-RPC methods this node serves, to call in-process: no socket and no
    /// connection limits, and no admin token (the admin methods refuse).
    pub fn rpc_methods(&self) -> &jsonrpsee::Methods {
        &self.rpc_methods
    }

    pub fn consensus(&self) -> &Consensus {
        &self.consensus
    }

    /// Resolves when a critical task ends: the node must then [`Node::fail_stop`].
    pub async fn failed(&mut self) -> TaskFailure {
        self.supervisor.failed().await
    }

    /// Fail-stop: marks this node unhealthy (never ready to lead again), says why,
    /// and stops every part.
    pub async fn fail_stop(self, failure: &TaskFailure) {
        tracing::error!(%failure, "a critical task failed: stopping this node");
        self.consensus.fail(failure.to_string());
        self.stop().await;
    }

    /// Stops every part and releases the data dir.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.rpc.stop();
        self.rpc.stopped().await;
        self.supervisor.abort_all();
        self.consensus.shutdown().await;
        self.network.shutdown().await;
    }
}
