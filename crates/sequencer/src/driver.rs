//! The leader loop: performs what [`policy`](crate::policy) decides, through Raft.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::Address;
use baton_consensus::{ChainView, Consensus};
use baton_execution::{BlockBuilder, next_base_fee};
use baton_primitives::{BlockEnd, BlockStart, SequencerEntry};
use baton_storage::Store;
use openraft::{ReadPolicy, type_config::async_runtime::WatchReceiver};
use tokio::sync::watch;

use crate::policy::{Action, Observed, next_action};

/// How the leader builds blocks.
#[derive(Debug, Clone)]
pub struct SequencerConfig {
    pub chain_id: u64,
    pub block_time: Duration,
    pub gas_limit: u64,
    pub coinbase: Address,
}

/// Produces blocks whenever this node leads.
#[derive(Debug)]
pub struct Sequencer {
    config: SequencerConfig,
    consensus: Consensus,
    store: Store,
}

impl Sequencer {
    pub fn new(config: SequencerConfig, consensus: Consensus, store: Store) -> Self {
        Self {
            config,
            consensus,
            store,
        }
    }

    /// Runs until `shutdown` flips to true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut metrics = self.consensus.raft().metrics();
        loop {
            if *shutdown.borrow() {
                return;
            }
            if self.consensus.is_leader() {
                let term = self.consensus.status().term;
                tokio::select! {
                    why = self.lead(term) => {
                        tracing::info!(term, %why, "stopped producing blocks");
                    }
                    _ = shutdown.changed() => return,
                }
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => {},
            }
        }
    }

    /// Produces blocks for as long as this node leads in `term`; returns why it stopped.
    async fn lead(&self, term: u64) -> String {
        let raft = self.consensus.raft();
        // DESIGN invariant 2: produce nothing until every entry in our log as of the
        // election is applied. The read barrier waits for this term's blank entry
        // to commit and for the state machine to apply up to it.
        if let Err(e) = raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            return e.to_string();
        }
        let mut chain = self.consensus.chain();
        tracing::info!(
            head = chain.borrow().head.number(),
            "leading: producing blocks"
        );
        loop {
            // Every decision is made on a view that includes all entries of
            // earlier terms; a new term (even one we lead) starts over with the barrier.
            if !self.consensus.is_leader() || self.consensus.status().term != term {
                return "no longer leader in this term".into();
            }
            let view = chain.borrow_and_update().clone();
            let action = next_action(Observed {
                now_ms: now_ms(),
                block_time_ms: self.config.block_time.as_millis() as u64,
                head_start_ms: view.head_start_ms,
                open_start_ms: view.open.as_ref().map(|o| o.timestamp_ms),
            });
            let entry = match action {
                Action::WaitUntil(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(now_ms()));
                    // Also wake on applied changes: a membership change or snapshot
                    // can move the chain under us.
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = chain.changed() => {}
                    }
                    continue;
                }
                Action::Open { timestamp_ms } => {
                    SequencerEntry::BlockStart(self.block_start(&view, timestamp_ms))
                }
                Action::Seal => match self.block_end(&view) {
                    Ok(end) => SequencerEntry::BlockEnd(end),
                    Err(why) => return why,
                },
            };
            // Returns once the entry is committed and applied here, so the next
            // decision sees its effect.
            if let Err(e) = raft.client_write(entry).await {
                return e.to_string();
            }
        }
    }

    fn block_start(&self, view: &ChainView, timestamp_ms: u64) -> BlockStart {
        let head = &view.head;
        BlockStart {
            number: head.number() + 1,
            timestamp_ms,
            parent_hash: head.hash,
            base_fee: next_base_fee(&head.header),
            gas_limit: self.config.gas_limit,
            coinbase: self.config.coinbase,
        }
    }

    fn block_end(&self, view: &ChainView) -> Result<BlockEnd, String> {
        // Only this loop writes to the log while we lead, and it waits for each
        // write to apply, so the stored open block is the one `view` describes.
        let open = self
            .store
            .open_block()
            .map_err(|e| e.to_string())?
            .ok_or("the open block vanished")?;
        debug_assert_eq!(Some(&open.start), view.open.as_ref());
        let builder = BlockBuilder::replay(self.store.clone(), self.config.chain_id, &open)
            .map_err(|e| e.to_string())?;
        let sealed = builder.seal(&view.head.header).map_err(|e| e.to_string())?;
        Ok(BlockEnd {
            number: sealed.block.number(),
            hash: sealed.block.hash,
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
