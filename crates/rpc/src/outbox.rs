//! What a WebSocket connection's subscriptions have left unsent, in bytes.
//!
//! jsonrpsee bounds a connection's send buffer by message count, but one
//! notification can be as large as a block's logs or a preconfirmation frame's
//! transactions, so a subscriber that stops reading could hold count × that. Here
//! a notification is queued only while the bytes waiting on its connection fit the
//! budget (`--rpc-max-subscription-buffer-bytes`); a subscription that waits longer
//! than [`SEND_TIMEOUT`] for room is ended with an error notification naming the
//! limit (jsonrpsee sends it after what is queued), and its connection stays open.
//!
//! ```text
//!  subscription task ──send──▶ Outbox (per connection: sizes of recent notifications)
//!       │ fits the budget?                 ▲ forget those written: the channel holds
//!       ▼                                  │ only its newest `queued` messages (FIFO)
//!  connection's channel (≤ 1024 messages) ──▶ socket
//! ```
//!
//! The count is an upper bound: of the notifications recorded, only the newest
//! `queued + sending` can still be waiting (`queued` is the channel's length, which
//! also counts method answers; `sending` those recorded but not yet in the channel).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Weak},
    time::Duration,
};

use jsonrpsee::{ConnectionId, SendTimeoutError, SubscriptionMessage, SubscriptionSink};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::time::Instant;

/// How long one notification may wait for room before its subscription ends.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a waiting notification looks for room again.
const RECHECK: Duration = Duration::from_millis(10);
/// The default byte budget of one connection's unsent notifications.
pub const DEFAULT_SUBSCRIPTION_BUFFER_BYTES: usize = 16 << 20;

/// Every open connection's outbox, so subscriptions on one connection share its
/// budget.
#[derive(Debug, Clone)]
pub struct Outboxes {
    budget: usize,
    open: Arc<Mutex<HashMap<ConnectionId, Weak<Mutex<Ledger>>>>>,
}

impl Default for Outboxes {
    fn default() -> Self {
        Self::new(DEFAULT_SUBSCRIPTION_BUFFER_BYTES)
    }
}

impl Outboxes {
    /// Outboxes holding at most `budget` bytes unsent per connection.
    pub fn new(budget: usize) -> Self {
        debug_assert!(budget > 0, "a budget of zero could never send");
        Self {
            budget,
            open: Arc::default(),
        }
    }

    /// The outbox of `sink`'s connection, shared with its other subscriptions.
    pub(crate) fn open(&self, sink: &SubscriptionSink) -> Outbox {
        let mut open = self.open.lock();
        open.retain(|_, ledger| ledger.strong_count() > 0);
        let connection = sink.connection_id();
        let ledger = match open.get(&connection).and_then(Weak::upgrade) {
            Some(ledger) => ledger,
            None => {
                let ledger = Arc::new(Mutex::new(Ledger::default()));
                open.insert(connection, Arc::downgrade(&ledger));
                ledger
            }
        };
        Outbox {
            budget: self.budget,
            ledger,
        }
    }
}

/// Sizes of the notifications that may still wait on one connection.
///
/// Invariant: `bytes` is the sum of `sizes`.
#[derive(Debug, Default)]
struct Ledger {
    sizes: VecDeque<usize>,
    bytes: usize,
    /// Recorded here, not yet in the connection's channel.
    sending: usize,
}

impl Ledger {
    /// Forgets what must have been written, given `queued` messages in the channel.
    fn forget_written(&mut self, queued: usize) {
        while self.sizes.len() > queued + self.sending {
            let size = self.sizes.pop_front().unwrap_or_default();
            self.bytes -= size;
        }
        debug_assert_eq!(self.bytes, self.sizes.iter().sum::<usize>());
    }

    /// Records a notification of `size` bytes if it fits `budget` (one always fits
    /// an empty outbox, whatever its size).
    fn admit(&mut self, size: usize, budget: usize) -> bool {
        if self.bytes > 0 && self.bytes.saturating_add(size) > budget {
            return false;
        }
        self.sizes.push_back(size);
        self.bytes += size;
        self.sending += 1;
        true
    }
}

/// Why a notification was not sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unsent {
    /// The subscriber unsubscribed or disconnected: end quietly.
    #[error("the subscriber went away")]
    Gone,
    /// The subscriber did not read: end the subscription with this reason.
    #[error(
        "subscription dropped: the subscriber read too slowly ({waiting} waited to be sent \
         on this connection for {secs} s; the limit is {limit})",
        secs = SEND_TIMEOUT.as_secs()
    )]
    TooSlow { waiting: String, limit: String },
}

/// One connection's outbox, as a subscription sends through it.
#[derive(Debug)]
pub(crate) struct Outbox {
    budget: usize,
    ledger: Arc<Mutex<Ledger>>,
}

impl Outbox {
    /// Sends `raw` on `sink` once the connection's unsent notifications leave room
    /// for it, waiting at most [`SEND_TIMEOUT`] for room in bytes and in count.
    pub(crate) async fn send(
        &self,
        sink: &SubscriptionSink,
        raw: Box<RawValue>,
    ) -> Result<(), Unsent> {
        let size = raw.get().len();
        let deadline = Instant::now() + SEND_TIMEOUT;
        loop {
            let queued = sink.max_capacity().saturating_sub(sink.capacity());
            let waiting = {
                let mut ledger = self.ledger.lock();
                ledger.forget_written(queued);
                if ledger.admit(size, self.budget) {
                    break;
                }
                ledger.bytes
            };
            if Instant::now() >= deadline {
                return Err(Unsent::TooSlow {
                    waiting: format!("{waiting} bytes"),
                    limit: format!("{} bytes", self.budget),
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(RECHECK) => {}
                _ = sink.closed() => return Err(Unsent::Gone),
            }
        }
        let sent = sink
            .send_timeout(
                SubscriptionMessage::from(raw),
                deadline.saturating_duration_since(Instant::now()),
            )
            .await;
        self.ledger.lock().sending -= 1;
        match sent {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Closed(_)) => Err(Unsent::Gone),
            Err(SendTimeoutError::Timeout(_)) => Err(Unsent::TooSlow {
                waiting: format!("{} messages", sink.max_capacity()),
                limit: format!("{} messages", sink.max_capacity()),
            }),
        }
    }
}

impl Unsent {
    /// How a subscription that could not send ends: quietly if its subscriber
    /// went away, with an error notification if it was too slow.
    pub(crate) fn into_result(self) -> jsonrpsee::core::SubscriptionResult {
        match self {
            Unsent::Gone => Ok(()),
            too_slow @ Unsent::TooSlow { .. } => Err(too_slow.to_string().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_keeps_only_what_may_still_wait() {
        let mut ledger = Ledger::default();
        assert!(ledger.admit(600, 1_000));
        ledger.sending -= 1;
        // Over the budget while the first waits; one always fits an empty outbox.
        assert!(!ledger.admit(600, 1_000));
        ledger.forget_written(0);
        assert_eq!(ledger.bytes, 0);
        assert!(ledger.admit(5_000, 1_000));
        ledger.sending -= 1;
        assert!(ledger.admit(0, 5_000));
        ledger.sending -= 1;
        // Two in the channel: both may still wait.
        ledger.forget_written(2);
        assert_eq!(ledger.bytes, 5_000);
        // One in the channel (the newest): the oldest was written.
        ledger.forget_written(1);
        assert_eq!(ledger.sizes, [0]);
        assert_eq!(ledger.bytes, 0);
    }

    #[test]
    fn one_being_sent_is_not_forgotten() {
        let mut ledger = Ledger::default();
        assert!(ledger.admit(100, 1_000));
        assert!(ledger.admit(100, 1_000));
        // Both recorded, neither in the channel yet.
        ledger.forget_written(0);
        assert_eq!(ledger.bytes, 200);
    }
}
