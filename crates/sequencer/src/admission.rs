//! Admission: how transactions reach the leader's batches.
//!
//! ```text
//!  RPC ──Submission──▶ mpsc ──▶ leader loop: collect ≤ BATCH_WINDOW ──▶ execute each on
//!                                the speculative block (applied + proposed) ──▶ batch
//!  reply(hash) ◀── only after the batch's Transactions entry is committed and applied
//! ```
//!
//! DESIGN invariant 3: a hash is returned only for a committed transaction, and a
//! transaction that cannot execute never enters the log.

use std::time::Duration;

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, Bytes};
use tokio::sync::{mpsc, oneshot};

/// How long the leader keeps collecting a batch after its first transaction.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Most transactions in one `Transactions` entry.
pub const MAX_BATCH: usize = 2_000;

/// How long a transaction whose nonce is ahead of its sender's waits for the gap
/// to fill: under the forwarding patience of a follower (2 s), so its caller gets
/// this node's answer rather than a timeout.
pub const GAP_PATIENCE: Duration = Duration::from_millis(1_500);
/// Most transactions waiting on nonce gaps, per sender and in all.
pub const MAX_GAPPED_PER_SENDER: usize = 64;
pub const MAX_GAPPED: usize = 10_000;

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

/// One transaction waiting for the leader, with its recovered sender.
#[derive(Debug)]
pub struct Submission {
    pub raw: Bytes,
    pub sender: Address,
    pub reply: oneshot::Sender<Result<B256, AdmissionError>>,
}

/// Hands transactions to this node's sequencer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SubmitHandle {
    tx: mpsc::Sender<Submission>,
}

impl SubmitHandle {
    pub(crate) fn channel(capacity: usize) -> (Self, mpsc::Receiver<Submission>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx }, rx)
    }

    /// Submits `raw` and waits until it is committed (or refused).
    ///
    /// The sender is recovered here, on the caller's task: ECDSA recovery is the
    /// most expensive step of admission, and here it runs in parallel across RPC
    /// requests instead of one at a time in the leader's loop.
    pub async fn submit(&self, raw: Bytes) -> Result<B256, AdmissionError> {
        let sender = recover(&raw).map_err(AdmissionError::Refused)?;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Submission { raw, sender, reply })
            .await
            .map_err(|_| AdmissionError::NotLeader)?;
        answer.await.unwrap_or(Err(AdmissionError::NotLeader))
    }
}

/// The sender of a raw transaction, or why it has none.
fn recover(raw: &Bytes) -> Result<Address, String> {
    let tx = TxEnvelope::decode_2718(&mut raw.as_ref())
        .map_err(|e| format!("invalid transaction: {e}"))?;
    tx.recover_signer()
        .map_err(|e| format!("invalid signature: {e}"))
}
