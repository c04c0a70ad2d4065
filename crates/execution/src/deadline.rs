//! A wall-clock bound on one message (geth's `--rpc.evmtimeout`): an inspector that
//! looks at the clock every [`CHECK_EVERY`] instructions and, once the deadline has
//! passed, aborts the whole transaction the way revm aborts on a database error
//! (the context's error set, the frame halted fatally), however deep the calls go.

use std::time::Instant;

use revm::{
    Inspector,
    context_interface::{ContextError, ContextTr},
    interpreter::Interpreter,
};

/// Instructions between two looks at the clock.
const CHECK_EVERY: u32 = 1024;

/// Aborts a message once `deadline` passes; `timed_out` tells the caller why.
#[derive(Debug)]
pub(crate) struct Deadline {
    deadline: Instant,
    steps: u32,
    pub(crate) timed_out: bool,
}

impl Deadline {
    pub(crate) fn new(deadline: Instant) -> Self {
        Self {
            deadline,
            steps: 0,
            timed_out: false,
        }
    }
}

impl<CTX: ContextTr> Inspector<CTX> for Deadline {
    fn step(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        if !self.timed_out {
            self.steps = self.steps.wrapping_add(1);
            if !self.steps.is_multiple_of(CHECK_EVERY) || Instant::now() < self.deadline {
                return;
            }
            self.timed_out = true;
        }
        if context.error().is_ok() {
            *context.error() = Err(ContextError::Custom("execution timeout".into()));
        }
        interp.halt_fatal();
    }
}
