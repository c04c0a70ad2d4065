//! The wall clock, in the unit blocks and leader changes are stamped with.

use std::sync::atomic::{AtomicI64, Ordering};

/// Fault injection only: how far this process's clock is off (see [`shift`]).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    real.saturating_add_signed(OFFSET_MS.load(Ordering::Relaxed))
}

/// Fault injection only: makes this whole process's clock run `offset_ms` ahead
/// (or behind, if negative), as a node with a bad clock would.
pub fn shift(offset_ms: i64) {
    OFFSET_MS.store(offset_ms, Ordering::Relaxed);
}
