//! `eth_simulateV1`: blocks of messages built on the head, each on the state the
//! last left, sealed as the chain would seal them (state root included), and
//! never committed.
//!
//! ```text
//!  head state ──▶ block 1: overrides, calls (each sees the last) ──▶ seal ──▶ block 2 …
//! ```
//!
//! Without `validation` a call runs as `eth_call` does (no fee, nonce or balance
//! checks beyond the value it sends); with it, as a transaction would.

use std::time::Instant;

use alloy_consensus::{
    Receipt, ReceiptEnvelope, SignableTransaction, TxEip1559, TxEnvelope, TxLegacy,
};
use alloy_eips::eip2718::Encodable2718;
use alloy_evm::{Evm, EvmFactory, eth::EthEvmFactory};
use alloy_primitives::{B256, Log, Signature, TxKind, U256};
use alloy_rpc_types_eth::{BlockOverrides, state::StateOverride};
use baton_primitives::{BlockStart, SealedBlock};
use revm::{
    DatabaseCommit,
    context::result::{EVMError, ExecutionResult},
    database_interface::DatabaseRef,
};

use crate::{
    CallContext, CallOutcome, CallRequest, TxError,
    block::{next_base_fee, seal_header},
    builder::refusal,
    call::{apply_state_override, message_env, overridden_db, revert_reason},
    changes::state_changes,
    probe::Probe,
};

/// Most blocks one simulation builds (the BLOCKHASH window, as the spec suggests).
pub const MAX_SIMULATED_BLOCKS: usize = 256;
/// Most calls in one simulation, over all its blocks.
pub const MAX_SIMULATED_CALLS: usize = 1_000;

/// One block to simulate.
#[derive(Debug, Clone, Default)]
pub struct SimulationBlock {
    pub overrides: BlockOverrides,
    pub state: Option<StateOverride>,
    pub calls: Vec<CallRequest>,
}

/// A call as it ran in its simulated block, with the logs it left.
#[derive(Debug, Clone)]
pub struct SimulatedCall {
    pub outcome: CallOutcome,
    pub logs: Vec<Log>,
}

/// A simulated block: sealed (its transactions carry no signature) with its calls.
#[derive(Debug, Clone)]
pub struct SimulatedBlock {
    pub block: SealedBlock,
    pub calls: Vec<SimulatedCall>,
}

/// Why a simulation could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    Params(String),
    /// A call is not a valid transaction (with validation, or at any rate).
    #[error("block {block}, call {call}: {error}")]
    Invalid {
        block: usize,
        call: usize,
        error: TxError,
    },
    #[error("block {block}, call {call}: gas {gas} exceeds what the block has left ({left})")]
    BlockGasLimit {
        block: usize,
        call: usize,
        gas: u64,
        left: u64,
    },
    #[error("execution aborted (timeout exceeded)")]
    Timeout,
    #[error("state: {0}")]
    State(String),
}

/// The environment of the next simulated block on top of `parent`.
fn next_start(
    parent: &alloy_consensus::Header,
    parent_hash: B256,
    overrides: &BlockOverrides,
    validation: bool,
) -> Result<BlockStart, SimulateError> {
    if overrides.random.is_some() || overrides.block_hash.is_some() {
        return Err(SimulateError::Params(
            "block overrides of prevRandao and blockHash are not supported".into(),
        ));
    }
    let number = match overrides.number {
        Some(number) => u64::try_from(number)
            .map_err(|_| SimulateError::Params("block number over 2^64".into()))?,
        None => parent
            .number
            .checked_add(1)
            .ok_or_else(|| SimulateError::Params("no block can follow block 2^64 - 1".into()))?,
    };
    if number <= parent.number {
        return Err(SimulateError::Params(format!(
            "block numbers must increase: {number} follows {}",
            parent.number
        )));
    }
    let timestamp = overrides.time.unwrap_or(parent.timestamp + 1);
    if timestamp < parent.timestamp {
        return Err(SimulateError::Params(format!(
            "block timestamps must not decrease: {timestamp} follows {}",
            parent.timestamp
        )));
    }
    let base_fee = match overrides.base_fee {
        Some(fee) => u64::try_from(fee)
            .map_err(|_| SimulateError::Params("baseFeePerGas over 2^64".into()))?,
        None if validation => next_base_fee(parent),
        None => 0,
    };
    Ok(BlockStart {
        number,
        timestamp_ms: timestamp.saturating_mul(1000),
        parent_hash,
        base_fee,
        gas_limit: overrides.gas_limit.unwrap_or(parent.gas_limit),
        coinbase: overrides.coinbase.unwrap_or(parent.beneficiary),
    })
}

/// The unsigned transaction `request` stands for, with a zero signature (its
/// hash names it in the simulated block).
fn stand_in(chain_id: u64, request: &CallRequest, nonce: u64, gas: u64) -> TxEnvelope {
    let to = request.to.unwrap_or(TxKind::Create);
    let value = request.value.unwrap_or_default();
    let signature = Signature::new(U256::ZERO, U256::ZERO, false);
    match request.max_priority_fee_per_gas {
        Some(tip) => TxEip1559 {
            chain_id,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: request.gas_price.unwrap_or_default(),
            max_priority_fee_per_gas: tip,
            to,
            value,
            access_list: request.access_list.clone().unwrap_or_default(),
            input: request.input.clone(),
        }
        .into_signed(signature)
        .into(),
        None => TxLegacy {
            chain_id: Some(chain_id),
            nonce,
            gas_price: request.gas_price.unwrap_or_default(),
            gas_limit: gas,
            to,
            value,
            input: request.input.clone(),
        }
        .into_signed(signature)
        .into(),
    }
}

/// Simulates `blocks` on top of `context`'s state, which must be the head's
/// (`parent` is its header): the state roots are computed against the head's tries.
pub fn simulate(
    context: &CallContext,
    parent: &SealedBlock,
    blocks: &[SimulationBlock],
    validation: bool,
    deadline: Instant,
) -> Result<Vec<SimulatedBlock>, SimulateError> {
    if blocks.len() > MAX_SIMULATED_BLOCKS {
        return Err(SimulateError::Params(format!(
            "{} blocks asked; at most {MAX_SIMULATED_BLOCKS}",
            blocks.len()
        )));
    }
    let calls: usize = blocks.iter().map(|b| b.calls.len()).sum();
    if calls > MAX_SIMULATED_CALLS {
        return Err(SimulateError::Params(format!(
            "{calls} calls asked; at most {MAX_SIMULATED_CALLS}"
        )));
    }
    let state_error = |e: String| SimulateError::State(e);
    let mut db = overridden_db(context).map_err(|e| state_error(e.to_string()))?;
    let (mut header, mut hash) = (parent.header.clone(), parent.hash);
    let mut out = Vec::with_capacity(blocks.len());
    for (block_index, spec) in blocks.iter().enumerate() {
        let start = next_start(&header, hash, &spec.overrides, validation)?;
        if let Some(state) = &spec.state {
            apply_state_override(&mut db, state).map_err(|e| state_error(e.to_string()))?;
        }
        let mut block_context = context.clone();
        block_context.block = crate::CallBlock::of_start(&start);
        let mut txs = Vec::new();
        let mut receipts = Vec::new();
        let mut simulated = Vec::new();
        let mut gas_used = 0u64;
        for (call_index, request) in spec.calls.iter().enumerate() {
            let from = request.from.unwrap_or_default();
            let left = start.gas_limit - gas_used;
            let gas = request.gas.unwrap_or(left);
            if gas > left {
                return Err(SimulateError::BlockGasLimit {
                    block: block_index,
                    call: call_index,
                    gas,
                    left,
                });
            }
            let nonce = match request.nonce {
                Some(nonce) => nonce,
                None => db
                    .basic_ref(from)
                    .map_err(|e| state_error(e.to_string()))?
                    .map_or(0, |a| a.nonce),
            };
            let request = CallRequest {
                nonce: Some(nonce),
                ..request.clone()
            };
            let (mut env, mut tx_env) = message_env(&block_context, &request, gas);
            env.cfg_env.disable_nonce_check = !validation;
            if validation {
                env.block_env.basefee = start.base_fee;
            } else {
                env.block_env.basefee = 0;
                tx_env.gas_priority_fee = tx_env.gas_priority_fee.map(|_| 0);
                tx_env.gas_price = 0;
            }
            let mut evm = EthEvmFactory::default().create_evm_with_inspector(
                &mut db,
                env,
                Probe::new(deadline),
            );
            let outcome = evm.transact(tx_env);
            let timed_out = evm.inspector_mut().timed_out;
            drop(evm);
            if timed_out {
                return Err(SimulateError::Timeout);
            }
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(EVMError::Transaction(invalid)) => {
                    return Err(SimulateError::Invalid {
                        block: block_index,
                        call: call_index,
                        error: refusal(invalid),
                    });
                }
                Err(EVMError::Database(e)) => return Err(state_error(e.to_string())),
                Err(other) => return Err(SimulateError::Params(other.to_string())),
            };
            db.commit(outcome.state);
            let result = outcome.result;
            let used = result.tx_gas_used();
            gas_used += used;
            let tx = stand_in(context.chain_id, &request, nonce, gas);
            let logs = result.logs().to_vec();
            receipts.push(ReceiptEnvelope::from_typed(
                tx.tx_type(),
                Receipt {
                    status: result.is_success().into(),
                    cumulative_gas_used: gas_used,
                    logs: logs.clone(),
                }
                .with_bloom(),
            ));
            txs.push((tx.encoded_2718().into(), from));
            let outcome = match result {
                ExecutionResult::Success { .. } => CallOutcome::Success {
                    output: result.into_output().unwrap_or_default(),
                    gas_used: used,
                },
                ExecutionResult::Revert { output, .. } => CallOutcome::Revert {
                    reason: revert_reason(&output),
                    output,
                    gas_used: used,
                },
                ExecutionResult::Halt { reason, .. } => CallOutcome::Halt {
                    reason: format!("{reason:?}"),
                    gas_used: used,
                },
            };
            simulated.push(SimulatedCall { outcome, logs });
        }
        let changes = state_changes(db.db.store(), &db.cache).map_err(|e| state_error(e.0))?;
        let sealed_header = seal_header(
            &start,
            &header,
            &txs,
            changes.state_root,
            &receipts,
            gas_used,
        );
        let block = SealedBlock::new(sealed_header, txs);
        (header, hash) = (block.header.clone(), block.hash);
        out.push(SimulatedBlock {
            block,
            calls: simulated,
        });
    }
    debug_assert_eq!(
        out.len(),
        blocks.len(),
        "one simulated block per block asked"
    );
    Ok(out)
}
