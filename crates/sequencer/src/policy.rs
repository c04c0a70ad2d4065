//! When to open and seal blocks, and when and to whom to hand leadership on: pure
//! functions of the applied chain, the members' readiness and the clock.
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

/// A leader that committed no `BlockStart`/`BlockEnd` for this many block times
/// has stalled and must step down (DESIGN invariant 6).
pub const STALL_BLOCKS: u32 = 3;

/// How long a node that stepped down stays out of elections: long enough for the
/// next leader to prove itself, so a bad node does not win leadership straight back.
pub const STEP_DOWN_COOL_DOWN_BLOCKS: u32 = 10;

/// Whether a leader whose chain last moved at `last_progress_ms` has stalled.
pub fn stalled(now_ms: u64, last_progress_ms: u64, block_time_ms: u64) -> bool {
    now_ms.saturating_sub(last_progress_ms) >= u64::from(STALL_BLOCKS) * block_time_ms
}

/// Whether sealing block `sealed` is a planned rotation point (`every` 0 = never).
pub fn rotation_due(sealed: u64, every: u64) -> bool {
    every > 0 && sealed > 0 && sealed.is_multiple_of(every)
}

/// The member to hand leadership to: the first ready one after `me` in id order,
/// wrapping around (round-robin); never `me`.
pub fn successor<I>(me: u64, members: I) -> Option<u64>
where
    I: IntoIterator<Item = (u64, bool)>,
{
    let mut ready: Vec<u64> = members
        .into_iter()
        .filter(|(id, ready)| *ready && *id != me)
        .map(|(id, _)| id)
        .collect();
    ready.sort_unstable();
    ready
        .iter()
        .copied()
        .find(|id| *id > me)
        .or_else(|| ready.first().copied())
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

    #[test]
    fn the_successor_is_the_next_ready_member_round_robin() {
        let members = [(1, true), (2, false), (3, true), (4, true)];
        assert_eq!(successor(1, members), Some(3));
        assert_eq!(successor(3, members), Some(4));
        assert_eq!(successor(4, members), Some(1));
        assert_eq!(successor(2, members), Some(3));
        assert_eq!(successor(1, [(1, true), (2, false)]), None);
    }

    #[test]
    fn a_leader_stalls_after_three_block_times_without_progress() {
        assert!(!stalled(10_000 + 2_999, 10_000, 1_000));
        assert!(stalled(10_000 + 3_000, 10_000, 1_000));
        assert!(
            !stalled(5_000, 10_000, 1_000),
            "a clock step back is not a stall"
        );
    }

    #[test]
    fn rotation_falls_on_every_nth_sealed_block() {
        assert!(rotation_due(10, 5));
        assert!(!rotation_due(11, 5));
        assert!(!rotation_due(10, 0), "0 turns rotation off");
        assert!(!rotation_due(0, 5));
    }
}
