//! Every voter's readiness as this node sees it, for choosing where leadership goes
//! (rotation and step-down hand it to the next ready member): this node's own from
//! consensus, the others' polled over their JSON-RPC (`baton_nodeStatus`). A member
//! that does not answer counts as not ready. The same poll tells a bystander why
//! the current leader leads.

use std::time::Duration;

use baton_consensus::{Consensus, Suffrage};
use baton_primitives::NodeId;
use tokio::{sync::watch, task::JoinHandle};

use crate::client;

/// Starts polling every `every`; the task ends when the receiver is dropped.
pub fn watch_readiness(
    consensus: Consensus,
    every: Duration,
) -> (watch::Receiver<Vec<(NodeId, bool)>>, JoinHandle<()>) {
    let (publish, members) = watch::channel(Vec::new());
    let task = tokio::spawn(async move {
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
                        let Ok(status) = client::node_status(&member.rpc_url, every).await else {
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
            if publish.send(seen).is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    });
    (members, task)
}
