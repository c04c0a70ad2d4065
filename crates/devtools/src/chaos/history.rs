//! What the chaos run saw, and the checks over it once the cluster has settled.
//!
//! During the run clients record every transaction they signed and every hash a
//! node acknowledged, and a poller records which hash each node answered for its
//! head. Afterwards [`check`] reads the whole chain from every node and holds it
//! to the promises of DESIGN.md: invariant 3 (an acknowledged transaction is in
//! exactly one block), invariants 1 and 4 (every node, at every moment, shows the
//! same block at a height), and the chain's own shape (no gaps, parents link,
//! per-sender nonces contiguous, nothing no client sent), and DESIGN §7 (every
//! preconfirmation holds in the final chain: same block, position, status, gas
//! and logs; every acknowledged transaction was preconfirmed; streams continue
//! through failovers: one payload id per block on every node, each subscription's
//! frames numbered without gap or repeat).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    time::Duration,
};

use alloy_primitives::{Address, B256, U64};
use baton_primitives::NodeId;
use jsonrpsee::{core::client::ClientT, http_client::HttpClientBuilder, rpc_params};
use serde::Deserialize;

use super::preconf::Preconfirmation;

/// Everything clients and the head poller saw during the run.
#[derive(Debug, Default)]
pub(super) struct History {
    /// Every transaction a client signed and sent: hash -> (sender, nonce).
    pub(super) sent: HashMap<B256, (Address, u64)>,
    /// Hashes a node answered `eth_sendRawTransaction` with.
    pub(super) acked: HashSet<B256>,
    /// Sent, but the run ended before any node answered with the hash.
    pub(super) unanswered: HashSet<B256>,
    /// Heads seen while polling: height -> hash -> nodes that answered it.
    pub(super) heads: BTreeMap<u64, BTreeMap<B256, BTreeSet<NodeId>>>,
    /// Broken promises noticed during the run (a valid resubmission refused, ...).
    pub(super) violations: Vec<String>,
    /// What the preconfirmation streams said: hash -> (node, what it said), one
    /// entry per node that streamed it.
    pub(super) preconfirmed: HashMap<B256, Vec<(NodeId, Preconfirmation)>>,
    /// Frames streamed: block -> payload id -> nodes that streamed it under it
    /// (one id per block, the same on every node and across leaders).
    pub(super) payload_ids: BTreeMap<u64, BTreeMap<String, BTreeSet<NodeId>>>,
    /// Frames counted, and those out of their subscription's numbering.
    pub(super) frames: usize,
    pub(super) frames_misnumbered: Vec<String>,
}

impl History {
    pub(super) fn record_preconfirmations(
        &mut self,
        node: NodeId,
        seen: impl IntoIterator<Item = (B256, Preconfirmation)>,
    ) {
        for (hash, preconfirmation) in seen {
            let said = self.preconfirmed.entry(hash).or_default();
            if !said
                .iter()
                .any(|(n, p)| *n == node && *p == preconfirmation)
            {
                said.push((node, preconfirmation));
            }
        }
    }

    pub(super) fn record_frame(
        &mut self,
        node: NodeId,
        block: u64,
        payload_id: String,
        misnumbered: Option<String>,
    ) {
        self.frames += 1;
        self.payload_ids
            .entry(block)
            .or_default()
            .entry(payload_id)
            .or_default()
            .insert(node);
        if let Some(why) = misnumbered {
            self.frames_misnumbered.push(format!("node {node}: {why}"));
        }
    }

    pub(super) fn record_head(&mut self, node: NodeId, number: u64, hash: B256) {
        self.heads
            .entry(number)
            .or_default()
            .entry(hash)
            .or_default()
            .insert(node);
    }
}

/// One block as the checker needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockSummary {
    number: U64,
    hash: B256,
    parent_hash: B256,
    transactions: Vec<B256>,
}

/// The verdict: counts for the report, and every broken promise in words.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    pub(super) height: u64,
    pub(super) included: usize,
    pub(super) acked_included: usize,
    pub(super) unanswered_included: usize,
    pub(super) lost: usize,
    pub(super) duplicated: usize,
    pub(super) unknown: usize,
    pub(super) nonce_breaks: usize,
    pub(super) forks_seen: usize,
    pub(super) chain_mismatches: usize,
    pub(super) receipt_mismatches: usize,
    /// Transactions some stream preconfirmed, and preconfirmations the final
    /// chain contradicts.
    pub(super) preconfirmed: usize,
    pub(super) preconfirmations_broken: usize,
    /// Frames streamed, and those under a second payload id for their block or
    /// out of their subscription's numbering.
    pub(super) frames: usize,
    pub(super) frames_broken: usize,
    /// Acknowledged transactions no stream preconfirmed.
    pub(super) acked_unpreconfirmed: usize,
    pub(super) violations: Vec<String>,
}

impl Verdict {
    fn fail(&mut self, what: String) {
        if self.violations.len() < 50 {
            self.violations.push(what);
        }
    }
}

/// Reads blocks `0..=height` and their receipts from every node in `urls` and
/// checks them, with `history`, against the promises above.
pub(super) async fn check(
    history: &History,
    urls: &[(NodeId, String)],
    height: u64,
) -> eyre::Result<Verdict> {
    let mut verdict = Verdict {
        height,
        frames: history.frames,
        violations: history.violations.clone(),
        ..Default::default()
    };
    let clients = urls
        .iter()
        .map(|(id, url)| {
            let client = HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(30))
                .build(url)?;
            Ok((*id, client))
        })
        .collect::<eyre::Result<Vec<_>>>()?;
    // Height by height, so memory holds one block's receipts, not the chain's:
    // every node must hold the same block and serve the same receipts.
    let mut reference: Vec<BlockSummary> = Vec::new();
    // What the final chain says of each transaction: (block, index, status, gas, logs).
    let mut settled: HashMap<B256, Preconfirmation> = HashMap::new();
    for number in 0..=height {
        let mut first: Option<(NodeId, BlockSummary, serde_json::Value)> = None;
        for (id, client) in &clients {
            let tag = format!("{number:#x}");
            let block: Option<BlockSummary> = client
                .request("eth_getBlockByNumber", rpc_params![tag.clone(), false])
                .await?;
            let block = block.ok_or_else(|| eyre::eyre!("node {id} has no block {number}"))?;
            let receipts: serde_json::Value = client
                .request("eth_getBlockReceipts", rpc_params![tag])
                .await?;
            let Some((first_id, ours, our_receipts)) = &first else {
                first = Some((*id, block, receipts));
                continue;
            };
            if *ours != block {
                verdict.chain_mismatches += 1;
                verdict.fail(format!(
                    "block {number}: node {first_id} has {}, node {id} has {}",
                    ours.hash, block.hash
                ));
            }
            if *our_receipts != receipts {
                verdict.receipt_mismatches += 1;
                verdict.fail(format!(
                    "block {number}: receipts differ between node {first_id} and node {id}"
                ));
            }
        }
        let (_, block, receipts) = first.ok_or_else(|| eyre::eyre!("no node to check"))?;
        for (index, (hash, receipt)) in block
            .transactions
            .iter()
            .zip(receipts.as_array().into_iter().flatten())
            .enumerate()
        {
            settled.insert(
                *hash,
                Preconfirmation {
                    block: number,
                    index: index as u64,
                    status: receipt["status"].as_str().map(str::to_string),
                    gas_used: receipt["gasUsed"].as_str().map(str::to_string),
                    logs: receipt["logs"].as_array().map_or(0, Vec::len),
                },
            );
        }
        reference.push(block);
    }

    // Heights run 0..=height with no gap, each block on its parent.
    for (number, block) in reference.iter().enumerate() {
        if block.number != U64::from(number) {
            verdict.fail(format!(
                "block at position {number} is numbered {}",
                block.number
            ));
        }
        if number > 0 && block.parent_hash != reference[number - 1].hash {
            verdict.fail(format!(
                "block {number} does not build on block {}",
                number - 1
            ));
        }
    }

    // No node ever answered a height with a hash other than the final chain's.
    for (number, hashes) in &history.heads {
        let Some(block) = reference.get(*number as usize) else {
            continue;
        };
        for (hash, nodes) in hashes {
            if *hash != block.hash {
                verdict.forks_seen += 1;
                verdict.fail(format!(
                    "nodes {nodes:?} showed {hash} at height {number}; the chain holds {}",
                    block.hash
                ));
            }
        }
    }

    // Exactly once, nothing unknown, nonces contiguous per sender.
    let mut count: HashMap<B256, usize> = HashMap::new();
    let mut next_nonce: HashMap<Address, u64> = HashMap::new();
    for block in &reference {
        for tx in &block.transactions {
            verdict.included += 1;
            *count.entry(*tx).or_default() += 1;
            let Some((sender, nonce)) = history.sent.get(tx) else {
                verdict.unknown += 1;
                verdict.fail(format!(
                    "block {} holds {tx}, which no client sent",
                    block.number
                ));
                continue;
            };
            let expected = next_nonce.entry(*sender).or_default();
            if *nonce != *expected {
                verdict.nonce_breaks += 1;
                verdict.fail(format!(
                    "block {}: {sender} nonce {nonce} where {expected} was next",
                    block.number
                ));
            }
            *expected = nonce + 1;
        }
    }
    for (tx, n) in &count {
        if *n > 1 {
            verdict.duplicated += 1;
            verdict.fail(format!("{tx} is included {n} times"));
        }
    }
    for tx in &history.acked {
        match count.get(tx) {
            Some(_) => verdict.acked_included += 1,
            None => {
                verdict.lost += 1;
                verdict.fail(format!("acknowledged {tx} is in no block"));
            }
        }
    }
    // A preconfirmation is final: the chain holds the transaction exactly where,
    // and as, every stream said.
    for (hash, said) in &history.preconfirmed {
        verdict.preconfirmed += 1;
        for (node, preconfirmation) in said {
            if settled.get(hash) != Some(preconfirmation) {
                verdict.preconfirmations_broken += 1;
                verdict.fail(format!(
                    "node {node} preconfirmed {hash} as {preconfirmation:?}; the chain has {:?}",
                    settled.get(hash)
                ));
            }
        }
    }
    // A stream continues through any failover: one payload id per block
    // everywhere, and each subscription's frames numbered without gap or repeat.
    for (block, ids) in &history.payload_ids {
        if ids.len() > 1 {
            verdict.frames_broken += 1;
            verdict.fail(format!("block {block} streamed under payload ids {ids:?}"));
        }
    }
    for why in &history.frames_misnumbered {
        verdict.frames_broken += 1;
        verdict.fail(why.clone());
    }
    for tx in &history.acked {
        if !history.preconfirmed.contains_key(tx) {
            verdict.acked_unpreconfirmed += 1;
            verdict.fail(format!("acknowledged {tx} was never preconfirmed"));
        }
    }
    verdict.unanswered_included = history
        .unanswered
        .iter()
        .filter(|tx| count.contains_key(*tx))
        .count();
    Ok(verdict)
}
