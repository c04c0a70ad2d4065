//! baton-execution: the deterministic step from committed entries to blocks.
//!
//! ```text
//!  BlockStart ──▶ check against the head ──▶ OpenBlock
//!  Transactions ─▶ append to the OpenBlock
//!  BlockEnd ────▶ seal: header (roots, base fee, parent link) ──▶ SealedBlock
//!                 └─ the leader's hash must equal ours, or we halt
//! ```
//!
//! Every node runs exactly this code on exactly the committed stream, so every node
//! holds the same blocks (DESIGN invariant 4). [2/5] adds transaction execution
//! (revm) between the `Transactions` step and sealing.

mod block;
mod error;

pub use block::{BlockStep, apply_entry, next_base_fee, seal};
pub use error::ExecutionError;
