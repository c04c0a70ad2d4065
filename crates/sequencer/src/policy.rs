//! When to open and seal blocks: a pure function of the applied chain and the clock.
//!
//! Blocks are cut by time: block `n+1` opens `block_time` after block `n` opened
//! (so the schedule does not drift by commit latency), and is sealed `block_time`
//! after it opened. A leader that took over late (a failover) seals an overdue
//! open block at once and opens the next block at the current time.

/// What the leader should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write `BlockStart` for the next block with this timestamp.
    Open { timestamp_ms: u64 },
    /// Write `BlockEnd` for the open block.
    Seal,
    /// Nothing is due before this time (ms since the epoch).
    WaitUntil(u64),
}

/// What the policy looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub now_ms: u64,
    pub block_time_ms: u64,
    /// When the head block opened.
    pub head_start_ms: u64,
    /// When the open block opened, if one is open.
    pub open_start_ms: Option<u64>,
}

pub fn next_action(o: Observed) -> Action {
    match o.open_start_ms {
        Some(opened) => {
            let due = opened.saturating_add(o.block_time_ms);
            if o.now_ms >= due {
                Action::Seal
            } else {
                Action::WaitUntil(due)
            }
        }
        None => {
            let due = o.head_start_ms.saturating_add(o.block_time_ms);
            if o.now_ms < due {
                Action::WaitUntil(due)
            } else if o.now_ms - due < o.block_time_ms {
                // On schedule (or a little late): keep the cadence.
                Action::Open { timestamp_ms: due }
            } else {
                // Far behind (the chain was leaderless): restart the cadence from now.
                Action::Open {
                    timestamp_ms: o.now_ms,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(now_ms: u64, head_start_ms: u64, open_start_ms: Option<u64>) -> Observed {
        Observed {
            now_ms,
            block_time_ms: 1_000,
            head_start_ms,
            open_start_ms,
        }
    }

    #[test]
    fn an_open_block_is_sealed_one_block_time_after_it_opened() {
        assert_eq!(
            next_action(observed(10_500, 9_000, Some(10_000))),
            Action::WaitUntil(11_000)
        );
        assert_eq!(
            next_action(observed(11_000, 9_000, Some(10_000))),
            Action::Seal
        );
        // A new leader that finds an overdue open block seals it at once.
        assert_eq!(
            next_action(observed(14_000, 9_000, Some(10_000))),
            Action::Seal
        );
    }

    #[test]
    fn the_next_block_keeps_the_cadence() {
        assert_eq!(
            next_action(observed(10_200, 10_000, None)),
            Action::WaitUntil(11_000)
        );
        assert_eq!(
            next_action(observed(11_004, 10_000, None)),
            Action::Open {
                timestamp_ms: 11_000
            }
        );
    }

    #[test]
    fn after_a_long_gap_the_cadence_restarts_from_now() {
        assert_eq!(
            next_action(observed(25_000, 10_000, None)),
            Action::Open {
                timestamp_ms: 25_000
            }
        );
    }

    #[test]
    fn timestamps_never_go_backwards() {
        for now in (0..20_000).step_by(137) {
            if let Action::Open { timestamp_ms } = next_action(observed(now, 5_000, None)) {
                assert!(timestamp_ms >= 5_000 && timestamp_ms <= now);
            }
        }
    }
}
