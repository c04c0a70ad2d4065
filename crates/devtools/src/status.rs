//! `baton status`: the cluster as a table, from any one member's RPC URL.
//!
//! The members learned from a URL are remembered (in the user's cache dir), so
//! when that node is down the next `baton status --rpc URL` asks the others.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use baton_consensus::{MemberInfo, NodeStatus};
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
    let members = members(&args.rpc, timeout).await?;
    let polls = members.iter().map(|m| async move {
        let status = client::node_status(&m.rpc_url, timeout).await.ok();
        (m.id, (m.rpc_url.clone(), None, status))
    });
    let rows: BTreeMap<_, _> = futures::future::join_all(polls).await.into_iter().collect();
    print_table(&rows);
    Ok(())
}

/// Where the members last learned from each URL are kept.
fn remembered_path() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("baton").join("status-members.json"))
}

fn remembered() -> BTreeMap<String, Vec<MemberInfo>> {
    remembered_path()
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Remembers `members` as learned from `url` (best effort: a read-only home
/// only loses the fallback).
fn remember(url: &str, members: &[MemberInfo]) {
    let Some(path) = remembered_path() else {
        return;
    };
    let mut all = remembered();
    all.insert(url.to_string(), members.to_vec());
    if let (Some(dir), Ok(json)) = (path.parent(), serde_json::to_vec(&all)) {
        let _ = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, json));
    }
}

/// The members, as `url` lists them; when it does not answer, as the first of
/// the members learned from it before that does.
async fn members(url: &str, timeout: Duration) -> eyre::Result<Vec<MemberInfo>> {
    let asked = match client::members(url, timeout).await {
        Ok(members) => {
            remember(url, &members);
            return Ok(members);
        }
        Err(e) => e,
    };
    let known = remembered().remove(url).unwrap_or_default();
    for other in known.iter().filter(|m| m.rpc_url != url) {
        if let Ok(members) = client::members(&other.rpc_url, timeout).await {
            eprintln!(
                "{url} does not answer ({asked}); members as {} lists them:",
                other.rpc_url
            );
            remember(url, &members);
            return Ok(members);
        }
    }
    Err(asked.wrap_err(format!(
        "{url} does not answer, and no member learned from it before does"
    )))
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
