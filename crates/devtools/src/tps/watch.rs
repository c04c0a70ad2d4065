//! What a throughput run watches while it sends: blocks as they appear (inclusion
//! times and how full they are), changes of leader, and the nodes' memory and CPU.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::B256;
use baton_primitives::NodeId;
use jsonrpsee::{core::client::ClientT, http_client::HttpClient, rpc_params};
use parking_lot::Mutex;

use crate::client;

/// Blocks seen by the block watcher.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    /// Each included transaction: its block and when the block was first seen.
    pub included: HashMap<B256, (u64, Instant)>,
    /// Transactions seen in two blocks.
    pub duplicates: Vec<B256>,
    /// Each block's gas used ÷ gas limit, and its transaction count.
    pub fullness: Vec<(f64, usize)>,
}

/// Follows blocks from `from` on through `client`, until aborted.
pub(crate) fn blocks(
    client: HttpClient,
    from: u64,
    into: Arc<Mutex<Blocks>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next = from;
        loop {
            let block: Result<Option<serde_json::Value>, _> = client
                .request(
                    "eth_getBlockByNumber",
                    rpc_params![format!("{next:#x}"), false],
                )
                .await;
            let Ok(Some(block)) = block else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let seen = Instant::now();
            let quantity = |field: &str| {
                block[field]
                    .as_str()
                    .and_then(|hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())
                    .unwrap_or(0)
            };
            let hashes: Vec<B256> = block["transactions"]
                .as_array()
                .map(|txs| {
                    txs.iter()
                        .filter_map(|h| h.as_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let mut blocks = into.lock();
            let full = quantity("gasUsed") as f64 / quantity("gasLimit").max(1) as f64;
            blocks.fullness.push((full, hashes.len()));
            for hash in hashes {
                if blocks.included.insert(hash, (next, seen)).is_some() {
                    blocks.duplicates.push(hash);
                }
            }
            next += 1;
        }
    })
}

/// The (term, leader) pairs a run went through, in order.
pub(crate) type Leaders = Arc<Mutex<Vec<(u64, Option<NodeId>)>>>;

/// Every (term, leader) the cluster went through, as the node at `url` saw it.
pub(crate) fn leaders(url: String, into: Leaders) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Ok(status) = client::node_status(&url, Duration::from_millis(500)).await {
                let now = (status.term, status.leader_id);
                let mut seen = into.lock();
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// Each node's RSS in MiB, sampled through the run: (seconds since it began, node, MiB).
pub(crate) type Memory = Arc<Mutex<Vec<(f64, NodeId, f64)>>>;

/// Samples the RSS of every `(node, pid)` every 5 s, until aborted.
pub(crate) fn memory(pids: Vec<(NodeId, u32)>, into: Memory) -> tokio::task::JoinHandle<()> {
    let began = Instant::now();
    tokio::spawn(async move {
        loop {
            for (id, pid) in &pids {
                let rss = usage(*pid).rss_mib;
                into.lock().push((began.elapsed().as_secs_f64(), *id, rss));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
}

/// A node process's resident memory and CPU time, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    pub cpu_seconds: f64,
}

/// `pid`'s usage now (zeros where /proc does not tell).
pub(crate) fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find(|line| line.starts_with(field))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are
    // the 12th and 13th (fields 14 and 15 of the whole line), in clock ticks.
    let ticks: f64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    Usage {
        rss_mib: kib("VmRSS:") / 1024.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        // The kernel's USER_HZ is 100 on Linux.
        cpu_seconds: ticks / 100.0,
    }
}

/// Total size of the files under `dir`, in bytes.
pub(crate) fn disk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
