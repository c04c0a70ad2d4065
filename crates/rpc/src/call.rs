//! `eth_call`, `eth_estimateGas` and `eth_createAccessList`: messages run on a
//! block's state, never committed, on the RPC execution threads within the call
//! time limit and gas cap (`pool`).

use std::time::Instant;

use alloy_eips::BlockId;
use alloy_eips::eip2930::AccessListResult;
use alloy_primitives::{Bytes, U64, U256};
use alloy_rpc_types_eth::TransactionRequest;
use baton_execution::{
    CallContext, CallError, CallOutcome, CallRequest, call, create_access_list, estimate_gas,
    reverted_message,
};
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
    types::ErrorObjectOwned,
};

use crate::{EthHandler, internal, pool::timed_out_error as timed_out};

/// JSON-RPC code for a reverted call (geth's), with the revert data attached.
const EXECUTION_REVERTED: i32 = 3;

#[rpc(server)]
pub trait EthCallApi {
    #[method(name = "eth_call", with_extensions)]
    async fn call(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<Bytes>;

    #[method(name = "eth_estimateGas", with_extensions)]
    async fn estimate_gas(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
    ) -> RpcResult<U64>;

    /// EIP-2930: the addresses and slots the message touches, and its gas with them.
    #[method(name = "eth_createAccessList", with_extensions)]
    async fn create_access_list(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
    ) -> RpcResult<AccessListResult>;
}

/// The message `request` describes, its gas at most `gas_cap` (geth's
/// `--rpc.gascap`).
fn message(request: &TransactionRequest, gas_cap: u64) -> CallRequest {
    CallRequest {
        from: request.from,
        to: request.to,
        gas: Some(request.gas.unwrap_or(gas_cap).min(gas_cap)),
        gas_price: request.gas_price.or(request.max_fee_per_gas),
        max_priority_fee_per_gas: request.max_priority_fee_per_gas,
        value: request.value,
        input: request.input.input().cloned().unwrap_or_default(),
        nonce: request.nonce,
        access_list: request.access_list.clone(),
    }
}

fn call_error(error: CallError) -> ErrorObjectOwned {
    match error {
        CallError::State(e) => internal(e),
        CallError::Timeout => timed_out(),
        CallError::Reverted { output, reason } => ErrorObjectOwned::owned(
            EXECUTION_REVERTED,
            reverted_message(reason.as_deref()),
            Some(output),
        ),
        other => ErrorObjectOwned::owned(-32000, other.to_string(), None::<()>),
    }
}

#[async_trait]
impl EthCallApiServer for EthHandler {
    async fn call(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
        block: Option<BlockId>,
    ) -> RpcResult<Bytes> {
        self.run_message(extensions, &request, block, |context, message, deadline| {
            outcome(call(context, message, deadline).map_err(call_error)?)
        })
        .await
    }

    async fn estimate_gas(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
        block: Option<BlockId>,
    ) -> RpcResult<U64> {
        self.run_message(extensions, &request, block, |context, message, deadline| {
            estimate_gas(context, message, deadline)
                .map(U64::from)
                .map_err(call_error)
        })
        .await
    }

    async fn create_access_list(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
        block: Option<BlockId>,
    ) -> RpcResult<AccessListResult> {
        self.run_message(extensions, &request, block, |context, message, deadline| {
            let outcome = create_access_list(context, message, deadline).map_err(call_error)?;
            Ok(AccessListResult {
                access_list: outcome.access_list,
                gas_used: U256::from(outcome.gas_used),
                error: outcome.error,
            })
        })
        .await
    }
}

impl EthHandler {
    /// Runs `job` on the message `request` describes, on `block`'s state, on an
    /// execution thread within the call's deadline.
    async fn run_message<T, F>(
        &self,
        extensions: &Extensions,
        request: &TransactionRequest,
        block: Option<BlockId>,
        job: F,
    ) -> RpcResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&CallContext, &CallRequest, Instant) -> RpcResult<T> + Send + 'static,
    {
        let context = self.call_context(block)?;
        let message = message(request, self.exec.limits().gas_cap);
        self.exec
            .run(extensions, move |deadline| {
                job(&context, &message, deadline)
            })
            .await
    }
}

/// What `eth_call` answers for a message's outcome.
fn outcome(outcome: CallOutcome) -> RpcResult<Bytes> {
    match outcome {
        CallOutcome::Success { output, .. } => Ok(output),
        CallOutcome::Revert { output, reason, .. } => Err(ErrorObjectOwned::owned(
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
