//! Re-execution under a tracer, for `debug_traceTransaction`, `debug_traceBlockBy*`
//! and `debug_traceCall`: geth's struct logger, `callTracer`, `prestateTracer` and
//! the other built-in tracers of revm-inspectors, as reth serves them.
//!
//! ```text
//!  state after block n-1 ──▶ txs 0..i executed plainly ──▶ tx i under the tracer ──▶ trace
//!                                                     (a block trace traces every tx)
//! ```
//!
//! A trace is bounded: it stops at the call's deadline, and the struct logger stops
//! after [`MAX_STRUCT_LOGS`] steps (each step keeps its stack; with memory
//! enabled, after [`MAX_STRUCT_LOGS_WITH_MEMORY`]), with a clear error either way.

use std::time::Instant;

use alloy_consensus::TxEnvelope;
use alloy_eips::eip2718::Decodable2718;
use alloy_evm::{Evm, EvmEnv, EvmFactory, FromRecoveredTx, eth::EthEvmFactory};
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace, TraceResult};
use baton_primitives::SealedBlock;
use baton_storage::Store;
use revm::{
    DatabaseCommit,
    context::{TxEnv, result::EVMError},
    database::CacheDB,
};
use revm_inspectors::tracing::{DebugInspector, TransactionContext};

use crate::{
    CallBlock, CallContext, CallError, CallRequest, StateAt, StoreDb,
    call::{message_env, overridden_db, sealed_env},
    probe::Probe,
};

/// Most struct-logger steps one trace request records (each keeps its stack).
pub const MAX_STRUCT_LOGS: u64 = 200_000;
/// Most struct-logger steps when each also keeps the EVM's memory.
pub const MAX_STRUCT_LOGS_WITH_MEMORY: u64 = 10_000;

/// The struct logger's step budget for `options`, or none for call-level tracers.
fn step_budget(options: &GethDebugTracingOptions) -> Option<u64> {
    let struct_logger = options
        .tracer
        .as_ref()
        .is_none_or(|tracer| tracer.as_str().is_empty());
    struct_logger.then(|| {
        if options.config.enable_memory.unwrap_or(false) {
            MAX_STRUCT_LOGS_WITH_MEMORY
        } else {
            MAX_STRUCT_LOGS
        }
    })
}

/// Why a trace could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    #[error("{0}")]
    Tracer(String),
    #[error(
        "trace too large: the struct logger stops after {0} steps; trace with callTracer, \
         or disable the stack (disableStack) and memory"
    )]
    TooLarge(u64),
    #[error("execution aborted (timeout exceeded)")]
    Timeout,
    #[error("transaction {index} of block {number} cannot be executed again: {why}")]
    Replay {
        number: u64,
        index: usize,
        why: String,
    },
    #[error("state: {0}")]
    State(String),
}

impl From<CallError> for TraceError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Timeout => Self::Timeout,
            CallError::State(e) => Self::State(e),
            other => Self::Tracer(other.to_string()),
        }
    }
}

/// Traces the sealed transactions of `block` (only the one at `only`, when given)
/// by executing the block again on the state its parent left.
pub fn trace_block(
    store: &Store,
    chain_id: u64,
    block: &SealedBlock,
    only: Option<usize>,
    options: &GethDebugTracingOptions,
    deadline: Instant,
) -> Result<Vec<TraceResult>, TraceError> {
    let number = block.header.number;
    let parent = StateAt::Block(number.saturating_sub(1));
    let mut db = CacheDB::new(StoreDb::at(store.clone(), parent));
    let env = sealed_env(chain_id, &CallBlock::of_header(&block.header));
    let mut budget = step_budget(options);
    let mut traces = Vec::new();
    for (index, (raw, sender)) in block.txs.iter().enumerate() {
        if only.is_some_and(|wanted| index > wanted) {
            break;
        }
        let replay = |why: String| TraceError::Replay { number, index, why };
        let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(|e| replay(e.to_string()))?;
        let hash = *tx.tx_hash();
        let tx_env = TxEnv::from_recovered_tx(&tx, *sender);
        if only.is_some_and(|wanted| index < wanted) {
            let mut evm = EthEvmFactory::default().create_evm(&mut db, env.clone());
            let outcome = evm.transact(tx_env).map_err(|e| replay(e.to_string()))?;
            drop(evm);
            db.commit(outcome.state);
            continue;
        }
        let context = TransactionContext {
            block_hash: Some(block.hash),
            tx_hash: Some(hash),
            tx_index: Some(index),
        };
        let (trace, used) = traced(&mut db, &env, tx_env, context, options, budget, deadline)?;
        budget = budget.map(|left| left.saturating_sub(used));
        traces.push(TraceResult::Success {
            result: trace,
            tx_hash: Some(hash),
        });
        debug_assert!(
            traces.len() <= block.txs.len(),
            "one trace per transaction at most"
        );
    }
    Ok(traces)
}

/// Traces a message as `eth_call` would run it.
pub fn trace_call(
    context: &CallContext,
    request: &CallRequest,
    options: &GethDebugTracingOptions,
    deadline: Instant,
) -> Result<GethTrace, TraceError> {
    let gas = request
        .gas
        .unwrap_or(context.block.gas_limit)
        .min(context.block.gas_limit);
    let (env, tx_env) = message_env(context, request, gas);
    let mut db = overridden_db(context)?;
    let (trace, _) = traced(
        &mut db,
        &env,
        tx_env,
        TransactionContext::default(),
        options,
        step_budget(options),
        deadline,
    )?;
    Ok(trace)
}

/// Executes `tx_env` on `db` under the tracer `options` name, commits its effects,
/// and gives its trace and the struct-logger steps it took.
fn traced(
    db: &mut CacheDB<StoreDb>,
    env: &EvmEnv,
    tx_env: TxEnv,
    context: TransactionContext,
    options: &GethDebugTracingOptions,
    budget: Option<u64>,
    deadline: Instant,
) -> Result<(GethTrace, u64), TraceError> {
    let tracer =
        DebugInspector::new(options.clone()).map_err(|e| TraceError::Tracer(e.to_string()))?;
    let probe = Probe::new(deadline).with_step_budget(budget);
    let mut evm =
        EthEvmFactory::default().create_evm_with_inspector(&mut *db, env.clone(), (probe, tracer));
    let outcome = evm.transact(tx_env.clone());
    let (probe, mut tracer) = std::mem::replace(
        evm.inspector_mut(),
        (
            Probe::new(deadline),
            DebugInspector::Noop(revm::inspector::NoOpInspector),
        ),
    );
    drop(evm);
    if probe.timed_out {
        return Err(TraceError::Timeout);
    }
    if probe.over_budget {
        return Err(TraceError::TooLarge(budget.unwrap_or_default()));
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(EVMError::Database(e)) => return Err(TraceError::State(e.to_string())),
        Err(e) => return Err(TraceError::Tracer(e.to_string())),
    };
    let trace = tracer
        .get_result(Some(context), &tx_env, &env.block_env, &outcome, db)
        .map_err(|e| TraceError::Tracer(e.to_string()))?;
    db.commit(outcome.state);
    Ok((trace, probe.steps()))
}
