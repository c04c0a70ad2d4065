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
}

/// Fault-injection settings, with defaults (off) filled in.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// Serves the `baton_fault*` methods.
    pub injection: bool,
    /// Leads without producing.
    pub no_produce: bool,
}

impl FaultArgs {
    pub fn resolve(&self) -> FaultConfig {
        FaultConfig {
            injection: self.fault_injection.unwrap_or(false),
            no_produce: self.fault_no_produce.unwrap_or(false),
        }
    }
}
