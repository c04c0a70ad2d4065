//! The fuzz smoke: a target fed its seeds and random mutations of them for a while,
//! on stable Rust. Not coverage-guided (the cargo-fuzz targets under `fuzz/` are);
//! it catches what shallow mutations reach, on every CI run.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    time::{Duration, Instant},
};

use crate::{Target, harness::panics};

/// What a smoke run did.
#[derive(Debug)]
pub struct Smoked {
    pub executions: u64,
    /// The first input that panicked (hex) and what the panic said, if one did.
    pub failure: Option<(String, String)>,
}

/// Inputs a run keeps to mutate further (the seeds stay too).
const POOL: usize = 256;

/// How long a smoke run goes on (every seed runs in any case).
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    For(Duration),
    Executions(u64),
}

impl Budget {
    fn spent(self, started: Instant, executions: u64) -> bool {
        match self {
            Self::For(duration) => started.elapsed() >= duration,
            Self::Executions(runs) => executions >= runs,
        }
    }
}

/// Feeds `target` its seeds, then mutations of them and of earlier inputs, until
/// `budget` is spent; stops at the first panic anywhere in the process.
pub fn smoke(target: Target, budget: Budget, seed: u64) -> Smoked {
    let mut rng = Rng(seed | 1);
    let seeds = target.seeds();
    let mut pool = seeds.clone();
    let started = Instant::now();
    let mut executions = 0;
    let mut next = 0usize;
    while executions < seeds.len() as u64 || !budget.spent(started, executions) {
        let input = match seeds.get(executions as usize) {
            Some(seed) => seed.clone(),
            None => {
                let from = rng.below(pool.len());
                rng.mutate(&pool[from], &seeds)
            }
        };
        let before = panics().len();
        let outcome = catch_unwind(AssertUnwindSafe(|| target.run(&input)));
        executions += 1;
        let panicked = match outcome {
            Err(payload) => Some(describe(payload.as_ref())),
            Ok(()) => panics().get(before).cloned(),
        };
        if let Some(why) = panicked {
            return Smoked {
                executions,
                failure: Some((alloy_primitives::hex::encode(&input), why)),
            };
        }
        if pool.len() < POOL {
            pool.push(input);
        } else {
            // Seeds stay; the oldest of the rest gives way.
            let kept = seeds.len().min(POOL - 1);
            pool[kept + next % (POOL - kept)] = input;
            next += 1;
        }
    }
    Smoked {
        executions,
        failure: None,
    }
}

fn describe(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".to_string())
}

/// xorshift64*: fast, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// `input` changed in one to four places, or, now and then, random bytes.
    fn mutate(&mut self, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
        if self.below(16) == 0 {
            let len = self.below(256);
            return (0..len).map(|_| self.byte()).collect();
        }
        let mut out = input.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(7) {
                0 if !out.is_empty() => {
                    let i = at.min(out.len() - 1);
                    out[i] ^= 1 << self.below(8);
                }
                1 if !out.is_empty() => {
                    let i = at.min(out.len() - 1);
                    out[i] = [0, 1, 0x7f, 0x80, 0xff][self.below(5)];
                }
                2 => {
                    let len = self.below(16) + 1;
                    let bytes: Vec<u8> = (0..len).map(|_| self.byte()).collect();
                    out.splice(at..at, bytes);
                }
                3 if at < out.len() => {
                    let end = (at + self.below(16) + 1).min(out.len());
                    out.drain(at..end);
                }
                4 => out.truncate(at),
                5 if at < out.len() => {
                    let end = (at + self.below(32) + 1).min(out.len());
                    let copy = out[at..end].to_vec();
                    let to = self.below(out.len() + 1);
                    out.splice(to..to, copy);
                }
                _ => {
                    let other = &seeds[self.below(seeds.len())];
                    let from = self.below(other.len() + 1);
                    out.truncate(at);
                    out.extend_from_slice(&other[from..]);
                }
            }
        }
        out
    }
}
