//! Transactions whose nonce is ahead of their sender's, waiting (briefly, and in
//! bounded number) for the gap to fill: a wallet's earlier nonce may still be in
//! flight to the leader. Pure bookkeeping: the caller passes the time in.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256};

/// How long a transaction whose nonce is ahead of its sender's waits for the gap
/// to fill: under the forwarding patience of a follower (2 s), so its caller gets
/// this node's answer rather than a timeout.
pub const GAP_PATIENCE: Duration = Duration::from_millis(1_500);
/// Most transactions waiting on nonce gaps, per sender and in all, and most bytes
/// of them in all (10k transactions of the largest size would be over 1 GiB).
pub const MAX_GAPPED_PER_SENDER: usize = 64;
pub const MAX_GAPPED: usize = 10_000;
pub const MAX_GAPPED_BYTES: usize = 32 << 20;

/// Why a transaction may not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The very same transaction already waits.
    AlreadyKnown,
    /// Another transaction with that nonce waits (replacement is not supported).
    Underpriced,
    /// The queue is full, for this sender or in all (by count or bytes).
    Full,
}

impl Refusal {
    /// The error a wallet is given, in the words it matches on.
    pub fn message(self) -> &'static str {
        match self {
            Self::AlreadyKnown => "already known",
            Self::Underpriced => "replacement transaction underpriced",
            Self::Full => "nonce too high: too many transactions wait on nonce gaps",
        }
    }
}

#[derive(Debug)]
struct Waiting<T> {
    since: Instant,
    hash: B256,
    bytes: usize,
    item: T,
}

/// What [`Gaps::release`] hands back.
#[derive(Debug)]
pub struct Released<T> {
    /// Their turn has come, in nonce order per sender.
    pub ready: Vec<T>,
    /// Waited [`GAP_PATIENCE`] in vain, with the error for their callers.
    pub expired: Vec<(T, String)>,
}

/// The waiting transactions, by sender and nonce.
#[derive(Debug)]
pub struct Gaps<T> {
    by_sender: HashMap<Address, BTreeMap<u64, Waiting<T>>>,
    len: usize,
    /// The size of every waiting transaction, summed.
    bytes: usize,
}

impl<T> Default for Gaps<T> {
    fn default() -> Self {
        Self {
            by_sender: HashMap::new(),
            len: 0,
            bytes: 0,
        }
    }
}

impl<T> Gaps<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The size of every waiting transaction, summed.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every waiting transaction with its sender and nonce, by sender and nonce.
    pub fn iter(&self) -> impl Iterator<Item = (Address, u64, &T)> {
        self.by_sender.iter().flat_map(|(sender, queue)| {
            queue
                .iter()
                .map(move |(nonce, waiting)| (*sender, *nonce, &waiting.item))
        })
    }

    /// Parks `item` (transaction `hash` of `bytes` bytes from `sender` with
    /// `nonce`), or gives it back with why it may not wait.
    pub fn park(
        &mut self,
        sender: Address,
        nonce: u64,
        hash: B256,
        bytes: usize,
        item: T,
        now: Instant,
    ) -> Result<(), (T, Refusal)> {
        let queue = self.by_sender.entry(sender).or_default();
        if let Some(waiting) = queue.get(&nonce) {
            let why = if waiting.hash == hash {
                Refusal::AlreadyKnown
            } else {
                Refusal::Underpriced
            };
            return Err((item, why));
        }
        if self.len >= MAX_GAPPED
            || queue.len() >= MAX_GAPPED_PER_SENDER
            || self.bytes + bytes > MAX_GAPPED_BYTES
        {
            return Err((item, Refusal::Full));
        }
        queue.insert(
            nonce,
            Waiting {
                since: now,
                hash,
                bytes,
                item,
            },
        );
        self.len += 1;
        self.bytes += bytes;
        Ok(())
    }

    /// Takes out what may run now: for each sender, the transactions from its next
    /// nonce (`next_nonce`) on without a gap; and expires what waited too long.
    pub fn release<E>(
        &mut self,
        now: Instant,
        mut next_nonce: impl FnMut(Address) -> Result<u64, E>,
    ) -> Result<Released<T>, E> {
        let mut released = Released {
            ready: Vec::new(),
            expired: Vec::new(),
        };
        let senders: Vec<Address> = self.by_sender.keys().copied().collect();
        for sender in senders {
            let mut next = next_nonce(sender)?;
            let queue = self.by_sender.entry(sender).or_default();
            while let Some(entry) = queue.first_entry() {
                let nonce = *entry.key();
                if nonce <= next {
                    let waiting = entry.remove();
                    self.bytes -= waiting.bytes;
                    released.ready.push(waiting.item);
                    next = nonce + 1;
                } else if now.saturating_duration_since(entry.get().since) >= GAP_PATIENCE {
                    let why = format!(
                        "nonce too high: tx nonce {nonce} waited {}ms for nonce {next}",
                        GAP_PATIENCE.as_millis()
                    );
                    let waiting = entry.remove();
                    self.bytes -= waiting.bytes;
                    released.expired.push((waiting.item, why));
                } else {
                    break;
                }
            }
            if queue.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
        self.len -= released.ready.len() + released.expired.len();
        debug_assert_eq!(
            self.len,
            self.by_sender.values().map(BTreeMap::len).sum::<usize>(),
            "the count matches the queues"
        );
        Ok(released)
    }

    /// Empties the queue (this node stops leading).
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.len = 0;
        self.bytes = 0;
        self.by_sender
            .drain()
            .flat_map(|(_, queue)| queue.into_values().map(|w| w.item))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    const ALICE: Address = Address::repeat_byte(1);

    fn hash(n: u8) -> B256 {
        B256::repeat_byte(n)
    }

    #[test]
    fn a_parked_transaction_runs_once_the_gap_fills() {
        let now = Instant::now();
        let mut gaps = Gaps::default();
        gaps.park(ALICE, 6, hash(6), 100, "six", now).expect("park");
        gaps.park(ALICE, 5, hash(5), 100, "five", now)
            .expect("park");
        let still = gaps
            .release(now, |_| Ok::<_, Infallible>(4))
            .expect("release");
        assert!(still.ready.is_empty() && still.expired.is_empty());
        let turn = gaps
            .release(now, |_| Ok::<_, Infallible>(5))
            .expect("release");
        assert_eq!(turn.ready, vec!["five", "six"], "in nonce order");
        assert!(gaps.is_empty());
    }

    #[test]
    fn a_gap_that_never_fills_expires_with_a_clear_error() {
        let now = Instant::now();
        let mut gaps = Gaps::default();
        gaps.park(ALICE, 9, hash(9), 100, "nine", now)
            .expect("park");
        let later = now + GAP_PATIENCE;
        let out = gaps
            .release(later, |_| Ok::<_, Infallible>(3))
            .expect("release");
        assert_eq!(out.expired.len(), 1);
        assert!(
            out.expired[0].1.starts_with("nonce too high"),
            "{:?}",
            out.expired
        );
        assert_eq!(gaps.len(), 0);
    }

    #[test]
    fn the_same_transaction_twice_is_already_known_and_another_is_underpriced() {
        let now = Instant::now();
        let mut gaps = Gaps::default();
        gaps.park(ALICE, 7, hash(7), 100, 1, now).expect("park");
        assert_eq!(
            gaps.park(ALICE, 7, hash(7), 100, 2, now).map_err(|e| e.1),
            Err(Refusal::AlreadyKnown)
        );
        assert_eq!(
            gaps.park(ALICE, 7, hash(8), 100, 3, now).map_err(|e| e.1),
            Err(Refusal::Underpriced)
        );
    }

    #[test]
    fn one_sender_cannot_fill_the_queue() {
        let now = Instant::now();
        let mut gaps = Gaps::default();
        for nonce in 0..MAX_GAPPED_PER_SENDER as u64 {
            gaps.park(ALICE, 10 + nonce, hash(1), 100, nonce, now)
                .expect("park");
        }
        assert_eq!(
            gaps.park(ALICE, 1_000, hash(2), 100, 0, now)
                .map_err(|e| e.1),
            Err(Refusal::Full)
        );
        assert_eq!(gaps.drain().count(), MAX_GAPPED_PER_SENDER);
        assert!(gaps.is_empty());
    }

    #[test]
    fn the_queue_is_bounded_by_bytes() {
        let now = Instant::now();
        let mut gaps = Gaps::default();
        let big = 128 * 1024;
        let fits = MAX_GAPPED_BYTES / big;
        for n in 0..fits {
            let sender = Address::with_last_byte((n / MAX_GAPPED_PER_SENDER) as u8);
            gaps.park(sender, 10 + n as u64, hash(1), big, n, now)
                .expect("park");
        }
        assert_eq!(
            gaps.park(Address::repeat_byte(0xee), 10, hash(2), big, 0, now)
                .map_err(|e| e.1),
            Err(Refusal::Full)
        );
        // Released transactions give their bytes back.
        let released = gaps
            .release(now, |_| Ok::<_, Infallible>(10))
            .expect("release");
        assert!(!released.ready.is_empty());
        gaps.park(Address::repeat_byte(0xee), 10, hash(2), big, 0, now)
            .expect("room again");
    }
}
