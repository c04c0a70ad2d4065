//! Read-only execution for `eth_call` and `eth_estimateGas`: a message run on the
//! state a block left (or the open block's), in that block's environment, never
//! committed.

use std::time::Instant;

use alloy_consensus::Header;
use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use baton_primitives::BlockStart;
use baton_storage::Store;
use revm::{
    context::{BlockEnv, CfgEnv, TxEnv, result::EVMError, result::ExecutionResult},
    database::CacheDB,
};

use crate::{SPEC, StateAt, StoreDb, deadline::Deadline};

/// The block a message runs in: the one whose state it reads (as geth does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallBlock {
    pub number: u64,
    pub timestamp: u64,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub coinbase: Address,
}

impl CallBlock {
    /// A sealed block's environment.
    pub fn of_header(header: &Header) -> Self {
        Self {
            number: header.number,
            timestamp: header.timestamp,
            gas_limit: header.gas_limit,
            base_fee: header.base_fee_per_gas.unwrap_or_default(),
            coinbase: header.beneficiary,
        }
    }

    /// The open block's environment.
    pub fn of_start(start: &BlockStart) -> Self {
        Self {
            number: start.number,
            timestamp: start.timestamp_ms / 1000,
            gas_limit: start.gas_limit,
            base_fee: start.base_fee,
            coinbase: start.coinbase,
        }
    }
}

/// Where a message runs: the state it reads and the block it runs in.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub store: Store,
    pub chain_id: u64,
    pub state: StateAt,
    pub block: CallBlock,
}

/// A message to run, as `eth_call` and `eth_estimateGas` describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallRequest {
    pub from: Option<Address>,
    pub to: Option<TxKind>,
    pub gas: Option<u64>,
    /// Legacy gas price or EIP-1559 max fee; absent means free (no fee check).
    pub gas_price: Option<u128>,
    pub max_priority_fee_per_gas: Option<u128>,
    pub value: Option<U256>,
    pub input: Bytes,
    pub nonce: Option<u64>,
}

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Success {
        output: Bytes,
        gas_used: u64,
    },
    /// `REVERT`: the revert data, and the `Error(string)` reason when there is one.
    Revert {
        output: Bytes,
        reason: Option<String>,
    },
    Halt {
        reason: String,
        gas_used: u64,
    },
}

/// Why a message could not run at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Invalid(String),
    /// The message reverts at any gas: `output` is the revert data.
    #[error("{}", reverted_message(reason.as_deref()))]
    Reverted {
        output: Bytes,
        reason: Option<String>,
    },
    /// The message ran past its deadline.
    #[error("execution aborted (timeout exceeded)")]
    Timeout,
    #[error("gas required exceeds allowance ({0})")]
    OutOfGas(u64),
    #[error("state: {0}")]
    State(String),
}

/// The gas a call may use: what it asks for, at most the block gas limit.
fn gas_cap(request: &CallRequest, block: &CallBlock) -> u64 {
    request.gas.unwrap_or(block.gas_limit).min(block.gas_limit)
}

/// Runs `request` in `context`, giving up at `deadline`.
pub fn call(
    context: &CallContext,
    request: &CallRequest,
    deadline: Instant,
) -> Result<CallOutcome, CallError> {
    run(context, request, gas_cap(request, &context.block), deadline)
}

/// The least gas with which `request` succeeds (binary search, as geth does); the
/// whole search gives up at `deadline`.
pub fn estimate_gas(
    context: &CallContext,
    request: &CallRequest,
    deadline: Instant,
) -> Result<u64, CallError> {
    let cap = gas_cap(request, &context.block);
    let used = match run(context, request, cap, deadline)? {
        CallOutcome::Success { gas_used, .. } => gas_used,
        CallOutcome::Revert { output, reason } => {
            return Err(CallError::Reverted { output, reason });
        }
        CallOutcome::Halt { .. } => return Err(CallError::OutOfGas(cap)),
    };
    // Refunds and the 63/64 rule mean the gas used is a lower bound, not the answer.
    let (mut low, mut high) = (used.saturating_sub(1), cap);
    while low + 1 < high {
        let mid = low + (high - low) / 2;
        match run(context, request, mid, deadline) {
            Ok(CallOutcome::Success { .. }) => high = mid,
            Ok(_) | Err(CallError::Invalid(_)) => low = mid,
            Err(e) => return Err(e),
        }
    }
    Ok(high)
}

fn run(
    context: &CallContext,
    request: &CallRequest,
    gas: u64,
    deadline: Instant,
) -> Result<CallOutcome, CallError> {
    let block = &context.block;
    let mut cfg_env = CfgEnv::new_with_spec(SPEC).with_chain_id(context.chain_id);
    cfg_env.disable_nonce_check = request.nonce.is_none();
    let env = EvmEnv {
        cfg_env,
        block_env: BlockEnv {
            number: U256::from(block.number),
            beneficiary: block.coinbase,
            timestamp: U256::from(block.timestamp),
            gas_limit: block.gas_limit,
            // A message with no price pays no fee, so it is not held to the base fee.
            basefee: if request.gas_price.is_some() {
                block.base_fee
            } else {
                0
            },
            prevrandao: Some(B256::ZERO),
            ..Default::default()
        },
    };
    let tx = TxEnv {
        tx_type: if request.max_priority_fee_per_gas.is_some() {
            2
        } else {
            0
        },
        caller: request.from.unwrap_or_default(),
        gas_limit: gas,
        gas_price: request.gas_price.unwrap_or_default(),
        kind: request.to.unwrap_or(TxKind::Create),
        value: request.value.unwrap_or_default(),
        data: request.input.clone(),
        nonce: request.nonce.unwrap_or_default(),
        chain_id: Some(context.chain_id),
        gas_priority_fee: request.max_priority_fee_per_gas,
        ..Default::default()
    };
    let mut db = CacheDB::new(StoreDb::at(context.store.clone(), context.state.clone()));
    let mut evm =
        EthEvmFactory::default().create_evm_with_inspector(&mut db, env, Deadline::new(deadline));
    let outcome = evm.transact(tx);
    if evm.inspector().timed_out {
        return Err(CallError::Timeout);
    }
    match outcome {
        Ok(result) => Ok(match result.result {
            ExecutionResult::Success { .. } => CallOutcome::Success {
                gas_used: result.result.tx_gas_used(),
                output: result.result.into_output().unwrap_or_default(),
            },
            ExecutionResult::Revert { output, .. } => CallOutcome::Revert {
                reason: revert_reason(&output),
                output,
            },
            ExecutionResult::Halt { reason, .. } => CallOutcome::Halt {
                reason: format!("{reason:?}"),
                gas_used: gas,
            },
        }),
        Err(EVMError::Transaction(invalid)) => Err(CallError::Invalid(
            crate::builder::refusal(invalid).to_string(),
        )),
        Err(EVMError::Database(e)) => Err(CallError::State(e.to_string())),
        Err(other) => Err(CallError::Invalid(other.to_string())),
    }
}

/// What a reverted message is reported as, with its reason when it has one.
pub fn reverted_message(reason: Option<&str>) -> String {
    match reason {
        Some(reason) => format!("execution reverted: {reason}"),
        None => "execution reverted".to_string(),
    }
}

/// The message of a Solidity `Error(string)` revert, if that is what `output` holds.
pub fn revert_reason(output: &[u8]) -> Option<String> {
    const ERROR_SELECTOR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
    let body = output.strip_prefix(&ERROR_SELECTOR)?;
    let word = |at: usize| -> Option<usize> {
        let bytes = body.get(at..at + 32)?;
        if bytes[..24].iter().any(|b| *b != 0) {
            return None;
        }
        Some(u64::from_be_bytes(bytes[24..].try_into().ok()?) as usize)
    };
    let offset = word(0)?;
    let len = word(offset)?;
    let text = body.get(offset + 32..offset.checked_add(32)?.checked_add(len)?)?;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baton_primitives::ChainSpec;

    use super::*;
    use crate::write_genesis;

    /// An endless loop (`JUMPDEST PUSH1 0 JUMP`) run as a contract creation, with
    /// `gas` to burn, on a fresh dev chain.
    fn endless_loop(gas: u64) -> (tempfile::TempDir, CallContext, CallRequest) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let spec = ChainSpec::dev();
        write_genesis(&store, &spec).expect("genesis");
        let context = CallContext {
            store,
            chain_id: spec.chain_id,
            state: StateAt::Head,
            block: CallBlock {
                number: 1,
                timestamp: 1,
                gas_limit: u64::MAX / 2,
                base_fee: 0,
                coinbase: Address::ZERO,
            },
        };
        let request = CallRequest {
            gas: Some(gas),
            input: Bytes::from_static(&[0x5b, 0x60, 0x00, 0x56]),
            ..Default::default()
        };
        (dir, context, request)
    }

    /// geth's `--rpc.evmtimeout`: a call that would run for minutes stops at its
    /// deadline with a clear error, and so does a whole gas estimate.
    #[test]
    fn an_endless_call_stops_at_its_deadline() {
        let (_dir, context, request) = endless_loop(u64::MAX / 4);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(100);
        assert!(matches!(
            call(&context, &request, deadline),
            Err(CallError::Timeout)
        ));
        assert!(matches!(
            estimate_gas(
                &context,
                &request,
                Instant::now() + Duration::from_millis(100)
            ),
            Err(CallError::Timeout)
        ));
        assert_eq!(
            CallError::Timeout.to_string(),
            "execution aborted (timeout exceeded)"
        );
    }

    /// With gas as its bound and time to spare, the same loop ends out of gas.
    #[test]
    fn a_bounded_loop_runs_out_of_gas_before_its_deadline() {
        let (_dir, context, request) = endless_loop(100_000);
        let outcome = call(&context, &request, Instant::now() + Duration::from_secs(60));
        assert!(
            matches!(outcome, Ok(CallOutcome::Halt { .. })),
            "{outcome:?}"
        );
    }

    #[test]
    fn error_string_reasons_are_decoded_and_garbage_is_not() {
        // Error("nope")
        let mut output = vec![0x08, 0xc3, 0x79, 0xa0];
        output.extend_from_slice(&U256::from(32).to_be_bytes::<32>());
        output.extend_from_slice(&U256::from(4).to_be_bytes::<32>());
        let mut text = [0u8; 32];
        text[..4].copy_from_slice(b"nope");
        output.extend_from_slice(&text);
        assert_eq!(revert_reason(&output), Some("nope".to_string()));
        assert_eq!(revert_reason(&output[..40]), None);
        assert_eq!(revert_reason(b"\x01\x02"), None);
        let mut huge = output.clone();
        huge[4 + 32 + 24..4 + 64].copy_from_slice(&[0xff; 8]);
        assert_eq!(revert_reason(&huge), None);
    }
}
