//! baton-sequencer: what the leader does, and nothing else.
//!
//! ```text
//!  applied chain, clock, members' readiness ──▶ policy (pure) ──▶ Command
//!        Open | Admit | Seal | HandOver | WaitUntil                 │
//!  runtime: follow leadership; while leading in a term: barrier ◀───┘
//!  (invariant 2), then carry out each command through Raft (produce); admission
//!  executes submissions on the speculative block and dispose() decides each
//!  one's fate (invariant 3); the watchdog steps a stalled leader down (invariant 6)
//! ```
//!
//! The decisions live in [`policy`], [`admission::dispose`] and [`gaps`]: pure code
//! tested with plain values. [`Sequencer`] and [`watchdog`] perform them.

pub mod admission;
mod admit;
pub mod gaps;
pub mod policy;
mod produce;
mod runtime;
mod watchdog;

pub use admission::{AdmissionError, Queued, SubmitHandle};
pub use runtime::{Sequencer, SequencerConfig};
pub use watchdog::watchdog;
