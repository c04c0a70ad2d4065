//! `baton chaos`: a seeded fault schedule against a real cluster under load, then a
//! history check (see [`history`]).
//!
//! Runs its own cluster of `baton node` processes started with `--fault-injection`.
//! Clients ([`load`]) send transfers through random nodes the whole time while one
//! node at a time is hurt and then healed:
//!
//! ```text
//! kill-leader     SIGKILL the leader          healed by restarting it
//! kill-follower   SIGKILL a follower          healed by restarting it
//! stall           SIGSTOP a node (often the   healed by SIGCONT
//!                 leader): a hang, not a crash
//! partition       cut a node off from the     healed by reconnecting
//!                 others (often the leader)
//! one-way         a node hears nothing from   healed by reconnecting
//!                 the others, still sends
//!                 (--netns only)
//! split           a minority of ≥ 2 nodes     healed by reconnecting
//!                 cut from the majority
//!                 (--netns, ≥ 5 nodes)
//! ```
//!
//! Partitions are real with `--netns` (each node in a network namespace of its
//! own, packets dropped between them, see [`crate::netns`]; needs root); without
//! it, each node's fault hook (`baton_faultPartition`) closes its Raft links in
//! process. Either way clients still reach every node's RPC.
//!
//! With `--torture N` the schedule is instead N SIGKILLs of random nodes at random
//! points while they write, each restarted at once and required to come back and
//! rejoin; with `--kill-leader`, each of the leader, restarted once another node
//! leads. The seed fixes the schedule and every client's choice of node, so a
//! failing run replays the same faults in the same order (timing still varies).

mod history;
mod load;
mod preconf;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_signer_local::PrivateKeySigner;
use baton_consensus::Role;
use baton_node::config::NodeArgs;
use baton_primitives::{NodeId, dev_accounts};
use clap::Args;
use eyre::bail;
use jsonrpsee::{core::client::ClientT, http_client::HttpClientBuilder, rpc_params};
use parking_lot::Mutex;

use crate::{
    bench::{BenchCluster, start_cluster},
    client,
    cluster::{Cluster, log_tail},
    netns::Cut,
};
use history::History;

#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Seed of the fault schedule and of the clients' choices; the same seed
    /// replays the same faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long to inject faults.
    #[arg(long, default_value_t = 120)]
    pub duration_secs: u64,
    /// Concurrent clients, each sending from its own account.
    #[arg(long, default_value_t = 16)]
    pub clients: u32,
    /// Mean time between one fault's heal and the next fault.
    #[arg(long, default_value_t = 2_000)]
    pub fault_every_ms: u64,
    /// Instead of the mixed schedule: SIGKILL a random node this many times while
    /// it writes, restarting it each time (storage torture).
    #[arg(long, default_value_t = 0)]
    pub torture: u32,
    /// With `--torture`: every kill is of the node leading at that moment, at a
    /// random point of its block, restarted once another node leads
    /// (preconfirmations across failovers).
    #[arg(long, requires = "torture")]
    pub kill_leader: bool,
    #[command(flatten)]
    pub cluster: BenchCluster,
}

/// A small seeded generator (SplitMix64): one seed, one schedule.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }
}

/// One kind of harm, as counted in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillLeader,
    KillFollower,
    Stall,
    /// A node cut off from every other, both ways.
    Partition,
    /// A node that hears nothing from the others but still sends (real network
    /// partitions only: `--netns`).
    OneWay,
    /// A minority of two or more nodes cut off from the majority (`--netns`, five
    /// nodes or more).
    Split,
}

pub async fn run(args: ChaosArgs) -> eyre::Result<()> {
    if args.clients == 0 || args.cluster.nodes < 3 {
        bail!("chaos needs at least one client and three nodes");
    }
    let mut extra = NodeArgs::default();
    extra.data.dev_accounts = Some(args.clients);
    extra.fault.fault_injection = Some(true);
    let (_temp, mut cluster) = start_cluster(&args.cluster, extra, 0).await?;
    cluster.wait_for_height(1, Duration::from_secs(30)).await?;
    let urls: Vec<(NodeId, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id, n.rpc_url.clone()))
        .collect();
    println!(
        "chaos: seed {}, {} nodes{}, {} clients, block time {} ms, {}",
        args.seed,
        args.cluster.nodes,
        if args.cluster.netns {
            " (each in its own network namespace)"
        } else {
            ""
        },
        args.clients,
        args.cluster.block_time_ms,
        if args.kill_leader {
            format!("{} SIGKILLs of the leader", args.torture)
        } else if args.torture > 0 {
            format!("{} storage-torture kills", args.torture)
        } else {
            format!("faults for {} s", args.duration_secs)
        }
    );

    let mut rng = Rng::new(args.seed);
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for account in dev_accounts(args.clients) {
        let signer = PrivateKeySigner::from_bytes(&account.private_key)?;
        let node_urls = urls.iter().map(|(_, u)| u.clone()).collect();
        tasks.push(tokio::spawn(load::client(
            signer,
            node_urls,
            Rng::new(rng.next_u64()),
            stop.clone(),
            history.clone(),
        )));
    }
    let poller = tokio::spawn(poll_heads(urls.clone(), history.clone(), stop.clone()));
    let watchers_stop = Arc::new(AtomicBool::new(false));
    let watchers: Vec<_> = urls
        .iter()
        .map(|(id, url)| {
            tokio::spawn(preconf::watch(
                *id,
                url.clone(),
                history.clone(),
                watchers_stop.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    let outcome = if args.torture > 0 {
        torture(&mut cluster, &mut rng, args.torture, args.kill_leader).await
    } else {
        schedule(
            &mut cluster,
            &mut rng,
            Duration::from_secs(args.duration_secs),
            Duration::from_millis(args.fault_every_ms),
        )
        .await
    };
    // Whatever happened, heal everything before judging: the checker needs every node.
    heal_all(&mut cluster, &urls).await;
    let faults = outcome?;
    let faulted_for = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    poller.await?;

    // Settle: every node at the same head, past everything any client was told
    // (the watchers stream it all, the rest of each block from the sealed chain).
    let target = cluster.max_head().await.unwrap_or(0) + 2;
    cluster
        .wait_for_height(target, Duration::from_secs(120))
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    watchers_stop.store(true, Ordering::Relaxed);
    for watcher in watchers {
        watcher.await?;
    }
    let height = cluster
        .heads()
        .await
        .iter()
        .map(|(_, h)| *h)
        .min()
        .unwrap_or(0);
    let history = std::mem::take(&mut *history.lock());
    let verdict = history::check(&history, &urls, height).await?;
    cluster.stop_all(Duration::from_secs(5));

    let mut by_kind: BTreeMap<Fault, usize> = BTreeMap::new();
    for fault in &faults {
        *by_kind.entry(*fault).or_default() += 1;
    }
    println!(
        "\nfaults over {:.0} s: {}",
        faulted_for.as_secs_f64(),
        by_kind
            .iter()
            .map(|(kind, n)| format!("{kind:?} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "transactions: {} acknowledged ({} included), {} sent with no answer by the end ({} of them included), {} in blocks 0..={}",
        history.acked.len(),
        verdict.acked_included,
        history.unanswered.len(),
        verdict.unanswered_included,
        verdict.included,
        verdict.height
    );
    println!(
        "checks: lost {}, duplicated {}, unknown {}, nonce breaks {}, forks seen {}, chains differing {}, receipts differing {}, other {}",
        verdict.lost,
        verdict.duplicated,
        verdict.unknown,
        verdict.nonce_breaks,
        verdict.forks_seen,
        verdict.chain_mismatches,
        verdict.receipt_mismatches,
        history.violations.len()
    );
    println!(
        "preconfirmations: {} transactions preconfirmed, {} contradicted by the chain, {} acknowledged but never preconfirmed; {} frames, {} with a second payload id for their block or out of order",
        verdict.preconfirmed,
        verdict.preconfirmations_broken,
        verdict.acked_unpreconfirmed,
        verdict.frames,
        verdict.frames_broken
    );
    if !verdict.violations.is_empty() {
        for violation in &verdict.violations {
            println!("violation: {violation}");
        }
        bail!("chaos seed {} broke the promises above", args.seed);
    }
    if history.acked.is_empty() {
        bail!("no transaction was acknowledged: the run proved nothing");
    }
    println!("chaos seed {}: every check passed", args.seed);
    Ok(())
}

/// The mixed schedule: one fault at a time, held for a while, then healed.
async fn schedule(
    cluster: &mut Cluster,
    rng: &mut Rng,
    duration: Duration,
    every: Duration,
) -> eyre::Result<Vec<Fault>> {
    let urls: Vec<(NodeId, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id, n.rpc_url.clone()))
        .collect();
    let ids: Vec<NodeId> = urls.iter().map(|(id, _)| *id).collect();
    let deadline = Instant::now() + duration;
    let mut faults = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(rng.between(every / 2, every * 3 / 2)).await;
        let leader = cluster.wait_for_leader(Duration::from_secs(30)).await?;
        let followers: Vec<NodeId> = ids.iter().copied().filter(|id| *id != leader).collect();
        let random_follower = followers[rng.below(followers.len() as u64) as usize];
        // Stalls and partitions hit the leader half the time: that is where they hurt.
        let leader_or_follower = if rng.below(2) == 0 {
            leader
        } else {
            random_follower
        };
        let hold = rng.between(Duration::from_millis(500), Duration::from_millis(4_000));
        let kinds = match cluster.netns() {
            Some(_) if ids.len() >= 5 => 7,
            Some(_) => 6,
            None => 4,
        };
        let fault = match rng.below(kinds) {
            0 => Fault::KillLeader,
            1 => Fault::KillFollower,
            2 => Fault::Stall,
            3 | 4 => Fault::Partition,
            5 => Fault::OneWay,
            _ => Fault::Split,
        };
        let target = match fault {
            Fault::KillLeader => leader,
            Fault::KillFollower => random_follower,
            _ => leader_or_follower,
        };
        println!(
            "[{:>6.1}s] {fault:?} node {target} for {} ms",
            (duration.saturating_sub(deadline.saturating_duration_since(Instant::now())))
                .as_secs_f64(),
            hold.as_millis()
        );
        match fault {
            Fault::KillLeader | Fault::KillFollower => {
                cluster.kill(target)?;
                tokio::time::sleep(hold).await;
                cluster.start(target)?;
                // Still hurt until it serves again: one fault at a time.
                if let Err(e) = rejoin(cluster, target).await {
                    bail!(
                        "node {target} did not come back: {e}\n{}",
                        log_tail(&cluster.node(target)?.log_path, 20)
                    );
                }
            }
            Fault::Stall => {
                cluster.signal(target, libc::SIGSTOP)?;
                tokio::time::sleep(hold).await;
                cluster.signal(target, libc::SIGCONT)?;
            }
            Fault::Partition | Fault::OneWay | Fault::Split => {
                let minority = if fault == Fault::Split {
                    let mut others = followers.clone();
                    others.retain(|id| *id != target);
                    let more = (ids.len() - 1) / 2 - 1;
                    let mut minority = vec![target];
                    for _ in 0..more {
                        minority.push(others.remove(rng.below(others.len() as u64) as usize));
                    }
                    minority
                } else {
                    vec![target]
                };
                cut_off(cluster, &urls, &minority, fault).await?;
                tokio::time::sleep(hold).await;
                heal_links(cluster, &urls).await?;
            }
        }
        faults.push(fault);
        if let Some((id, status)) = cluster.reap().into_iter().next() {
            bail!(
                "node {id} exited ({status}) during the run:\n{}",
                log_tail(&cluster.node(id)?.log_path, 20)
            );
        }
    }
    Ok(faults)
}

/// Storage torture: SIGKILL a random node at a random point, restart it at once,
/// and require it to answer again and catch up with the others. With `leaders`,
/// every victim is the leader, restarted once another node leads.
async fn torture(
    cluster: &mut Cluster,
    rng: &mut Rng,
    kills: u32,
    leaders: bool,
) -> eyre::Result<Vec<Fault>> {
    let ids: Vec<NodeId> = cluster.nodes.iter().map(|n| n.id).collect();
    let mut faults = Vec::new();
    for round in 1..=kills {
        let random = ids[rng.below(ids.len() as u64) as usize];
        tokio::time::sleep(rng.between(Duration::ZERO, Duration::from_millis(1_500))).await;
        let victim = if leaders {
            cluster.wait_for_leader(Duration::from_secs(30)).await?
        } else {
            random
        };
        let fault =
            if client::node_status(&cluster.node(victim)?.rpc_url, Duration::from_millis(500))
                .await
                .is_ok_and(|s| s.role == Role::Leader)
            {
                Fault::KillLeader
            } else {
                Fault::KillFollower
            };
        cluster.kill(victim)?;
        if leaders {
            // Restarted at once, the killed leader could win the next election
            // itself; the point is another node sealing its open block.
            cluster.wait_for_leader(Duration::from_secs(30)).await?;
        }
        cluster.start(victim)?;
        let rejoined = rejoin(cluster, victim).await;
        if let Err(e) = rejoined {
            bail!(
                "torture kill {round} of node {victim}: {e}\n{}",
                log_tail(&cluster.node(victim)?.log_path, 20)
            );
        }
        println!("torture {round:>3}/{kills}: {fault:?} node {victim}; restarted and rejoined");
        faults.push(fault);
    }
    Ok(faults)
}

/// Waits until restarted node `id` answers and has applied what the others had
/// when it came back.
async fn rejoin(cluster: &mut Cluster, id: NodeId) -> eyre::Result<()> {
    let url = cluster.node(id)?.rpc_url.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let others_head = cluster
        .heads()
        .await
        .iter()
        .filter(|(node, _)| *node != id)
        .map(|(_, h)| *h)
        .max()
        .unwrap_or(0);
    loop {
        if let Some((_, status)) = cluster.reap().into_iter().find(|(node, _)| *node == id) {
            bail!("it exited on restart ({status})");
        }
        if let Ok(status) = client::node_status(&url, Duration::from_millis(500)).await
            && status.head_number >= others_head
            && status.role != Role::Shutdown
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("it did not reach block {others_head} within 60 s of its restart");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Cuts `minority` off from the other members. In network namespaces the packets
/// are dropped (both ways, or for [`Fault::OneWay`] only those the minority
/// receives); otherwise each node's fault hook closes its Raft links.
async fn cut_off(
    cluster: &Cluster,
    urls: &[(NodeId, String)],
    minority: &[NodeId],
    fault: Fault,
) -> eyre::Result<()> {
    let majority: Vec<NodeId> = urls
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !minority.contains(id))
        .collect();
    if let Some(netns) = cluster.netns() {
        let cut = if fault == Fault::OneWay {
            Cut::Inbound
        } else {
            Cut::Both
        };
        for id in minority {
            netns.cut(*id, &majority, cut)?;
        }
        return Ok(());
    }
    for (id, url) in urls {
        let blocked = if minority.contains(id) {
            majority.clone()
        } else {
            minority.to_vec()
        };
        fault_partition(url, blocked).await?;
    }
    Ok(())
}

async fn heal_links(cluster: &Cluster, urls: &[(NodeId, String)]) -> eyre::Result<()> {
    if let Some(netns) = cluster.netns() {
        return netns.heal();
    }
    for (_, url) in urls {
        fault_partition(url, Vec::new()).await?;
    }
    Ok(())
}

/// Sets the members `url`'s node blocks, retrying for a while: a node that was just
/// resumed may take a moment to answer.
async fn fault_partition(url: &str, blocked: Vec<NodeId>) -> eyre::Result<()> {
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(5))
        .build(url)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client
            .request::<(), _>("baton_faultPartition", rpc_params![blocked.clone()])
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!("baton_faultPartition on {url}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Resumes, restarts and reconnects every node, so the checker can read them all.
async fn heal_all(cluster: &mut Cluster, urls: &[(NodeId, String)]) {
    let ids: Vec<NodeId> = cluster.nodes.iter().map(|n| n.id).collect();
    for id in ids {
        if cluster.node(id).is_ok_and(|n| n.is_running()) {
            let _ = cluster.signal(id, libc::SIGCONT);
        } else if let Err(e) = cluster.start(id) {
            eprintln!("chaos: cannot restart node {id}: {e}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while heal_links(cluster, urls).await.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Records every node's head every 100 ms until `stop`.
async fn poll_heads(
    urls: Vec<(NodeId, String)>,
    history: Arc<Mutex<History>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let polls = urls.iter().map(|(id, url)| async move {
            (
                *id,
                client::node_status(url, Duration::from_millis(300)).await,
            )
        });
        for (id, status) in futures::future::join_all(polls).await {
            if let Ok(status) = status {
                history
                    .lock()
                    .record_head(id, status.head_number, status.head_hash);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
