//! Raft RPCs over baton-p2p.
//!
//! ```text
//!  openraft ──RaftNetworkV2──▶ PeerClient ──encode──▶ p2p request ─────▶ peer
//!  peer ──p2p InboundRequest──▶ serve() ──decode──▶ Raft::{append_entries, vote, …}
//! ```
//!
//! Contract: every message is one [`RaftRequest`] answered by one [`RaftResponse`].
//! Only members' peer ids reach `serve` (the p2p allowlist); bytes that do not
//! decode are answered with [`RaftResponse::Refused`], never a panic.

use std::{future::Future, sync::Arc, time::Duration};

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
    Raft,
    readiness::{ChangeReason, ReadinessState},
    types::{Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote},
};

type C = TypeConfig;

/// A Raft message from one member to another.
#[derive(Debug, Serialize, Deserialize)]
enum RaftRequest {
    Append(AppendEntriesRequest<C>),
    Vote(VoteRequest<C>),
    PreVote(VoteRequest<C>),
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    /// A hand-over, with why the leader makes it (recorded by the new leader).
    TransferLeader(TransferLeaderRequest<C>, Option<ChangeReason>),
}

/// The answer to a [`RaftRequest`].
#[derive(Debug, Serialize, Deserialize)]
enum RaftResponse {
    Append(Result<AppendEntriesResponse<C>, RaftError<C>>),
    Vote(Result<VoteResponse<C>, RaftError<C>>),
    Snapshot(Result<SnapshotResponse<C>, RaftError<C>>),
    TransferLeader(Result<TransferLeaderResponse<C>, RaftError<C>>),
    /// The request could not be decoded.
    Refused(String),
}

/// Makes a [`PeerClient`] for each member openraft replicates to.
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    network: Network,
    readiness: Arc<ReadinessState>,
}

impl NetworkFactory {
    pub(crate) fn new(network: Network, readiness: Arc<ReadinessState>) -> Self {
        Self { network, readiness }
    }
}

impl RaftNetworkFactory<C> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        PeerClient {
            network: self.network.clone(),
            readiness: self.readiness.clone(),
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
        let request = RaftRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot.into_inner(),
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            response = self.call(request, option.hard_ttl()) => match response? {
                RaftResponse::Snapshot(result) => Ok(remote(result)?),
                other => Err(unexpected(other).into()),
            },
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

/// Answers Raft RPCs from members until the p2p network stops.
pub(crate) async fn serve(
    raft: Raft,
    readiness: Arc<ReadinessState>,
    mut inbound: mpsc::Receiver<InboundRequest>,
) {
    while let Some(request) = inbound.recv().await {
        let raft = raft.clone();
        let readiness = readiness.clone();
        // Each request on its own task: a slow snapshot install must not hold up
        // heartbeats, and votes must not wait behind appends.
        tokio::spawn(async move {
            let response = handle(&raft, &readiness, &request.payload).await;
            match codec::encode(&response) {
                Ok(bytes) => request.respond(bytes),
                Err(e) => tracing::warn!(error = %e, "cannot encode a Raft response"),
            }
        });
    }
}

async fn handle(raft: &Raft, readiness: &ReadinessState, payload: &[u8]) -> RaftResponse {
    let request: RaftRequest = match codec::decode(payload) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "refused a malformed Raft request");
            return RaftResponse::Refused(e.to_string());
        }
    };
    match request {
        RaftRequest::Append(rpc) => RaftResponse::Append(raft.append_entries(rpc).await),
        RaftRequest::Vote(rpc) => RaftResponse::Vote(raft.vote(rpc).await),
        RaftRequest::PreVote(rpc) => RaftResponse::Vote(raft.pre_vote(rpc).await),
        RaftRequest::Snapshot { vote, meta, data } => {
            let snapshot = Snapshot {
                meta,
                snapshot: SnapshotData::new(data),
            };
            RaftResponse::Snapshot(
                raft.install_full_snapshot(vote, snapshot)
                    .await
                    .map_err(RaftError::Fatal),
            )
        }
        RaftRequest::TransferLeader(req, why) => {
            if let Some(why) = why {
                readiness.received_handover(why);
            }
            RaftResponse::TransferLeader(
                raft.handle_transfer_leader(req)
                    .await
                    .map_err(RaftError::Fatal),
            )
        }
    }
}
