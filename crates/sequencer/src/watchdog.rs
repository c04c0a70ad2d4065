//! DESIGN invariant 6: while this node leads, watches that blocks keep being
//! committed, and carries out [`policy::on_watch`]'s step-down. It runs apart from
//! the producing loop, so a hung executor or a full disk there does not stop it. A
//! leader that cannot talk at all is replaced by the others' election anyway.

use std::time::Duration;

use baton_consensus::{ChangeReason, Consensus};
use baton_primitives::{NodeId, clock::now_ms};
use tokio::sync::watch;

use crate::policy::{self, STEP_DOWN_COOL_DOWN_BLOCKS, Stall, Watched};

/// How often the watchdog looks.
const EVERY: Duration = Duration::from_millis(50);

/// Runs until the Raft instance stops. At most `max_step_downs_per_minute`
/// step-downs happen cluster-wide per minute ([`policy::on_watch`]).
pub async fn watchdog(
    consensus: Consensus,
    block_time: Duration,
    members: watch::Receiver<Vec<(NodeId, bool)>>,
    max_step_downs_per_minute: u32,
) {
    let block_time_ms = block_time.as_millis() as u64;
    let chain = consensus.chain();
    let leadership = consensus.leadership();
    let mut seen = None;
    let mut progress_ms = now_ms();
    loop {
        tokio::time::sleep(EVERY).await;
        let term = leadership.current().term;
        let position = {
            let view = chain.borrow();
            (term, view.head.number(), view.open().map(|o| o.number))
        };
        // Progress is a new block opened or sealed, or a new term (a new leader
        // gets its own full bound).
        if seen != Some(position) {
            seen = Some(position);
            progress_ms = now_ms();
        }
        if !leadership.leading() {
            continue;
        }
        let members = members.borrow().clone();
        let now = now_ms();
        let recent = policy::recent_step_downs(&consensus.leader_changes(), now);
        let decision = policy::on_watch(
            now,
            progress_ms,
            Watched {
                me: consensus.node_id(),
                block_time_ms,
                paused: consensus.paused(),
                members: &members,
                recent_step_downs: &recent,
                max_step_downs: max_step_downs_per_minute,
            },
        );
        let stalled_ms = now.saturating_sub(progress_ms);
        match decision {
            Stall::Fine => continue,
            Stall::Hold(why) => {
                tracing::error!(
                    term,
                    "no block committed for {stalled_ms}ms, holding leadership: {why}"
                );
                metrics::counter!("baton_step_downs_held_total").increment(1);
            }
            Stall::StepDown { to } => {
                consensus.stepped_down(block_time * STEP_DOWN_COOL_DOWN_BLOCKS);
                tracing::warn!(
                    term,
                    to,
                    "no block committed for {stalled_ms}ms: stepping down"
                );
                if let Err(e) = consensus.hand_over(to, ChangeReason::StepDown).await {
                    tracing::error!(term, to, error = %e, "step-down transfer failed");
                }
            }
        }
        progress_ms = now_ms();
    }
}
