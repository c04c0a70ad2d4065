//! baton-execution: the deterministic step from committed entries to blocks.
//!
//! ```text
//!  BlockStart ──▶ check against the head ──▶ BlockBuilder (revm over the head state)
//!  Transactions ─▶ execute each (Prague rules) ──▶ receipts, overlay of changes
//!  BlockEnd ────▶ seal: state root, receipts root, bloom, header ──▶ SealOutcome
//!                 └─ the leader's hash must equal ours, or we halt
//! ```
//!
//! Every node runs exactly this code on exactly the committed stream, so every node
//! holds the same blocks, receipts and state (DESIGN invariant 4). The leader runs
//! the same [`BlockBuilder`] ahead of the log to admit only transactions that
//! execute (DESIGN invariant 3).

mod block;
mod builder;
mod call;
mod changes;
mod commit;
mod error;
mod pending;
mod probe;
mod proof;
mod self_check;
mod simulate;
mod state;
mod trace;

pub use block::{BlockStep, apply_entry, check_start, next_base_fee, seal_header, start_on};
pub use builder::{BlockBuilder, ExecutedTx, SPEC, SealOutcome, TxError};
pub use call::{
    AccessListOutcome, CallBlock, CallContext, CallError, CallOutcome, CallRequest, call,
    create_access_list, estimate_gas, revert_reason, reverted_message,
};
pub use changes::StateChanges;
pub use commit::{write_genesis, write_sealed};
pub use error::ExecutionError;
pub use pending::{PendingBatch, PendingBlock};
pub use proof::{AccountProof, ProofAt, ProofError, prove};
/// What one transaction changed, as revm reports it: replayed on another copy of
/// the same state without executing again.
pub use revm::state::EvmState as TxDiff;
pub use self_check::self_check;
pub use simulate::{
    MAX_SIMULATED_BLOCKS, MAX_SIMULATED_CALLS, SimulateError, SimulatedBlock, SimulatedCall,
    SimulationBlock, simulate,
};
pub use state::{StateAt, StateError, StoreDb};
pub use trace::{
    MAX_STRUCT_LOGS, MAX_STRUCT_LOGS_WITH_MEMORY, TraceError, trace_block, trace_call,
};
