//! `baton bench failover`: how long the chain stops when the leader is killed;
//! `baton bench rotation`: how a planned hand-over looks from outside.
//!
//! Runs its own local cluster, then, round after round: SIGKILLs the leader at a
//! different point in the block cycle, measures the time from the kill to the
//! first block above every height any node had reached, restarts the victim and
//! waits for it to catch up. Reports p50 / p99 / max, and checks at the end that
//! every node holds the same hash at every height.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use baton_node::config::NodeArgs;
use baton_primitives::{
    NodeId,
    genesis::{DEV_ACCOUNTS, DEV_GAS_LIMIT},
};
use clap::Args;
use eyre::bail;

use crate::{
    client,
    cluster::{Cluster, ClusterSpec},
    genesis::{self, DevChain, GenesisArgs},
};

/// The local cluster a benchmark runs on.
#[derive(Debug, Clone, Args)]
pub struct BenchCluster {
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    #[arg(long, default_value_t = 1000)]
    pub block_time_ms: u64,
    /// Keep the cluster's data here (default: a temporary dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run each node in a network namespace of its own (needs root): partitions
    /// are then real packet drops between the nodes.
    #[arg(long)]
    pub netns: bool,
    #[command(flatten)]
    pub genesis: GenesisArgs,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// How many times to kill the leader.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Stop the leader (SIGSTOP: a hang, its sockets stay open) instead of
    /// killing it; it is resumed (SIGCONT) once the others produced a block.
    #[arg(long)]
    pub stop: bool,
    #[command(flatten)]
    pub cluster: BenchCluster,
}

/// How long this disk takes to make an append durable, the floor under every
/// acknowledgement: `rounds` appends of 4 KiB to a scratch file in `dir`, each
/// followed by `fdatasync`; sorted.
pub fn fdatasync_times(dir: &Path, rounds: usize) -> std::io::Result<Vec<Duration>> {
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0u8; 4096];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let began = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(began.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    times.sort_unstable();
    Ok(times)
}

/// Nearest-rank percentile of sorted `samples`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A benchmark's own local cluster on free ports (under `data_dir`, or a temporary
/// dir kept alive by the returned guard), started and with a leader.
/// Creates `spec`'s cluster plus `joiners` nodes that wait to be added, and starts
/// the founders.
pub(crate) async fn start_cluster(
    spec: &BenchCluster,
    mut extra: NodeArgs,
    joiners: usize,
) -> eyre::Result<(tempfile::TempDir, Cluster)> {
    let temp = tempfile::Builder::new().prefix("baton-bench-").tempdir()?;
    let data_dir = spec
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    if spec.genesis.is_custom() {
        std::fs::create_dir_all(&data_dir)?;
        let path = data_dir.join("genesis.json");
        let started = Instant::now();
        genesis::write_file(
            &path,
            &DevChain {
                gas_limit: spec.genesis.gas_limit.unwrap_or(DEV_GAS_LIMIT),
                accounts: extra.data.dev_accounts.unwrap_or(DEV_ACCOUNTS),
                extra: spec.genesis.extra_accounts,
                ..DevChain::default()
            },
        )?;
        println!(
            "wrote a genesis with {} filler accounts in {:.1}s",
            spec.genesis.extra_accounts,
            started.elapsed().as_secs_f64()
        );
        extra.data.genesis = Some(path);
    }
    let mut cluster = Cluster::create(&ClusterSpec {
        binary: std::env::current_exe()?,
        nodes: spec.nodes + joiners,
        data_dir,
        rpc_port: 0,
        p2p_port: 0,
        block_time_ms: spec.block_time_ms,
        extra,
        netns: spec.netns,
        joiners,
    })?;
    cluster.start_all()?;
    // A large genesis takes a while to load on first start.
    cluster.wait_for_leader(Duration::from_secs(300)).await?;
    Ok((temp, cluster))
}

pub async fn failover(args: FailoverArgs) -> eyre::Result<()> {
    let (_temp, mut cluster) = start_cluster(&args.cluster, NodeArgs::default(), 0).await?;
    cluster.wait_for_height(2, Duration::from_secs(30)).await?;

    let block_time = Duration::from_millis(args.cluster.block_time_ms);
    let mut gaps = Vec::new();
    for round in 1..=args.rounds {
        // Spread the kills over the block cycle (golden-ratio steps): the gap
        // depends on where in its block the leader dies.
        let phase = (round as f64 * 0.618_034).fract();
        tokio::time::sleep(block_time.mul_f64(phase)).await;
        let victim = cluster.wait_for_leader(Duration::from_secs(10)).await?;
        let reached = cluster.max_head().await.unwrap_or(0);
        if args.stop {
            cluster.signal(victim, libc::SIGSTOP)?;
        } else {
            cluster.kill(victim)?;
        }
        let killed_at = Instant::now();
        // Only the others are asked: a stopped node would hold each poll until
        // its timeout.
        let others: Vec<String> = cluster
            .nodes
            .iter()
            .filter(|n| n.id != victim)
            .map(|n| n.rpc_url.clone())
            .collect();
        let (gap, producer) = loop {
            let statuses = futures::future::join_all(
                others
                    .iter()
                    .map(|url| client::node_status(url, Duration::from_millis(500))),
            )
            .await;
            if let Some(status) = statuses.iter().flatten().find(|s| s.head_number > reached) {
                break (killed_at.elapsed(), status.leader_id);
            }
            if killed_at.elapsed() > Duration::from_secs(15) {
                bail!(
                    "round {round}: no block above {reached} within 15 s of killing node {victim}"
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        println!(
            "round {round:>3}: {} leader node {victim} at head {reached}; block {} after {:>4} ms (leader: node {})",
            if args.stop { "stopped" } else { "killed" },
            reached + 1,
            gap.as_millis(),
            producer.map_or("?".into(), |id| id.to_string())
        );
        gaps.push(gap);
        if args.stop {
            cluster.signal(victim, libc::SIGCONT)?;
        } else {
            cluster.start(victim)?;
        }
        let head = cluster.max_head().await.unwrap_or(0);
        cluster
            .wait_for_height(head, Duration::from_secs(60))
            .await?;
    }

    let verified = crate::cluster::check_identical_chains(&cluster).await?;
    gaps.sort();
    let ms = |d: Duration| d.as_millis();
    println!(
        "\nfailover gap over {} {} (block time {} ms, {} nodes): p50 {} ms, p99 {} ms, max {} ms, min {} ms",
        gaps.len(),
        if args.stop { "SIGSTOPs" } else { "kills" },
        args.cluster.block_time_ms,
        args.cluster.nodes,
        ms(percentile(&gaps, 50.0)),
        ms(percentile(&gaps, 99.0)),
        ms(percentile(&gaps, 100.0)),
        ms(percentile(&gaps, 0.0)),
    );
    println!(
        "all {} nodes hold identical blocks 0..={verified}",
        args.cluster.nodes
    );
    cluster.stop_all(Duration::from_secs(5));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_millis(5));
        assert_eq!(percentile(&samples, 99.0), Duration::from_millis(10));
        assert_eq!(percentile(&samples, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}

#[derive(Debug, Args)]
pub struct RotationArgs {
    /// Hand-overs to measure.
    #[arg(long, default_value_t = 100)]
    pub rounds: usize,
    /// The leader hands over after every this many sealed blocks.
    #[arg(long, default_value_t = 1)]
    pub every: u64,
    #[command(flatten)]
    pub cluster: BenchCluster,
}

/// `baton bench rotation`: runs a cluster with `--rotation-blocks`, watches block
/// arrivals at one node, and reports the interval between the last block of each
/// leader and the first of the next (planned rotation should look like any other
/// block interval: block time, give or take).
pub async fn rotation(args: RotationArgs) -> eyre::Result<()> {
    if args.every == 0 || args.rounds == 0 {
        bail!("--every and --rounds must be above zero");
    }
    let mut extra = NodeArgs::default();
    extra.sequencer.rotation_blocks = Some(args.every);
    let (_temp, mut cluster) = start_cluster(&args.cluster, extra, 0).await?;
    cluster.wait_for_height(2, Duration::from_secs(30)).await?;
    let observer = cluster.nodes[0].rpc_url.clone();
    let timeout = Duration::from_millis(500);

    // Block number -> (when the observer first served it, who led then).
    let mut arrivals: Vec<(u64, Instant, Option<NodeId>)> = Vec::new();
    let mut last = client::node_status(&observer, timeout).await?.head_number;
    let deadline = Instant::now()
        + Duration::from_millis(
            args.cluster.block_time_ms * args.every * (args.rounds as u64 + 5) * 3,
        );
    let mut handovers = Vec::new();
    while handovers.len() < args.rounds {
        if Instant::now() > deadline {
            bail!("only {} hand-overs before the deadline", handovers.len());
        }
        let status = client::node_status(&observer, timeout).await?;
        if status.head_number > last {
            let now = Instant::now();
            if status.head_number == last + 1 {
                arrivals.push((status.head_number, now, status.leader_id));
            }
            last = status.head_number;
            // Block k+1 after a rotation point k: the first block of the next leader.
            if let [.., (k, at_k, leader_k), (k1, at_k1, leader_k1)] = arrivals[..]
                && k1 == k + 1
                && baton_sequencer::policy::rotation_due(k, args.every)
            {
                handovers.push((at_k1 - at_k, leader_k != leader_k1));
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let verified = crate::cluster::check_identical_chains(&cluster).await?;
    cluster.stop_all(Duration::from_secs(5));
    let changed = handovers.iter().filter(|(_, changed)| *changed).count();
    let mut gaps: Vec<Duration> = handovers.into_iter().map(|(gap, _)| gap).collect();
    gaps.sort();
    let bound = Duration::from_millis(args.cluster.block_time_ms + 50);
    let within = gaps.iter().filter(|g| **g <= bound).count();
    let ms = |d: Duration| d.as_millis();
    println!(
        "rotation every {} block(s), block time {} ms, {} nodes: {} hand-overs ({changed} seen as a change of leader at node 1)",
        args.every,
        args.cluster.block_time_ms,
        args.cluster.nodes,
        gaps.len()
    );
    println!(
        "last block of a leader -> first of the next: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms, min {} ms; {within} of {} within block time + 50 ms",
        ms(percentile(&gaps, 50.0)),
        ms(percentile(&gaps, 90.0)),
        ms(percentile(&gaps, 99.0)),
        ms(percentile(&gaps, 100.0)),
        ms(percentile(&gaps, 0.0)),
        gaps.len()
    );
    println!(
        "all {} nodes hold identical blocks 0..={verified}",
        args.cluster.nodes
    );
    Ok(())
}
