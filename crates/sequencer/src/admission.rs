//! Admission: how transactions reach the leader's batches.
//!
//! ```text
//!  RPC ──Submission──▶ mpsc ──▶ leader loop: take what waits (≤ MAX_BATCH, ≤ BATCH_WINDOW)
//!                                ──▶ execute each on the speculative block (applied + proposed)
//!                                ──▶ propose the batch; up to MAX_IN_FLIGHT batches replicate at once
//!  reply(hash) ◀── only after the batch's Transactions entry is committed
//! ```
//!
//! DESIGN invariant 3: a hash is returned only for a committed transaction, and a
//! transaction that cannot execute never enters the log. What happens to each
//! submission is decided by [`dispose`], a pure function of how it executed.

use std::sync::Arc;

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, Bytes};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::gaps::Gaps;

/// Most transactions in one `Transactions` entry.
pub const MAX_BATCH: usize = 2_000;

/// Longest a batch waits for more transactions while earlier batches replicate
/// (with nothing in flight, a batch is proposed at once).
pub const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

/// Most batches proposed and not yet committed at once.
pub const MAX_IN_FLIGHT: usize = 4;

/// Why a submitted transaction was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// Refused for good: it can never execute as sent.
    #[error("{0}")]
    Refused(String),
    /// This node does not lead (any more); the caller should find the leader.
    #[error("not the leader")]
    NotLeader,
}

/// How a submission fared on the speculative open block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// It executed: it can join the batch.
    Executed,
    /// It is in the chain already: committed, in a sealed or the open block.
    InChain,
    /// It is in a batch proposed (or being built) and not committed yet.
    Proposed,
    /// Valid, but the open block has no room left for it.
    BlockFull,
    /// Its nonce is ahead of its sender's next one.
    NonceAhead { nonce: u64 },
    /// It can never execute as sent.
    Refused(String),
}

/// What to do with one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Join the batch; answer with the hash once the batch commits.
    Include,
    /// Answer now.
    Reply(Result<B256, AdmissionError>),
    /// Carry it (and everything after it) into the next block; seal this one.
    Overflow,
    /// Wait on the nonce gap.
    Park { nonce: u64 },
}

/// DESIGN invariant 3: decides a submission's fate from how it executed.
pub fn dispose(hash: B256, execution: Execution) -> Disposition {
    match execution {
        Execution::Executed => Disposition::Include,
        // A duplicate of a transaction that has not committed yet: its own
        // caller gets the hash once it commits, this one is told it is known.
        Execution::Proposed => {
            Disposition::Reply(Err(AdmissionError::Refused("already known".into())))
        }
        // A wallet retrying across a failover: already committed means acknowledged.
        Execution::InChain => Disposition::Reply(Ok(hash)),
        Execution::BlockFull => Disposition::Overflow,
        Execution::NonceAhead { nonce } => Disposition::Park { nonce },
        Execution::Refused(why) => Disposition::Reply(Err(AdmissionError::Refused(why))),
    }
}

/// One transaction waiting for the leader, with its recovered sender.
#[derive(Debug)]
pub struct Submission {
    pub raw: Bytes,
    pub sender: Address,
    pub reply: oneshot::Sender<Result<B256, AdmissionError>>,
}

/// The transactions waiting on nonce gaps while this node leads: the leader's
/// producer parks and releases them; `txpool_*` reads them.
pub(crate) type SharedGaps = Arc<Mutex<Gaps<Submission>>>;

/// Hands transactions to this node's sequencer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SubmitHandle {
    tx: mpsc::Sender<Submission>,
    gaps: SharedGaps,
}

/// A transaction waiting for an earlier nonce of its sender.
#[derive(Debug, Clone)]
pub struct Queued {
    pub sender: Address,
    pub nonce: u64,
    pub raw: Bytes,
}

impl SubmitHandle {
    pub(crate) fn channel(capacity: usize, gaps: SharedGaps) -> (Self, mpsc::Receiver<Submission>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, gaps }, rx)
    }

    /// What waits on nonce gaps here (nothing unless this node leads), by
    /// sender and nonce. Every other acknowledged transaction is already in a
    /// block: baton has no pool of transactions waiting for one.
    pub fn queued(&self) -> Vec<Queued> {
        let mut queued: Vec<Queued> = self
            .gaps
            .lock()
            .iter()
            .map(|(sender, nonce, submission)| Queued {
                sender,
                nonce,
                raw: submission.raw.clone(),
            })
            .collect();
        queued.sort_unstable_by_key(|q| (q.sender, q.nonce));
        queued
    }

    /// Submits `raw` and waits until it is committed (or refused).
    ///
    /// The sender is recovered here, on the caller's task: ECDSA recovery is the
    /// most expensive step of admission, and here it runs in parallel across RPC
    /// requests instead of one at a time in the leader's loop.
    pub async fn submit(&self, raw: Bytes) -> Result<B256, AdmissionError> {
        let sender = recover(&raw).map_err(AdmissionError::Refused)?;
        let (reply, answer) = oneshot::channel();
        let received = std::time::Instant::now();
        self.tx
            .send(Submission { raw, sender, reply })
            .await
            .map_err(|_| AdmissionError::NotLeader)?;
        let answer = answer.await.unwrap_or(Err(AdmissionError::NotLeader));
        if answer.is_ok() {
            // Admission to acknowledgement: executed, committed by a quorum, applied here.
            metrics::histogram!("baton_admission_ack_seconds")
                .record(received.elapsed().as_secs_f64());
        }
        answer
    }
}

/// The sender of a raw transaction, or why it has none.
fn recover(raw: &Bytes) -> Result<Address, String> {
    let tx = TxEnvelope::decode_2718(&mut raw.as_ref())
        .map_err(|e| format!("invalid transaction: {e}"))?;
    tx.recover_signer()
        .map_err(|e| format!("invalid signature: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: B256 = B256::repeat_byte(7);

    /// DESIGN invariant 3: an executed transaction is answered only with its batch.
    #[test]
    fn an_executed_transaction_joins_the_batch() {
        assert_eq!(dispose(HASH, Execution::Executed), Disposition::Include);
    }

    /// DESIGN invariant 3: a resend of a committed transaction gets its hash.
    #[test]
    fn a_committed_transaction_is_acknowledged_again() {
        assert_eq!(
            dispose(HASH, Execution::InChain),
            Disposition::Reply(Ok(HASH))
        );
    }

    /// DESIGN invariant 3: a duplicate of an uncommitted transaction is not
    /// acknowledged ahead of its commit.
    #[test]
    fn a_duplicate_of_a_proposed_transaction_is_already_known() {
        assert_eq!(
            dispose(HASH, Execution::Proposed),
            Disposition::Reply(Err(AdmissionError::Refused("already known".into())))
        );
    }

    /// DESIGN invariant 3: what cannot execute never enters the log.
    #[test]
    fn a_refused_transaction_is_answered_with_why() {
        assert_eq!(
            dispose(HASH, Execution::Refused("nonce too low".into())),
            Disposition::Reply(Err(AdmissionError::Refused("nonce too low".into())))
        );
    }

    #[test]
    fn a_transaction_for_a_full_block_waits_for_the_next() {
        assert_eq!(dispose(HASH, Execution::BlockFull), Disposition::Overflow);
    }

    #[test]
    fn a_nonce_ahead_waits_on_its_gap() {
        assert_eq!(
            dispose(HASH, Execution::NonceAhead { nonce: 9 }),
            Disposition::Park { nonce: 9 }
        );
    }
}
