//! The node signing for its unlocked dev accounts, as anvil and hardhat do:
//! `eth_accounts`, `eth_sendTransaction`, `eth_signTransaction`, `eth_sign`,
//! `personal_sign`, `eth_signTypedData_v4`; and `eth_fillTransaction`, which fills
//! in what a wallet would (for any sender, signing nothing).
//!
//! ```text
//!  eth_sendTransaction ─▶ fill (pending nonce, fees, estimated gas) ─▶ sign with
//!  the dev key ─▶ the same path as eth_sendRawTransaction (through the log)
//! ```
//!
//! Only accounts of the dev mnemonic are ever unlocked (`--dev-unlocked`; on by
//! default for `baton devnet`); any other address is refused.

use std::{collections::HashMap, sync::Arc};

use alloy_consensus::{SignableTransaction, Transaction as _, TxEnvelope, TypedTransaction};
use alloy_dyn_abi::TypedData;
use alloy_eips::{BlockId, eip2718::Encodable2718};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use baton_execution::next_base_fee;
use baton_primitives::DevAccount;
use jsonrpsee::{
    Extensions,
    core::{RpcResult, async_trait},
    proc_macros::rpc,
    types::ErrorObjectOwned,
};
use serde::Serialize;

use crate::{
    EthCallApiServer, EthHandler, EthStateApiServer, internal, invalid_params, state::SUGGESTED_TIP,
};

/// geth's answer for an address the node holds no key for.
const UNKNOWN_ACCOUNT: i32 = -32000;

/// The dev accounts this node signs for, in mnemonic order. Keys are held as
/// bytes and made signers when used, so a devnet of 100,000 accounts does not
/// spend a scalar multiplication per account at start-up.
#[derive(Clone, Default)]
pub struct Unlocked {
    addresses: Arc<Vec<Address>>,
    keys: Arc<HashMap<Address, B256>>,
}

impl std::fmt::Debug for Unlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlocked")
            .field("accounts", &self.addresses.len())
            .finish_non_exhaustive()
    }
}

impl Unlocked {
    pub fn new(accounts: &[DevAccount]) -> Self {
        Self {
            addresses: Arc::new(accounts.iter().map(|a| a.address).collect()),
            keys: Arc::new(
                accounts
                    .iter()
                    .map(|account| (account.address, account.private_key))
                    .collect(),
            ),
        }
    }

    fn signer(&self, address: Address) -> RpcResult<PrivateKeySigner> {
        let key = self.keys.get(&address).ok_or_else(|| {
            ErrorObjectOwned::owned(
                UNKNOWN_ACCOUNT,
                format!("unknown account {address}: this node signs only for its unlocked dev accounts (eth_accounts)"),
                None::<()>,
            )
        })?;
        let signer = PrivateKeySigner::from_bytes(key).map_err(internal)?;
        debug_assert_eq!(signer.address(), address, "a dev key signs for its address");
        Ok(signer)
    }
}

/// `eth_signTransaction`'s answer (the spec's, geth's): the encoded transaction
/// and the transaction itself.
#[derive(Debug, Clone, Serialize)]
pub struct SignedTransaction {
    raw: Bytes,
    tx: serde_json::Value,
}

/// `eth_fillTransaction`'s answer: the transaction as it would be signed.
#[derive(Debug, Clone, Serialize)]
pub struct FilledTransaction {
    tx: serde_json::Value,
}

/// A transaction not in a block, as the spec shows one: with `gasPrice`, which
/// for EIP-1559 fees is the most it may pay (`maxFeePerGas`).
fn unmined_json(tx: &impl Serialize, max_fee: u128) -> RpcResult<serde_json::Value> {
    let mut json = serde_json::to_value(tx).map_err(internal)?;
    if let Some(fields) = json.as_object_mut() {
        fields
            .entry("gasPrice")
            .or_insert_with(|| serde_json::json!(alloy_primitives::U128::from(max_fee)));
    }
    Ok(json)
}

#[rpc(server)]
pub trait EthSignApi {
    /// The unlocked dev accounts (none on a node without `--dev-unlocked`).
    #[method(name = "eth_accounts")]
    fn accounts(&self) -> RpcResult<Vec<Address>>;

    #[method(name = "eth_sendTransaction", with_extensions)]
    async fn send_transaction(&self, request: TransactionRequest) -> RpcResult<B256>;

    #[method(name = "eth_signTransaction", with_extensions)]
    async fn sign_transaction(&self, request: TransactionRequest) -> RpcResult<SignedTransaction>;

    /// Fills in nonce, fees, gas and chain id for any sender; signs nothing.
    #[method(name = "eth_fillTransaction", with_extensions)]
    async fn fill_transaction(&self, request: TransactionRequest) -> RpcResult<FilledTransaction>;

    /// EIP-191 signature of `message` (`"\x19Ethereum Signed Message:\n" + len`).
    #[method(name = "eth_sign")]
    fn sign(&self, address: Address, message: Bytes) -> RpcResult<Bytes>;

    /// `eth_sign` with its parameters the other way round (MetaMask's order).
    #[method(name = "personal_sign")]
    fn personal_sign(&self, message: Bytes, address: Address) -> RpcResult<Bytes>;

    /// EIP-712 signature of typed data, given as an object or as its JSON text.
    #[method(name = "eth_signTypedData_v4")]
    fn sign_typed_data_v4(&self, address: Address, data: serde_json::Value) -> RpcResult<Bytes>;
}

#[async_trait]
impl EthSignApiServer for EthHandler {
    fn accounts(&self) -> RpcResult<Vec<Address>> {
        Ok(self.unlocked.addresses.to_vec())
    }

    async fn send_transaction(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
    ) -> RpcResult<B256> {
        let signed = self.sign_filled(extensions, request).await?;
        self.submitter.send(signed.encoded_2718().into()).await
    }

    async fn sign_transaction(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
    ) -> RpcResult<SignedTransaction> {
        let tx = self.sign_filled(extensions, request).await?;
        Ok(SignedTransaction {
            raw: tx.encoded_2718().into(),
            tx: unmined_json(&tx, tx.max_fee_per_gas())?,
        })
    }

    async fn fill_transaction(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
    ) -> RpcResult<FilledTransaction> {
        let tx = self.fill(extensions, request).await?;
        Ok(FilledTransaction {
            tx: unmined_json(&tx, tx.max_fee_per_gas())?,
        })
    }

    fn sign(&self, address: Address, message: Bytes) -> RpcResult<Bytes> {
        let signature = self
            .unlocked
            .signer(address)?
            .sign_message_sync(&message)
            .map_err(internal)?;
        Ok(signature.as_bytes().into())
    }

    fn personal_sign(&self, message: Bytes, address: Address) -> RpcResult<Bytes> {
        self.sign(address, message)
    }

    fn sign_typed_data_v4(&self, address: Address, data: serde_json::Value) -> RpcResult<Bytes> {
        let signer = self.unlocked.signer(address)?;
        // MetaMask and viem send the typed data as a JSON string; others as an object.
        let data = match data {
            serde_json::Value::String(text) => serde_json::from_str(&text),
            object => serde_json::from_value(object),
        };
        let typed: TypedData =
            data.map_err(|e| invalid_params(format!("invalid EIP-712 typed data: {e}")))?;
        let signature = signer
            .sign_dynamic_typed_data_sync(&typed)
            .map_err(|e| invalid_params(format!("cannot sign the typed data: {e}")))?;
        Ok(signature.as_bytes().into())
    }
}

impl EthHandler {
    /// Signs for the dev accounts listed in `unlocked`.
    pub fn with_unlocked(mut self, unlocked: Unlocked) -> Self {
        self.unlocked = unlocked;
        self
    }

    /// Fills `request` and signs it with its sender's dev key.
    async fn sign_filled(
        &self,
        extensions: &Extensions,
        request: TransactionRequest,
    ) -> RpcResult<TxEnvelope> {
        let from = request
            .from
            .ok_or_else(|| invalid_params("missing from: the account to send from"))?;
        let signer = self.unlocked.signer(from)?;
        let tx = self.fill(extensions, request).await?;
        let signature = signer
            .sign_hash_sync(&tx.signature_hash())
            .map_err(internal)?;
        Ok(tx.into_signed(signature).into())
    }

    /// What a wallet fills in before signing, as geth fills it: the chain id, the
    /// sender's pending nonce, EIP-1559 fees (unless a gas price is given) and the
    /// estimated gas.
    async fn fill(
        &self,
        extensions: &Extensions,
        mut request: TransactionRequest,
    ) -> RpcResult<TypedTransaction> {
        let from = request
            .from
            .ok_or_else(|| invalid_params("missing from: the account to send from"))?;
        match request.chain_id {
            Some(id) if id != self.chain_id => {
                return Err(invalid_params(format!(
                    "chainId {id} is not this chain's ({})",
                    self.chain_id
                )));
            }
            _ => request.chain_id = Some(self.chain_id),
        }
        if request.blob_versioned_hashes.is_some() || request.sidecar.is_some() {
            return Err(invalid_params(
                "transaction type not supported: blob transactions (EIP-4844)",
            ));
        }
        if request.nonce.is_none() {
            let pending = self.transaction_count(from, Some(BlockId::pending()))?;
            request.nonce = Some(pending.to());
        }
        if request.gas_price.is_none() {
            let base_fee = next_base_fee(&self.consensus.chain().borrow().head.header);
            let tip = request.max_priority_fee_per_gas.unwrap_or(SUGGESTED_TIP);
            let max_fee = request
                .max_fee_per_gas
                .unwrap_or_else(|| (2 * u128::from(base_fee)).saturating_add(tip));
            request.max_priority_fee_per_gas = Some(tip.min(max_fee));
            request.max_fee_per_gas = Some(max_fee);
        }
        if request.gas.is_none() {
            let gas = self
                .estimate_gas(extensions, request.clone(), Some(BlockId::pending()), None)
                .await?;
            request.gas = Some(gas.to());
        }
        // No recipient: a contract creation.
        request.to.get_or_insert(TxKind::Create);
        if request.value.is_none() {
            request.value = Some(U256::ZERO);
        }
        let tx = request.build_typed_tx().map_err(|request| {
            invalid_params(format!(
                "cannot build a transaction from these fields (a gas price and EIP-1559 \
                 fees together?): {:?}",
                request.missing_keys()
            ))
        })?;
        Ok(tx)
    }
}
