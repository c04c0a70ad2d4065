//! Raft RPCs over baton-p2p, and the members' other calls ([`crate::calls`]).
//!
//! ```text
//!  openraft ──RaftNetworkV2──▶ PeerClient ──encode──▶ p2p request ─────▶ peer
//!  peer ──p2p InboundRequest──▶ serve() ──decode──▶ Raft::{append_entries, vote, …}
//! ```
//!
//! Contract: every message is one [`RaftRequest`] answered by one [`RaftResponse`]
//! ([`Consensus::answer`]). Only members' peer ids reach `serve` (the p2p
//! allowlist); bytes that do not decode are answered with [`RaftResponse::Refused`],
//! never a panic.

use std::{future::Future, sync::Arc, time::Duration};

use alloy_primitives::{B256, Bytes};
use baton_p2p::{InboundRequest, Network, PeerId};
use baton_primitives::{Member, NodeId, codec};
use openraft::{
    OptionalSend,
    errors::{NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable},
    network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2},
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
        TransferLeaderResponse, VoteRequest, VoteResponse,
    },
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{
    Consensus, ConsensusError,
    calls::{ForwardedWrite, WriteRefused},
    readiness::{ChangeReason, ReadinessState},
    snapshot::Manifest,
    status::NodeStatus,
    transfer::{Chunk, Receiver},
    types::{Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote},
};

type C = TypeConfig;

/// A message from one member to another: Raft's, or one of [`crate::calls`]
/// (the wire format: [`baton_primitives::codec`]).
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    Append(AppendEntriesRequest<C>),
    Vote(VoteRequest<C>),
    PreVote(VoteRequest<C>),
    /// A snapshot is coming (see `transfer`): what it holds.
    SnapshotOffer {
        vote: Vote,
        meta: SnapshotMeta,
        manifest: Manifest,
    },
    SnapshotChunk(Chunk),
    /// Every chunk was sent: verify and install snapshot `id`.
    SnapshotDone {
        vote: Vote,
        meta: SnapshotMeta,
        id: B256,
    },
    /// A hand-over, with why the leader makes it (recorded by the new leader).
    TransferLeader(TransferLeaderRequest<C>, Option<ChangeReason>),
    /// What this member reports as `baton_nodeStatus` (the readiness poll).
    Status,
    /// A raw transaction a member forwards to the leader.
    Write(Bytes),
}

/// The answer to a [`RaftRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    Append(Result<AppendEntriesResponse<C>, RaftError<C>>),
    Vote(Result<VoteResponse<C>, RaftError<C>>),
    Snapshot(Result<SnapshotResponse<C>, RaftError<C>>),
    /// Bytes of each snapshot file the receiver holds already.
    SnapshotHave(Vec<u64>),
    SnapshotAck,
    TransferLeader(Result<TransferLeaderResponse<C>, RaftError<C>>),
    /// A [`NodeStatus`] as JSON: its readiness is an internally tagged enum, which
    /// bincode cannot decode.
    Status(Vec<u8>),
    Written(Result<B256, WriteRefused>),
    /// The request could not be decoded.
    Refused(String),
}

impl RaftRequest {
    /// Whether Raft acts on this message under the sender's vote (appends, votes,
    /// hand-overs, snapshot installs). Raft trusts a member's own messages as it
    /// trusts the member: crash faults, not forged ones. The rest are calls any
    /// member may make and are checked as input.
    pub fn is_raft_own(&self) -> bool {
        match self {
            Self::Append(_)
            | Self::Vote(_)
            | Self::PreVote(_)
            | Self::TransferLeader(..)
            | Self::SnapshotDone { .. } => true,
            Self::SnapshotOffer { .. } | Self::SnapshotChunk(_) | Self::Status | Self::Write(_) => {
                false
            }
        }
    }
}

/// Makes a [`PeerClient`] for each member openraft replicates to.
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    network: Network,
    readiness: Arc<ReadinessState>,
    /// Largest snapshot chunk, in bytes.
    chunk_bytes: usize,
}

impl NetworkFactory {
    pub(crate) fn new(
        network: Network,
        readiness: Arc<ReadinessState>,
        chunk_bytes: usize,
    ) -> Self {
        Self {
            network,
            readiness,
            chunk_bytes,
        }
    }
}

impl RaftNetworkFactory<C> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient {
            network: self.network.clone(),
            readiness: self.readiness.clone(),
            chunk_bytes: self.chunk_bytes,
            target,
            peer: node
                .peer_id
                .parse()
                .map_err(|e| format!("member {target} peer id {:?}: {e}", node.peer_id)),
        }
    }
}

/// Sends Raft RPCs to one member.
#[derive(Debug)]
pub(crate) struct PeerClient {
    network: Network,
    readiness: Arc<ReadinessState>,
    chunk_bytes: usize,
    target: NodeId,
    peer: Result<PeerId, String>,
}

impl PeerClient {
    async fn call(
        &self,
        request: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftResponse, RPCError<C>> {
        let peer = self
            .peer
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::from_string(e)))?;
        let bytes =
            codec::encode(&request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = tokio::time::timeout(timeout, self.network.request(peer, bytes))
            .await
            .map_err(|_| {
                RPCError::Network(NetworkError::from_string(format!(
                    "member {} did not answer within {timeout:?}",
                    self.target
                )))
            })?
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        match codec::decode(&reply) {
            Ok(RaftResponse::Refused(why)) => Err(RPCError::Network(NetworkError::from_string(
                format!("member {} refused the request: {why}", self.target),
            ))),
            Ok(response) => Ok(response),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl PeerClient {
    /// Offers the snapshot, sends what the member lacks chunk by chunk, then asks it
    /// to install. A local read failure is a network error (openraft retries, with
    /// the newest snapshot), never a storage error (which would be fatal here).
    async fn send_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let Snapshot { meta, snapshot } = snapshot;
        let manifest = snapshot.manifest.clone();
        let id = manifest.id(&meta);
        let offer = RaftRequest::SnapshotOffer {
            vote,
            meta: meta.clone(),
            manifest: (*manifest).clone(),
        };
        let held = match self.call(offer, CHUNK_TTL).await? {
            RaftResponse::SnapshotHave(held) => held,
            RaftResponse::Snapshot(result) => return Ok(remote(result)?),
            other => return Err(unexpected(other).into()),
        };
        let local = |e: std::io::Error| {
            StreamingError::Network(NetworkError::from_string(format!(
                "reading snapshot {id}: {e}"
            )))
        };
        let mut sent = 0u64;
        for (index, file) in manifest.files.iter().enumerate() {
            let mut offset = held.get(index).copied().unwrap_or(0).min(file.len);
            let path = snapshot.dir.join(&file.name);
            let source = std::fs::File::open(&path).map_err(local)?;
            while offset < file.len {
                let len = (file.len - offset).min(self.chunk_bytes as u64) as usize;
                let mut data = vec![0u8; len];
                std::os::unix::fs::FileExt::read_exact_at(&source, &mut data, offset)
                    .map_err(local)?;
                let chunk = Chunk::new(id, index as u32, offset, data);
                match self
                    .call(RaftRequest::SnapshotChunk(chunk), CHUNK_TTL)
                    .await?
                {
                    RaftResponse::SnapshotAck => {}
                    other => return Err(unexpected(other).into()),
                }
                offset += len as u64;
                sent += len as u64;
            }
        }
        metrics::counter!("baton_snapshot_sent_bytes_total").increment(sent);
        tracing::info!(target = self.target, %id, sent, total = manifest.bytes(), "sent a snapshot");
        // Installing a large chain takes a while: give it more than one chunk's time.
        let done = RaftRequest::SnapshotDone { vote, meta, id };
        match self.call(done, option.hard_ttl().max(INSTALL_TTL)).await? {
            RaftResponse::Snapshot(result) => Ok(remote(result)?),
            other => Err(unexpected(other).into()),
        }
    }
}

/// How long one snapshot message (offer or chunk) may take.
const CHUNK_TTL: Duration = Duration::from_secs(10);
/// How long a member may take to verify and install a whole snapshot.
const INSTALL_TTL: Duration = Duration::from_secs(300);

fn unexpected(response: RaftResponse) -> RPCError<C> {
    RPCError::Network(NetworkError::from_string(format!(
        "unexpected response {response:?}"
    )))
}

fn remote<T>(result: Result<T, RaftError<C>>) -> Result<T, RPCError<C>> {
    result.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
}

impl RaftNetworkV2<C> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        match self
            .call(RaftRequest::Append(rpc), option.hard_ttl())
            .await?
        {
            RaftResponse::Append(result) => remote(result),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self.call(RaftRequest::Vote(rpc), option.hard_ttl()).await? {
            RaftResponse::Vote(result) => remote(result),
            other => Err(unexpected(other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self
            .call(RaftRequest::PreVote(rpc), option.hard_ttl())
            .await?
        {
            RaftResponse::Vote(result) => remote(result),
            other => Err(unexpected(other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            response = self.send_snapshot(vote, snapshot, option) => response,
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        let why = self.readiness.handover_reason();
        match self
            .call(RaftRequest::TransferLeader(req, why), option.hard_ttl())
            .await?
        {
            RaftResponse::TransferLeader(result) => remote(result),
            other => Err(unexpected(other)),
        }
    }
}

/// Answers members' requests until the p2p network stops, each with
/// [`Consensus::answer`].
pub(crate) async fn serve(consensus: Consensus, mut inbound: mpsc::Receiver<InboundRequest>) {
    while let Some(request) = inbound.recv().await {
        let consensus = consensus.clone();
        // Each request on its own task: a slow snapshot install must not hold up
        // heartbeats, and votes must not wait behind appends.
        tokio::spawn(async move {
            let response = match codec::decode(&request.payload) {
                Ok(decoded) => consensus.answer(decoded).await,
                Err(e) => {
                    tracing::warn!(error = %e, "refused a malformed Raft request");
                    RaftResponse::Refused(e.to_string())
                }
            };
            match codec::encode(&response) {
                Ok(bytes) => request.respond(bytes),
                Err(e) => tracing::warn!(error = %e, "cannot encode a Raft response"),
            }
        });
    }
}

/// What answering members needs besides Raft: the snapshot being received,
/// where forwarded writes go, and when appends arrive.
#[derive(Debug)]
pub(crate) struct Answering {
    snapshots: Receiver,
    writes: mpsc::Sender<ForwardedWrite>,
    appends: AppendClock,
}

impl Answering {
    pub(crate) fn new(snapshots: Receiver, writes: mpsc::Sender<ForwardedWrite>) -> Self {
        Self {
            snapshots,
            writes,
            appends: AppendClock::default(),
        }
    }
}

/// When this node last heard an append (or heartbeat) from a leader. The gaps
/// between them show whether the leader's heartbeats ever wait behind its work
/// (DESIGN §6: nothing heavy on the consensus runtime).
#[derive(Debug, Default)]
struct AppendClock {
    last: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl AppendClock {
    fn arrived(&self) {
        let now = std::time::Instant::now();
        if let Some(last) = self.last.lock().replace(now) {
            metrics::histogram!("baton_raft_append_gap_seconds").record(now - last);
        }
    }
}

impl Consensus {
    /// This node's answer to a member's `request`.
    pub async fn answer(&self, request: RaftRequest) -> RaftResponse {
        let raft = &self.raft;
        let Answering {
            snapshots,
            writes,
            appends,
        } = &*self.answering;
        match request {
            RaftRequest::Append(rpc) => {
                appends.arrived();
                let handling = std::time::Instant::now();
                let response = raft.append_entries(rpc).await;
                metrics::histogram!("baton_raft_append_seconds").record(handling.elapsed());
                RaftResponse::Append(response)
            }
            RaftRequest::Vote(rpc) => RaftResponse::Vote(raft.vote(rpc).await),
            RaftRequest::PreVote(rpc) => RaftResponse::Vote(raft.pre_vote(rpc).await),
            RaftRequest::SnapshotOffer { meta, manifest, .. } => {
                // A stale leader's offer is turned down when it asks to install (the
                // vote is checked there); staging it costs disk only.
                match snapshots.offer(&meta, manifest) {
                    Ok(held) => RaftResponse::SnapshotHave(held),
                    Err(why) => RaftResponse::Refused(why),
                }
            }
            RaftRequest::SnapshotChunk(chunk) => match snapshots.chunk(&chunk) {
                Ok(()) => RaftResponse::SnapshotAck,
                Err(why) => {
                    tracing::warn!(%why, "refused a snapshot chunk");
                    RaftResponse::Refused(why)
                }
            },
            RaftRequest::SnapshotDone { vote, meta, id } => {
                let answering = self.answering.clone();
                let completed =
                    tokio::task::spawn_blocking(move || answering.snapshots.complete(&id)).await;
                match completed {
                    Ok(Ok(snapshot)) => {
                        let installed = raft
                            .install_full_snapshot(vote, Snapshot { meta, snapshot })
                            .await
                            .map_err(RaftError::Fatal);
                        if installed.is_ok() {
                            metrics::counter!("baton_snapshots_installed_total").increment(1);
                        }
                        RaftResponse::Snapshot(installed)
                    }
                    Ok(Err(why)) => {
                        tracing::warn!(%id, %why, "cannot install a received snapshot yet");
                        RaftResponse::Refused(why)
                    }
                    Err(e) => RaftResponse::Refused(e.to_string()),
                }
            }
            RaftRequest::TransferLeader(req, why) => {
                if let Some(why) = why {
                    self.readiness.received_handover(why);
                }
                RaftResponse::TransferLeader(
                    raft.handle_transfer_leader(req)
                        .await
                        .map_err(RaftError::Fatal),
                )
            }
            RaftRequest::Status => match serde_json::to_vec(&self.status()) {
                Ok(json) => RaftResponse::Status(json),
                Err(e) => RaftResponse::Refused(e.to_string()),
            },
            RaftRequest::Write(raw) => {
                RaftResponse::Written(ForwardedWrite::hand_on(writes, raw).await)
            }
        }
    }
}

/// Sends one member-to-member call that is not Raft's own and waits for its answer.
async fn call(
    consensus: &Consensus,
    to: NodeId,
    request: RaftRequest,
    timeout: Duration,
) -> Result<RaftResponse, ConsensusError> {
    let unreachable = |why: String| ConsensusError::Unreachable { id: to, why };
    let member = consensus
        .members()
        .into_iter()
        .find(|m| m.id == to)
        .ok_or(ConsensusError::UnknownMember(to))?;
    let peer = member
        .peer_id
        .parse()
        .map_err(|e| unreachable(format!("peer id {:?}: {e}", member.peer_id)))?;
    let bytes = codec::encode(&request).map_err(|e| unreachable(e.to_string()))?;
    let reply = tokio::time::timeout(timeout, consensus.network.request(peer, bytes))
        .await
        .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
    match codec::decode(&reply) {
        Ok(RaftResponse::Refused(why)) => Err(unreachable(format!("refused: {why}"))),
        Ok(response) => Ok(response),
        Err(e) => Err(unreachable(e.to_string())),
    }
}

/// Member `to`'s status, asked over p2p.
pub(crate) async fn status_of(
    consensus: &Consensus,
    to: NodeId,
    timeout: Duration,
) -> Result<NodeStatus, ConsensusError> {
    match call(consensus, to, RaftRequest::Status, timeout).await? {
        RaftResponse::Status(json) => {
            serde_json::from_slice(&json).map_err(|e| ConsensusError::Unreachable {
                id: to,
                why: format!("a status that does not decode: {e}"),
            })
        }
        other => Err(ConsensusError::Unreachable {
            id: to,
            why: format!("unexpected response {other:?}"),
        }),
    }
}

/// Forwards `raw` to member `to` and waits for its sequencer's answer.
pub(crate) async fn write_to(
    consensus: &Consensus,
    to: NodeId,
    raw: Bytes,
    timeout: Duration,
) -> Result<Result<B256, WriteRefused>, ConsensusError> {
    match call(consensus, to, RaftRequest::Write(raw), timeout).await? {
        RaftResponse::Written(result) => Ok(result),
        other => Err(ConsensusError::Unreachable {
            id: to,
            why: format!("unexpected response {other:?}"),
        }),
    }
}
