//! Execute once (DESIGN §6): what the leader already executed ahead of the log
//! (each admitted batch, and its seal of each block), kept for its own state
//! machine to reuse when the same entries come back committed, instead of
//! executing them a second time. Followers never find anything here and execute.
//!
//! An entry is reused only when it is exactly what the leader executed on exactly
//! this state: same leader and term (its log id), same block, same position in the
//! block, same transactions (checked by hash) — anything else is executed, and a
//! seal is reused only if it hashes to the `BlockEnd`'s hash.

use std::{collections::HashMap, sync::Arc};

use alloy_primitives::B256;
use baton_execution::{ExecutedTx, SealOutcome, TxDiff};
use baton_primitives::NodeId;
use parking_lot::Mutex;

/// Where a batch sits: proposed by `leader` in `term`, in block `block`, its first
/// transaction at index `first` of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchKey {
    pub term: u64,
    pub leader: NodeId,
    pub block: u64,
    pub first: usize,
}

/// The leader's results, shared between its sequencer (which adds) and its state
/// machine (which takes). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Executed {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    batches: HashMap<BatchKey, Vec<(ExecutedTx, TxDiff)>>,
    /// Seals by (term, leader, block).
    seals: HashMap<(u64, NodeId, u64), SealOutcome>,
}

impl Executed {
    /// Keeps a batch's results until its entry is applied. Call before proposing
    /// it, so the state machine finds it however fast the entry commits.
    pub fn add_batch(&self, key: BatchKey, results: Vec<(ExecutedTx, TxDiff)>) {
        self.inner.lock().batches.insert(key, results);
    }

    /// Keeps a seal until its `BlockEnd` is applied.
    pub fn add_seal(&self, term: u64, leader: NodeId, outcome: SealOutcome) {
        let block = outcome.block.number();
        self.inner
            .lock()
            .seals
            .insert((term, leader, block), outcome);
    }

    /// The results of the batch at `key`, if they are for exactly `hashes`.
    pub(crate) fn take_batch(
        &self,
        key: &BatchKey,
        hashes: &[B256],
    ) -> Option<Vec<(ExecutedTx, TxDiff)>> {
        let results = self.inner.lock().batches.remove(key)?;
        let same = results.len() == hashes.len()
            && results
                .iter()
                .zip(hashes)
                .all(|((tx, _), hash)| tx.hash == *hash);
        same.then_some(results)
    }

    /// The seal of `block` by `leader` in `term`, if it hashes to `hash`.
    pub(crate) fn take_seal(
        &self,
        term: u64,
        leader: NodeId,
        block: u64,
        hash: B256,
    ) -> Option<SealOutcome> {
        let outcome = self.inner.lock().seals.remove(&(term, leader, block))?;
        (outcome.block.hash == hash).then_some(outcome)
    }

    /// Forgets everything (a new term: nothing proposed before can be reused).
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.batches.clear();
        inner.seals.clear();
    }
}
