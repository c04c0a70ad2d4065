//! Test-only fault injection: hidden flags the chaos harness and the tests use.
//! A production node never sets them.

use clap::Args;
use serde::{Deserialize, Serialize};

/// Fault-injection settings as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultArgs {
    /// Serve baton_fault* methods: cut this node's Raft links, stop a critical
    /// task (tests and `baton chaos` only).
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub fault_injection: Option<bool>,
    /// Lead without ever producing a block (tests of step-down only).
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub fault_no_produce: Option<bool>,
    /// Run this process's clock this many ms ahead (negative: behind), as a node
    /// with a bad clock (tests of block timing only).
    #[arg(long, hide = true, allow_negative_numbers = true)]
    pub fault_clock_offset_ms: Option<i64>,
}

/// Fault-injection settings, with defaults (off) filled in.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// Serves the `baton_fault*` methods.
    pub injection: bool,
    /// Leads without producing.
    pub no_produce: bool,
    /// How far this process's clock is shifted.
    pub clock_offset_ms: i64,
}

impl FaultArgs {
    pub fn resolve(&self) -> FaultConfig {
        FaultConfig {
            injection: self.fault_injection.unwrap_or(false),
            no_produce: self.fault_no_produce.unwrap_or(false),
            clock_offset_ms: self.fault_clock_offset_ms.unwrap_or(0),
        }
    }
}
