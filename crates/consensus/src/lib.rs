//! baton-consensus: the Raft group that orders baton's log, and the state machine
//! that turns the committed log into the chain.
//!
//! ```text
//!  sequencer ──propose───────▶ Raft (openraft) ──append──▶ LogStore (RocksDB, fsync)
//!                                 │  ▲
//!                       network.rs│  │ Raft RPCs over baton-p2p
//!                                 ▼  │
//!                              StateMachine ──▶ blocks in RocksDB ──▶ ChainView watch
//! ```
//!
//! Only this crate names openraft. Everyone else calls what baton means:
//! [`Consensus::barrier`] and [`Consensus::propose`] (the leader's writes, in order,
//! each resolving on commit and on apply), [`Consensus::leadership`],
//! [`Consensus::hand_over`] with a [`ChangeReason`], membership changes, and
//! [`Consensus::status`] ([`NodeStatus`], what `baton_nodeStatus` reports).
//! [`ChainView`] is what the applied chain looks like; [`ConsensusError`] says why
//! a request failed.

mod error;
mod leadership;
mod log_store;
mod membership;
mod network;
mod readiness;
mod state_machine;
mod status;
mod types;

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use baton_p2p::{InboundRequest, Network};
use baton_primitives::{ChainSpec, Member, NodeId};
use baton_storage::Store;
use openraft::{Config, ServerState, SnapshotPolicy, type_config::async_runtime::WatchReceiver};
use tokio::sync::{mpsc, watch};

pub use error::ConsensusError;
pub use leadership::{LeaderTerm, Leadership, LeadershipWatch, Proposal};
pub use log_store::LogStore;
pub use readiness::{CATCH_UP_LAG, ChangeReason, LeaderChange, Readiness};
pub use state_machine::{ChainView, StateMachine};
pub use status::{MemberInfo, NodeStatus, Role, Suffrage};
pub use types::TypeConfig;

/// The Raft instance every node runs.
type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// A long-lived task of the consensus layer, for the node to run as critical: if
/// one ends, this node can no longer take part in the cluster.
pub type Task = (&'static str, Pin<Box<dyn Future<Output = ()> + Send>>);

/// Raft timings and log retention for one node.
#[derive(Debug, Clone)]
pub struct ConsensusConfig {
    pub node_id: NodeId,
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot after this many applied entries (and purge the log behind it).
    pub snapshot_every: u64,
    /// Never stand for election (invariant 5).
    pub standby_only: bool,
    /// The chain's block time: a head older than three of them is unhealthy.
    pub block_time: Duration,
    /// Keep state for this many blocks behind the head (`None`: an archive).
    pub state_history_blocks: Option<u64>,
}

impl ConsensusConfig {
    fn raft_config(&self) -> Result<Arc<Config>, ConsensusError> {
        let millis = |d: Duration| d.as_millis() as u64;
        let config = Config {
            cluster_name: "baton".to_string(),
            heartbeat_interval: millis(self.heartbeat),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            // A candidate first asks whether it could win, so a node that was cut off
            // cannot bump the term and depose a healthy leader when it returns.
            enable_pre_vote: Some(true),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            // Keep some log behind the snapshot so a briefly lagging follower catches
            // up by replication rather than by a whole snapshot.
            max_in_snapshot_log_to_keep: self.snapshot_every.min(1_000),
            install_snapshot_timeout: 10_000,
            ..Default::default()
        };
        config
            .validate()
            .map(Arc::new)
            .map_err(|e| ConsensusError::Config(e.to_string()))
    }
}

/// One node's membership in the Raft group: what baton means by consensus, with
/// openraft behind it.
#[derive(Debug, Clone)]
pub struct Consensus {
    node_id: NodeId,
    raft: Raft,
    chain: watch::Receiver<ChainView>,
    readiness: Arc<readiness::ReadinessState>,
    block_time: Duration,
}

impl Consensus {
    /// Opens the state machine on `store` and starts Raft. The returned tasks answer
    /// members' RPCs arriving on `inbound`, keep the readiness gate, and end when
    /// Raft stops; the caller runs them as critical tasks.
    pub async fn start(
        config: &ConsensusConfig,
        spec: &ChainSpec,
        store: Store,
        network: Network,
        inbound: mpsc::Receiver<InboundRequest>,
    ) -> Result<(Self, Vec<Task>), ConsensusError> {
        let raft_config = config.raft_config()?;
        let (state_machine, chain) =
            StateMachine::open(store.clone(), spec, config.state_history_blocks)
                .map_err(ConsensusError::StateMachine)?;
        // Invariant 5: a node whose storage or executor cannot reproduce its own
        // head runs as a follower only.
        let self_check = baton_execution::self_check(&store, spec.chain_id);
        if let Err(why) = &self_check {
            tracing::error!(%why, "self-check failed: this node will not lead");
        }
        let readiness =
            readiness::ReadinessState::new(config.node_id, config.standby_only, self_check);
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network::NetworkFactory::new(network, readiness.clone()),
            LogStore::new(store),
            state_machine,
        )
        .await
        .map_err(ConsensusError::fatal)?;
        let consensus = Self {
            node_id: config.node_id,
            raft: raft.clone(),
            chain,
            readiness: readiness.clone(),
            block_time: config.block_time,
        };
        let tasks: Vec<Task> = vec![
            (
                "raft-rpc",
                Box::pin(network::serve(raft.clone(), readiness, inbound)),
            ),
            ("readiness", Box::pin(readiness::watch(consensus.clone()))),
            ("raft", Box::pin(until_stopped(raft))),
        ];
        Ok((consensus, tasks))
    }

    /// Forms the cluster from `members` if this node has never been part of one.
    /// Every founding member may call this with the same set: the membership entry
    /// they write at index 0 is identical, so there is nothing to conflict.
    pub async fn bootstrap(&self, members: BTreeMap<NodeId, Member>) -> Result<(), ConsensusError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(ConsensusError::fatal)?;
        if initialized {
            return Ok(());
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            // Another founder's entry reached us first: same membership, nothing to do.
            Err(openraft::errors::RaftError::APIError(
                openraft::errors::InitializeError::NotAllowed(_),
            )) => Ok(()),
            Err(e) => Err(ConsensusError::raft(e, |e| {
                ConsensusError::Membership(e.to_string())
            })),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The applied chain; changes after every applied batch.
    pub fn chain(&self) -> watch::Receiver<ChainView> {
        self.chain.clone()
    }

    /// Stops Raft. The store is released once every clone of this handle is dropped.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

/// Resolves when Raft's core stops: after a storage error or a failed apply
/// (openraft treats both as fatal), or at shutdown.
async fn until_stopped(raft: Raft) {
    let mut metrics = raft.metrics();
    loop {
        if metrics.borrow_watched().state == ServerState::Shutdown {
            return;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
