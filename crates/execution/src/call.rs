//! Read-only execution for `eth_call` and `eth_estimateGas` (with geth's state
//! overrides): a message run on the
//! state a block left (or the open block's), in that block's environment, never
//! committed.

use std::time::Instant;

use alloy_consensus::Header;
use alloy_eips::eip2930::AccessList;
use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_rpc_types_eth::state::StateOverride;
use baton_primitives::BlockStart;
use baton_storage::Store;
use revm::{
    context::{BlockEnv, CfgEnv, TxEnv, result::EVMError, result::ExecutionResult},
    database::CacheDB,
    state::Bytecode,
};

use crate::{SPEC, StateAt, StateError, StoreDb, probe::Probe};

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
    /// Accounts changed before the message runs (`eth_call`'s state overrides).
    pub state_override: Option<StateOverride>,
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
    /// EIP-2930: addresses and slots warmed before it runs.
    pub access_list: Option<AccessList>,
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
        gas_used: u64,
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
        CallOutcome::Revert { output, reason, .. } => {
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

/// What `eth_createAccessList` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessListOutcome {
    pub access_list: AccessList,
    /// Gas the message uses with that list.
    pub gas_used: u64,
    /// Why the message failed with it, if it did (the list is still given).
    pub error: Option<String>,
}

/// Runs of `eth_createAccessList` before its list must have settled.
const ACCESS_LIST_ROUNDS: usize = 8;

/// The access list of `request`, as geth makes it: run, record what the message
/// touches (less its sender, recipient and the precompiles), run again with that
/// list, until the list stops changing; with the gas used under it.
pub fn create_access_list(
    context: &CallContext,
    request: &CallRequest,
    deadline: Instant,
) -> Result<AccessListOutcome, CallError> {
    let gas = gas_cap(request, &context.block);
    let from = request.from.unwrap_or_default();
    // The recipient, or the contract a creation makes: warm anyway, as geth leaves it out.
    let to = match request.to {
        Some(TxKind::Call(to)) => to,
        _ => from.create(match request.nonce {
            Some(nonce) => nonce,
            None => nonce_of(context, from)?,
        }),
    };
    let skip = |address: &Address| *address == from || *address == to || is_precompile(address);
    let mut request = request.clone();
    let mut list = request.access_list.take().unwrap_or_default();
    for _ in 0..ACCESS_LIST_ROUNDS {
        request.access_list = Some(list.clone());
        let (outcome, probe) = run_probed(context, &request, gas, Probe::new(deadline).recording());
        let found = probe.access_list(skip);
        if found == list {
            let (gas_used, error) = match outcome? {
                CallOutcome::Success { gas_used, .. } => (gas_used, None),
                CallOutcome::Revert {
                    reason, gas_used, ..
                } => (gas_used, Some(reverted_message(reason.as_deref()))),
                CallOutcome::Halt { reason, gas_used } => (gas_used, Some(reason)),
            };
            return Ok(AccessListOutcome {
                access_list: list,
                gas_used,
                error,
            });
        }
        list = found;
    }
    Err(CallError::Invalid(format!(
        "the access list did not settle in {ACCESS_LIST_ROUNDS} runs"
    )))
}

/// The nonce of `address` in `context`'s state.
fn nonce_of(context: &CallContext, address: Address) -> Result<u64, CallError> {
    use revm::database_interface::DatabaseRef;
    let db = StoreDb::at(context.store.clone(), context.state.clone());
    let account = db
        .basic_ref(address)
        .map_err(|e| CallError::State(e.to_string()))?;
    Ok(account.map_or(0, |a| a.nonce))
}

/// Whether `address` is a precompile of the spec baton runs (0x01..=0x11).
fn is_precompile(address: &Address) -> bool {
    address.0[..19].iter().all(|b| *b == 0) && (1..=0x11).contains(&address.0[19])
}

fn run(
    context: &CallContext,
    request: &CallRequest,
    gas: u64,
    deadline: Instant,
) -> Result<CallOutcome, CallError> {
    run_probed(context, request, gas, Probe::new(deadline)).0
}

/// The block environment of `block`: one definition for building, tracing and
/// calls (DESIGN invariant 4: a block traced again runs as it was sealed).
fn block_env(block: &CallBlock) -> BlockEnv {
    BlockEnv {
        number: U256::from(block.number),
        beneficiary: block.coinbase,
        timestamp: U256::from(block.timestamp),
        gas_limit: block.gas_limit,
        basefee: block.base_fee,
        difficulty: U256::ZERO,
        prevrandao: Some(B256::ZERO),
        ..Default::default()
    }
}

/// The environment `block` executes in as a block of the chain (the builder's,
/// and a sealed block's when it is traced again).
pub(crate) fn sealed_env(chain_id: u64, block: &CallBlock) -> EvmEnv {
    let mut cfg_env = CfgEnv::new_with_spec(SPEC).with_chain_id(chain_id);
    cfg_env.tx_chain_id_check = true;
    EvmEnv {
        cfg_env,
        block_env: block_env(block),
    }
}

/// The environment and transaction `request` runs as, with `gas`.
pub(crate) fn message_env(
    context: &CallContext,
    request: &CallRequest,
    gas: u64,
) -> (EvmEnv, TxEnv) {
    let mut cfg_env = CfgEnv::new_with_spec(SPEC).with_chain_id(context.chain_id);
    cfg_env.disable_nonce_check = request.nonce.is_none();
    let mut block_env = block_env(&context.block);
    // A message with no price pays no fee, so it is not held to the base fee.
    if request.gas_price.is_none() {
        block_env.basefee = 0;
    }
    let env = EvmEnv { cfg_env, block_env };
    let tx = TxEnv {
        tx_type: if request.max_priority_fee_per_gas.is_some() {
            2
        } else if request.access_list.is_some() {
            1
        } else {
            0
        },
        access_list: request.access_list.clone().unwrap_or_default(),
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
    (env, tx)
}

/// The state `context` reads, with its state overrides applied.
pub(crate) fn overridden_db(context: &CallContext) -> Result<CacheDB<StoreDb>, CallError> {
    let mut db = CacheDB::new(StoreDb::at(context.store.clone(), context.state.clone()));
    if let Some(overrides) = &context.state_override {
        apply_state_override(&mut db, overrides)?;
    }
    Ok(db)
}

/// Applies geth's state overrides to `db`: `state` replaces an account's whole
/// storage, `stateDiff` sets the slots it names.
pub(crate) fn apply_state_override(
    db: &mut CacheDB<StoreDb>,
    overrides: &StateOverride,
) -> Result<(), CallError> {
    use revm::database_interface::DatabaseRef;
    let state_error = |e: StateError| CallError::State(e.to_string());
    for (address, account) in overrides {
        if account.move_precompile_to.is_some() {
            return Err(CallError::Invalid(
                "movePrecompileToAddress is not supported".into(),
            ));
        }
        let mut info = db
            .basic_ref(*address)
            .map_err(state_error)?
            .unwrap_or_default();
        if let Some(balance) = account.balance {
            info.balance = balance;
        }
        if let Some(nonce) = account.nonce {
            info.nonce = nonce;
        }
        if let Some(code) = &account.code {
            info.set_code(Bytecode::new_raw(code.clone()));
        } else if info.code.is_none() {
            info.code = Some(db.code_by_hash_ref(info.code_hash).map_err(state_error)?);
        }
        db.insert_account_info(*address, info);
        let slot = |key: &B256| U256::from_be_bytes(key.0);
        match (&account.state, &account.state_diff) {
            (Some(_), Some(_)) => {
                return Err(CallError::Invalid(format!(
                    "account {address} has both state and stateDiff overrides"
                )));
            }
            (Some(state), None) => db
                .replace_account_storage(
                    *address,
                    state.iter().map(|(k, v)| (slot(k), slot(v))).collect(),
                )
                .map_err(state_error)?,
            (None, Some(diff)) => {
                for (key, value) in diff {
                    db.insert_account_storage(*address, slot(key), slot(value))
                        .map_err(state_error)?;
                }
            }
            (None, None) => {}
        }
    }
    Ok(())
}

/// Runs `request` watched by `probe`; gives the probe back with what it saw.
fn run_probed(
    context: &CallContext,
    request: &CallRequest,
    gas: u64,
    probe: Probe,
) -> (Result<CallOutcome, CallError>, Probe) {
    let (env, tx) = message_env(context, request, gas);
    let mut db = match overridden_db(context) {
        Ok(db) => db,
        Err(e) => return (Err(e), probe),
    };
    let mut evm = EthEvmFactory::default().create_evm_with_inspector(&mut db, env, probe);
    let outcome = evm.transact(tx);
    let probe = std::mem::replace(evm.inspector_mut(), Probe::new(Instant::now()));
    drop(evm);
    if probe.timed_out {
        return (Err(CallError::Timeout), probe);
    }
    let outcome = match outcome {
        Ok(result) => Ok(match result.result {
            ExecutionResult::Success { .. } => CallOutcome::Success {
                gas_used: result.result.tx_gas_used(),
                output: result.result.into_output().unwrap_or_default(),
            },
            ExecutionResult::Revert { .. } => {
                let gas_used = result.result.tx_gas_used();
                let output = result.result.into_output().unwrap_or_default();
                CallOutcome::Revert {
                    gas_used,
                    reason: revert_reason(&output),
                    output,
                }
            }
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
    };
    (outcome, probe)
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
        let bytes = body.get(at..at.checked_add(32)?)?;
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

    /// Revert data is the caller's: offsets and lengths at the top of the range
    /// are not a reason (they used to overflow).
    #[test]
    fn a_revert_reason_with_offsets_near_usize_max_is_no_reason() {
        let mut output = vec![0x08, 0xc3, 0x79, 0xa0];
        output.extend_from_slice(&[0u8; 24]);
        output.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(revert_reason(&output), None);
        let mut pointing = vec![0x08, 0xc3, 0x79, 0xa0];
        pointing.extend_from_slice(&[0u8; 31]);
        pointing.push(32);
        pointing.extend_from_slice(&[0u8; 24]);
        pointing.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(revert_reason(&pointing), None);
    }

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
            state_override: None,
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

    /// `eth_createAccessList`, as geth: an address whose balance is read and one
    /// called are listed, and so is every slot loaded, the creation's own
    /// included; the gas used is that of a run with the list.
    #[test]
    fn an_access_list_names_what_a_message_touches() {
        let (_dir, context, _) = endless_loop(0);
        let other = Address::repeat_byte(0x42);
        let storage_owner = Address::repeat_byte(0x43);
        // BALANCE(other), then STATICCALL storage_owner (no code: returns at once),
        // then SLOAD(7) on the contract being created.
        let mut input = vec![0x73];
        input.extend_from_slice(other.as_slice());
        input.extend_from_slice(&[0x31, 0x50]);
        input.extend_from_slice(&[0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x73]);
        input.extend_from_slice(storage_owner.as_slice());
        input.extend_from_slice(&[0x61, 0xff, 0xff, 0xfa, 0x50]);
        input.extend_from_slice(&[0x60, 0x07, 0x54, 0x50, 0x00]);
        let request = CallRequest {
            gas: Some(1_000_000),
            input: input.into(),
            ..Default::default()
        };
        let outcome =
            create_access_list(&context, &request, Instant::now() + Duration::from_secs(60))
                .expect("access list");
        assert_eq!(outcome.error, None);
        let listed: std::collections::BTreeSet<(Address, Vec<B256>)> = outcome
            .access_list
            .0
            .iter()
            .map(|item| (item.address, item.storage_keys.clone()))
            .collect();
        let created = Address::ZERO.create(0);
        let slot = B256::from(U256::from(7).to_be_bytes::<32>());
        assert_eq!(
            listed,
            [
                (other, vec![]),
                (storage_owner, vec![]),
                (created, vec![slot])
            ]
            .into_iter()
            .collect()
        );
        let plain = match call(&context, &request, Instant::now() + Duration::from_secs(60)) {
            Ok(CallOutcome::Success { gas_used, .. }) => gas_used,
            other => panic!("{other:?}"),
        };
        assert_ne!(
            outcome.gas_used, plain,
            "the list changes what the message pays"
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
