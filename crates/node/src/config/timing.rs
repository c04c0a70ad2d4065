//! Block and Raft timings: one block time, one heartbeat, one election window,
//! checked against each other (DESIGN §4).

use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Block and Raft timings as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct TimingArgs {
    /// Block time in ms [default: 1000].
    #[arg(long)]
    pub block_time_ms: Option<u64>,
    /// Raft heartbeat in ms [default: 50].
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Raft election timeout, lower bound in ms [default: 150].
    #[arg(long)]
    pub election_timeout_min_ms: Option<u64>,
    /// Raft election timeout, upper bound in ms [default: 300].
    #[arg(long)]
    pub election_timeout_max_ms: Option<u64>,
}

/// Block and Raft timings, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub block_time: Duration,
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
}

impl TimingArgs {
    pub fn resolve(&self) -> Result<Timing, ConfigError> {
        let ms = Duration::from_millis;
        let timing = Timing {
            block_time: ms(self.block_time_ms.unwrap_or(1_000)),
            heartbeat: ms(self.heartbeat_ms.unwrap_or(50)),
            election_timeout_min: ms(self.election_timeout_min_ms.unwrap_or(150)),
            election_timeout_max: ms(self.election_timeout_max_ms.unwrap_or(300)),
        };
        timing.validate()?;
        Ok(timing)
    }
}

impl Timing {
    /// heartbeat < election min < election max < 3 × block time (the stall bound:
    /// an election must fit inside the time after which a leader is called stalled).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ms = |d: Duration| d.as_millis();
        let fail = |what: String| Err(ConfigError::Timing(what));
        if ms(self.block_time) < 50 {
            return fail(format!(
                "block time {}ms is below 50ms",
                ms(self.block_time)
            ));
        }
        if self.block_time > Duration::from_secs(3_600) {
            return fail(format!(
                "block time {}ms is above one hour",
                ms(self.block_time)
            ));
        }
        if ms(self.heartbeat) == 0 || self.heartbeat >= self.election_timeout_min {
            return fail(format!(
                "heartbeat {}ms must be above 0 and below the election timeout minimum {}ms",
                ms(self.heartbeat),
                ms(self.election_timeout_min)
            ));
        }
        if self.election_timeout_min >= self.election_timeout_max {
            return fail(format!(
                "election timeout minimum {}ms must be below its maximum {}ms",
                ms(self.election_timeout_min),
                ms(self.election_timeout_max)
            ));
        }
        if self.election_timeout_max >= self.block_time * 3 {
            return fail(format!(
                "election timeout maximum {}ms must be below 3 x block time ({}ms)",
                ms(self.election_timeout_max),
                ms(self.block_time * 3)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictory_timings_are_refused() {
        let refused = |args: TimingArgs| matches!(args.resolve(), Err(ConfigError::Timing(_)));
        assert!(refused(TimingArgs {
            heartbeat_ms: Some(400),
            ..Default::default()
        }));
        assert!(refused(TimingArgs {
            election_timeout_min_ms: Some(300),
            election_timeout_max_ms: Some(200),
            ..Default::default()
        }));
        assert!(refused(TimingArgs {
            block_time_ms: Some(100),
            ..Default::default()
        }));
        // Over an hour: multiples of it used to overflow in the status and the
        // stall watchdog.
        assert!(refused(TimingArgs {
            block_time_ms: Some(u64::MAX / 3 + 1),
            ..Default::default()
        }));
        assert!(TimingArgs::default().resolve().is_ok());
    }
}
