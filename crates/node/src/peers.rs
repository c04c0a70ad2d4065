//! Peers as this node follows them.
//!
//! - Readiness: every voter's, for choosing where leadership goes (rotation and
//!   step-down hand it to the next ready member). This node's own comes from
//!   consensus, the others' from asking them over p2p (their `baton_nodeStatus`,
//!   never through the public JSON-RPC port, which strangers can fill); a member
//!   that does not answer counts as not ready. The same poll tells a bystander why
//!   the current leader leads.
//! - The p2p allowlist, kept equal to the Raft membership as members join and leave.

use std::{collections::BTreeMap, future::Future, time::Duration};

use baton_consensus::{Consensus, Suffrage};
use baton_p2p::{Network, PeerId};
use baton_primitives::NodeId;
use tokio::sync::watch;

/// Polls every `every`: the readiness of every voter, and the task that keeps it.
pub(crate) fn watch_readiness(
    consensus: Consensus,
    every: Duration,
) -> (
    watch::Receiver<Vec<(NodeId, bool)>>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (publish, members) = watch::channel(Vec::new());
    let task = async move {
        loop {
            let polls = consensus
                .members()
                .into_iter()
                .filter(|m| m.suffrage == Suffrage::Voter)
                .map(|member| {
                    let consensus = consensus.clone();
                    async move {
                        if member.id == consensus.node_id() {
                            return (member.id, consensus.readiness().is_ready());
                        }
                        let Ok(status) = consensus.member_status(member.id, every).await else {
                            return (member.id, false);
                        };
                        // The leader knows why it leads; bystanders learn it here.
                        if status.leader_id == Some(member.id)
                            && let Some(change) = &status.last_leader_change
                        {
                            consensus.learn_leader_change(change);
                        }
                        (member.id, status.readiness.is_ready())
                    }
                });
            let seen = futures::future::join_all(polls).await;
            // The node holds a receiver for as long as it runs.
            publish.send_replace(seen);
            tokio::time::sleep(every).await;
        }
    };
    (members, task)
}

/// Keeps the p2p allowlist equal to the Raft membership as it changes at runtime
/// (`conductor_addServerAs*`, `conductor_removeServer`): new members may connect and
/// are dialed, removed ones are cut off. `configured` are the peers allowed at start.
pub(crate) async fn follow_membership(
    consensus: Consensus,
    network: Network,
    configured: BTreeMap<NodeId, PeerId>,
) {
    let mut allowed = configured;
    let mut seen_members = std::collections::BTreeSet::new();
    let mut seen_version = None;
    loop {
        let version = consensus.membership_version();
        if seen_version == Some(version) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        seen_version = Some(version);
        let members = consensus.member_nodes();
        for (id, member) in &members {
            if *id == consensus.node_id() || allowed.contains_key(id) {
                continue;
            }
            match baton_p2p::parse_peer(&member.peer_id, &member.p2p_addr) {
                Ok((peer, addr)) => {
                    if network.allow_peer(peer, addr).await.is_ok() {
                        tracing::info!(id, %peer, "new member: allowed on p2p");
                        allowed.insert(*id, peer);
                    }
                }
                Err(e) => tracing::error!(id, ?member, error = %e, "member with a bad peer"),
            }
        }
        // Only a member that left a membership we saw it in is cut off: before
        // this node first learns the membership, it is empty.
        let gone: Vec<NodeId> = allowed
            .keys()
            .copied()
            .filter(|id| seen_members.contains(id) && !members.contains_key(id))
            .collect();
        seen_members = members.keys().copied().collect();
        for id in gone {
            if let Some(peer) = allowed.remove(&id)
                && network.disallow_peer(peer).await.is_ok()
            {
                tracing::info!(id, %peer, "member removed: cut off on p2p");
            }
        }
    }
}
