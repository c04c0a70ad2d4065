//! `baton bench tps`: sustained transfer throughput and latency on a local cluster.
//!
//! Pre-signs transfers from many dev accounts, sends them at a fixed concurrency to
//! every node in turn (followers forward to the leader), and records for each: the
//! time to acknowledgement (committed) and to inclusion (its block seen on a node).
//! Ends by checking that every acknowledged transaction is in exactly one block.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256, Bytes};
use alloy_signer_local::PrivateKeySigner;
use baton_node::config::NodeArgs;
use baton_primitives::dev_accounts;
use clap::Args;
use eyre::{WrapErr, bail};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};
use parking_lot::Mutex;

use crate::{
    bench::{BenchCluster, percentile, start_cluster},
    client::signed_transfer,
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
    #[command(flatten)]
    pub cluster: BenchCluster,
}

/// When one transfer was sent and acknowledged.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Instant,
    acked: Instant,
}

pub async fn tps(args: TpsArgs) -> eyre::Result<()> {
    if args.accounts == 0 || args.per_account == 0 || args.concurrency == 0 {
        bail!("--accounts, --per-account and --concurrency must be above zero");
    }
    let mut extra = NodeArgs::default();
    extra.data.dev_accounts = Some(args.accounts);
    let (_temp, mut cluster) = start_cluster(&args.cluster, extra).await?;
    cluster.wait_for_height(1, Duration::from_secs(30)).await?;

    let signing = Instant::now();
    let queues = sign_transfers(args.accounts, args.per_account)?;
    let total = args.accounts as u64 * args.per_account;
    println!(
        "signed {total} transfers from {} accounts in {:?}",
        args.accounts,
        signing.elapsed()
    );

    let clients: Vec<HttpClient> = cluster
        .nodes
        .iter()
        .map(|n| {
            HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(30))
                .build(&n.rpc_url)
        })
        .collect::<Result<_, _>>()?;
    let start_head = crate::client::node_status(&cluster.nodes[0].rpc_url, Duration::from_secs(2))
        .await?
        .head_number;

    // Workers take whole accounts off a shared queue, so one account's transfers go
    // out in nonce order, each after the previous one is acknowledged.
    let queues = Arc::new(Mutex::new(queues));
    let sent: Arc<Mutex<HashMap<B256, Sent>>> = Arc::default();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let began = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let (queues, sent, refused) = (queues.clone(), sent.clone(), refused.clone());
            let client = clients[worker % clients.len()].clone();
            tokio::spawn(async move {
                loop {
                    let Some(account) = queues.lock().pop() else {
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
    // Watch blocks as they appear, to time inclusion.
    let included: Arc<Mutex<HashMap<B256, (u64, Instant)>>> = Arc::default();
    let duplicates = Arc::new(Mutex::new(Vec::new()));
    let watcher = {
        let (client, included, duplicates) =
            (clients[0].clone(), included.clone(), duplicates.clone());
        tokio::spawn(async move {
            let mut next = start_head + 1;
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
                let hashes = block["transactions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut included = included.lock();
                for hash in hashes
                    .iter()
                    .filter_map(|h| h.as_str()?.parse::<B256>().ok())
                {
                    if included.insert(hash, (next, seen)).is_some() {
                        duplicates.lock().push(hash);
                    }
                }
                next += 1;
            }
        })
    };
    for worker in workers {
        worker.await.wrap_err("worker")?;
    }
    let sending = began.elapsed();
    let acked: HashMap<B256, Sent> = sent.lock().clone();
    // Every acknowledged transfer must appear in a block.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let all_in = {
            let included = included.lock();
            acked.keys().all(|h| included.contains_key(h))
        };
        if all_in {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();

    let included = included.lock().clone();
    let missing = acked.keys().filter(|h| !included.contains_key(*h)).count();
    let duplicated = duplicates.lock().len();
    let unknown = included.keys().filter(|h| !acked.contains_key(*h)).count();
    let refused = refused.lock().clone();

    let mut ack: Vec<Duration> = acked.values().map(|s| s.acked - s.at).collect();
    let mut inclusion: Vec<Duration> = acked
        .iter()
        .filter_map(|(h, s)| {
            included
                .get(h)
                .map(|(_, seen)| seen.saturating_duration_since(s.at))
        })
        .collect();
    ack.sort();
    inclusion.sort();
    let first = acked.values().map(|s| s.at).min();
    let last = acked.values().map(|s| s.acked).max();
    let span = match (first, last) {
        (Some(first), Some(last)) => last - first,
        _ => sending,
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\n{} transfers acknowledged of {total} in {:.2}s: {:.0} transfers/s sustained ({} nodes, concurrency {}, block time {} ms)",
        acked.len(),
        span.as_secs_f64(),
        acked.len() as f64 / span.as_secs_f64().max(1e-9),
        args.cluster.nodes,
        args.concurrency,
        args.cluster.block_time_ms
    );
    println!(
        "ack latency:       p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&ack, 50.0)),
        ms(percentile(&ack, 99.0)),
        ms(percentile(&ack, 100.0))
    );
    println!(
        "inclusion latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&inclusion, 50.0)),
        ms(percentile(&inclusion, 99.0)),
        ms(percentile(&inclusion, 100.0))
    );
    println!(
        "exactly once: {missing} acknowledged but missing, {duplicated} included twice, {unknown} included but never acknowledged"
    );
    for line in refused.iter().take(5) {
        println!("refused: {line}");
    }
    cluster.stop_all(Duration::from_secs(5));
    if missing + duplicated + unknown > 0 || !refused.is_empty() {
        bail!("the run lost, duplicated or refused transfers (see above)");
    }
    Ok(())
}

/// For each account, its transfers in nonce order as (hash, raw), one account per entry.
fn sign_transfers(accounts: u32, per_account: u64) -> eyre::Result<Vec<Vec<(B256, Bytes)>>> {
    let sink = Address::repeat_byte(0xbe);
    dev_accounts(accounts)
        .into_iter()
        .map(|account| {
            let signer = PrivateKeySigner::from_bytes(&account.private_key)?;
            (0..per_account)
                .map(|nonce| signed_transfer(&signer, nonce, sink))
                .collect()
        })
        .collect()
}
