//! `eth_call` and `eth_estimateGas`: messages run on the head state, never committed.

use alloy_eips::BlockId;
use alloy_primitives::{Bytes, U64};
use alloy_rpc_types_eth::TransactionRequest;
use baton_execution::{CallError, CallOutcome, CallRequest, call, estimate_gas, reverted_message};
use jsonrpsee::{core::RpcResult, proc_macros::rpc, types::ErrorObjectOwned};

use crate::{EthHandler, internal};

/// JSON-RPC code for a reverted call (geth's), with the revert data attached.
const EXECUTION_REVERTED: i32 = 3;

#[rpc(server)]
pub trait EthCallApi {
    #[method(name = "eth_call")]
    fn call(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<Bytes>;

    #[method(name = "eth_estimateGas")]
    fn estimate_gas(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<U64>;
}

fn message(request: &TransactionRequest) -> CallRequest {
    CallRequest {
        from: request.from,
        to: request.to,
        gas: request.gas,
        gas_price: request.gas_price.or(request.max_fee_per_gas),
        max_priority_fee_per_gas: request.max_priority_fee_per_gas,
        value: request.value,
        input: request.input.input().cloned().unwrap_or_default(),
        nonce: request.nonce,
    }
}

fn call_error(error: CallError) -> ErrorObjectOwned {
    match error {
        CallError::State(e) => internal(e),
        other => ErrorObjectOwned::owned(-32000, other.to_string(), None::<()>),
    }
}

impl EthCallApiServer for EthHandler {
    fn call(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<Bytes> {
        let context = self.call_context(block)?;
        match call(&context, &message(&request)).map_err(call_error)? {
            CallOutcome::Success { output, .. } => Ok(output),
            CallOutcome::Revert { output, reason } => Err(ErrorObjectOwned::owned(
                EXECUTION_REVERTED,
                reverted_message(reason.as_deref()),
                Some(output),
            )),
            CallOutcome::Halt { reason, .. } => Err(ErrorObjectOwned::owned(
                -32000,
                format!("execution halted: {reason}"),
                None::<()>,
            )),
        }
    }

    fn estimate_gas(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<U64> {
        let context = self.call_context(block)?;
        estimate_gas(&context, &message(&request))
            .map(U64::from)
            .map_err(call_error)
    }
}
