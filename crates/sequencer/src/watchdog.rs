//! DESIGN invariant 6: while this node leads, watches that blocks keep being
//! committed, and carries out [`policy::on_watch`]'s step-down. It runs apart from
//! the producing loop, so a hung executor or a full disk there does not stop it. A
//! leader that cannot talk at all is replaced by the others' election anyway.

use std::time::Duration;

use baton_consensus::{ChangeReason, Consensus};
use baton_primitives::{NodeId, clock::now_ms};
use tokio::sync::watch;

use crate::policy::{self, STEP_DOWN_COOL_DOWN_BLOCKS, Stall};

/// How often the watchdog looks.
const EVERY: Duration = Duration::from_millis(50);

/// Runs until the Raft instance stops.
pub async fn watchdog(
    consensus: Consensus,
    block_time: Duration,
    members: watch::Receiver<Vec<(NodeId, bool)>>,
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
        let decision = policy::on_watch(
            consensus.node_id(),
            now_ms(),
            progress_ms,
            block_time_ms,
            consensus.paused(),
            &members,
        );
        let Stall::StepDown { to } = decision else {
            continue;
        };
        consensus.stepped_down(block_time * STEP_DOWN_COOL_DOWN_BLOCKS);
        let stalled_ms = now_ms().saturating_sub(progress_ms);
        match to {
            None => tracing::error!(
                term,
                "stalled as leader and no member is ready to take over"
            ),
            Some(to) => {
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
