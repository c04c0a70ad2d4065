//! `eth_simulateV1`: blocks of calls on top of the head, sealed as the chain would
//! seal them and answered with each call's outcome, on an execution thread
//! within the call time limit (`baton_execution::simulate` does the work).

use alloy_consensus::{Transaction as _, TxEnvelope, transaction::Recovered};
use alloy_eips::{BlockId, eip2718::Decodable2718};
use alloy_primitives::keccak256;
use alloy_rpc_types_eth::{
    Block, BlockTransactions, Log, Transaction,
    simulate::{SimCallResult, SimulatePayload, SimulatedBlock as RpcSimulatedBlock},
};
use baton_execution::{
    CallOutcome, SimulateError, SimulatedBlock, SimulationBlock, StateAt, TxError,
    reverted_message, simulate,
};
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
    types::ErrorObjectOwned,
};

use crate::{EthHandler, call::call_request, eth::rpc_block, internal, invalid_params};

/// The spec's codes for a call that is not a valid transaction.
fn invalid_call_code(error: &TxError) -> i32 {
    match error {
        TxError::NonceTooLow { .. } => -38010,
        TxError::NonceTooHigh { .. } => -38011,
        TxError::FeeCapBelowBaseFee => -38012,
        TxError::IntrinsicGasTooLow => -38013,
        TxError::InsufficientFunds { .. } => -38014,
        TxError::GasLimitAboveBlock | TxError::BlockFull => -38015,
        _ => -32000,
    }
}

fn simulate_error(error: SimulateError) -> ErrorObjectOwned {
    let code = match &error {
        SimulateError::Params(_) => return invalid_params(error),
        SimulateError::State(e) => return internal(e),
        SimulateError::Invalid { error, .. } => invalid_call_code(error),
        SimulateError::BlockGasLimit { .. } => -38015,
        SimulateError::Timeout => -32016,
    };
    ErrorObjectOwned::owned(code, error.to_string(), None::<()>)
}

#[rpc(server)]
pub trait EthSimulateApi {
    #[method(name = "eth_simulateV1", with_extensions)]
    async fn simulate_v1(
        &self,
        payload: SimulatePayload,
        block: Option<BlockId>,
    ) -> RpcResult<Vec<RpcSimulatedBlock<Block>>>;
}

#[async_trait]
impl EthSimulateApiServer for EthHandler {
    async fn simulate_v1(
        &self,
        extensions: &Extensions,
        payload: SimulatePayload,
        block: Option<BlockId>,
    ) -> RpcResult<Vec<RpcSimulatedBlock<Block>>> {
        if payload.trace_transfers {
            return Err(invalid_params("traceTransfers is not supported"));
        }
        let context = self.call_context(block)?;
        let head = self.head_number();
        let base = match context.state {
            StateAt::Block(number) if number == head => number,
            _ => {
                return Err(invalid_params(
                    "eth_simulateV1 builds on the latest block only (its state roots are \
                     the head's tries updated)",
                ));
            }
        };
        let parent = self
            .sealed_block(base)?
            .ok_or_else(|| internal("the head block is missing"))?;
        let blocks: Vec<SimulationBlock> = payload
            .block_state_calls
            .into_iter()
            .map(|block| SimulationBlock {
                overrides: block.block_overrides.unwrap_or_default(),
                state: block.state_overrides,
                calls: block.calls.iter().map(call_request).collect(),
            })
            .collect();
        let (validation, full) = (payload.validation, payload.return_full_transactions);
        let store = self.store.clone();
        let simulated = self
            .exec
            .run(extensions, move |deadline| {
                let simulated = simulate(&context, &parent, &blocks, validation, deadline)
                    .map_err(simulate_error)?;
                // The roots are the head's tries updated: the head must not have moved.
                if store.head().map_err(internal)?.map(|(n, _)| n) != Some(base) {
                    return Err(ErrorObjectOwned::owned(
                        -32000,
                        "the chain moved on during the simulation; retry",
                        None::<()>,
                    ));
                }
                Ok(simulated)
            })
            .await?;
        simulated
            .into_iter()
            .map(|block| rpc_simulated(block, full))
            .collect()
    }
}

/// A simulated block as the spec answers it: the block, and each call's outcome
/// with its logs placed in the block.
fn rpc_simulated(simulated: SimulatedBlock, full: bool) -> RpcResult<RpcSimulatedBlock<Block>> {
    let SimulatedBlock { block, calls } = simulated;
    let (number, hash, timestamp) = (block.header.number, block.hash, block.header.timestamp);
    let base_fee = block.header.base_fee_per_gas;
    let mut txs = Vec::with_capacity(block.txs.len());
    for (index, (raw, sender)) in block.txs.iter().enumerate() {
        let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(internal)?;
        txs.push(Transaction {
            effective_gas_price: Some(tx.effective_gas_price(base_fee)),
            inner: Recovered::new_unchecked(tx, *sender),
            block_hash: Some(hash),
            block_number: Some(number),
            transaction_index: Some(index as u64),
            block_timestamp: Some(timestamp),
        });
    }
    let hashes: Vec<_> = block.txs.iter().map(|(raw, _)| keccak256(raw)).collect();
    let mut log_index = 0u64;
    let calls = calls
        .into_iter()
        .enumerate()
        .map(|(index, call)| {
            let logs = call
                .logs
                .into_iter()
                .map(|inner| {
                    let log = Log {
                        inner,
                        block_hash: Some(hash),
                        block_number: Some(number),
                        block_timestamp: Some(timestamp),
                        transaction_hash: Some(hashes[index]),
                        transaction_index: Some(index as u64),
                        log_index: Some(log_index),
                        removed: false,
                    };
                    log_index += 1;
                    log
                })
                .collect();
            let (return_data, gas_used, error) = match call.outcome {
                CallOutcome::Success { output, gas_used } => (output, gas_used, None),
                CallOutcome::Revert {
                    output,
                    reason,
                    gas_used,
                } => (
                    output.clone(),
                    gas_used,
                    Some(alloy_rpc_types_eth::simulate::SimulateError {
                        code: 3,
                        message: reverted_message(reason.as_deref()),
                        data: Some(output),
                    }),
                ),
                CallOutcome::Halt { reason, gas_used } => (
                    Default::default(),
                    gas_used,
                    Some(alloy_rpc_types_eth::simulate::SimulateError {
                        code: -32015,
                        message: format!("vm execution error: {reason}"),
                        data: None,
                    }),
                ),
            };
            SimCallResult {
                status: error.is_none(),
                return_data,
                logs,
                gas_used,
                max_used_gas: None,
                error,
            }
        })
        .collect();
    let transactions = if full {
        BlockTransactions::Full(txs)
    } else {
        BlockTransactions::Hashes(hashes)
    };
    Ok(RpcSimulatedBlock {
        inner: rpc_block(block, transactions),
        calls,
    })
}
