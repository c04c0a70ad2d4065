//! `eth_call`, `eth_estimateGas` and `eth_createAccessList`: messages run on a
//! block's state, never committed, on the RPC execution threads within the call
//! time limit and gas cap (`pool`).

use std::time::Instant;

use alloy_eips::BlockId;
use alloy_eips::eip2930::AccessListResult;
use alloy_primitives::{Bytes, U64, U256};
use alloy_rpc_types_eth::{BlockOverrides, TransactionRequest, state::StateOverride};
use baton_execution::{
    CallBlock, CallContext, CallError, CallOutcome, CallRequest, call, create_access_list,
    estimate_gas, reverted_message,
};
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
    types::ErrorObjectOwned,
};

use crate::{EthHandler, internal, invalid_params, pool::timed_out_error as timed_out};

/// JSON-RPC code for a reverted call (geth's), with the revert data attached.
const EXECUTION_REVERTED: i32 = 3;

#[rpc(server)]
pub trait EthCallApi {
    /// With geth's state overrides (third parameter) and block overrides (fourth).
    #[method(name = "eth_call", with_extensions)]
    async fn call(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_override: Option<StateOverride>,
        block_overrides: Option<Box<BlockOverrides>>,
    ) -> RpcResult<Bytes>;

    #[method(name = "eth_estimateGas", with_extensions)]
    async fn estimate_gas(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_override: Option<StateOverride>,
    ) -> RpcResult<U64>;

    /// EIP-2930: the addresses and slots the message touches, and its gas with them.
    #[method(name = "eth_createAccessList", with_extensions)]
    async fn create_access_list(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
    ) -> RpcResult<AccessListResult>;
}

/// What a message's caller changes before it runs: accounts (geth's state
/// overrides) and the block's environment (block overrides).
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    pub(crate) state: Option<StateOverride>,
    pub(crate) block: Option<Box<BlockOverrides>>,
}

/// Applies geth's block overrides to the block a message runs in. Those baton's
/// blocks do not use (a random value, block hashes, blob fees) are refused.
fn override_block(block: &mut CallBlock, overrides: &BlockOverrides) -> RpcResult<()> {
    if overrides.random.is_some() || overrides.block_hash.is_some() {
        return Err(invalid_params(
            "block overrides of random and blockHash are not supported",
        ));
    }
    let to_u64 = |value: U256, what: &str| {
        u64::try_from(value).map_err(|_| invalid_params(format!("{what} override is over 2^64")))
    };
    if let Some(number) = overrides.number {
        block.number = to_u64(number, "number")?;
    }
    if let Some(time) = overrides.time {
        block.timestamp = time;
    }
    if let Some(gas_limit) = overrides.gas_limit {
        block.gas_limit = gas_limit;
    }
    if let Some(coinbase) = overrides.coinbase {
        block.coinbase = coinbase;
    }
    if let Some(base_fee) = overrides.base_fee {
        block.base_fee = to_u64(base_fee, "baseFee")?;
    }
    Ok(())
}

/// The message `request` describes, its gas at most `gas_cap` (geth's
/// `--rpc.gascap`).
fn message(request: &TransactionRequest, gas_cap: u64) -> CallRequest {
    CallRequest {
        gas: Some(request.gas.unwrap_or(gas_cap).min(gas_cap)),
        ..call_request(request)
    }
}

/// The message `request` describes, its gas as given.
pub(crate) fn call_request(request: &TransactionRequest) -> CallRequest {
    CallRequest {
        from: request.from,
        to: request.to,
        gas: request.gas,
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
        state_override: Option<StateOverride>,
        block_overrides: Option<Box<BlockOverrides>>,
    ) -> RpcResult<Bytes> {
        let overrides = Overrides {
            state: state_override,
            block: block_overrides,
        };
        self.run_message(
            extensions,
            &request,
            block,
            overrides,
            |context, message, deadline| {
                outcome(call(context, message, deadline).map_err(call_error)?)
            },
        )
        .await
    }

    async fn estimate_gas(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
        block: Option<BlockId>,
        state_override: Option<StateOverride>,
    ) -> RpcResult<U64> {
        let overrides = Overrides {
            state: state_override,
            block: None,
        };
        self.run_message(
            extensions,
            &request,
            block,
            overrides,
            |context, message, deadline| {
                estimate_gas(context, message, deadline)
                    .map(U64::from)
                    .map_err(call_error)
            },
        )
        .await
    }

    async fn create_access_list(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
        block: Option<BlockId>,
    ) -> RpcResult<AccessListResult> {
        let overrides = Overrides::default();
        self.run_message(
            extensions,
            &request,
            block,
            overrides,
            |context, message, deadline| {
                let outcome = create_access_list(context, message, deadline).map_err(call_error)?;
                Ok(AccessListResult {
                    access_list: outcome.access_list,
                    gas_used: U256::from(outcome.gas_used),
                    error: outcome.error,
                })
            },
        )
        .await
    }
}

impl EthHandler {
    /// Runs `job` on the message `request` describes, on `block`'s state with
    /// `overrides`, on an execution thread within the call's deadline.
    pub(crate) async fn run_message<T, F>(
        &self,
        extensions: &Extensions,
        request: &TransactionRequest,
        block: Option<BlockId>,
        overrides: Overrides,
        job: F,
    ) -> RpcResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&CallContext, &CallRequest, Instant) -> RpcResult<T> + Send + 'static,
    {
        let mut context = self.call_context(block)?;
        context.state_override = overrides.state;
        if let Some(block) = overrides.block {
            override_block(&mut context.block, &block)?;
        }
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
