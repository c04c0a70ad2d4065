//! The fuzz smoke of every target (see `baton_fuzz::smoke`): `BATON_FUZZ_SECS`
//! seconds each (default 10; CI runs 60), or `BATON_FUZZ_EXECUTIONS` inputs each,
//! in parallel. A failure prints the input
//! in hex: add it to `regressions` below once fixed.

use std::time::Duration;

use baton_fuzz::{Budget, Target, smoke};

fn run(target: Target) {
    let env = |name| std::env::var(name).ok().and_then(|s| s.parse().ok());
    let budget = match (env("BATON_FUZZ_EXECUTIONS"), env("BATON_FUZZ_SECS")) {
        (Some(executions), _) => Budget::Executions(executions),
        (None, secs) => Budget::For(Duration::from_secs(secs.unwrap_or(10))),
    };
    let started = std::time::Instant::now();
    let smoked = smoke(target, budget, 0x5eed ^ target as u64);
    if let Some((input, why)) = &smoked.failure {
        panic!(
            "{} panicked after {} inputs on input {input}: {why}",
            target.name(),
            smoked.executions
        );
    }
    println!(
        "{}: {} inputs in {:.0?}, no panic",
        target.name(),
        smoked.executions,
        started.elapsed()
    );
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

#[test]
fn member_message() {
    run(Target::MemberMessage);
}

#[test]
fn stranger() {
    run(Target::Stranger);
}
