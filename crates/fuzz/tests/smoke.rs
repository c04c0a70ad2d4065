//! The fuzz smoke of every target (see `baton_fuzz::smoke`): `BATON_FUZZ_SECS`
//! seconds each (default 10; CI runs 60), in parallel. A failure prints the input
//! in hex: add it to `regressions` below once fixed.

use std::time::Duration;

use baton_fuzz::{Target, smoke};

fn run(target: Target) {
    let secs = std::env::var("BATON_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let smoked = smoke(target, Duration::from_secs(secs), 0x5eed ^ target as u64);
    if let Some((input, why)) = &smoked.failure {
        panic!(
            "{} panicked after {} inputs on input {input}: {why}",
            target.name(),
            smoked.executions
        );
    }
    println!("{}: {} inputs, no panic", target.name(), smoked.executions);
}

#[test]
fn rpc() {
    run(Target::Rpc);
}

#[test]
fn raw_tx() {
    run(Target::RawTx);
}

#[test]
fn log_entry() {
    run(Target::LogEntry);
}

#[test]
fn genesis() {
    run(Target::Genesis);
}

#[test]
fn config() {
    run(Target::Config);
}
