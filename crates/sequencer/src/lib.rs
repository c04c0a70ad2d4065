//! baton-sequencer: what the leader does, and nothing else.
//!
//! ```text
//!   ChainView (applied chain) ──▶ policy::next_action (pure) ──▶ Action
//!                                                                  │
//!   driver: wait for leadership, catch up (invariant 2), then ─────┘
//!           BlockStart / BlockEnd through Raft, one block per block_time
//! ```
//!
//! The decisions live in [`policy`], a pure function of observed state tested with
//! plain values; [`Sequencer`] performs them and admits transactions
//! ([`admission`]) into the open block.

pub mod admission;
mod driver;
pub mod policy;

pub use admission::{AdmissionError, SubmitHandle};
pub use driver::{Sequencer, SequencerConfig};
