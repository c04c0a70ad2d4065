//! The leader's decisions: pure functions of what it observes (the applied chain,
//! the clock, the members' readiness), returning [`Command`]s for the runtime to
//! carry out. Nothing here does I/O; the tests below drive it with plain values.
//!
//! Blocks are cut by time: block `n+1` opens `block_time` after block `n` opened
//! (so the schedule does not drift by commit latency), and is sealed `block_time`
//! after it opened, or earlier when it is full. A leader that took over late (a
//! failover) seals an overdue open block at once and opens the next block at the
//! current time.

use std::{fmt, time::Duration};

use baton_consensus::{ChangeReason, ConsensusError, LeaderChange};
use baton_primitives::NodeId;

/// What the leader does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Propose `BlockStart` for the next block, stamped `timestamp_ms`.
    Open { timestamp_ms: u64 },
    /// Admit waiting transactions into the open block, proposing them batch by
    /// batch, until `until_ms` (when the block is due to be sealed).
    Admit { until_ms: u64 },
    /// Propose the open block's `BlockEnd`.
    Seal,
    /// Hand leadership to `to`, and stop producing.
    HandOver { to: NodeId, why: ChangeReason },
    /// Nothing is due before this time (ms since the epoch).
    WaitUntil(u64),
}

/// What the producing loop looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub now_ms: u64,
    pub block_time_ms: u64,
    /// When the head block opened.
    pub head_start_ms: u64,
    /// When the open block opened, if one is open.
    pub open_start_ms: Option<u64>,
    /// When this node first saw the chain as it is now (that head and open block),
    /// by its own clock: the schedule's anchor when the chain's stamps are ahead of
    /// this clock.
    pub seen_ms: u64,
    /// The open block had no room for a waiting transaction.
    pub block_full: bool,
}

/// The next step of the producing loop.
///
/// Stamps come from whichever leader opened a block, so a leader whose clock ran
/// ahead leaves stamps in the future. Those are never waited for: a stamp ahead of
/// this node's clock counts from when this node saw it, so the chain keeps one
/// block per block time by the current leader's clock; a new block is never
/// stamped before its parent, so the chain's time stands still until real time
/// catches up.
pub fn next(o: Observed) -> Command {
    let anchor = |stamp: u64| if stamp > o.now_ms { o.seen_ms } else { stamp };
    match o.open_start_ms {
        Some(opened) => {
            let due = anchor(opened).saturating_add(o.block_time_ms);
            if o.now_ms >= due || o.block_full {
                Command::Seal
            } else {
                Command::Admit { until_ms: due }
            }
        }
        None => {
            let due = anchor(o.head_start_ms).saturating_add(o.block_time_ms);
            if o.now_ms < due {
                Command::WaitUntil(due)
            } else if o.now_ms - due < o.block_time_ms {
                // On schedule (or a little late): keep the cadence.
                Command::Open {
                    timestamp_ms: due.max(o.head_start_ms),
                }
            } else {
                // Far behind (the chain was leaderless): restart the cadence from now.
                Command::Open {
                    timestamp_ms: o.now_ms.max(o.head_start_ms),
                }
            }
        }
    }
}

/// Every member's readiness as last seen, this node's included: where a
/// hand-over may go.
pub type Members<'a> = &'a [(NodeId, bool)];

/// DESIGN invariant 5: a node that takes leadership while not ready hands it on
/// before producing anything, unless an operator paused automatic actions or no
/// member is ready to take it (then someone must lead, and it does).
pub fn on_elected(me: NodeId, ready: bool, paused: bool, members: Members<'_>) -> Option<Command> {
    if ready || paused {
        return None;
    }
    hand_over(me, members, ChangeReason::NotReady)
}

/// After sealing block `sealed`: a leader that is not ready (it led only because
/// no member was ready when it was elected) hands over as soon as one is
/// (invariant 5); otherwise planned rotation, every `rotation_blocks` blocks,
/// hands leadership to the next ready member.
pub fn after_seal(
    me: NodeId,
    ready: bool,
    sealed: u64,
    rotation_blocks: u64,
    paused: bool,
    members: Members<'_>,
) -> Option<Command> {
    if let Some(command) = on_elected(me, ready, paused, members) {
        return Some(command);
    }
    if paused || !rotation_due(sealed, rotation_blocks) {
        return None;
    }
    hand_over(me, members, ChangeReason::Rotation)
}

/// What the stall watchdog looks at besides the clock.
#[derive(Debug, Clone, Copy)]
pub struct Watched<'a> {
    pub me: NodeId,
    pub block_time_ms: u64,
    /// An operator paused automatic leadership actions.
    pub paused: bool,
    pub members: Members<'a>,
    /// The cluster's step-downs within the last [`STEP_DOWN_WINDOW_MS`], one entry
    /// each, naming the leader that stepped down where it is known
    /// ([`recent_step_downs`]).
    pub recent_step_downs: &'a [Option<NodeId>],
    /// At most this many step-downs per [`STEP_DOWN_WINDOW_MS`], cluster-wide.
    pub max_step_downs: u32,
}

/// DESIGN invariant 6: the watchdog's decision for a leader whose chain last moved
/// at `last_progress_ms`: once stalled, it steps down to the next ready member
/// that has not itself stepped down within the window.
///
/// No failover storms: a member that stepped down lately is no healthier than
/// this leader, so with no other candidate the leader holds rather than send
/// leadership round the same failing members; and past `max_step_downs` in the
/// window every leader holds until the window moves on.
pub fn on_watch(now_ms: u64, last_progress_ms: u64, w: Watched<'_>) -> Stall {
    if w.paused || !stalled(now_ms, last_progress_ms, w.block_time_ms) {
        return Stall::Fine;
    }
    if w.recent_step_downs.len() >= w.max_step_downs as usize {
        return Stall::Hold(Hold::RateLimited);
    }
    let candidates = w
        .members
        .iter()
        .copied()
        .filter(|(id, _)| !w.recent_step_downs.contains(&Some(*id)));
    match successor(w.me, candidates) {
        Some(to) => Stall::StepDown { to },
        None if w.members.iter().any(|(id, ready)| *ready && *id != w.me) => {
            Stall::Hold(Hold::NoHealthierMember)
        }
        None => Stall::Hold(Hold::NoReadyMember),
    }
}

/// The members that stepped down as leader within [`STEP_DOWN_WINDOW_MS`] before
/// `now_ms`, read off the changes of leader this node saw (oldest first): a change
/// for a step-down names the new leader, and the change before it the one that
/// stepped down (`None` when this node did not see it).
pub fn recent_step_downs(changes: &[LeaderChange], now_ms: u64) -> Vec<Option<NodeId>> {
    changes
        .iter()
        .enumerate()
        .filter(|(_, change)| {
            change.reason == ChangeReason::StepDown
                && now_ms.saturating_sub(change.at_ms) < STEP_DOWN_WINDOW_MS
        })
        .map(|(i, _)| i.checked_sub(1).and_then(|before| changes[before].leader))
        .collect()
}

/// What the stall watchdog decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// The chain moves (or an operator paused automatic actions).
    Fine,
    /// Stalled: cool down, and hand leadership to `to`.
    StepDown { to: NodeId },
    /// Stalled, but handing leadership on would not help: keep it.
    Hold(Hold),
}

/// Why a stalled leader keeps leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// No other member is ready to take over.
    NoReadyMember,
    /// Every ready member stepped down itself within the window.
    NoHealthierMember,
    /// The cluster already stepped down its maximum within the window.
    RateLimited,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoReadyMember => "no other member is ready",
            Self::NoHealthierMember => "every ready member stepped down itself within the minute",
            Self::RateLimited => "the cluster's step-down limit for the minute is spent",
        })
    }
}

fn hand_over(me: NodeId, members: Members<'_>, why: ChangeReason) -> Option<Command> {
    successor(me, members.iter().copied()).map(|to| Command::HandOver { to, why })
}

/// A leader that committed no `BlockStart`/`BlockEnd` for this many block times
/// has stalled and must step down (DESIGN invariant 6).
pub const STALL_BLOCKS: u32 = 3;

/// How long a node that stepped down stays out of elections: long enough for the
/// next leader to prove itself, so a bad node does not win leadership straight back.
pub const STEP_DOWN_COOL_DOWN_BLOCKS: u32 = 10;

/// How far back step-downs count, against the limit and against a candidate.
pub const STEP_DOWN_WINDOW_MS: u64 = 60_000;

/// How many step-downs a cluster makes per [`STEP_DOWN_WINDOW_MS`] unless told.
pub const MAX_STEP_DOWNS_PER_MINUTE: u32 = 3;

/// How long a leader that handed over waits for its successor before it produces
/// again itself (the successor may be unreachable).
pub const HANDOVER_PATIENCE: Duration = Duration::from_secs(2);

/// Whether a leader whose chain last moved at `last_progress_ms` has stalled.
pub fn stalled(now_ms: u64, last_progress_ms: u64, block_time_ms: u64) -> bool {
    now_ms.saturating_sub(last_progress_ms) >= u64::from(STALL_BLOCKS) * block_time_ms
}

/// Whether sealing block `sealed` is a planned rotation point (`every` 0 = never).
pub fn rotation_due(sealed: u64, every: u64) -> bool {
    every > 0 && sealed > 0 && sealed.is_multiple_of(every)
}

/// Whether a leader that handed leadership on in term `handed_over_in`,
/// `since` ago, should keep waiting for its successor in `term` rather than produce.
pub fn waiting_for_successor(handed_over_in: Option<(u64, Duration)>, term: u64) -> bool {
    handed_over_in.is_some_and(|(t, since)| t == term && since < HANDOVER_PATIENCE)
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

/// Why a leader stopped producing in its term.
#[derive(Debug)]
pub enum StopReason {
    /// Another node leads now, or a new term began.
    NotLeader,
    /// This node handed leadership on.
    HandedOver { to: NodeId, why: ChangeReason },
    /// Raft refused or lost a write, or stopped.
    Consensus(ConsensusError),
    /// The open block could not be executed or sealed from the store.
    Execution(String),
    /// The submission channel closed (the node is stopping).
    Closed,
    /// Test-only fault: the node leads without producing.
    FaultNoProduce,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLeader => f.write_str("no longer leader in this term"),
            Self::HandedOver { to, why } => write!(f, "handed leadership to node {to} ({why})"),
            Self::Consensus(e) => write!(f, "consensus: {e}"),
            Self::Execution(e) => write!(f, "execution: {e}"),
            Self::Closed => f.write_str("submission channel closed"),
            Self::FaultNoProduce => f.write_str("fault injection: led without producing"),
        }
    }
}

impl From<ConsensusError> for StopReason {
    fn from(error: ConsensusError) -> Self {
        match error {
            ConsensusError::NotLeader { .. } => Self::NotLeader,
            other => Self::Consensus(other),
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
            seen_ms: now_ms,
            block_full: false,
        }
    }

    const MEMBERS: [(NodeId, bool); 3] = [(1, true), (2, true), (3, true)];

    /// A leader whose clock ran 60 s ahead stamped the head and the open block in
    /// this node's future: this node seals and opens one block time after it saw
    /// them, not 60 s later, and never stamps a block before its parent.
    #[test]
    fn stamps_from_a_clock_ahead_are_not_waited_for() {
        let ahead = 60_000;
        let mut o = observed(10_000, 9_000 + ahead, Some(10_000 + ahead));
        o.seen_ms = 9_800;
        assert_eq!(next(o), Command::Admit { until_ms: 10_800 });
        o.now_ms = 10_800;
        assert_eq!(next(o), Command::Seal);

        let mut o = observed(10_000, 10_000 + ahead, None);
        o.seen_ms = 9_900;
        assert_eq!(next(o), Command::WaitUntil(10_900));
        o.now_ms = 10_900;
        assert_eq!(
            next(o),
            Command::Open {
                timestamp_ms: 10_000 + ahead
            }
        );
    }

    #[test]
    fn an_open_block_admits_until_one_block_time_after_it_opened_then_seals() {
        assert_eq!(
            next(observed(10_500, 9_000, Some(10_000))),
            Command::Admit { until_ms: 11_000 }
        );
        assert_eq!(next(observed(11_000, 9_000, Some(10_000))), Command::Seal);
    }

    /// DESIGN invariant 2: a new leader continues the open block it finds, and seals
    /// an overdue one at once.
    #[test]
    fn a_new_leader_seals_an_overdue_open_block_at_once() {
        assert_eq!(next(observed(14_000, 9_000, Some(10_000))), Command::Seal);
    }

    #[test]
    fn a_full_block_is_sealed_before_its_time() {
        let mut o = observed(10_100, 9_000, Some(10_000));
        o.block_full = true;
        assert_eq!(next(o), Command::Seal);
    }

    #[test]
    fn the_next_block_keeps_the_cadence() {
        assert_eq!(
            next(observed(10_200, 10_000, None)),
            Command::WaitUntil(11_000)
        );
        assert_eq!(
            next(observed(11_004, 10_000, None)),
            Command::Open {
                timestamp_ms: 11_000
            }
        );
    }

    #[test]
    fn after_a_long_gap_the_cadence_restarts_from_now() {
        assert_eq!(
            next(observed(25_000, 10_000, None)),
            Command::Open {
                timestamp_ms: 25_000
            }
        );
    }

    #[test]
    fn timestamps_never_go_backwards() {
        for now in (0..20_000).step_by(137) {
            if let Command::Open { timestamp_ms } = next(observed(now, 5_000, None)) {
                assert!(timestamp_ms >= 5_000 && timestamp_ms <= now);
            }
        }
    }

    /// DESIGN invariant 5: an unready node that gets leadership hands it on at once.
    #[test]
    fn an_unready_leader_hands_over_to_the_next_ready_member() {
        assert_eq!(
            on_elected(1, false, false, &MEMBERS),
            Some(Command::HandOver {
                to: 2,
                why: ChangeReason::NotReady
            })
        );
        assert_eq!(on_elected(1, true, false, &MEMBERS), None);
    }

    /// DESIGN invariant 5: someone must lead; with no ready member it keeps leading.
    #[test]
    fn an_unready_leader_keeps_leadership_when_no_one_else_is_ready() {
        assert_eq!(on_elected(1, false, false, &[(1, false), (2, false)]), None);
    }

    #[test]
    fn a_paused_node_takes_no_automatic_leadership_action() {
        assert_eq!(on_elected(1, false, true, &MEMBERS), None);
        assert_eq!(after_seal(1, true, 10, 5, true, &MEMBERS), None);
        let paused = Watched {
            paused: true,
            ..watched(1, &MEMBERS, &[])
        };
        assert_eq!(on_watch(100_000, 0, paused), Stall::Fine);
    }

    #[test]
    fn rotation_hands_over_after_every_nth_sealed_block() {
        assert_eq!(
            after_seal(3, true, 10, 5, false, &MEMBERS),
            Some(Command::HandOver {
                to: 1,
                why: ChangeReason::Rotation
            })
        );
        assert_eq!(after_seal(3, true, 11, 5, false, &MEMBERS), None);
        assert_eq!(
            after_seal(3, true, 10, 0, false, &MEMBERS),
            None,
            "0 is off"
        );
    }

    /// DESIGN invariant 5: a node that had to lead while not ready (no member was
    /// ready at its election) hands over at its next seal once one is.
    #[test]
    fn an_unready_leader_hands_over_once_a_member_becomes_ready() {
        let nobody_ready = [(1, false), (2, false), (3, false)];
        assert_eq!(after_seal(1, false, 7, 0, false, &nobody_ready), None);
        let two_ready = [(1, false), (2, true), (3, false)];
        assert_eq!(
            after_seal(1, false, 8, 0, false, &two_ready),
            Some(Command::HandOver {
                to: 2,
                why: ChangeReason::NotReady
            })
        );
        assert_eq!(after_seal(1, false, 8, 0, true, &two_ready), None, "paused");
    }

    fn watched<'a>(
        me: NodeId,
        members: Members<'a>,
        recent_step_downs: &'a [Option<NodeId>],
    ) -> Watched<'a> {
        Watched {
            me,
            block_time_ms: 1_000,
            paused: false,
            members,
            recent_step_downs,
            max_step_downs: MAX_STEP_DOWNS_PER_MINUTE,
        }
    }

    /// DESIGN invariant 6: a leader with no block committed for three block times
    /// steps down to the next ready member.
    #[test]
    fn a_stalled_leader_steps_down() {
        let w = watched(2, &MEMBERS, &[]);
        assert_eq!(on_watch(12_999, 10_000, w), Stall::Fine);
        assert_eq!(on_watch(13_000, 10_000, w), Stall::StepDown { to: 3 });
    }

    /// DESIGN invariant 6: with nobody ready to take over, a stalled leader holds.
    #[test]
    fn a_stalled_leader_with_no_ready_member_stays() {
        let members = [(2, true), (3, false)];
        assert_eq!(
            on_watch(13_000, 10_000, watched(2, &members, &[])),
            Stall::Hold(Hold::NoReadyMember)
        );
    }

    /// DESIGN invariant 6, no failover storms: a member that stepped down within
    /// the minute is passed over, and when every ready member has, the leader holds.
    #[test]
    fn members_that_stepped_down_lately_are_not_candidates() {
        let members = [(1, true), (2, true), (3, true)];
        assert_eq!(
            on_watch(13_000, 10_000, watched(2, &members, &[Some(3)])),
            Stall::StepDown { to: 1 }
        );
        assert_eq!(
            on_watch(13_000, 10_000, watched(3, &members, &[Some(1), Some(2)])),
            Stall::Hold(Hold::NoHealthierMember)
        );
    }

    /// No failover storms: past the cluster's limit per minute, every leader holds.
    #[test]
    fn step_downs_are_rate_limited() {
        let members = [(1, true), (2, true), (3, true), (4, true)];
        let spent = [None, Some(4), None];
        assert_eq!(
            on_watch(13_000, 10_000, watched(2, &members, &spent)),
            Stall::Hold(Hold::RateLimited)
        );
        let limit_4 = Watched {
            max_step_downs: 4,
            ..watched(2, &members, &spent)
        };
        assert_eq!(on_watch(13_000, 10_000, limit_4), Stall::StepDown { to: 3 });
    }

    #[test]
    fn recent_step_downs_name_who_stepped_down_within_the_window() {
        let change = |leader, reason, at_ms| LeaderChange {
            term: 0,
            leader: Some(leader),
            reason,
            at_ms,
        };
        let changes = [
            change(2, ChangeReason::StepDown, 1_000),
            change(3, ChangeReason::StepDown, 50_000),
            change(1, ChangeReason::Election, 60_000),
            change(2, ChangeReason::StepDown, 70_000),
            change(3, ChangeReason::Rotation, 80_000),
        ];
        assert_eq!(recent_step_downs(&changes, 70_000), [Some(2), Some(1)]);
        assert_eq!(recent_step_downs(&changes, 200_000), []);
        assert_eq!(recent_step_downs(&changes[..1], 1_000), [None]);
    }

    #[test]
    fn a_clock_step_back_is_not_a_stall() {
        assert!(!stalled(5_000, 10_000, 1_000));
    }

    #[test]
    fn a_leader_that_handed_over_waits_for_its_successor_for_a_while() {
        let soon = Duration::from_millis(100);
        assert!(waiting_for_successor(Some((4, soon)), 4));
        assert!(!waiting_for_successor(Some((4, HANDOVER_PATIENCE)), 4));
        assert!(!waiting_for_successor(Some((3, soon)), 4), "another term");
        assert!(!waiting_for_successor(None, 4));
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
}
