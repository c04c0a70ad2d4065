//! What a throughput run prints: throughput, latencies, windows, leader changes,
//! what bounded the run, the nodes' memory, CPU and disk, and the exactly-once check.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use alloy_primitives::B256;
use baton_primitives::NodeId;

use super::{Sent, TpsArgs, watch};
use crate::bench::percentile;

/// Everything a run recorded.
pub(crate) struct Outcome {
    pub total: u64,
    pub acked: HashMap<B256, Sent>,
    pub blocks: watch::Blocks,
    pub leaders: Vec<(u64, Option<NodeId>)>,
    pub refused: Vec<String>,
    pub sending: Duration,
    /// Per phase sent: while every worker had a request in flight.
    pub loaded: Vec<Loaded>,
    /// Per node: usage before and after the run.
    pub usage: Vec<(NodeId, watch::Usage, watch::Usage)>,
    /// CPU seconds this load generator used over the run (it shares the cores).
    pub generator_cpu: f64,
    /// Appends of 4 KiB made durable in the nodes' data dir before the run, sorted.
    pub fdatasync: Vec<Duration>,
    /// Per node: RSS sampled through the run.
    pub memory: Vec<(f64, NodeId, f64)>,
    /// Per node: the p50 and p99 time to seal and write a block, in seconds.
    pub seals: Vec<NodeMetrics>,
    /// Per node: bytes in its data dir before and after the run.
    pub disk: Vec<(NodeId, u64, u64)>,
    pub cores: usize,
}

/// One phase of the run under full load: from its first send until the first
/// worker found no account left to send from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loaded {
    pub began: Instant,
    pub until: Instant,
    /// Whether each of its transfers went to a fresh address.
    pub fresh: bool,
}

/// What one node's `/metrics` said at the end of the run.
#[derive(Debug, Clone)]
pub(crate) struct NodeMetrics {
    pub id: NodeId,
    /// Seal and write of a block: p50, p99 (seconds).
    pub seal: (Option<f64>, Option<f64>),
    /// Gap between appends (heartbeats included) received from the leader: p50,
    /// p99 (seconds); none on a node that led throughout.
    pub append_gap: (Option<f64>, Option<f64>),
    /// Transaction batches applied: reused from this node's own admission, and
    /// executed here.
    pub batches: (Option<f64>, Option<f64>),
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints the report; returns whether every acknowledged transfer is in exactly
/// one block and none was refused.
pub(crate) fn print(args: &TpsArgs, o: &Outcome) -> bool {
    let mut acks: Vec<&Sent> = o.acked.values().collect();
    acks.sort_by_key(|s| s.acked);
    let span = match (acks.iter().map(|s| s.at).min(), acks.last()) {
        (Some(first), Some(last)) => last.acked - first,
        _ => o.sending,
    };
    let rate = |count: usize, over: Duration| count as f64 / over.as_secs_f64().max(1e-9);
    println!(
        "\n{} transfers acknowledged of {} in {:.2}s: {:.0} transfers/s sustained ({} nodes, concurrency {}, block time {} ms{})",
        acks.len(),
        o.total,
        span.as_secs_f64(),
        rate(acks.len(), span),
        args.cluster.nodes,
        args.concurrency,
        args.cluster.block_time_ms,
        match (args.fresh_between, args.fresh_recipients) {
            (Some(_), _) => ", in three phases",
            (None, true) => ", each to a fresh address",
            (None, false) => "",
        },
    );
    let mut ack: Vec<Duration> = acks.iter().map(|s| s.acked - s.at).collect();
    let mut inclusion: Vec<Duration> = o
        .acked
        .iter()
        .filter_map(|(h, s)| {
            o.blocks
                .included
                .get(h)
                .map(|(_, seen)| seen.saturating_duration_since(s.at))
        })
        .collect();
    ack.sort();
    inclusion.sort();
    for (name, samples) in [("ack", &ack), ("inclusion", &inclusion)] {
        println!(
            "{name:<9} latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(samples, 50.0)),
            ms(percentile(samples, 99.0)),
            ms(percentile(samples, 100.0))
        );
    }
    println!(
        "disk: fdatasync of a 4 KiB append p50 {:.2} ms, p99 {:.2} ms (the nodes' data dir); \
         ack p50 = {:.1} × fdatasync p50",
        ms(percentile(&o.fdatasync, 50.0)),
        ms(percentile(&o.fdatasync, 99.0)),
        ms(percentile(&ack, 50.0)) / ms(percentile(&o.fdatasync, 50.0)).max(1e-9)
    );
    if o.loaded.len() > 1 {
        print_phases(&acks, &o.loaded);
    }
    // The last window ends when the first worker ran out of transfers: from then on
    // fewer requests are in flight, and the tail would measure the client running
    // dry, not the node.
    let full_load_until = o.loaded.last().map_or_else(Instant::now, |l| l.until);
    let loaded = acks.partition_point(|s| s.acked <= full_load_until);
    match args.window.filter(|w| *w > 0 && o.loaded.len() == 1) {
        Some(window) if loaded < 2 * window => println!(
            "windows of {window}: not measured: only {loaded} acks came while all {} workers \
             had transfers to send (more accounts than workers make the full-load stretch longer)",
            args.concurrency
        ),
        Some(window) => {
            let first_start = acks[..window]
                .iter()
                .map(|s| s.at)
                .min()
                .unwrap_or_else(Instant::now);
            let first = rate(window, acks[window - 1].acked - first_start);
            let last = rate(
                window,
                acks[loaded - 1].acked - acks[loaded - window - 1].acked,
            );
            println!(
                "windows of {window}: first {first:.0}/s, last {last:.0}/s, last ÷ first = {:.2} \
                 (the last window ends at ack {loaded}, when the first of {} workers ran out of \
                 transfers; {} acks came after it with fewer in flight)",
                last / first,
                args.concurrency,
                acks.len() - loaded,
            );
        }
        None => {}
    }
    println!(
        "leaders during the run: {} change(s): {:?}",
        o.leaders.len().saturating_sub(1),
        o.leaders
    );
    print_bound(o, span);
    for (id, before, after) in &o.usage {
        println!(
            "node {id}: RSS {:.0} MiB (peak {:.0} MiB), CPU {:.2} cores over the run",
            after.rss_mib,
            after.peak_rss_mib,
            (after.cpu_seconds - before.cpu_seconds) / span.as_secs_f64().max(1e-9)
        );
    }
    print_memory(&o.memory);
    for node in &o.seals {
        let show = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{:.1} ms", s * 1000.0));
        let count = |c: Option<f64>| c.map_or("0".to_string(), |c| format!("{c:.0}"));
        println!(
            "node {}: seal and write a block: p50 {}, p99 {}; gap between appends from the leader: p50 {}, p99 {}; batches reused {}, executed {}",
            node.id,
            show(node.seal.0),
            show(node.seal.1),
            show(node.append_gap.0),
            show(node.append_gap.1),
            count(node.batches.0),
            count(node.batches.1),
        );
    }
    let blocks = o.blocks.fullness.len().max(1) as f64;
    let transfers = o.acked.len().max(1) as f64;
    for (id, before, after) in &o.disk {
        let grew = after.saturating_sub(*before) as f64;
        println!(
            "node {id}: data dir {:.1} MiB, grew {:.1} MiB: {:.1} KiB per block, {:.0} bytes per transfer (Raft log and all history kept; before compaction)",
            *after as f64 / (1 << 20) as f64,
            grew / (1 << 20) as f64,
            grew / 1024.0 / blocks,
            grew / transfers
        );
    }
    let missing = o
        .acked
        .keys()
        .filter(|h| !o.blocks.included.contains_key(*h))
        .count();
    let duplicated = o.blocks.duplicates.len();
    let unknown = o
        .blocks
        .included
        .keys()
        .filter(|h| !o.acked.contains_key(*h))
        .count();
    println!(
        "exactly once: {missing} acknowledged but missing, {duplicated} included twice, {unknown} included but never acknowledged"
    );
    for line in o.refused.iter().take(5) {
        println!("refused: {line}");
    }
    missing + duplicated + unknown == 0 && o.refused.is_empty()
}

/// Acknowledgements of transfers sent in `phase` while it was under full load.
fn count_in(acks: &[&Sent], phase: Loaded) -> usize {
    acks.iter()
        .filter(|s| s.at >= phase.began && s.acked <= phase.until)
        .count()
}

/// Each phase's throughput under full load, and the last ÷ the first (the same
/// load on the grown state as on the small one).
fn print_phases(acks: &[&Sent], phases: &[Loaded]) {
    let rates: Vec<f64> = phases
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let count = count_in(acks, *phase);
            let over = (phase.until - phase.began).as_secs_f64();
            let rate = count as f64 / over.max(1e-9);
            let to = if phase.fresh {
                "each to a fresh address"
            } else {
                "to one address"
            };
            println!(
                "phase {} ({to}): {count} acks under full load in {over:.1}s: {rate:.0}/s",
                i + 1
            );
            rate
        })
        .collect();
    if let (Some(first), Some(last)) = (rates.first(), rates.last()) {
        println!("last phase ÷ first = {:.2}", last / first);
    }
}

/// Each node's RSS after the run's first minute: where it started, its highest,
/// and where it ended (flat memory: the three about equal).
fn print_memory(samples: &[(f64, NodeId, f64)]) {
    let mut ids: Vec<NodeId> = samples.iter().map(|(_, id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let after_a_minute: Vec<f64> = samples
            .iter()
            .filter(|(at, node, _)| *node == id && *at >= 60.0)
            .map(|(_, _, rss)| *rss)
            .collect();
        let (Some(first), Some(last)) = (after_a_minute.first(), after_a_minute.last()) else {
            continue;
        };
        let max = after_a_minute.iter().copied().fold(0.0, f64::max);
        println!(
            "node {id}: RSS after the first minute: {first:.0} MiB at 1 min, highest {max:.0} MiB, {last:.0} MiB at the end ({} samples)",
            after_a_minute.len()
        );
    }
}

/// Says what held the throughput down: blocks at their gas limit, cores busy, or
/// neither (then the clients and the concurrency are the bound).
fn print_bound(o: &Outcome, span: Duration) {
    let busy: Vec<&(f64, usize)> = o
        .blocks
        .fullness
        .iter()
        .filter(|(_, txs)| *txs > 0)
        .collect();
    let full = busy.iter().filter(|(f, _)| *f >= 0.95).count();
    let avg_txs = busy.iter().map(|(_, t)| *t).sum::<usize>() as f64 / busy.len().max(1) as f64;
    let cpu: f64 = o
        .usage
        .iter()
        .map(|(_, before, after)| after.cpu_seconds - before.cpu_seconds)
        .sum::<f64>()
        / span.as_secs_f64().max(1e-9);
    let generator = o.generator_cpu / span.as_secs_f64().max(1e-9);
    println!(
        "blocks with transactions: {}, {avg_txs:.0} transactions each on average, {full} at ≥ 95% of the gas limit",
        busy.len()
    );
    let bound = if !busy.is_empty() && full * 2 >= busy.len() {
        "the block gas limit (most blocks were full): not a capacity figure".to_string()
    } else if cpu + generator >= 0.85 * o.cores as f64 {
        format!(
            "CPU: the nodes used {cpu:.1} and this load generator {generator:.1} of {} cores",
            o.cores
        )
    } else {
        format!(
            "neither gas nor CPU (the nodes used {cpu:.1} and this load generator {generator:.1} \
             of {} cores): latency × concurrency bounds it",
            o.cores
        )
    };
    println!("bounded by: {bound}");
}
