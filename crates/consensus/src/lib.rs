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
//! [`Consensus::status`] ([`NodeStatus`], what `baton_nodeStatus` reports), and
//! the members' calls to each other over p2p ([`Consensus::member_status`],
//! [`Consensus::forward_write`]), answered by [`Consensus::answer`].
//! [`ChainView`] is what the applied chain looks like; [`ConsensusError`] says why
//! a request failed.

mod applier;
mod calls;
mod error;
mod executed;
mod leadership;
mod log_store;
mod membership;
mod network;
mod readiness;
mod runtime;
mod snapshot;
mod state_machine;
mod status;
mod transfer;
mod types;

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use baton_p2p::{InboundRequest, Network};
use baton_primitives::{ChainSpec, Member, NodeId};
use baton_storage::{RaftStore, Store};
use openraft::{Config, ServerState, type_config::async_runtime::WatchReceiver};
use tokio::sync::{mpsc, watch};

pub use applier::ChainView;
pub use calls::{ForwardedWrite, WriteRefused};
pub use error::ConsensusError;
pub use executed::{BatchKey, Executed};
pub use leadership::{LeaderTerm, Leadership, LeadershipWatch, Proposal};
pub use log_store::LogStore;
pub use network::{RaftRequest, RaftResponse};
pub use readiness::{CATCH_UP_LAG, ChangeReason, LeaderChange, Readiness};
pub use runtime::RaftRuntime;
pub use snapshot::Manifest;
pub use state_machine::StateMachine;
pub use status::{MemberInfo, NodeStatus, Role, Suffrage};
pub use transfer::Chunk;
pub use types::TypeConfig;

/// This node's links to the other members.
#[derive(Debug)]
pub struct MemberLinks {
    /// The p2p network, which Raft and [`calls`] use.
    pub network: Network,
    /// Requests from members, as the p2p network delivers them.
    pub inbound: mpsc::Receiver<InboundRequest>,
    /// Where writes that members forward here go (see [`ForwardedWrite`]).
    pub forwarded: mpsc::Sender<ForwardedWrite>,
}

/// The Raft instance every node runs.
type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// A long-lived task of the consensus layer, for the node to run as critical: if
/// one ends, this node can no longer take part in the cluster.
pub type Task = (&'static str, Pin<Box<dyn Future<Output = ()> + Send>>);

/// Raft timings, snapshots and log retention for one node.
#[derive(Debug, Clone)]
pub struct ConsensusConfig {
    pub node_id: NodeId,
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// When to snapshot (and purge the log behind it).
    pub snapshots: SnapshotPolicy,
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
            // Snapshots are triggered by our own policy (by log size and age, with a
            // per-node offset), not by openraft's fixed entry count.
            snapshot_policy: openraft::SnapshotPolicy::Never,
            // Keep some log behind the snapshot so a briefly lagging follower catches
            // up by replication rather than by a whole snapshot.
            max_in_snapshot_log_to_keep: self.snapshots.keep_entries,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        };
        config
            .validate()
            .map(Arc::new)
            .map_err(|e| ConsensusError::Config(e.to_string()))
    }
}

/// When a node snapshots: once this many bytes of log were appended since the
/// last snapshot (each node offsets the threshold by up to a quarter, so members
/// do not all snapshot at once), or when the last is this old and the log grew.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    pub log_bytes: u64,
    pub max_age: Duration,
    /// Log entries kept behind a snapshot, for members only briefly behind.
    pub keep_entries: u64,
    /// Largest chunk a snapshot is sent in.
    pub chunk_bytes: usize,
}

/// Where a node keeps what consensus writes.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The chain (what the state machine applies to).
    pub chain: Store,
    /// The Raft log and this node's records.
    pub raft: RaftStore,
    /// Where snapshots are built and received.
    pub snapshots: std::path::PathBuf,
}

/// One node's membership in the Raft group: what baton means by consensus, with
/// openraft behind it.
#[derive(Debug, Clone)]
pub struct Consensus {
    node_id: NodeId,
    raft: Raft,
    chain: watch::Receiver<ChainView>,
    readiness: Arc<readiness::ReadinessState>,
    /// The members' links: Raft's, and [`calls`] to other members.
    network: Network,
    /// What answering members' requests needs besides Raft.
    answering: Arc<network::Answering>,
    block_time: Duration,
    /// Keeps the Raft runtime alive as long as a handle exists.
    _runtime: Arc<RaftRuntime>,
}

impl Consensus {
    /// Opens the state machine on `storage.chain` and starts Raft on `runtime`.
    /// The returned tasks answer members' requests arriving on `links`, keep the
    /// readiness gate and the snapshot policy, and end when Raft stops; the caller
    /// runs them as critical tasks. `executed` is where this node's sequencer
    /// leaves what it executed, for the state machine to reuse.
    pub async fn start(
        config: &ConsensusConfig,
        spec: &ChainSpec,
        storage: Storage,
        runtime: Arc<RaftRuntime>,
        links: MemberLinks,
        executed: Executed,
    ) -> Result<(Self, Vec<Task>), ConsensusError> {
        let MemberLinks {
            network,
            inbound,
            forwarded,
        } = links;
        let raft_config = config.raft_config()?;
        let (state_machine, chain) =
            StateMachine::open(&storage, spec, config.state_history_blocks, executed)
                .map_err(ConsensusError::StateMachine)?;
        let snapshots = state_machine.snapshots().clone();
        // Invariant 5: a node whose storage or executor cannot reproduce its own
        // head runs as a follower only.
        let self_check = baton_execution::self_check(&storage.chain, spec.chain_id);
        if let Err(why) = &self_check {
            tracing::error!(%why, "self-check failed: this node will not lead");
        }
        let readiness =
            readiness::ReadinessState::new(config.node_id, config.standby_only, self_check);
        let log = LogStore::new(storage.raft);
        let appended = log.appended();
        let factory = network::NetworkFactory::new(
            network.clone(),
            readiness.clone(),
            config.snapshots.chunk_bytes,
        );
        let node_id = config.node_id;
        let raft = runtime
            .run(async move { Raft::new(node_id, raft_config, factory, log, state_machine).await })
            .await
            .map_err(ConsensusError::fatal)?;
        let answering = network::Answering::new(transfer::Receiver::new(snapshots), forwarded);
        let consensus = Self {
            node_id: config.node_id,
            raft: raft.clone(),
            chain,
            readiness,
            network,
            answering: Arc::new(answering),
            block_time: config.block_time,
            _runtime: runtime.clone(),
        };
        let policy = snapshot_policy(
            raft.clone(),
            storage.chain,
            appended,
            config.snapshots.clone(),
            config.node_id,
        );
        let tasks: Vec<Task> = vec![
            (
                "raft-rpc",
                runtime.task(network::serve(consensus.clone(), inbound)),
            ),
            (
                "readiness",
                runtime.task(readiness::watch(consensus.clone())),
            ),
            ("snapshots", runtime.task(policy)),
            ("raft", runtime.task(until_stopped(raft))),
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

/// Snapshots this node when its log grew by `policy.log_bytes` (offset per node)
/// since the last one, or when that is older than `policy.max_age` and the log grew.
/// The chain's memtables are flushed first, off the apply path, so the checkpoint
/// the state machine then takes between two applies has almost nothing to write.
async fn snapshot_policy(
    raft: Raft,
    chain: Store,
    appended: Arc<std::sync::atomic::AtomicU64>,
    policy: SnapshotPolicy,
    node_id: NodeId,
) {
    use std::sync::atomic::Ordering;
    // Up to a quarter more per node, spread by id: members do not snapshot at once.
    let offset = (node_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 1_000) as f64 / 4_000.0;
    let threshold = (policy.log_bytes as f64 * (1.0 + offset)) as u64;
    let mut since = appended.load(Ordering::Relaxed);
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let grown = appended.load(Ordering::Relaxed).saturating_sub(since);
        if grown < threshold && (grown == 0 || last.elapsed() < policy.max_age) {
            continue;
        }
        let flush = chain.clone();
        match tokio::task::spawn_blocking(move || flush.flush()).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot flush the chain before a snapshot"),
            Err(e) => tracing::warn!(error = %e, "the flush before a snapshot stopped"),
            Ok(Ok(())) => {}
        }
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
        since = appended.load(Ordering::Relaxed);
        last = tokio::time::Instant::now();
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
