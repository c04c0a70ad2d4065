//! `baton status`: the cluster as a table, from any one member's RPC URL.

use std::{collections::BTreeMap, time::Duration};

use baton_consensus::NodeStatus;
use baton_primitives::NodeId;
use clap::Args;

use crate::client;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// JSON-RPC URL of any member.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// Only the node at --rpc, as one line of key=value pairs (for scripts and
    /// health checks); fails when that node does not answer.
    #[arg(long)]
    pub this_node: bool,
}

pub async fn run(args: StatusArgs) -> eyre::Result<()> {
    let timeout = Duration::from_secs(2);
    if args.this_node {
        let s = client::node_status(&args.rpc, timeout).await?;
        println!(
            "id={} role={} term={} leader={} head={} applied={} committed={} ready={} healthy={} hash={}",
            s.id,
            s.role,
            s.term,
            s.leader_id.map_or("-".to_string(), |l| l.to_string()),
            s.head_number,
            s.applied_index,
            s.committed_index,
            s.readiness.is_ready(),
            s.healthy,
            s.head_hash
        );
        return Ok(());
    }
    let members = client::members(&args.rpc, timeout).await?;
    let polls = members.iter().map(|m| async move {
        let status = client::node_status(&m.rpc_url, timeout).await.ok();
        (m.id, (m.rpc_url.clone(), None, status))
    });
    let rows: BTreeMap<_, _> = futures::future::join_all(polls).await.into_iter().collect();
    print_table(&rows);
    Ok(())
}

/// Prints one row per node: id, RPC URL, pid (when known), role, term, leader,
/// head, applied index, health, readiness, the last change of leader it saw and
/// why, and the head hash.
pub fn print_table(rows: &BTreeMap<NodeId, (String, Option<u32>, Option<NodeStatus>)>) {
    println!(
        "{:<5} {:<24} {:<8} {:<10} {:>5} {:>6} {:>7} {:>8}  {:<9} {:<26} {:<28} head hash",
        "node",
        "rpc",
        "pid",
        "role",
        "term",
        "leader",
        "head",
        "applied",
        "health",
        "readiness",
        "last leader change"
    );
    for (id, (url, pid, status)) in rows {
        let pid = pid.map_or("-".to_string(), |p| p.to_string());
        match status {
            Some(s) => println!(
                "{:<5} {:<24} {:<8} {:<10} {:>5} {:>6} {:>7} {:>8}  {:<9} {:<26} {:<28} {}",
                id,
                url,
                pid,
                s.role.to_string(),
                s.term,
                s.leader_id.map_or("-".to_string(), |l| l.to_string()),
                s.head_number,
                s.applied_index,
                if s.healthy { "healthy" } else { "unhealthy" },
                s.readiness.to_string(),
                s.last_leader_change
                    .as_ref()
                    .map_or("-".to_string(), |c| format!(
                        "term {} node {} ({})",
                        c.term,
                        c.leader.map_or("-".to_string(), |l| l.to_string()),
                        c.reason
                    )),
                s.head_hash
            ),
            None => println!("{id:<5} {url:<24} {pid:<8} unreachable"),
        }
    }
}
