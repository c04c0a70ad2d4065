//! What a read-only message is watched for while it runs.
//!
//! - A wall-clock bound (geth's `--rpc.evmtimeout`): every [`CHECK_EVERY`]
//!   instructions the clock is read and, once the deadline has passed, the whole
//!   transaction is aborted the way revm aborts on a database error (the context's
//!   error set, the frame halted fatally), however deep the calls go.
//! - Optionally, a budget of steps (a trace's size): past it, aborted the same way.
//! - Optionally, what it touches (`eth_createAccessList`): the addresses it reads
//!   or calls and the storage slots it loads or stores.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_primitives::{Address, B256};
use revm::{
    Inspector,
    bytecode::opcode,
    context_interface::{ContextError, ContextTr},
    interpreter::{
        Interpreter,
        interpreter_types::{InputsTr, Jumps},
    },
};

/// Instructions between two looks at the clock.
const CHECK_EVERY: u64 = 1024;

/// Watches one message: aborts it at `deadline`; records what it touches when
/// asked to.
#[derive(Debug)]
pub(crate) struct Probe {
    deadline: Instant,
    steps: u64,
    pub(crate) timed_out: bool,
    /// Most steps the message may take, when bounded.
    budget: Option<u64>,
    pub(crate) over_budget: bool,
    /// Storage slots by address, every address touched (slots or not).
    touched: Option<BTreeMap<Address, BTreeSet<B256>>>,
}

impl Probe {
    pub(crate) fn new(deadline: Instant) -> Self {
        Self {
            deadline,
            steps: 0,
            timed_out: false,
            budget: None,
            over_budget: false,
            touched: None,
        }
    }

    /// Also aborts the message after `budget` steps, when given.
    pub(crate) fn with_step_budget(mut self, budget: Option<u64>) -> Self {
        self.budget = budget;
        self
    }

    /// Steps taken so far.
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    /// Also records the addresses and slots the message touches.
    pub(crate) fn recording(mut self) -> Self {
        self.touched = Some(BTreeMap::new());
        self
    }

    /// What the message touched, as an access list, as geth makes it: storage
    /// slots of every address, and addresses touched without slots unless `skip`
    /// says they are warm anyway (the sender, the recipient, precompiles).
    pub(crate) fn access_list(&self, skip: impl Fn(&Address) -> bool) -> AccessList {
        let items = self
            .touched
            .iter()
            .flatten()
            .filter(|(address, slots)| !slots.is_empty() || !skip(address))
            .map(|(address, slots)| AccessListItem {
                address: *address,
                storage_keys: slots.iter().copied().collect(),
            })
            .collect();
        AccessList(items)
    }

    fn record(&mut self, interp: &Interpreter) {
        let Some(touched) = self.touched.as_mut() else {
            return;
        };
        let word = |n: usize| {
            interp
                .stack
                .peek(n)
                .ok()
                .map(|w| B256::from(w.to_be_bytes::<32>()))
        };
        let address = |n: usize| word(n).map(Address::from_word);
        match interp.bytecode.opcode() {
            opcode::SLOAD | opcode::SSTORE => {
                if let Some(slot) = word(0) {
                    touched
                        .entry(interp.input.target_address())
                        .or_default()
                        .insert(slot);
                }
            }
            opcode::BALANCE
            | opcode::EXTCODESIZE
            | opcode::EXTCODECOPY
            | opcode::EXTCODEHASH
            | opcode::SELFDESTRUCT => {
                if let Some(address) = address(0) {
                    touched.entry(address).or_default();
                }
            }
            opcode::CALL | opcode::CALLCODE | opcode::DELEGATECALL | opcode::STATICCALL => {
                if let Some(address) = address(1) {
                    touched.entry(address).or_default();
                }
            }
            _ => {}
        }
    }
}

impl<CTX: ContextTr> Inspector<CTX> for Probe {
    fn step(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        if !self.timed_out && !self.over_budget {
            self.record(interp);
            self.steps += 1;
            if self.budget.is_some_and(|budget| self.steps > budget) {
                self.over_budget = true;
            } else if !self.steps.is_multiple_of(CHECK_EVERY) || Instant::now() < self.deadline {
                return;
            } else {
                self.timed_out = true;
            }
        }
        if context.error().is_ok() {
            *context.error() = Err(ContextError::Custom("execution timeout".into()));
        }
        interp.halt_fatal();
    }
}
