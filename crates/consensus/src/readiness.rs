//! DESIGN invariant 5, only a ready node leads: what makes this node ready, and a
//! task that keeps openraft's election timer off while it is not.
//!
//! A node is not ready when it was started `--standby-only`, when its startup
//! self-check of storage and executor failed, when its applied index is more than
//! [`CATCH_UP_LAG`] entries behind the commit index it knows, or for a cool-down
//! after it stepped down for failing to produce (invariant 6), so a bad node does
//! not win leadership straight back. A node that is not ready never starts an
//! election (it still votes); one that becomes leader anyway hands leadership on
//! (the sequencer does that, see `baton-sequencer`).

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use baton_primitives::NodeId;
use openraft::type_config::async_runtime::WatchReceiver;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::Consensus;

/// Applied entries behind the known commit index that count as catching up.
pub const CATCH_UP_LAG: u64 = 256;

/// Whether this node may lead, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Readiness {
    Ready,
    StandbyOnly,
    SelfCheckFailed {
        why: String,
    },
    CatchingUp {
        behind: u64,
    },
    SteppedDown {
        for_ms: u64,
    },
    /// A critical task of this node failed; it is stopping.
    Failed {
        why: String,
    },
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        *self == Self::Ready
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready => f.write_str("ready"),
            Self::StandbyOnly => f.write_str("standby-only"),
            Self::SelfCheckFailed { why } => write!(f, "self-check failed: {why}"),
            Self::CatchingUp { behind } => write!(f, "catching up ({behind} behind)"),
            Self::SteppedDown { for_ms } => write!(f, "stepped down ({for_ms} ms left)"),
            Self::Failed { why } => write!(f, "failed: {why}"),
        }
    }
}

/// Why leadership last changed hands, as this node saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeReason {
    /// A follower's election timer ran out (the leader died, stalled or was cut off).
    Election,
    /// Planned rotation every N blocks.
    Rotation,
    /// The leader committed no block for the stall bound (invariant 6).
    StepDown,
    /// The leader was not ready (invariant 5) and handed leadership on.
    NotReady,
    /// An operator asked for it.
    Transfer,
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Election => "election",
            Self::Rotation => "rotation",
            Self::StepDown => "step-down",
            Self::NotReady => "not-ready",
            Self::Transfer => "transfer",
        })
    }
}

/// One change of leader: from whom, to whom, in which term, why, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderChange {
    pub term: u64,
    pub leader: Option<NodeId>,
    pub reason: ChangeReason,
    /// Wall clock, milliseconds since the epoch.
    pub at_ms: u64,
}

/// Changes of leader a node remembers (for its status page).
pub(crate) const MAX_LEADER_CHANGES: usize = 32;

/// The parts of readiness that are not read off Raft's metrics.
#[derive(Debug)]
pub(crate) struct ReadinessState {
    node_id: NodeId,
    standby_only: bool,
    self_check: Result<(), String>,
    stepped_down_until: Mutex<Option<Instant>>,
    /// A hand-over this node started or received: (the member taking over, why).
    pub(crate) handover: Mutex<Option<(NodeId, ChangeReason)>>,
    /// The last [`MAX_LEADER_CHANGES`] changes of leader seen, oldest first.
    changes: Mutex<VecDeque<LeaderChange>>,
    /// An operator paused automatic leadership actions (`conductor_pause`).
    paused: AtomicBool,
    /// Why this node is failing (a critical task ended): it must not lead again.
    failed: Mutex<Option<String>>,
}

impl ReadinessState {
    pub(crate) fn new(
        node_id: NodeId,
        standby_only: bool,
        self_check: Result<(), String>,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_id,
            standby_only,
            self_check,
            stepped_down_until: Mutex::new(None),
            handover: Mutex::new(None),
            changes: Mutex::new(VecDeque::new()),
            paused: AtomicBool::new(false),
            failed: Mutex::new(None),
        })
    }
}

impl ReadinessState {
    /// Why this node is handing leadership on, if it is.
    pub(crate) fn handover_reason(&self) -> Option<ChangeReason> {
        self.handover.lock().map(|(_, why)| why)
    }

    /// A leader chose this node as its successor, because of `why`.
    pub(crate) fn received_handover(&self, why: ChangeReason) {
        *self.handover.lock() = Some((self.node_id, why));
    }
}

impl Consensus {
    /// Whether this node may stand for election and lead now.
    pub fn readiness(&self) -> Readiness {
        self.status().readiness
    }

    /// Readiness given the commit index this node knows and its applied index.
    pub(crate) fn readiness_of(&self, committed: u64, applied: u64) -> Readiness {
        let state = &self.readiness;
        if let Some(why) = state.failed.lock().clone() {
            return Readiness::Failed { why };
        }
        if state.standby_only {
            return Readiness::StandbyOnly;
        }
        if let Err(why) = &state.self_check {
            return Readiness::SelfCheckFailed { why: why.clone() };
        }
        if let Some(until) = *state.stepped_down_until.lock() {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                return Readiness::SteppedDown {
                    for_ms: left.as_millis() as u64,
                };
            }
        }
        let behind = committed.saturating_sub(applied);
        if behind > CATCH_UP_LAG {
            return Readiness::CatchingUp { behind };
        }
        Readiness::Ready
    }

    /// Pauses (or resumes) this node's automatic leadership actions: rotation,
    /// step-down and the not-ready hand-over. Raft itself goes on.
    pub fn set_paused(&self, paused: bool) {
        self.readiness.paused.store(paused, Ordering::SeqCst);
    }

    pub fn paused(&self) -> bool {
        self.readiness.paused.load(Ordering::SeqCst)
    }

    /// Marks this node failed (fail-stop): unhealthy and never ready again, while
    /// it stops.
    pub fn fail(&self, why: String) {
        *self.readiness.failed.lock() = Some(why);
    }

    pub(crate) fn failed(&self) -> bool {
        self.readiness.failed.lock().is_some()
    }

    /// Marks this node not ready for `cool_down`: it failed to produce as leader.
    pub fn stepped_down(&self, cool_down: Duration) {
        *self.readiness.stepped_down_until.lock() = Some(Instant::now() + cool_down);
    }

    /// Takes the reason for a change of leader from the new leader's own record:
    /// a node that took no part in a hand-over first sees it as an election.
    pub fn learn_leader_change(&self, theirs: &LeaderChange) {
        let mut changes = self.readiness.changes.lock();
        if let Some(ours) = changes.back_mut()
            && ours.term == theirs.term
            && ours.leader == theirs.leader
        {
            ours.reason = theirs.reason;
        }
    }

    /// The last change of leader this node saw, with its reason where it knows it.
    pub fn last_leader_change(&self) -> Option<LeaderChange> {
        self.readiness.changes.lock().back().cloned()
    }

    /// The changes of leader this node saw (the last [`MAX_LEADER_CHANGES`]), oldest
    /// first.
    pub fn leader_changes(&self) -> Vec<LeaderChange> {
        self.readiness.changes.lock().iter().cloned().collect()
    }
}

/// What this node's Raft state tells Prometheus.
fn record(consensus: &Consensus) {
    let status = consensus.status();
    metrics::gauge!("baton_raft_term").set(status.term as f64);
    metrics::gauge!("baton_raft_leader_id").set(status.leader_id.unwrap_or(0) as f64);
    let role = status.role.to_string();
    for each in ["leader", "follower", "candidate", "learner", "shutdown"] {
        let is = if role == each { 1.0 } else { 0.0 };
        metrics::gauge!("baton_raft_role", "role" => each).set(is);
    }
    metrics::gauge!("baton_raft_committed_index").set(status.committed_index as f64);
    metrics::gauge!("baton_raft_applied_index").set(status.applied_index as f64);
    metrics::gauge!("baton_raft_apply_lag")
        .set(status.committed_index.saturating_sub(status.applied_index) as f64);
    metrics::gauge!("baton_ready").set(if status.readiness.is_ready() {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("baton_healthy").set(if status.healthy { 1.0 } else { 0.0 });
}

/// Keeps openraft's elections on exactly while this node is ready, and records each
/// change of leader with its reason. Runs until the Raft instance stops.
pub(crate) async fn watch(consensus: Consensus) {
    let mut metrics = consensus.raft.metrics();
    let mut electing = true;
    let mut seen: Option<(u64, Option<NodeId>)> = None;
    loop {
        let ready = consensus.readiness().is_ready();
        if ready != electing {
            consensus.raft.runtime_config().elect(ready);
            electing = ready;
            tracing::info!(readiness = %consensus.readiness(), "standing for election: {ready}");
        }
        let (term, leader) = {
            let m = metrics.borrow_watched();
            (m.current_term, m.current_leader)
        };
        if leader.is_some() && seen.is_some_and(|s| s != (term, leader)) {
            let handover = consensus.readiness.handover.lock().take();
            let reason = match handover {
                Some((to, why)) if Some(to) == leader => why,
                _ => ChangeReason::Election,
            };
            let mut changes = consensus.readiness.changes.lock();
            if changes.len() == MAX_LEADER_CHANGES {
                changes.pop_front();
            }
            changes.push_back(LeaderChange {
                term,
                leader,
                reason,
                at_ms: baton_primitives::clock::now_ms(),
            });
            drop(changes);
            tracing::info!(term, ?leader, %reason, "leader changed");
            metrics::counter!("baton_leader_changes_total", "reason" => reason.to_string())
                .increment(1);
        }
        if leader.is_some() {
            seen = Some((term, leader));
        }
        record(&consensus);
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
