//! `baton bench tps`: sustained transfer throughput and latency on a local cluster.
//!
//! Pre-signs transfers from many dev accounts, sends them at a fixed concurrency to
//! every node in turn (followers forward to the leader), and records for each: the
//! time to acknowledgement (committed) and to inclusion (its block seen on a node).
//! It times the disk's fdatasync first (the floor under an acknowledgement),
//! watches leader changes and the nodes' memory and CPU, says what bounded the
//! run (full blocks, busy cores, or neither), and ends by checking that every
//! acknowledged transaction is in exactly one block. With `--add-member`, a new
//! member then joins the chain so built (`crate::join`); with `--stop-follower`,
//! one follower sits out the run SIGSTOPped and must catch up after it (`stop`).
//! With `--fresh-between`, the run is the long haul: the same load on a small state
//! and on one grown by fresh accounts, compared.

mod report;
pub(crate) mod sign;
mod stop;
pub(crate) mod watch;

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use alloy_primitives::B256;
use baton_node::config::NodeArgs;
use baton_primitives::clock::now_ms;
use clap::Args;
use eyre::{WrapErr, bail};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};
use parking_lot::Mutex;

use crate::{
    bench::{BenchCluster, start_cluster},
    join,
};

#[derive(Debug, Args)]
pub struct TpsArgs {
    /// Sending accounts (each sends its transfers in nonce order).
    #[arg(long, default_value_t = 256)]
    pub accounts: u32,
    /// Transfers per account.
    #[arg(long, default_value_t = 40)]
    pub per_account: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Send each transfer to a new address (every transfer creates an account),
    /// instead of all to one.
    #[arg(long)]
    pub fresh_recipients: bool,
    /// Also report the throughput of the first and of the last this many
    /// acknowledged transfers, and their ratio.
    #[arg(long)]
    pub window: Option<usize>,
    /// The long haul in three phases, each sent in full before the next: `--window`
    /// transfers to one address, then this many each to a fresh address, then
    /// `--window` more to one address. Reports each phase's throughput and the last
    /// ÷ the first: the same load on a small state and on a grown one.
    #[arg(long, requires = "window", conflicts_with_all = ["per_account", "fresh_recipients"])]
    pub fresh_between: Option<u64>,
    /// After the transfers, add one more node as a member: it joins, catches up
    /// (by snapshot once the log it needs is purged) and is promoted; reports how
    /// long that took and the snapshot bytes sent.
    #[arg(long)]
    pub add_member: bool,
    /// With --add-member: SIGKILL the new node as the first snapshot bytes reach
    /// it, and restart it.
    #[arg(long, requires = "add_member")]
    pub crash_joiner: bool,
    /// SIGSTOP one follower for the whole run (the transfers go to the other
    /// nodes), then resume it and report how long it took to hold the leader's
    /// head and whether every node agrees on every block.
    #[arg(long)]
    pub stop_follower: bool,
    #[command(flatten)]
    pub cluster: BenchCluster,
}

/// Per phase, transfers per account and whether each goes to a fresh address.
fn phase_plan(args: &TpsArgs) -> eyre::Result<Vec<(u64, bool)>> {
    let (Some(between), Some(window)) = (args.fresh_between, args.window) else {
        return Ok(vec![(args.per_account, args.fresh_recipients)]);
    };
    let accounts = u64::from(args.accounts);
    let (window, between) = (window as u64 / accounts, between / accounts);
    if window == 0 || between == 0 {
        bail!("--window and --fresh-between must each be at least --accounts ({accounts})");
    }
    Ok(vec![(window, false), (between, true), (window, false)])
}

/// Sends `queues` from `concurrency` workers until every transfer is acknowledged
/// or refused; returns when it began and when the first worker found no account
/// left (until then every worker had a request in flight). Workers take whole
/// accounts off a shared queue, so one account's transfers go out in nonce order,
/// each after the previous one is acknowledged.
async fn send(
    queues: sign::Queues,
    clients: &[HttpClient],
    concurrency: usize,
    sent: &Arc<Mutex<HashMap<B256, Sent>>>,
    refused: &Arc<Mutex<Vec<String>>>,
) -> eyre::Result<(Instant, Instant)> {
    let queues = Arc::new(Mutex::new(queues));
    let first_idle = Arc::new(OnceLock::new());
    let began = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (queues, sent, refused, first_idle) = (
                queues.clone(),
                sent.clone(),
                refused.clone(),
                first_idle.clone(),
            );
            let client = clients[worker % clients.len()].clone();
            tokio::spawn(async move {
                loop {
                    // Taken in its own statement: the lock is not held while sending.
                    let Some(account) = queues.lock().pop() else {
                        first_idle.get_or_init(Instant::now);
                        return;
                    };
                    for (hash, raw) in account {
                        let at = Instant::now();
                        let answer: Result<B256, _> = client
                            .request("eth_sendRawTransaction", rpc_params![raw])
                            .await;
                        match answer {
                            Ok(acked_hash) if acked_hash == hash => {
                                let acked = Instant::now();
                                sent.lock().insert(hash, Sent { at, acked });
                            }
                            other => {
                                refused.lock().push(format!("{hash}: {other:?}"));
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.wrap_err("worker")?;
    }
    let until = first_idle.get().copied().unwrap_or_else(Instant::now);
    Ok((began, until))
}

/// When one transfer was sent and acknowledged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub at: Instant,
    pub acked: Instant,
}

pub async fn tps(args: TpsArgs) -> eyre::Result<()> {
    if args.accounts == 0 || args.per_account == 0 || args.concurrency == 0 {
        bail!("--accounts, --per-account and --concurrency must be above zero");
    }
    let mut extra = NodeArgs::default();
    extra.data.dev_accounts = Some(args.accounts);
    // Adding a member takes the admin token.
    let token = format!("bench-{:x}-{}", std::process::id(), now_ms());
    let token_file = tempfile::NamedTempFile::new()?;
    if args.add_member {
        std::fs::write(token_file.path(), &token)?;
        extra.rpc.admin_token_file = Some(token_file.path().to_path_buf());
    }
    let (_temp, mut cluster) =
        start_cluster(&args.cluster, extra, usize::from(args.add_member)).await?;
    cluster.wait_for_height(1, Duration::from_secs(60)).await?;
    let stopped = if args.stop_follower {
        Some(stop::follower(&mut cluster).await?)
    } else {
        None
    };

    let data_dir = cluster.nodes[0]
        .config_path
        .parent()
        .ok_or_else(|| eyre::eyre!("a node's config has no dir"))?;
    let fdatasync = crate::bench::fdatasync_times(data_dir, 200)?;

    let signing = Instant::now();
    let mut phases = Vec::new();
    let mut nonce = 0;
    for (per_account, fresh) in phase_plan(&args)? {
        let queues = sign::sign(args.accounts, nonce..nonce + per_account, fresh)?;
        phases.push((queues, fresh));
        nonce += per_account;
    }
    let total = u64::from(args.accounts) * nonce;
    println!(
        "signed {total} transfers from {} accounts in {:.1}s",
        args.accounts,
        signing.elapsed().as_secs_f64()
    );

    let clients: Vec<HttpClient> = cluster
        .nodes
        .iter()
        .filter(|n| n.founder && Some(n.id) != stopped)
        .map(|n| {
            HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(30))
                .build(&n.rpc_url)
        })
        .collect::<Result<_, _>>()?;
    let observer = cluster
        .nodes
        .iter()
        .find(|n| Some(n.id) != stopped)
        .map(|n| n.rpc_url.clone())
        .ok_or_else(|| eyre::eyre!("no running node to watch the run from"))?;
    let start_head = crate::client::node_status(&observer, Duration::from_secs(2))
        .await?
        .head_number;
    let pids: Vec<(u64, u32)> = cluster
        .nodes
        .iter()
        .filter_map(|n| Some((n.id, n.pid()?)))
        .collect();
    let usage_before: Vec<watch::Usage> = pids.iter().map(|(_, pid)| watch::usage(*pid)).collect();
    let generator_before = watch::usage(std::process::id());
    let disk_before: Vec<u64> = cluster
        .nodes
        .iter()
        .filter(|n| n.founder)
        .map(|n| n.config_path.parent().map_or(0, watch::disk_bytes))
        .collect();

    let blocks = Arc::new(Mutex::new(watch::Blocks::default()));
    let block_watcher = watch::blocks(clients[0].clone(), start_head + 1, blocks.clone());
    let leaders = Arc::new(Mutex::new(Vec::new()));
    let leader_watcher = watch::leaders(observer, leaders.clone());
    let memory = watch::Memory::default();
    let memory_watcher = watch::memory(pids.clone(), memory.clone());

    let sent: Arc<Mutex<HashMap<B256, Sent>>> = Arc::default();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let began = Instant::now();
    let mut loaded = Vec::new();
    for (queues, fresh) in phases {
        let (began, until) = send(queues, &clients, args.concurrency, &sent, &refused).await?;
        loaded.push(report::Loaded {
            began,
            until,
            fresh,
        });
    }
    let sending = began.elapsed();
    let acked: HashMap<B256, Sent> = sent.lock().clone();
    // Every acknowledged transfer must appear in a block.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !acked.keys().all(|h| blocks.lock().included.contains_key(h))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    block_watcher.abort();
    leader_watcher.abort();
    memory_watcher.abort();
    let usage: Vec<(u64, watch::Usage, watch::Usage)> = pids
        .iter()
        .zip(usage_before)
        .map(|((id, pid), before)| (*id, before, watch::usage(*pid)))
        .collect();
    let generator_cpu = watch::usage(std::process::id()).cpu_seconds - generator_before.cpu_seconds;
    let mut seals = Vec::new();
    for node in &cluster.nodes {
        if let Ok(page) = crate::client::metrics(&node.rpc_url, Duration::from_secs(2)).await {
            let quantile = |name: &str, q: &str| {
                crate::client::metric(&page, &format!("{name}{{quantile=\"{q}\"}}"))
            };
            let entries = |how: &str| {
                crate::client::metric(
                    &page,
                    &format!("baton_apply_entries_total{{entry=\"batch\",how=\"{how}\"}}"),
                )
            };
            seals.push(report::NodeMetrics {
                id: node.id,
                seal: (
                    quantile("baton_block_seal_seconds", "0.5"),
                    quantile("baton_block_seal_seconds", "0.99"),
                ),
                append_gap: (
                    quantile("baton_raft_append_gap_seconds", "0.5"),
                    quantile("baton_raft_append_gap_seconds", "0.99"),
                ),
                batches: (entries("reused"), entries("executed")),
            });
        }
    }
    let disk: Vec<(u64, u64, u64)> = cluster
        .nodes
        .iter()
        .filter(|n| n.founder)
        .zip(disk_before)
        .filter_map(|(n, before)| Some((n.id, before, watch::disk_bytes(n.config_path.parent()?))))
        .collect();

    let outcome = report::Outcome {
        total,
        acked,
        blocks: std::mem::take(&mut *blocks.lock()),
        leaders: leaders.lock().clone(),
        refused: refused.lock().clone(),
        sending,
        loaded,
        usage,
        generator_cpu,
        fdatasync,
        memory: std::mem::take(&mut *memory.lock()),
        seals,
        disk,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let ok = report::print(&args, &outcome);
    if let Some(id) = stopped {
        stop::print(&stop::resume(&mut cluster, id).await?);
    }
    if args.add_member {
        let joined = join::add_member(&mut cluster, &token, args.crash_joiner).await?;
        join::print(&joined);
    }
    cluster.stop_all(Duration::from_secs(5));
    if !ok {
        bail!("the run lost, duplicated or refused transfers (see above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        tps: TpsArgs,
    }

    fn parse(args: &[&str]) -> Result<TpsArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("tps").chain(args.iter().copied())).map(|c| c.tps)
    }

    #[test]
    fn the_long_haul_is_one_address_then_fresh_then_one_address() {
        let args = parse(&[
            "--accounts",
            "64",
            "--window",
            "50000",
            "--fresh-between",
            "500000",
        ])
        .expect("valid");
        assert_eq!(
            phase_plan(&args).expect("valid"),
            vec![(781, false), (7812, true), (781, false)]
        );
        let plain = parse(&[
            "--accounts",
            "4",
            "--per-account",
            "10",
            "--fresh-recipients",
        ])
        .expect("valid");
        assert_eq!(phase_plan(&plain).expect("valid"), vec![(10, true)]);
    }

    #[test]
    fn a_long_haul_needs_whole_transfers_per_account_and_its_own_counts() {
        let short = parse(&[
            "--accounts",
            "64",
            "--window",
            "10",
            "--fresh-between",
            "500000",
        ])
        .expect("parses");
        assert!(phase_plan(&short).is_err(), "10 transfers over 64 accounts");
        assert!(
            parse(&["--fresh-between", "500000"]).is_err(),
            "needs --window"
        );
        assert!(
            parse(&[
                "--window",
                "100",
                "--fresh-between",
                "500",
                "--per-account",
                "3"
            ])
            .is_err(),
            "the phases set the transfers per account"
        );
        assert!(
            parse(&[
                "--window",
                "100",
                "--fresh-between",
                "500",
                "--fresh-recipients"
            ])
            .is_err(),
            "the phases set the recipients"
        );
    }
}
