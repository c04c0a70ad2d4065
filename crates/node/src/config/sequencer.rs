//! How this node behaves as a leader: its fee recipient, planned rotation, and
//! whether it may lead at all.

use alloy_primitives::Address;
use baton_sequencer::policy::MAX_STEP_DOWNS_PER_MINUTE;
use clap::Args;
use serde::{Deserialize, Serialize};

/// Leader settings as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct SequencerArgs {
    /// Fee recipient of the blocks this node seals [default: the zero address].
    #[arg(long)]
    pub coinbase: Option<Address>,
    /// Hand leadership to the next ready member (round-robin by id) after every N
    /// sealed blocks; 0 turns rotation off [default: 0].
    #[arg(long, env = "BATON_ROTATION_BLOCKS")]
    pub rotation_blocks: Option<u64>,
    /// At most N step-downs of a stalled leader per minute, cluster-wide; past
    /// that a stalled leader holds leadership (no failover storms) [default: 3].
    #[arg(long)]
    pub max_step_downs_per_minute: Option<u32>,
    /// Never stand for election: follow, serve RPC, and hand leadership on at once
    /// if it arrives anyway.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub standby_only: Option<bool>,
}

/// Leader settings, with defaults filled in.
#[derive(Debug, Clone)]
pub struct SequencerSettings {
    pub coinbase: Address,
    /// Hands leadership on after every this many sealed blocks (0 = never).
    pub rotation_blocks: u64,
    /// Step-downs allowed per minute, cluster-wide.
    pub max_step_downs_per_minute: u32,
    /// Never stands for election.
    pub standby_only: bool,
}

impl SequencerArgs {
    pub fn resolve(&self) -> SequencerSettings {
        SequencerSettings {
            coinbase: self.coinbase.unwrap_or(Address::ZERO),
            rotation_blocks: self.rotation_blocks.unwrap_or(0),
            max_step_downs_per_minute: self
                .max_step_downs_per_minute
                .unwrap_or(MAX_STEP_DOWNS_PER_MINUTE),
            standby_only: self.standby_only.unwrap_or(false),
        }
    }
}
