//! The cluster as one node sees it, for people watching: `baton_clusterView` and
//! its live form, the subscription `baton_subscribeClusterView` (a view every
//! [`VIEW_EVERY`]), which the status page (`GET /status`, `status.html`) renders.
//!
//! A view holds every member's own status (asked over p2p, briefly: a dead
//! member shows as unreachable, it does not hold the view up), the changes of
//! leader this node saw with their reasons, and the last [`RECENT_BLOCKS`] blocks.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use alloy_primitives::B256;
use baton_consensus::{Consensus, LeaderChange, NodeStatus, Suffrage};
use baton_primitives::{NodeId, clock::now_ms};
use baton_storage::Store;
use jsonrpsee::{
    PendingSubscriptionSink,
    core::{RpcResult, SubscriptionResult, async_trait},
    proc_macros::rpc,
};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::value::to_raw_value;

use crate::{internal, metered::Open, outbox::Outboxes};

/// How often a subscriber gets a new view.
pub(crate) const VIEW_EVERY: Duration = Duration::from_millis(500);
/// How long a member has to answer for its status in a view.
const MEMBER_PATIENCE: Duration = Duration::from_millis(400);
/// Blocks a view shows (and charts).
pub(crate) const RECENT_BLOCKS: usize = 60;

/// One member, as it reports itself (`None`: it did not answer).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberView {
    id: NodeId,
    rpc_url: String,
    suffrage: Suffrage,
    status: Option<NodeStatus>,
}

/// A sealed block in brief.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockSummary {
    number: u64,
    hash: B256,
    timestamp: u64,
    transactions: usize,
    gas_used: u64,
}

/// The cluster as the answering node sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    node: NodeId,
    at_ms: u64,
    members: Vec<MemberView>,
    leader_changes: Vec<LeaderChange>,
    blocks: Vec<BlockSummary>,
}

/// Builds views: the members' statuses, and the recent blocks, read once each.
#[derive(Debug, Clone)]
pub struct Watcher {
    consensus: Consensus,
    store: Store,
    blocks: Arc<Mutex<VecDeque<BlockSummary>>>,
    /// Where a subscription's views wait to be sent, bounded in bytes.
    outboxes: Outboxes,
}

impl Watcher {
    pub fn new(consensus: Consensus, store: Store, outboxes: Outboxes) -> Self {
        Self {
            consensus,
            store,
            blocks: Arc::default(),
            outboxes,
        }
    }

    /// The last [`RECENT_BLOCKS`] blocks, reading only those not read before.
    fn recent_blocks(&self) -> RpcResult<Vec<BlockSummary>> {
        let head = self.consensus.chain().borrow().head.number();
        let first = head.saturating_sub(RECENT_BLOCKS as u64 - 1);
        let mut blocks = self.blocks.lock();
        // A snapshot install can replace the chain under us: start over then.
        if blocks.back().is_some_and(|b| b.number > head) {
            blocks.clear();
        }
        let next = blocks.back().map_or(first, |b| (b.number + 1).max(first));
        for number in next..=head {
            let Some(block) = self.store.block(number).map_err(internal)? else {
                continue;
            };
            blocks.push_back(BlockSummary {
                number,
                hash: block.hash,
                timestamp: block.header.timestamp,
                transactions: block.txs.len(),
                gas_used: block.header.gas_used,
            });
        }
        while blocks.front().is_some_and(|b| b.number < first) {
            blocks.pop_front();
        }
        debug_assert!(
            blocks.len() <= RECENT_BLOCKS,
            "a view holds the recent blocks only"
        );
        Ok(blocks.iter().cloned().collect())
    }

    /// The cluster now, as this node sees it.
    pub async fn view(&self) -> RpcResult<ClusterView> {
        let me = self.consensus.node_id();
        let members = self.consensus.members();
        let statuses = futures::future::join_all(members.iter().map(|member| async move {
            if member.id == me {
                Some(self.consensus.status())
            } else {
                self.consensus
                    .member_status(member.id, MEMBER_PATIENCE)
                    .await
                    .ok()
            }
        }))
        .await;
        Ok(ClusterView {
            node: me,
            at_ms: now_ms(),
            members: members
                .into_iter()
                .zip(statuses)
                .map(|(member, status)| MemberView {
                    id: member.id,
                    rpc_url: member.rpc_url,
                    suffrage: member.suffrage,
                    status,
                })
                .collect(),
            leader_changes: self.consensus.leader_changes(),
            blocks: self.recent_blocks()?,
        })
    }
}

#[rpc(server)]
pub trait WatchApi {
    /// The cluster as this node sees it now.
    #[method(name = "baton_clusterView")]
    async fn cluster_view(&self) -> RpcResult<ClusterView>;

    /// A new view every half second, until unsubscribed.
    #[subscription(name = "baton_subscribeClusterView" => "baton_subscription", unsubscribe = "baton_unsubscribeClusterView", item = ClusterView)]
    async fn subscribe_cluster_view(&self) -> SubscriptionResult;
}

#[async_trait]
impl WatchApiServer for Watcher {
    async fn cluster_view(&self) -> RpcResult<ClusterView> {
        self.view().await
    }

    async fn subscribe_cluster_view(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let sink = pending.accept().await?;
        let _open = Open::new("baton_rpc_subscriptions");
        let outbox = self.outboxes.open(&sink);
        let mut every = tokio::time::interval(VIEW_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = sink.closed() => return Ok(()),
            }
            let Ok(view) = self.view().await else {
                continue;
            };
            if let Err(unsent) = outbox.send(&sink, to_raw_value(&view)?).await {
                return unsent.into_result();
            }
        }
    }
}
