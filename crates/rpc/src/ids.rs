//! Subscription ids as geth, reth and anvil give them: `0x` and 32 hex digits
//! (16 random-looking bytes). Clients such as web3.py expect a hex string; an
//! integer id breaks their WebSocket subscriptions.

use std::{
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicU64, Ordering},
};

use jsonrpsee::{core::traits::IdProvider, types::SubscriptionId};

/// Hashes a counter under a key drawn at start, so ids never repeat within a
/// process and cannot be guessed from one another.
#[derive(Debug, Default)]
pub(crate) struct HexIds {
    key: RandomState,
    next: AtomicU64,
}

impl HexIds {
    fn id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let high = self.key.hash_one((n, 0u8));
        let low = self.key.hash_one((n, 1u8));
        format!("0x{high:016x}{low:016x}")
    }
}

impl IdProvider for HexIds {
    fn next_id(&self) -> SubscriptionId<'static> {
        SubscriptionId::Str(self.id().into())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_0x_and_32_hex_digits_and_never_repeat() {
        let ids = HexIds::default();
        let seen: HashSet<String> = (0..1_000).map(|_| ids.id()).collect();
        assert_eq!(seen.len(), 1_000);
        for id in &seen {
            assert_eq!(id.len(), 34, "{id}");
            assert!(id.starts_with("0x"));
            assert!(
                id[2..]
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }
}
